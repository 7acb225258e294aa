//! The kernel tier's fleet-wide threshold (`[filter] fleet_pps`, issue 18):
//! three daemons, each with XDP attached natively to a veth pair in its own
//! namespace, one real redis-server (in A's namespace, reached by B and C
//! over veth pairs of their own). Abusers each send every host half the
//! threshold (under it on every host, 1.5x it on the fleet): each is banned
//! in all three hosts' XDP maps, and the three programs drop it. A control
//! source sends every host a fifth of the threshold (0.6x on the fleet): it
//! is counted in Redis but never banned (a host that counted a packet
//! twice would ban it). `rampart top --fleet` on the third host shows them
//! with the counts Redis holds.

use std::time::{Duration, Instant};

use serde_json::Value;
use tests::{
    daemon::cli,
    packet::Frame,
    privilege::require_root,
    traffic::{Tally, received, send_udp, udp_receiver},
};

use crate::fleet_hosts::{Edge, Spec, Three, banned_everywhere, fleet_total, p50_max, three_hosts};

/// Every edge has this address on its client link (the namespaces are
/// apart, so the three links share one subnet and one abuser address).
const EDGE: &str = "198.18.21.1";
const CONTROL: &str = "198.18.21.77";
/// More than this many packets from one source within 10 s on the fleet:
/// banned everywhere.
const THRESHOLD: usize = 3000;
const ABUSERS: u32 = 10;
const FLEET: &str = "h18pps";
const FILTER: &str = "fleet_pps = { count = 3000, within = \"10s\", ban = \"10m\" }\n";

fn abuser(i: u32) -> String {
    format!("198.18.21.{}", 100 + i)
}

fn spec() -> Spec<'static> {
    let mut clients: Vec<String> = (0..ABUSERS).map(|i| format!("{}/24", abuser(i))).collect();
    clients.push(format!("{CONTROL}/24"));
    Spec {
        fleet: FLEET,
        redis: crate::fleet_hosts::REDIS,
        edge: "198.18.21.1/24",
        clients,
        filter: FILTER,
        listen: format!("{EDGE}:8080"),
    }
}

/// `n` datagrams from `src`, in bursts of 64 a millisecond apart (the
/// veth ring in front of a native XDP program holds 256).
fn send(e: &Edge, src: &str, n: usize) {
    let mut left = n;
    while left > 0 {
        let burst = left.min(64);
        send_udp(&e.link.client, src, &format!("{EDGE}:9000"), burst);
        left -= burst;
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn fleet_pps_bans_a_source_spread_over_three_hosts_in_every_hosts_xdp() {
    let name = "fleet_pps_bans_a_source_spread_over_three_hosts_in_every_hosts_xdp";
    if !require_root(name) || !tests::redis::available(name) {
        return;
    }
    let t = three_hosts("h18fp", &spec());
    let Three { hosts, redis, .. } = &t;
    let c = &hosts[2];
    let tallies: Vec<Tally> = hosts
        .iter()
        .map(|e| udp_receiver(&e.link.edge, &format!("{EDGE}:9000")))
        .collect();
    // Neighbours resolved before counting starts (a packet sent while its
    // neighbour is unresolved may be dropped); the first full read of the
    // sources maps only records.
    for e in hosts {
        send(e, CONTROL, 1);
    }
    std::thread::sleep(Duration::from_millis(600));

    // The control: 0.6 x the threshold on the fleet, every host a fifth.
    for e in hosts {
        send(e, CONTROL, THRESHOLD / 5);
    }
    // Each abuser: half the threshold to every host, 1.5x on the fleet.
    let mut to_all = Vec::new();
    let mut spread = Vec::new();
    for i in 0..ABUSERS {
        let src = abuser(i);
        for e in hosts {
            send(e, &src, THRESHOLD / 2);
        }
        let at = banned_everywhere(&t, &src, Instant::now());
        let first = at.iter().min().copied().unwrap();
        let last = at.iter().max().copied().unwrap();
        to_all.push(last);
        spread.push(last - first);
        for e in hosts {
            let ban = e.ban(&src);
            let reason = ban["reason"].as_str().unwrap_or_default();
            assert!(
                reason.starts_with("filter.fleet_pps: ") && reason.contains("packets on the fleet"),
                "{ban}"
            );
        }
    }
    let (all_p50, all_max) = p50_max(&mut to_all);
    let (spread_p50, spread_max) = p50_max(&mut spread);
    println!(
        "figure: fleet_pps, {ABUSERS} abusers each at 0.5x the threshold on each of 3 hosts: \
         banned in every host's XDP maps after the last packet p50 {all_p50:?}, max {all_max:?}; \
         first host to last p50 {spread_p50:?}, max {spread_max:?}",
    );
    // The propagation target: a ban on one host on every host.
    assert!(spread_max <= Duration::from_secs(1), "{spread:?}");
    assert!(all_max <= Duration::from_secs(2), "{to_all:?}");

    // Every host's program drops the abusers now, and passes the control.
    std::thread::sleep(Duration::from_millis(300));
    let before: Vec<(u64, u64)> = tallies
        .iter()
        .map(|t| (received(t, &abuser(0)), received(t, CONTROL)))
        .collect();
    for e in hosts {
        send(e, &abuser(0), 50);
        send(e, CONTROL, 50);
    }
    std::thread::sleep(Duration::from_millis(300));
    for ((t, (ab, ctl)), e) in tallies.iter().zip(before).zip(hosts) {
        assert_eq!(
            received(t, &abuser(0)),
            ab,
            "{} passed a banned source",
            e.dir.display()
        );
        assert_eq!(received(t, CONTROL), ctl + 50, "{}", e.dir.display());
    }

    // The control was counted on the fleet (so its staying unbanned means
    // something), and is not banned anywhere: 0.6x plus the 150 above.
    std::thread::sleep(Duration::from_millis(600));
    let keys = redis.cli(&["KEYS", "rampart:{h18pps}:count:kernel:pps:*"]);
    let fleet_total = fleet_total(redis, FLEET, "kernel:pps", CONTROL);
    println!(
        "figure: fleet_pps control: {fleet_total} of its {} packets counted on the fleet",
        3 * (THRESHOLD / 5 + 50)
    );
    // Each of 3 hosts holds back less than its floor, count / (16 x 3).
    let held_back = (THRESHOLD / 48) as u64;
    assert!(
        fleet_total >= 3 * ((THRESHOLD / 5) as u64 - held_back),
        "the control's packets were not counted on the fleet: {fleet_total} ({keys})"
    );
    for e in hosts {
        assert!(
            e.ban(CONTROL).is_null(),
            "control banned: {}",
            e.ban(CONTROL)
        );
    }

    // `top --fleet` on C (Redis is two namespaces away): the same counts,
    // the abusers ranked over the control.
    let (ok, stdout, stderr) = cli(
        &c.link.edge,
        &[
            "-c",
            c.config.to_str().unwrap(),
            "-j",
            "top",
            "--fleet",
            "-n",
            "20",
        ],
    );
    assert!(ok, "top --fleet: {stderr}");
    let top: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let rows = top["rows"].as_array().unwrap();
    let row = |src: &str| {
        rows.iter()
            .find(|r| r["source"] == src)
            .unwrap_or_else(|| panic!("{src} not in {top}"))
    };
    let total = |r: &Value| r["window"].as_u64().unwrap() + r["previous"].as_u64().unwrap();
    assert_eq!(rows.len(), ABUSERS as usize + 1, "{top}");
    // It reads the current and the previous window: all of the control's
    // count unless the test took more than a window.
    if keys.lines().count() <= 2 {
        assert_eq!(total(row(CONTROL)), fleet_total, "{top}");
    }
    assert_eq!(rows.last().unwrap()["source"], CONTROL, "{top}");
    for i in 0..ABUSERS {
        let r = row(&abuser(i));
        assert_eq!(r["counter"], "kernel:pps");
        assert!(total(r) > THRESHOLD as u64, "{r}");
    }
    println!(
        "figure: top --fleet: {} rows, the heaviest {} at {:.0}% of the fleet limit",
        rows.len(),
        rows[0]["source"],
        rows[0]["of_allowed"].as_f64().unwrap() * 100.0
    );
    let (ok, _, stderr) = cli(
        &hosts[0].link.edge,
        &["-c", "/nonexistent-h18.toml", "top", "--fleet"],
    );
    assert!(!ok && stderr.contains("nonexistent-h18"), "{stderr}");
}

/// The IPv6 variant: the kernel tier keys an IPv6 source by its /64
/// (`ipv6_prefix`), and so does the fleet. Each abuser's /64 sends every
/// host half the threshold, each host from another address of it: no
/// address sends more than half the threshold anywhere, the /64 sends
/// 1.5x it on the fleet, and the /64 is banned on every host (an address
/// of it that sent nothing is shown banned). A control /64 at 0.6x is
/// counted in Redis under its prefix and banned nowhere.
#[test]
fn fleet_pps_bans_an_ipv6_prefix_spread_over_three_hosts_and_addresses() {
    let name = "fleet_pps_bans_an_ipv6_prefix_spread_over_three_hosts_and_addresses";
    if !require_root(name) || !tests::redis::available(name) {
        return;
    }
    let fleet = "h18pps6";
    let t = three_hosts(
        "h18f6",
        &Spec {
            fleet,
            clients: Vec::new(),
            ..spec()
        },
    );
    let hosts = &t.hosts;
    // The first full read of the sources maps only records.
    std::thread::sleep(Duration::from_millis(600));
    let udp = |src: &str| Frame::v6(src, "2001:db8:21::1").build();
    for (k, e) in hosts.iter().enumerate() {
        e.inject(&udp(&format!("2001:db8:21:ff::{}", k + 1)), THRESHOLD / 5);
    }
    let mut to_all = Vec::new();
    for i in 1..=4u32 {
        for (k, e) in hosts.iter().enumerate() {
            e.inject(&udp(&format!("2001:db8:21:{i}::{}", k + 1)), THRESHOLD / 2);
        }
        let unused = format!("2001:db8:21:{i}::abcd");
        let at = banned_everywhere(&t, &unused, Instant::now());
        to_all.push(at.into_iter().max().unwrap());
        for e in hosts {
            let ban = e.ban(&unused);
            assert_eq!(ban["source"], format!("2001:db8:21:{i}::/64"), "{ban}");
            assert!(
                ban["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("filter.fleet_pps: "),
                "{ban}"
            );
        }
    }
    let (p50, max) = p50_max(&mut to_all);
    println!(
        "figure: fleet_pps IPv6, 4 /64s each at 0.5x the threshold on each of 3 hosts (another \
         address per host): banned in every host's XDP maps after the last packet p50 {p50:?}, \
         max {max:?}"
    );
    assert!(max <= Duration::from_secs(2), "{to_all:?}");
    std::thread::sleep(Duration::from_millis(600));
    let total = fleet_total(&t.redis, fleet, "kernel:pps", "2001:db8:21:ff::");
    println!(
        "figure: fleet_pps IPv6 control: {total} of its {} packets counted on the fleet",
        3 * (THRESHOLD / 5)
    );
    assert!(
        total >= 3 * ((THRESHOLD / 5) as u64 - (THRESHOLD / 48) as u64),
        "the control /64 was not counted on the fleet under its prefix: {total}"
    );
    for e in hosts {
        assert!(e.ban("2001:db8:21:ff::1").is_null());
    }
}
