//! SYN cookies through the real daemon: `rampart run` with
//! `[filter.syn_cookies] mode = "on"` and no `ports` protects its
//! listener's port, curl gets answers during a spoofed SYN flood, none of
//! the flood reaches the stack, and the CLI shows it all.

use std::{path::Path, time::Duration};

use aya::{
    Ebpf,
    programs::{Xdp, XdpMode},
};
use tests::{
    daemon::{Daemon, cli, control_section},
    flood::{grew, nstat, spoofed_syns},
    netns::{Link, NetNs},
    pins::PinDir,
    privilege::require_root,
};

const EDGE: &str = "198.18.0.1";
const PORT: u16 = 8080;

fn config(iface: &str, pins: &Path, dir: &Path) -> String {
    format!(
        "[filter]\ninterfaces = [\"{iface}\"]\nmode = \"native\"\npin_dir = \"{}\"\n\
         [filter.syn_cookies]\nmode = \"on\"\non_veth = true\n\
         [[listener]]\nbind = \"{EDGE}:{PORT}\"\n{}",
        pins.display(),
        control_section(dir)
    )
}

fn edge_mac(link: &Link) -> [u8; 6] {
    let out = link.edge.ip(&["-j", "link", "show", &link.edge_if]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut mac = [0u8; 6];
    for (i, b) in v[0]["address"].as_str().unwrap().split(':').enumerate() {
        mac[i] = u8::from_str_radix(b, 16).unwrap();
    }
    mac
}

/// HTTP status codes curl got for `n` requests from the client namespace.
fn curl(link: &Link, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let out = link
                .client
                .command("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "--max-time",
                    "5",
                ])
                .arg(format!("http://{EDGE}:{PORT}/"))
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect()
}

#[test]
fn the_daemon_answers_a_spoofed_syn_flood_with_cookies_and_serves_curl() {
    if !require_root("the_daemon_answers_a_spoofed_syn_flood_with_cookies_and_serves_curl") {
        return;
    }
    let link = Link::new("syn14d");
    link.edge_addr(&format!("{EDGE}/24"));
    link.client_addr("198.18.0.2/24");
    let pins = PinDir::new("syn14d");
    let dir = tests::scratch::Scratch::new("syn14d");
    let path = dir.join("rampart.toml");
    std::fs::write(&path, config(&link.edge_if, pins.path(), &dir)).unwrap();

    let (ok, out, _) = cli(&link.edge, &["config", "check", path.to_str().unwrap()]);
    assert!(ok);
    assert!(out.contains("SYN cookies: this host can run them"), "{out}");

    let daemon = Daemon::start(&link.edge, &path, &link.edge_if);
    // The client veth takes the edge's XDP_TX answers only with an XDP program.
    let mut client_rx = Ebpf::load(proxy_user::filter::object::BENCH).unwrap();
    let prog: &mut Xdp = client_rx
        .program_mut("client_rx")
        .unwrap()
        .try_into()
        .unwrap();
    prog.load().unwrap();
    let client_if = link.client_if.clone();
    link.client
        .with(|| prog.attach(&client_if, XdpMode::Driver))
        .unwrap();

    let pin = pins.path().to_str().unwrap().to_string();
    let (ok, out, err) = cli(
        &link.edge,
        &["-j", "map", "dump", "syn_cookie", "--pin-dir", &pin],
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["mode"], "on", "{out}");
    assert_eq!(v[0]["key"], "set (not shown)");
    let (ok, out, _) = cli(
        &link.edge,
        &["-j", "map", "dump", "syn_ports", "--pin-dir", &pin],
    );
    assert!(ok);
    assert_eq!(
        out.trim(),
        format!("[{{\"port\":{PORT}}}]"),
        "the listener's port"
    );

    let before = nstat(&link.edge);
    let (mac, dev, ns) = (
        edge_mac(&link),
        link.client_if.clone(),
        link.client.name().to_string(),
    );
    let (sent, codes) = std::thread::scope(|s| {
        let flood = s.spawn(move || {
            spoofed_syns(
                &NetNs::existing(&ns),
                &dev,
                mac,
                EDGE.parse().unwrap(),
                PORT,
                20_000,
                Duration::from_secs(6),
            )
        });
        std::thread::sleep(Duration::from_millis(200));
        let codes = curl(&link, 10);
        (flood.join().unwrap(), codes)
    });
    let after = nstat(&link.edge);
    assert!(
        codes.iter().all(|c| c.len() == 3 && c != "000"),
        "curl got answers: {codes:?}"
    );
    let reached = grew(&before, &after, "TcpInSegs");
    eprintln!("{sent} flood SYNs, {reached} TCP segments at the edge, curl: {codes:?}");
    assert!(
        reached <= 10 * 20,
        "{reached} segments reached TCP during a flood of {sent} SYNs"
    );
    assert_eq!(grew(&before, &after, "TcpExtSyncookiesSent"), 0);

    let (ok, out, err) = cli(
        &link.edge,
        &[
            "-j",
            "stats",
            "--pin-dir",
            &pin,
            "--socket",
            dir.join("control.sock").to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["syn_cookies"]["mode"], "on", "{out}");
    assert!(
        v["syn_cookies"]["counters"]["acks_accepted"]
            .as_u64()
            .unwrap()
            >= 10,
        "{out}"
    );
    assert!(
        v["verdicts"]["syn_cookie"]["packets"].as_u64().unwrap() >= sent as u64,
        "{out}"
    );
    let log = daemon.stop();
    drop(dir);
    assert!(!log.contains("SYN cookies are off"), "{log}");
}
