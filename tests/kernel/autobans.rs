//! The ban table cannot be filled by an attacker: escalation's bans stay
//! within `[filter.maps] autobans`, the soonest-expiring giving way (and
//! counted), so the operator's own `block add` always fits in the rest of
//! the table, and the daemon reports the evictions once per interval, not
//! once per source. Evictions cost the kernel's presence flags no
//! rewrite of their own.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use proxy_common::{
    config::{FLAG_HAS_BANS_V4, FLAG_HAS_BANS_V6},
    list::{ORIGIN_CLI, ORIGIN_ESCALATION},
};
use proxy_user::{escalate::AutoBan, filter::FilterMaps};
use tests::{
    daemon::{Daemon, cli, control_section, filter_section},
    in_process,
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
    let dir = tests::scratch::Scratch::new("abans");
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
    drop(dir);
}

fn report(addr: IpAddr, ttl: Duration) -> AutoBan {
    AutoBan {
        addr,
        rule: "scanners".into(),
        count: 1,
        statuses: vec![404],
        route: "probes".into(),
        within: Duration::from_secs(60),
        ttl,
    }
}

fn v4(i: u32) -> IpAddr {
    IpAddr::from(std::net::Ipv4Addr::from(0xc612_0000 + i))
}

fn v6(i: u32) -> IpAddr {
    IpAddr::from(std::net::Ipv6Addr::new(
        0xfd72, 0x77, 0, i as u16, 0, 0, 0, 1,
    ))
}

/// Issue 13 review: each auto-ban evicted at the bound was lifted on its
/// own, and every lift rewrote the presence flags (a scan of every map,
/// about a millisecond with the default map sizes). Evictions are now
/// lifted with the bans that replace them, and the flags are rewritten
/// once for a batch, only when a family lost its last ban or got its first.
#[test]
fn auto_ban_evictions_rewrite_the_presence_flags_at_most_once_a_batch() {
    if !require_root("auto_ban_evictions_rewrite_the_presence_flags_at_most_once_a_batch") {
        return;
    }
    const BOUND: u32 = 8;
    const TRICKLE: u32 = 1000;
    let pins = PinDir::new("abflags");
    let dir = tests::scratch::Scratch::new("abflags");
    let config = dir.join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            "[filter]\ninterfaces = []\npin_dir = \"{}\"\n\n[filter.maps]\nautobans = {BOUND}\n\n{}",
            pins.path().display(),
            control_section(&dir)
        ),
    )
    .unwrap();
    let d = in_process::daemon(&config);
    let rewrites = |d: &in_process::InProcess| d.with_filter(|f| f.maps.presence_rewrites());
    let hour = Duration::from_secs(3600);

    // The book full, then a trickle of reports one at a time (each evicts
    // the soonest-expiring auto-ban), then the same in batches of 8.
    d.auto_bans((0..BOUND).map(|i| report(v4(i), hour)).collect())
        .unwrap();
    let before = rewrites(&d);
    let t0 = Instant::now();
    for i in 0..TRICKLE {
        d.auto_bans(vec![report(v4(BOUND + i), hour)]).unwrap();
    }
    let trickle = t0.elapsed();
    let trickled = rewrites(&d) - before;
    let before = rewrites(&d);
    let t0 = Instant::now();
    for b in 0..TRICKLE / BOUND {
        let first = BOUND + TRICKLE + b * BOUND;
        d.auto_bans(
            (first..first + BOUND)
                .map(|i| report(v4(i), hour))
                .collect(),
        )
        .unwrap();
    }
    let batched = t0.elapsed();
    let batch_rewrites = rewrites(&d) - before;
    let maps = FilterMaps::open(pins.path()).unwrap();
    let bans = maps.bans().unwrap();
    assert_eq!(bans.len(), BOUND as usize, "{bans:?}");
    let last = v4(BOUND + 2 * TRICKLE - 1);
    assert!(
        bans.iter().any(|b| b.addr == last),
        "the newest is in force"
    );

    // A batch of IPv6 auto-bans evicts every IPv4 one: both families'
    // flags change, in one rewrite.
    let before = rewrites(&d);
    d.auto_bans((0..BOUND).map(|i| report(v6(i), hour * 2)).collect())
        .unwrap();
    let switched = rewrites(&d) - before;
    let flags = maps.config().unwrap().flags;
    let bans = maps.bans().unwrap();
    assert!(
        bans.iter()
            .all(|b| b.addr.is_ipv6() && b.origin == ORIGIN_ESCALATION)
    );
    assert_eq!(bans.len(), BOUND as usize);
    assert_eq!(
        flags & (FLAG_HAS_BANS_V4 | FLAG_HAS_BANS_V6),
        FLAG_HAS_BANS_V6,
        "the flags follow the maps"
    );

    // What an eviction cost before: a lift on its own (with its rewrite),
    // then the new ban; written by this test once the daemon has stopped.
    drop(d);
    let mut maps = maps;
    maps.ban(v4(100_000), Some(hour), ORIGIN_CLI).unwrap();
    let t0 = Instant::now();
    for i in 0..200 {
        maps.lift_bans(&[v4(100_000 + i)]).unwrap();
        maps.ban(v4(100_001 + i), Some(hour), ORIGIN_CLI).unwrap();
    }
    let old_way = t0.elapsed() / 200;
    println!(
        "figure: {TRICKLE} auto-bans at the bound one report at a time: {trickle:?} ({:?} each), \
         {trickled} presence-flag rewrites; in batches of {BOUND}: {batched:?}, {batch_rewrites} rewrites; \
         a batch switching families: {switched} rewrite; an eviction lifted on its own (as before): {old_way:?} each",
        trickle / TRICKLE
    );
    assert_eq!(trickled, 0, "evictions replaced by bans of their family");
    assert_eq!(batch_rewrites, 0);
    assert_eq!(switched, 1, "once for the batch");
    drop(dir);
}
