//! The PROXY protocol with a real HAProxy in front (Debian's
//! /usr/sbin/haproxy, in TCP mode, `send-proxy` and `send-proxy-v2`, TLS
//! passed through): rampart keys everything on the client HAProxy names.
//! The routes' access rules show which address rampart sees: `/who` admits
//! only 127.0.0.7, a client HAProxy relays from its own 127.0.0.1. Strict:
//! a connection on such a listener without the header is closed unanswered,
//! and one that sends nothing is closed at `header_timeout`.

use std::{
    io::Read,
    net::TcpStream,
    time::{Duration, Instant},
};

use tests::{
    certs::self_signed,
    daemon::{Daemon, cli, control_section},
    netns::NetNs,
    privilege::require_root,
    process::Spawned,
};

const HAPROXY: &str = "/usr/sbin/haproxy";

/// The status curl gets from source `src` (self-signed certificates
/// accepted); "000" when the connection is closed unanswered.
fn curl(ns: &NetNs, src: &str, url: &str) -> String {
    let out = ns
        .command("curl")
        .args([
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "3",
        ])
        .args(["--interface", src, url])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// HAProxy in TCP mode: 9001 -> plain with v1, 9002 -> plain with v2,
/// 9003 -> TLS with v2 (the ClientHello follows the header).
fn haproxy_config() -> String {
    let mut cfg = String::from(
        "global\n  maxconn 100\n\
         defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n",
    );
    for (port, to, send) in [
        (9001, 8081, "send-proxy"),
        (9002, 8081, "send-proxy-v2"),
        (9003, 8444, "send-proxy-v2"),
    ] {
        cfg.push_str(&format!(
            "frontend f{port}\n  bind 127.0.0.1:{port}\n  default_backend b{port}\n\
             backend b{port}\n  server s 127.0.0.1:{to} {send}\n"
        ));
    }
    cfg
}

#[test]
fn haproxy_in_front_names_the_client_with_proxy_protocol_v1_and_v2() {
    if !require_root("haproxy_in_front_names_the_client_with_proxy_protocol_v1_and_v2") {
        return;
    }
    assert!(
        std::path::Path::new(HAPROXY).exists(),
        "{HAPROXY} missing: `cargo xtask bootstrap` installs it"
    );
    let ns = NetNs::new("h16b-pp");
    let dir = tests::scratch::Scratch::new("h16b-pp");
    self_signed(&dir, "site");
    let config = dir.join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            "[filter]\ninterfaces = []\n\n[http]\nheader_timeout = \"1s\"\n\
             access_log = \"{0}/access.log\"\n\n\
             [[listener]]\nbind = \"127.0.0.1:8081\"\nproxy_protocol = true\n\n\
             [[listener]]\nbind = \"127.0.0.1:8444\"\nproxy_protocol = true\n\
             tls = {{ cert = \"{0}/site.crt\", key = \"{0}/site.key\" }}\n\n\
             [[route]]\npath = \"/who\"\nrespond = 200\nbody = \"you\"\n\
             access = [\"allow 127.0.0.7\", \"deny all\"]\n\n\
             [[route]]\nrespond = 200\nbody = \"open\"\n\n{1}",
            dir.display(),
            control_section(&dir)
        ),
    )
    .unwrap();
    let daemon = Daemon::serving(&ns, &config, "127.0.0.1:8081");
    let hcfg = dir.join("haproxy.cfg");
    std::fs::write(&hcfg, haproxy_config()).unwrap();
    let mut cmd = ns.command(HAPROXY);
    cmd.args(["-db", "-f"]).arg(&hcfg);
    let mut haproxy = Spawned::start("haproxy", cmd, &dir.join("haproxy.log"));
    haproxy.wait_until(Duration::from_secs(10), || {
        ns.run(|| TcpStream::connect("127.0.0.1:9003").is_ok())
    });

    let status = |src: &str, url: &str| {
        let mut s = curl(&ns, src, url);
        if s == "000" {
            // One retry: the first connection through can race HAProxy's start.
            std::thread::sleep(Duration::from_millis(200));
            s = curl(&ns, src, url);
        }
        s
    };
    for (what, base) in [
        ("v1", "http://127.0.0.1:9001"),
        ("v2", "http://127.0.0.1:9002"),
        ("v2 + TLS", "https://127.0.0.1:9003"),
    ] {
        let who = format!("{base}/who");
        assert_eq!(
            status("127.0.0.7", &who),
            "200",
            "{what}: the allowed client"
        );
        assert_eq!(status("127.0.0.8", &who), "403", "{what}: another client");
        assert_eq!(
            status("127.0.0.8", &format!("{base}/")),
            "200",
            "{what}: open route"
        );
    }

    // A ban on a client behind HAProxy is enforced at L7, by its address;
    // HAProxy's own connections (127.0.0.1) stay admitted by the gate.
    let c = config.to_str().unwrap();
    let (ok, _, err) = cli(&ns, &["-c", c, "block", "add", "127.0.0.9", "--ttl", "60"]);
    assert!(ok, "block add: {err}");
    assert_eq!(
        status("127.0.0.9", "http://127.0.0.1:9002/"),
        "403",
        "banned client"
    );
    assert_eq!(
        status("127.0.0.8", "http://127.0.0.1:9002/"),
        "200",
        "its neighbour"
    );

    // Strict: without the header, nothing is answered, plain or TLS.
    assert_eq!(curl(&ns, "127.0.0.7", "http://127.0.0.1:8081/"), "000");
    assert_eq!(curl(&ns, "127.0.0.7", "https://127.0.0.1:8444/"), "000");
    // A connection that sends nothing is closed at header_timeout (1 s).
    let waited = ns.run(|| {
        let mut s = TcpStream::connect("127.0.0.1:8081").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let t = Instant::now();
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "closed without an answer");
        t.elapsed()
    });
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );

    // The access log has the clients HAProxy named, never HAProxy itself.
    std::thread::sleep(Duration::from_millis(1500));
    let log = std::fs::read_to_string(dir.join("access.log")).unwrap_or_default();
    assert!(log.lines().any(|l| l.starts_with("127.0.0.7 ")), "{log}");
    assert!(log.lines().any(|l| l.starts_with("127.0.0.8 ")), "{log}");
    assert!(!log.lines().any(|l| l.starts_with("127.0.0.1 ")), "{log}");
    drop(haproxy);
    daemon.stop();
    drop(dir);
}
