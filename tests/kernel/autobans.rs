//! The ban table cannot be filled by an attacker: escalation's bans stay
//! within `[filter.maps] autobans`, the soonest-expiring giving way (and
//! counted), so the operator's own `block add` always fits in the rest of
//! the table, and the daemon reports the evictions once per interval, not
//! once per source.

use std::time::{Duration, Instant};

use proxy_common::list::ORIGIN_ESCALATION;
use proxy_user::filter::FilterMaps;
use tests::{
    daemon::{Daemon, cli, control_section, filter_section},
    netns::Link,
    pins::PinDir,
    privilege::require_root,
};

const EDGE: &str = "198.18.7.1";
/// Sources that probe for secrets, one after the other.
const SCANNERS: u8 = 10;
/// The ban table, and escalation's share of it.
const BANS: u32 = 8;
const AUTOBANS: u32 = 4;

fn scanner(i: u8) -> String {
    format!("198.18.7.{}", 10 + i)
}

fn metric(link: &Link, name: &str) -> u64 {
    let out = link
        .edge
        .command("curl")
        .args(["-s", "--max-time", "2", "http://127.0.0.1:9901/metrics"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} "))?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

#[test]
fn escalation_cannot_fill_the_ban_table_and_the_operator_always_fits() {
    if !require_root("escalation_cannot_fill_the_ban_table_and_the_operator_always_fits") {
        return;
    }
    let link = Link::new("abans");
    link.edge_addr(&format!("{EDGE}/24"));
    for i in 0..SCANNERS {
        link.client_addr(&format!("{}/24", scanner(i)));
    }
    let pins = PinDir::new("abans");
    let dir = std::env::temp_dir().join(format!("rampart-abans-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            "{}maps = {{ bans = {BANS}, autobans = {AUTOBANS} }}\n\n{}\n\
             [escalate.scanners]\nstatuses = [404]\ncount = 1\nwithin = \"1m\"\nban = \"1h\"\n\n\
             [[listener]]\nbind = \"{EDGE}:8080\"\n\n\
             [[route]]\npath_regex = '\\.env$'\nrespond = 404\nescalate = \"scanners\"\n\n\
             [[route]]\nrespond = 200\n",
            filter_section(&link.edge_if, pins.path(), &[]),
            control_section(&dir)
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&link.edge, &config, &link.edge_if);
    let maps = || FilterMaps::open(pins.path()).unwrap();
    let curl = |src: &str, path: &str| {
        tests::backend::curl_status(&link.client, src, &format!("http://{EDGE}:8080{path}"))
    };

    // Ten sources pass the rule one after the other; each is banned.
    for i in 0..SCANNERS {
        let src = scanner(i);
        let deadline = Instant::now() + Duration::from_secs(5);
        while curl(&src, "/") != "200" {
            assert!(Instant::now() < deadline, "{src} not served");
            std::thread::sleep(Duration::from_millis(50));
        }
        for _ in 0..2 {
            assert_eq!(curl(&src, "/.env"), "404");
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while !maps()
            .bans()
            .unwrap()
            .iter()
            .any(|b| b.addr.to_string() == src)
        {
            assert!(
                Instant::now() < deadline,
                "{src} not banned:\n{}",
                daemon.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let auto: Vec<String> = maps()
        .bans()
        .unwrap()
        .iter()
        .filter(|b| b.origin == ORIGIN_ESCALATION)
        .map(|b| b.addr.to_string())
        .collect();
    let evicted = metric(&link, "rampart_autobans_evicted_total");
    println!(
        "{SCANNERS} scanners, bans = {BANS}, autobans = {AUTOBANS}: {} auto-bans in force {auto:?}, {evicted} evicted",
        auto.len()
    );
    assert_eq!(auto.len(), AUTOBANS as usize, "{auto:?}");
    // The soonest-expiring (the first banned) gave way to the last ones.
    assert!(auto.contains(&scanner(SCANNERS - 1)), "{auto:?}");
    assert!(!auto.contains(&scanner(0)), "{auto:?}");
    assert_eq!(evicted, u64::from(SCANNERS) - u64::from(AUTOBANS));
    assert_eq!(metric(&link, "rampart_autobans"), u64::from(AUTOBANS));

    // The rest of the table is the operator's: every one of their bans fits.
    let operator = BANS - AUTOBANS;
    for i in 0..operator {
        let addr = format!("203.0.113.{}", i + 1);
        let (ok, _, err) = cli(
            &link.edge,
            &["-c", config.to_str().unwrap(), "block", "add", &addr],
        );
        assert!(ok, "operator ban {} of {operator} refused: {err}", i + 1);
    }
    assert_eq!(maps().bans().unwrap().len(), BANS as usize);

    // Said once per interval, not once per source.
    std::thread::sleep(Duration::from_millis(1500));
    let log = daemon.stop();
    let lines = log.matches("escalation cannot keep up").count();
    println!("'escalation cannot keep up' logged {lines} time(s)");
    assert!(
        (1..=2).contains(&lines),
        "{lines} lines for {evicted} evictions:\n{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
