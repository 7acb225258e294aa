//! The fleet through a TLS-only redis-server (issue 18): `redis =
//! "rediss://..."` with `tls = { ca = ... }`. Redis listens on its TLS port
//! only (`--port 0`), its certificate signed by a CA the test makes with
//! rcgen, so a ban that reaches another host went through TLS. A host given
//! another CA refuses the server's certificate: it says so in its log and
//! `fleet status`, keeps serving and enforcing its own bans, and exits
//! cleanly. With `tls-auth-clients yes`, hosts with `cert`/`key` signed by
//! the CA synchronise and one without is refused.

use std::time::Duration;

use proxy_user::control_socket::protocol::Request;
use tests::redis::Redis;

use super::fleet_host::{Host, root, wait_for};

#[test]
fn fleet_tls_a_ban_travels_through_tls_redis_and_a_wrong_ca_is_refused_without_a_crash() {
    if !tests::redis::available("fleet_tls") {
        return;
    }
    let root = root("tls");
    let dir = &root.0;
    tests::certs::ca_signed(dir, "ca", &["redis"]);
    tests::certs::ca_signed(dir, "other-ca", &[]);
    let redis = Redis::with_tls(
        dir,
        &dir.join("redis.crt"),
        &dir.join("redis.key"),
        &dir.join("ca.crt"),
        false,
    );
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let tls = |ca: &str| format!("tls = {{ ca = \"{}\" }}\n", dir.join(ca).display());
    let mut a = Host::with_redis(dir, "a", &url, &tls("ca.crt"), "", "");
    let mut b = Host::with_redis(dir, "b", &url, &tls("ca.crt"), "", "");
    // `start` waits for `fleet status` to say "up": synchronised over TLS.
    a.start();
    b.start();

    let mut took = Vec::new();
    for i in 1..=10 {
        let addr = format!("127.18.201.{i}");
        assert!(b.serves(&addr), "{addr} served before the ban");
        a.ban(&addr, &format!("tls {i}"), false);
        took.push(wait_for(
            "a ban on A enforced on B through TLS Redis",
            Duration::from_secs(5),
            || b.banned(&addr),
        ));
        assert!(!b.serves(&addr), "{addr} refused on B once banned");
    }
    took.sort();
    super::support::figure(
        "fleet ban propagation A -> B through TLS Redis",
        format!(
            "{} samples: median {:?}, max {:?}",
            took.len(),
            took[took.len() / 2],
            took[took.len() - 1]
        ),
    );

    // A host that trusts another CA: the handshake fails, said once, and
    // everything local goes on.
    let mut d = Host::with_redis(dir, "d", &url, &tls("other-ca.crt"), "", "");
    d.start_serving();
    wait_for("d's fleet down", Duration::from_secs(10), || {
        d.call(&Request::FleetStatus)["health"] == "down"
    });
    let status = d.call(&Request::FleetStatus);
    let error = status["error"].as_str().unwrap_or_default().to_string();
    eprintln!("d's fleet status error: {error}");
    assert!(error.contains("certificate"), "{status}");
    let log = d.log();
    let said = log
        .lines()
        .filter(|l| l.contains("fleet: Redis unreachable or failing"))
        .collect::<Vec<_>>();
    assert_eq!(said.len(), 1, "said once:\n{log}");
    assert!(said[0].contains("certificate"), "{}", said[0]);
    let local = "127.18.202.1";
    assert!(d.serves(local));
    d.ban(local, "while Redis refuses us", false);
    assert!(d.banned(local));
    assert!(
        !d.serves(local),
        "d enforces its own ban with the fleet down"
    );
    assert!(d.serves("127.18.202.2"), "and serves everyone else");
    // It never reached Redis, so not B either (B reads the log every 100 ms).
    std::thread::sleep(Duration::from_secs(1));
    assert!(!b.banned(local), "a ban d could not publish is not on B");
    d.stop();
    b.stop();
    a.stop();
}

#[test]
fn fleet_tls_client_certificates_are_presented_and_a_host_without_one_is_refused() {
    if !tests::redis::available("fleet_tls_client_certificates") {
        return;
    }
    let root = root("mtls");
    let dir = &root.0;
    tests::certs::ca_signed(dir, "ca", &["redis", "client"]);
    let redis = Redis::with_tls(
        dir,
        &dir.join("redis.crt"),
        &dir.join("redis.key"),
        &dir.join("ca.crt"),
        true,
    );
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let ca = dir.join("ca.crt").display().to_string();
    let mutual = format!(
        "tls = {{ ca = \"{ca}\", cert = \"{}\", key = \"{}\" }}\n",
        dir.join("client.crt").display(),
        dir.join("client.key").display()
    );
    let mut a = Host::with_redis(dir, "a", &url, &mutual, "", "");
    let mut b = Host::with_redis(dir, "b", &url, &mutual, "", "");
    a.start();
    b.start();
    let addr = "127.18.203.1";
    a.ban(addr, "mutual tls", false);
    wait_for(
        "a ban on A enforced on B through mutual TLS",
        Duration::from_secs(5),
        || b.banned(addr),
    );
    assert!(!b.serves(addr));

    let mut d = Host::with_redis(
        dir,
        "d",
        &url,
        &format!("tls = {{ ca = \"{ca}\" }}\n"),
        "",
        "",
    );
    d.start_serving();
    wait_for(
        "d's fleet down without a client certificate",
        Duration::from_secs(10),
        || d.call(&Request::FleetStatus)["health"] == "down",
    );
    let status = d.call(&Request::FleetStatus);
    eprintln!("d without a client certificate: {}", status["error"]);
    assert!(
        status["error"]
            .as_str()
            .is_some_and(|e| e.contains("CertificateRequired")),
        "{status}"
    );
    assert!(d.serves("127.18.203.2"), "d keeps serving");
    d.stop();
    b.stop();
    a.stop();
}
