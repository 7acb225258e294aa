//! The daemon's controls, through the real CLI and the real control socket:
//! block and allow entries that reach the kernel at once, show where they
//! came from and expire on time; a caller who is not root is refused; and
//! state that outlives the daemon: after SIGKILL the pinned filter keeps
//! dropping a flood, and the next daemon adopts the program, the maps and
//! the state file; after a "reboot" (pins gone) the state file restores the
//! runtime entries.

use std::{
    os::unix::process::CommandExt,
    path::Path,
    time::{Duration, Instant},
};

use proxy_common::stats::{BANNED, BLOCKLISTED};
use proxy_user::filter::{FilterMaps, List};
use serde_json::Value;
use tests::{
    daemon::{Daemon, cli, control_section, filter_section, rampart_bin},
    netns::Link,
    pins::PinDir,
    privilege::require_root,
    traffic::{received, send_udp, udp_receiver},
};

const EDGE: &str = "198.18.1.1";
const PORT: u16 = 9998;
const CLIENT: &str = "198.18.1.10";
const FLOODER: &str = "198.18.1.66";

struct Setup {
    link: Link,
    pins: PinDir,
    dir: tests::scratch::Scratch,
    config: std::path::PathBuf,
}

fn setup(tag: &str) -> Setup {
    setup_with(tag, "", "")
}

/// As [`setup`], with more `[filter]` keys and more sections.
fn setup_with(tag: &str, filter_extra: &str, sections: &str) -> Setup {
    let link = Link::new(tag);
    link.edge_addr(&format!("{EDGE}/24"));
    link.client_addr(&format!("{CLIENT}/24"));
    link.client_addr(&format!("{FLOODER}/24"));
    let pins = PinDir::new(tag);
    let dir = tests::scratch::Scratch::new(tag);
    let config = dir.join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            "{}{filter_extra}\n{}\n{sections}",
            filter_section(&link.edge_if, pins.path(), &["192.0.2.1", FLOODER]),
            control_section(&dir)
        ),
    )
    .unwrap();
    Setup {
        link,
        pins,
        dir,
        config,
    }
}

impl Setup {
    fn start(&self) -> Daemon {
        let d = Daemon::start(&self.link.edge, &self.config, &self.link.edge_if);
        // XDP may already be there (a pinned link): wait for the control
        // socket to answer (a killed daemon's stale socket file does not).
        let socket = self.dir.join("control.sock");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "no control socket:\n{}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    /// `rampart -c CONFIG ARGS...`, which must succeed; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let mut all = vec!["-c", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        let (ok, out, err) = cli(&self.link.edge, &all);
        assert!(ok, "rampart {args:?} failed: {err}");
        out
    }

    /// As [`Setup::ok`], for a command that must fail; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let mut all = vec!["-c", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        let (ok, out, err) = cli(&self.link.edge, &all);
        assert!(!ok, "rampart {args:?} should have failed: {out}");
        err
    }

    fn list(&self, what: &str) -> Vec<Value> {
        serde_json::from_str::<Value>(&self.ok(&["-j", what, "list"]))
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

fn entry<'a>(list: &'a [Value], cidr: &str) -> Option<&'a Value> {
    list.iter().find(|e| e["cidr"] == cidr)
}

fn banned(pins: &Path, addr: &str) -> bool {
    FilterMaps::open(pins)
        .unwrap()
        .bans()
        .unwrap()
        .iter()
        .any(|b| b.addr.to_string() == addr)
}

#[test]
fn cli_list_changes_reach_the_kernel_show_their_origin_and_expire() {
    if !require_root("cli_list_changes_reach_the_kernel_show_their_origin_and_expire") {
        return;
    }
    let s = setup("ctl");
    let daemon = s.start();

    // A ban with a reason and a TTL: in the kernel when the command returns.
    let out = s.ok(&[
        "block",
        "add",
        "203.0.113.7",
        "--ttl",
        "1h",
        "--reason",
        "scanner",
    ]);
    assert!(out.contains("blocked 203.0.113.7"), "{out}");
    assert!(banned(s.pins.path(), "203.0.113.7"));
    // A range with a short TTL, and an allowlist entry.
    s.ok(&["block", "add", "198.51.100.0/24", "--ttl", "2s"]);
    s.ok(&["allow", "add", "10.7.0.0/16", "--reason", "office"]);
    let maps = FilterMaps::open(s.pins.path()).unwrap();
    let ranges: Vec<String> = maps
        .entries(List::Block)
        .unwrap()
        .iter()
        .map(|(c, _)| c.to_string())
        .collect();
    assert!(
        ranges.contains(&"198.51.100.0/24".to_string()),
        "{ranges:?}"
    );

    let blocks = s.list("block");
    let from_config = entry(&blocks, "192.0.2.1").expect("config entry listed");
    assert_eq!(from_config["origin"], "config");
    assert_eq!(from_config["expires_in"], Value::Null);
    let ban = entry(&blocks, "203.0.113.7").expect("ban listed");
    assert_eq!(ban["kind"], "ban");
    assert_eq!(ban["origin"], "cli");
    assert_eq!(ban["reason"], "scanner");
    let left = ban["expires_in"].as_u64().unwrap();
    assert!((3590..=3600).contains(&left), "{left}");
    let allows = s.list("allow");
    assert_eq!(entry(&allows, "10.7.0.0/16").unwrap()["reason"], "office");
    // The table form says the same for people.
    let table = s.ok(&["block"]);
    assert!(
        table.contains("scanner") && table.contains("config"),
        "{table}"
    );

    // The range expires on time, from the kernel and the list.
    let deadline = Instant::now() + Duration::from_secs(6);
    while entry(&s.list("block"), "198.51.100.0/24").is_some() {
        assert!(Instant::now() < deadline, "the 2 s entry did not expire");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !maps
            .entries(List::Block)
            .unwrap()
            .iter()
            .any(|(c, _)| c.to_string() == "198.51.100.0/24")
    );

    // Configuration entries are removed in the configuration, not here.
    let err = s.fails(&["block", "del", "192.0.2.1"]);
    assert!(err.contains("comes from the configuration"), "{err}");
    let err = s.fails(&["block", "del", "203.0.113.99"]);
    assert!(err.contains("not on the Block list"), "{err}");
    s.ok(&["block", "del", "203.0.113.7"]);
    assert!(!banned(s.pins.path(), "203.0.113.7"));

    // Someone who is not root is refused, clearly.
    // (The socket is a file: no need to enter the namespace.)
    let out = std::process::Command::new(rampart_bin())
        .args(["--socket", s.dir.join("control.sock").to_str().unwrap()])
        .args(["block", "list"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("permission denied"), "{err}");
    let mode = std::fs::metadata(s.dir.join("control.sock")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    // `reload` reports a bad file with its position; the old config stays.
    let good = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(&s.config, "[filter]\nmode = \"fast\"\n").unwrap();
    let err = s.fails(&[
        "--socket",
        s.dir.join("control.sock").to_str().unwrap(),
        "reload",
    ]);
    assert!(
        err.contains(&format!("{}:2:8", s.config.display())),
        "{err}"
    );
    std::fs::write(&s.config, good).unwrap();
    let out = s.ok(&["reload"]);
    assert!(out.contains("configuration applied"), "{out}");
    daemon.stop();
}

#[test]
fn a_sigkilled_daemon_leaves_the_filter_dropping_and_the_next_one_adopts_everything() {
    if !require_root(
        "a_sigkilled_daemon_leaves_the_filter_dropping_and_the_next_one_adopts_everything",
    ) {
        return;
    }
    let s = setup("kil");
    let daemon = s.start();
    s.ok(&[
        "block",
        "add",
        "203.0.113.8",
        "--reason",
        "abuse",
        "--ttl",
        "1h",
    ]);
    s.ok(&["allow", "add", "10.8.0.0/16", "--reason", "vpn"]);
    let tally = udp_receiver(&s.link.edge, &format!("{EDGE}:{PORT}"));
    let dst = format!("{EDGE}:{PORT}");
    send_udp(&s.link.client, CLIENT, &dst, 100);
    send_udp(&s.link.client, FLOODER, &dst, 1000);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(received(&tally, CLIENT), 100);
    assert_eq!(received(&tally, FLOODER), 0);
    let counters_before = FilterMaps::open(s.pins.path()).unwrap().verdicts().unwrap();

    // Crash: no cleanup runs. The pinned link keeps the program attached.
    daemon.kill();
    send_udp(&s.link.client, FLOODER, &dst, 5000);
    send_udp(&s.link.client, CLIENT, &dst, 100);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        received(&tally, FLOODER),
        0,
        "flood packets reached userspace while the daemon was down"
    );
    assert_eq!(received(&tally, CLIENT), 200);
    let during = FilterMaps::open(s.pins.path()).unwrap().verdicts().unwrap();
    assert_eq!(
        during[BLOCKLISTED as usize].packets - counters_before[BLOCKLISTED as usize].packets,
        5000,
        "the kernel dropped the flood during the gap"
    );

    // Restart: the program is adopted in place, counters and bans intact,
    // and the reasons come back from the state file.
    let daemon = s.start();
    let after = FilterMaps::open(s.pins.path()).unwrap().verdicts().unwrap();
    for v in [BLOCKLISTED, BANNED] {
        assert!(after[v as usize].packets >= during[v as usize].packets);
    }
    let ban = s.list("block");
    let log = daemon.log_text();
    assert!(log.contains("adopted the pinned link"), "{log}");
    let ban = entry(&ban, "203.0.113.8").expect("the ban survived");
    assert_eq!(ban["reason"], "abuse");
    assert_eq!(
        entry(&s.list("allow"), "10.8.0.0/16").unwrap()["reason"],
        "vpn"
    );

    // Reboot: the pinned maps are gone; the state file restores the entries.
    daemon.stop();
    let _ = std::process::Command::new("rm")
        .args(["-rf", s.pins.path().to_str().unwrap()])
        .status();
    let daemon = s.start();
    // The runtime entries are restored before the filter attaches (see
    // after_a_reboot_the_filter_enforces_restored_bans_from_its_first_packet).
    let ban = s.list("block");
    assert!(banned(s.pins.path(), "203.0.113.8"));
    let ban = entry(&ban, "203.0.113.8").expect("the ban came back from the state file");
    assert_eq!(ban["reason"], "abuse");
    assert!(ban["expires_in"].as_u64().unwrap() <= 3600);
    assert_eq!(
        entry(&s.list("allow"), "10.8.0.0/16").unwrap()["origin"],
        "cli"
    );
    let log = daemon.stop();
    assert!(log.contains("restored from the state file"), "{log}");
}

/// After a reboot (pins gone), a source banned from the CLI floods while
/// the daemon starts: the filter must not pass one of its packets, so the
/// ban must be in the maps before the program is attached. A packet the
/// program passes leaves the source in the per-source table; a banned one
/// does not.
#[test]
fn after_a_reboot_the_filter_enforces_restored_bans_from_its_first_packet() {
    if !require_root("after_a_reboot_the_filter_enforces_restored_bans_from_its_first_packet") {
        return;
    }
    const BANNED_SRC: &str = "198.18.1.77";
    let s = setup("rbt");
    s.link.client_addr(&format!("{BANNED_SRC}/24"));
    let daemon = s.start();
    s.ok(&[
        "block", "add", BANNED_SRC, "--ttl", "1h", "--reason", "abuse",
    ]);
    daemon.stop();
    let _ = std::process::Command::new("rm")
        .args(["-rf", s.pins.path().to_str().unwrap()])
        .status();

    // The flood: as fast as one thread sends, until the daemon is up
    // (bounded at 30 s).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let (stop, ns) = (stop.clone(), s.link.client.name().to_string());
        let dst: std::net::SocketAddr = format!("{EDGE}:{PORT}").parse().unwrap();
        std::thread::spawn(move || {
            tests::netns::NetNs::existing(&ns).enter();
            let sock = std::net::UdpSocket::bind((BANNED_SRC, 0)).unwrap();
            let (mut sent, until) = (0u64, Instant::now() + Duration::from_secs(30));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < until {
                if sock.send_to(&sent.to_be_bytes(), dst).is_ok() {
                    sent += 1;
                }
            }
            sent
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let daemon = s.start();
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = flood.join().unwrap();
    let maps = FilterMaps::open(s.pins.path()).unwrap();
    let banned_drops = maps.verdicts().unwrap()[BANNED as usize].packets;
    let passed: Vec<String> = maps
        .sources()
        .unwrap()
        .iter()
        .map(|e| e.source.to_string())
        .filter(|src| src.starts_with(BANNED_SRC))
        .collect();
    assert!(
        banned_drops > 0,
        "the flood ({sent} sent) never met the filter"
    );
    assert!(
        passed.is_empty(),
        "the filter passed packets from {BANNED_SRC} before its ban was restored \
         ({banned_drops} dropped as banned, {sent} sent)"
    );
    daemon.stop();
}

#[test]
fn limits_set_from_the_cli_apply_at_once_and_survive_a_restart_and_ip_show_tells_all() {
    if !require_root(
        "limits_set_from_the_cli_apply_at_once_and_survive_a_restart_and_ip_show_tells_all",
    ) {
        return;
    }
    let s = setup("lim");
    let daemon = s.start();
    let tally = udp_receiver(&s.link.edge, &format!("{EDGE}:{PORT}"));
    let dst = format!("{EDGE}:{PORT}");
    // No pps limit in the configuration: everything passes.
    send_udp(&s.link.client, CLIENT, &dst, 300);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(received(&tally, CLIENT), 300);

    // 10 packets a second with a burst of 50: a burst of 300 loses ~250.
    let shown: Value = serde_json::from_str(
        &s.ok(&["-j", "limit", "set", "pps", "--rate", "10", "--burst", "50"]),
    )
    .unwrap();
    let pps = shown
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "pps")
        .unwrap();
    assert_eq!(pps["rate"], "10r/s");
    assert_eq!(pps["burst"], 50);
    assert_eq!(pps["source"], "cli");
    std::thread::sleep(Duration::from_secs(1));
    let before = received(&tally, CLIENT);
    send_udp(&s.link.client, CLIENT, &dst, 300);
    std::thread::sleep(Duration::from_millis(200));
    let passed = received(&tally, CLIENT) - before;
    assert!((50..=55).contains(&passed), "{passed} passed");

    // `ip show`: the verdict, the budget, the counters; and for a blocked
    // source, the entry that blocks it.
    let ip: Value = serde_json::from_str(&s.ok(&["-j", "ip", "show", CLIENT])).unwrap();
    assert_eq!(ip["verdict"], "filtered by the rate limits only");
    let src = &ip["source"];
    // Cached limited drops reach the source's counters every 64 drops, so
    // they trail by up to 63 per CPU (docs/kernel-tier.md, "Limited sources").
    let trail = 63 * std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    assert!(src["packets"].as_u64().unwrap() + trail >= 600, "{ip}");
    assert!(src["drops"].as_u64().unwrap() + trail >= 240, "{ip}");
    assert_eq!(src["pps_budget"]["burst"], 50);
    assert!(src["pps_budget"]["left"].as_u64().unwrap() < 50, "{ip}");
    assert_eq!(src["syn_budget"]["limit"], "off");
    send_udp(&s.link.client, FLOODER, &dst, 10);
    let ip: Value = serde_json::from_str(&s.ok(&["-j", "ip", "show", FLOODER])).unwrap();
    assert_eq!(ip["verdict"], "blocked");
    assert_eq!(ip["block"][0]["cidr"], FLOODER);
    assert_eq!(ip["block"][0]["origin"], "config");
    let text = s.ok(&["ip", "show", FLOODER]);
    assert!(text.contains("blocklist: 198.18.1.66"), "{text}");

    // `top` ranks the sources by what they sent in the last second.
    let sender = {
        let ns = tests::netns::NetNs::existing(s.link.client.name());
        let dst = dst.clone();
        std::thread::spawn(move || {
            for _ in 0..12 {
                send_udp(&ns, CLIENT, &dst, 200);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let top: Value = serde_json::from_str(&s.ok(&["-j", "top", "-n", "5"])).unwrap();
    sender.join().unwrap();
    assert_eq!(top[0]["source"], CLIENT, "{top}");
    assert!(top[0]["packets_per_s"].as_f64().unwrap() > 500.0, "{top}");

    // The kernel tier on /metrics: verdicts, attachment, maps.
    let metrics = tests::backend::http_get(&s.link.edge, "127.0.0.1:9901", "/metrics").unwrap();
    for expected in [
        "rampart_xdp_attached{interface=\"rp0\",mode=\"native\"} 1",
        "rampart_map_capacity{map=\"sources\"} 131072",
        "rampart_gate_active 0",
    ] {
        assert!(metrics.contains(expected), "no {expected} in:\n{metrics}");
    }
    let limited = metrics
        .lines()
        .find(|l| {
            l.starts_with("rampart_xdp_packets_total{verdict=\"pps_limited\",action=\"drop\"}")
        })
        .unwrap();
    assert!(
        limited.rsplit(' ').next().unwrap().parse::<u64>().unwrap() >= 240,
        "{limited}"
    );

    // A restart keeps the CLI limit (the configuration has none).
    daemon.stop();
    let daemon = s.start();
    let shown: Value = serde_json::from_str(&s.ok(&["-j", "limit", "show"])).unwrap();
    assert_eq!(shown[0]["rate"], "10r/s", "{shown}");
    let maps = FilterMaps::open(s.pins.path()).unwrap();
    assert_eq!(maps.config().unwrap().pps_interval_ns, 100_000_000);
    // Reset: back to the configuration (no limit).
    s.ok(&["limit", "reset", "pps"]);
    assert_eq!(maps.config().unwrap().pps_interval_ns, 0);
    let err = s.fails(&["limit", "set", "nosuch", "--rate", "5r/s"]);
    assert!(err.contains("no limit nosuch"), "{err}");
    daemon.stop();
}

#[test]
fn l7_abuse_escalates_to_a_kernel_ban_that_names_its_rule_but_never_for_the_allowlist() {
    if !require_root(
        "l7_abuse_escalates_to_a_kernel_ban_that_names_its_rule_but_never_for_the_allowlist",
    ) {
        return;
    }
    const ALLOWED: &str = "198.18.1.20";
    let s = setup_with(
        "esc",
        &format!("allow = [\"{ALLOWED}\"]"),
        &format!(
            "[escalate.scanners]\nstatuses = [404]\ncount = 3\nwithin = \"1m\"\nban = \"1h\"\n\n\
             [[listener]]\nbind = \"{EDGE}:8080\"\n\n\
             [[route]]\npath_regex = '\\.(env|git)$'\nrespond = 404\nescalate = \"scanners\"\n\n\
             [[route]]\nrespond = 200\n"
        ),
    );
    s.link.client_addr(&format!("{ALLOWED}/24"));
    let daemon = s.start();
    let curl = |src: &str, path: &str| {
        tests::backend::curl_status(&s.link.client, src, &format!("http://{EDGE}:8080{path}"))
    };
    assert_eq!(curl(CLIENT, "/"), "200");
    // Three probes are within the rule; the fourth passes it.
    for _ in 0..4 {
        assert_eq!(curl(CLIENT, "/.env"), "404");
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while !banned(s.pins.path(), CLIENT) {
        assert!(Instant::now() < deadline, "no ban:\n{}", daemon.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Now the kernel drops the source: not even a connection.
    assert_eq!(curl(CLIENT, "/"), "000");
    let ip: Value = serde_json::from_str(&s.ok(&["-j", "ip", "show", CLIENT])).unwrap();
    let ban = &ip["ban"];
    assert_eq!(ban["origin"], "auto-ban", "{ip}");
    let reason = ban["reason"].as_str().unwrap();
    assert!(
        reason.contains("escalate.scanners") && reason.contains("4 responses 404"),
        "{reason}"
    );
    assert!(ban["expires_in"].as_u64().unwrap() > 3500);
    assert_eq!(ip["verdict"], "banned");
    // The allowlisted source probes as much as it likes and is never banned.
    for _ in 0..10 {
        assert_eq!(curl(ALLOWED, "/.git"), "404");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(!banned(s.pins.path(), ALLOWED));
    assert_eq!(curl(ALLOWED, "/"), "200");
    assert!(
        daemon
            .log_text()
            .contains("not banned: the allowlist covers it")
    );
    daemon.stop();
}
