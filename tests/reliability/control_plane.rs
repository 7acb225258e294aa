//! The control plane: the admin listener answers on loopback only unless
//! configured otherwise, and private keys appear in no log line, error or
//! `config show` output, even when a reload fails on the key itself. (The
//! control socket's refusal of non-root callers is in tests/kernel/control.rs.)

use std::{net::TcpStream, path::Path, time::Duration};

use tests::{
    backend::{http_get, named_backend},
    daemon::{Daemon, cli, control_section},
    netns::Link,
    privilege::require_root,
};

use crate::support::figure;

const EDGE: &str = "198.18.7.1";
const CLIENT: &str = "198.18.7.10";

/// The base64 lines of a PEM file (what must never be shown).
fn secret_lines(pem: &Path) -> Vec<String> {
    std::fs::read_to_string(pem)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .map(str::to_string)
        .collect()
}

#[test]
fn admin_is_loopback_only_and_keys_never_leak() {
    if !require_root("admin_is_loopback_only_and_keys_never_leak") {
        return;
    }
    let link = Link::new("ctlp");
    link.edge_addr(&format!("{EDGE}/24"));
    link.client_addr(&format!("{CLIENT}/24"));
    named_backend(&link.edge, 9001, "app");
    let dir = tests::scratch::Scratch::new(&format!("ctlp-{}", link.edge.name()));
    tests::certs::self_signed(&dir, "site");
    let key = dir.join("site.key");
    let secrets = secret_lines(&key);
    assert!(!secrets.is_empty());
    let config = dir.join("rampart.toml");
    // No [admin] section: the default.
    std::fs::write(
        &config,
        format!(
            "{}\n[upstream.app]\nservers = [\"127.0.0.1:9001\"]\n\n\
             [[listener]]\nbind = \"0.0.0.0:8443\"\ntls = {{ cert = \"site.crt\", key = \"site.key\" }}\n\n\
             [[route]]\nupstream = \"app\"\n",
            control_section(&dir)
        ),
    )
    .unwrap();
    let daemon = Daemon::serving(&link.edge, &config, "127.0.0.1:8443");
    // The admin listener: there on loopback, absent from the network. It
    // starts with the daemon's tiers, a moment after the listener the
    // probe above found accepting: wait for it, bounded.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while http_get(&link.edge, "127.0.0.1:9901", "/healthz").is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "no admin listener on 127.0.0.1:9901"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let from_outside = link.client.run(|| {
        TcpStream::connect_timeout(
            &format!("{EDGE}:9901").parse().unwrap(),
            Duration::from_secs(2),
        )
        .is_ok()
    });
    assert!(!from_outside, "the admin listener answers from the network");
    let served = link.client.run(|| {
        TcpStream::connect_timeout(
            &format!("{EDGE}:8443").parse().unwrap(),
            Duration::from_secs(2),
        )
        .is_ok()
    });
    assert!(served, "the TLS listener is reachable from the network");

    // Everything an operator or a log reader sees.
    let mut seen = Vec::new();
    let ctl = |args: &[&str]| {
        let mut all = vec!["-c", config.to_str().unwrap()];
        all.extend_from_slice(args);
        let (_, out, err) = cli(&link.edge, &all);
        format!("{out}\n{err}")
    };
    seen.push(ctl(&["config", "show"]));
    seen.push(ctl(&["-j", "config", "show"]));
    // A key that is a certificate, and a key with its armour cut: the
    // reload fails on the key, and says so without quoting it.
    let good = std::fs::read(&key).unwrap();
    for broken in [
        std::fs::read(dir.join("site.crt")).unwrap(),
        good[..good.len() / 2].to_vec(),
    ] {
        std::fs::write(&key, &broken).unwrap();
        let out = ctl(&["reload"]);
        assert!(
            out.contains("site.key"),
            "the error names the key file: {out}"
        );
        seen.push(out);
    }
    std::fs::write(&key, &good).unwrap();
    seen.push(ctl(&["reload"]));
    seen.push(daemon.stop());
    let leaked: Vec<&String> = secrets
        .iter()
        .filter(|s| seen.iter().any(|text| text.contains(s.as_str())))
        .collect();
    figure(
        "control plane",
        format!(
            "admin listener: loopback only by default (refused from the network); \
             private key lines found in config show, reload errors and the daemon log: {}",
            leaked.len()
        ),
    );
    assert!(leaked.is_empty(), "key material shown: {leaked:?}");
}
