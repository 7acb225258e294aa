//! The kernel tier's fleet-wide SYN threshold (`[filter] fleet_syn`, issue
//! 18): three daemons with XDP (`fleet_hosts`), the SYNs each source sent
//! every host counted by the program (`SourceState::syns`) and aggregated
//! through Redis. Abusers each send every host half the threshold in SYNs
//! (1.5x on the fleet): each is banned in all three hosts' XDP maps. Two
//! controls are never banned: one sends every host a fifth of the
//! threshold in SYNs (0.6x on the fleet; counted in Redis), the other
//! twice the threshold in UDP packets to every host (6x on the fleet in
//! packets, no SYN): SYNs are counted apart from packets.

use std::time::{Duration, Instant};

use tests::{packet::Frame, privilege::require_root};

use crate::fleet_hosts::{Spec, banned_everywhere, fleet_total, p50_max, three_hosts};

const EDGE: &str = "198.18.21.1";
/// More than this many SYNs from one source within 10 s on the fleet:
/// banned everywhere.
const THRESHOLD: usize = 1500;
const ABUSERS: u32 = 5;
const SYN_CONTROL: &str = "198.18.21.77";
const UDP_CONTROL: &str = "198.18.21.78";
const FLEET: &str = "h18syn";

fn syn(src: &str) -> Vec<u8> {
    Frame::v4(src, EDGE).tcp_syn().build()
}

#[test]
fn fleet_syn_bans_a_source_whose_syns_are_spread_over_three_hosts() {
    let name = "fleet_syn_bans_a_source_whose_syns_are_spread_over_three_hosts";
    if !require_root(name) || !tests::redis::available(name) {
        return;
    }
    let t = three_hosts(
        "h18fs",
        &Spec {
            fleet: FLEET,
            redis: crate::fleet_hosts::REDIS,
            edge: "198.18.21.1/24",
            clients: Vec::new(),
            filter: "fleet_syn = { count = 1500, within = \"10s\", ban = \"10m\" }\n",
            listen: format!("{EDGE}:8080"),
        },
    );
    let hosts = &t.hosts;
    // The first full read of the sources maps only records.
    std::thread::sleep(Duration::from_millis(600));

    for e in hosts {
        e.inject(&syn(SYN_CONTROL), THRESHOLD / 5);
        e.inject(&Frame::v4(UDP_CONTROL, EDGE).build(), 2 * THRESHOLD);
    }
    let mut to_all = Vec::new();
    for i in 0..ABUSERS {
        let src = format!("198.18.21.{}", 100 + i);
        for e in hosts {
            e.inject(&syn(&src), THRESHOLD / 2);
        }
        let at = banned_everywhere(&t, &src, Instant::now());
        to_all.push(at.into_iter().max().unwrap());
        let mut counted = 0;
        for e in hosts {
            let shown = e.ip_show(&src);
            let reason = shown["ban"]["reason"].as_str().unwrap_or_default();
            assert!(
                reason.starts_with("filter.fleet_syn: ") && reason.contains("SYNs on the fleet"),
                "{shown}"
            );
            // SYNs that came after the ban are dropped before they are counted.
            let syns = shown["source"]["syns"].as_u64().unwrap_or(0);
            assert!(syns <= (THRESHOLD / 2) as u64, "{shown}");
            counted += syns;
        }
        // The programs counted the SYNs the fleet needed to pass the threshold.
        assert!(counted > THRESHOLD as u64, "{src}: {counted} SYNs counted");
    }
    let (p50, max) = p50_max(&mut to_all);
    println!(
        "figure: fleet_syn, {ABUSERS} abusers each at 0.5x the threshold in SYNs on each of 3 \
         hosts: banned in every host's XDP maps after the last SYN p50 {p50:?}, max {max:?}"
    );
    assert!(max <= Duration::from_secs(2), "{to_all:?}");

    std::thread::sleep(Duration::from_millis(600));
    let syns = fleet_total(&t.redis, FLEET, "kernel:syn", SYN_CONTROL);
    println!(
        "figure: fleet_syn control: {syns} of its {} SYNs counted on the fleet",
        3 * (THRESHOLD / 5)
    );
    // Each of 3 hosts holds back less than its floor, count / (16 x 3).
    let held_back = (THRESHOLD / 48) as u64;
    assert!(
        syns >= 3 * ((THRESHOLD / 5) as u64 - held_back),
        "the SYN control was not counted on the fleet: {syns}"
    );
    assert_eq!(
        fleet_total(&t.redis, FLEET, "kernel:syn", UDP_CONTROL),
        0,
        "UDP packets are not SYNs"
    );
    for e in hosts {
        for control in [SYN_CONTROL, UDP_CONTROL] {
            let shown = e.ip_show(control);
            assert!(shown["ban"].is_null(), "control banned: {shown}");
        }
        let udp = &e.ip_show(UDP_CONTROL)["source"];
        let packets = udp["packets"].as_u64().unwrap_or(0);
        assert!(
            (THRESHOLD as u64 * 18 / 10..=2 * THRESHOLD as u64).contains(&packets),
            "{udp}"
        );
        assert_eq!(udp["syns"].as_u64(), Some(0), "{udp}");
    }
}
