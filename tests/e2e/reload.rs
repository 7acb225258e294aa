//! `rampart reload` and listeners, against the real daemon in a namespace:
//! a new listener opens, a removed one closes, a certificate renewed in
//! place is served after the reload, unchanged sockets stay and in-flight
//! requests finish; a reload that cannot bind changes nothing.

use std::{path::Path, process::Command, time::Duration};

use tests::{
    backend::{http_get, named_backend},
    daemon::{cli, control_section, rampart_bin},
    netns::NetNs,
    privilege::require_root,
    process::Spawned,
};

fn config(dir: &Path, listeners: &[&str]) -> String {
    let mut text = String::new();
    for l in listeners {
        text.push_str(&format!("[[listener]]\n{l}\n\n"));
    }
    text + &format!(
        "[upstream.app]\nservers = [\"127.0.0.1:9001\"]\n\n[[route]]\nupstream = \"app\"\n\n{}",
        control_section(dir)
    )
}

const PLAIN: &str = "bind = \"127.0.0.1:8080\"";
const EXTRA: &str = "bind = \"127.0.0.1:8081\"";
const TAKEN: &str = "bind = \"127.0.0.1:8090\"";
const TLS: &str = "bind = \"127.0.0.1:8443\"\ntls = { cert = \"site.crt\", key = \"site.key\" }";

/// SHA-256 fingerprint of the certificate `127.0.0.1:8443` presents in `ns`.
fn served_fingerprint(ns: &NetNs) -> String {
    let out = ns
        .command("sh")
        .args([
            "-c",
            "openssl s_client -connect 127.0.0.1:8443 </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn file_fingerprint(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `rampart_config_generation` and `rampart_config_last_reload_successful`
/// from the admin listener's `/metrics` (curl in `ns`).
fn reload_metrics(ns: &NetNs) -> (u64, u64) {
    let out = ns
        .command("curl")
        .args(["-sf", "http://127.0.0.1:9901/metrics"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics: {text}"))
    };
    assert!(value("rampart_config_last_reload_timestamp_seconds") > 1_700_000_000);
    (
        value("rampart_config_generation"),
        value("rampart_config_last_reload_successful"),
    )
}

#[test]
fn reload_opens_closes_and_renews_listeners_without_cutting_requests() {
    if !require_root("reload_opens_closes_and_renews_listeners_without_cutting_requests") {
        return;
    }
    let ns = NetNs::new("rld");
    named_backend(&ns, 9001, "app");
    let dir = tests::scratch::Scratch::new("reload");
    tests::certs::self_signed(&dir, "site");
    let path = dir.join("rampart.toml");
    std::fs::write(&path, config(&dir, &[PLAIN, TLS])).unwrap();
    let mut cmd = ns.command(rampart_bin().to_str().unwrap());
    cmd.args(["run", "-c"]).arg(&path);
    let mut daemon = Spawned::start("rampart", cmd, &dir.join("rampart.log"));
    daemon.wait_until(Duration::from_secs(15), || {
        http_get(&ns, "127.0.0.1:8080", "/").is_ok()
    });
    let first = served_fingerprint(&ns);
    assert_eq!(first, file_fingerprint(&dir.join("site.crt")));
    assert_eq!(reload_metrics(&ns), (1, 1), "generation 1 at start");
    let reload = |ns: &NetNs| cli(ns, &["-c", path.to_str().unwrap(), "reload"]);

    // A slow request is in flight across the reload.
    let slow = {
        let name = ns.name().to_string();
        std::thread::spawn(move || http_get(&NetNs::existing(&name), "127.0.0.1:8080", "/slow"))
    };
    std::thread::sleep(Duration::from_millis(200));
    // Renew the certificate in place, and add a listener.
    tests::certs::self_signed(&dir, "site");
    let renewed = file_fingerprint(&dir.join("site.crt"));
    assert_ne!(renewed, first);
    std::fs::write(&path, config(&dir, &[PLAIN, TLS, EXTRA])).unwrap();
    let (ok, out, err) = reload(&ns);
    assert!(ok, "{err}");
    assert!(out.contains("listening on 127.0.0.1:8081"), "{out}");
    assert_eq!(reload_metrics(&ns), (2, 1), "an applied reload counts");
    assert_eq!(
        slow.join().unwrap().unwrap(),
        "app",
        "the in-flight request finished"
    );
    assert_eq!(http_get(&ns, "127.0.0.1:8081", "/").unwrap(), "app");
    assert_eq!(http_get(&ns, "127.0.0.1:8080", "/").unwrap(), "app");
    assert_eq!(
        served_fingerprint(&ns),
        renewed,
        "the renewed certificate is served"
    );

    // A reload that cannot bind changes nothing, and says why.
    let taken = ns.run(|| std::net::TcpListener::bind("127.0.0.1:8090").unwrap());
    std::fs::write(&path, config(&dir, &[PLAIN, TAKEN])).unwrap();
    let (ok, _, err) = reload(&ns);
    assert!(!ok);
    assert!(err.contains("binding 127.0.0.1:8090"), "{err}");
    assert_eq!(reload_metrics(&ns), (2, 0), "a failed reload does not");
    assert_eq!(
        http_get(&ns, "127.0.0.1:8081", "/").unwrap(),
        "app",
        "8081 stays"
    );
    assert_eq!(served_fingerprint(&ns), renewed, "8443 stays");
    drop(taken);

    // Removing listeners closes them; the others go on.
    std::fs::write(&path, config(&dir, &[PLAIN])).unwrap();
    let (ok, out, err) = reload(&ns);
    assert!(ok, "{err}");
    assert!(out.contains("stopped listening on 127.0.0.1:8081"), "{out}");
    assert_eq!(reload_metrics(&ns), (3, 1));
    assert!(http_get(&ns, "127.0.0.1:8081", "/").is_err());
    assert!(served_fingerprint(&ns).is_empty(), "8443 closed");
    assert_eq!(http_get(&ns, "127.0.0.1:8080", "/").unwrap(), "app");
    daemon.terminate();
    drop(dir);
}

#[test]
fn systemd_notifications_and_access_log_reopen_on_sigusr1() {
    if !require_root("systemd_notifications_and_access_log_reopen_on_sigusr1") {
        return;
    }
    let ns = NetNs::new("sdn");
    named_backend(&ns, 9001, "app");
    let dir = tests::scratch::Scratch::new("sdnotify");
    let notify_path = dir.join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let path = dir.join("rampart.toml");
    std::fs::write(
        &path,
        format!(
            "[http]\naccess_log = \"access.log\"\n\n{}",
            config(&dir, &[PLAIN])
        ),
    )
    .unwrap();
    let mut cmd = ns.command(rampart_bin().to_str().unwrap());
    cmd.args(["run", "-c"])
        .arg(&path)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "200000");
    let mut daemon = Spawned::start("rampart", cmd, &dir.join("rampart.log"));
    // Messages until one starts with `want` (watchdog pings come in between).
    let expect = |want: &str| {
        let mut buf = [0u8; 512];
        for _ in 0..100 {
            let n = notify.recv(&mut buf).expect("a notification");
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg.starts_with(want) {
                return msg;
            }
        }
        panic!("no {want}");
    };
    expect("READY=1");
    expect("WATCHDOG=1");
    assert_eq!(http_get(&ns, "127.0.0.1:8080", "/first").unwrap(), "app");

    // logrotate moves the file, then signals: new lines go to a new file.
    std::thread::sleep(Duration::from_millis(1200)); // one flush interval
    std::fs::rename(dir.join("access.log"), dir.join("access.log.1")).unwrap();
    // SAFETY: signalling the daemon we started.
    unsafe { libc::kill(daemon.pid(), libc::SIGUSR1) };
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(http_get(&ns, "127.0.0.1:8080", "/second").unwrap(), "app");
    std::thread::sleep(Duration::from_millis(1200));
    let old = std::fs::read_to_string(dir.join("access.log.1")).unwrap();
    let new = std::fs::read_to_string(dir.join("access.log")).unwrap();
    assert!(
        old.contains("GET /first") && !old.contains("/second"),
        "{old}"
    );
    assert!(
        new.contains("GET /second") && !new.contains("/first"),
        "{new}"
    );

    // A reload is RELOADING=1 then READY=1; a stop is STOPPING=1. (Drain
    // the watchdog pings first: a full queue drops notifications, as the
    // daemon must never block on a supervisor that does not read.)
    notify.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    while notify.recv(&mut buf).is_ok() {}
    notify.set_nonblocking(false).unwrap();
    // SAFETY: kill reads no memory; the pid is our child's, alive.
    unsafe { libc::kill(daemon.pid(), libc::SIGHUP) };
    let reloading = expect("RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    expect("READY=1");
    // SAFETY: as above.
    unsafe { libc::kill(daemon.pid(), libc::SIGTERM) };
    expect("STOPPING=1");
    daemon.terminate();
    drop(dir);
}
