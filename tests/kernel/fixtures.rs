//! Table-driven packet fixtures through BPF_PROG_TEST_RUN: every branch of
//! the decision, IPv4 and IPv6, VLAN tags, IPv4 options and fragments, IPv6
//! extension headers, and truncation at every length.

use std::time::Duration;

use proxy_common::{list::ORIGIN_CLI, stats::*};
use tests::{
    filter::{cidrs, limit, load, settings, verdict_of},
    packet::{Ext, Frame, TCP_ACK, TCP_SYN},
    pins::PinDir,
    privilege::require_root,
};

/// XDP action numbers (uapi linux/bpf.h).
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

const DST4: &str = "198.18.0.1";
const DST6: &str = "fd72::1";

/// One fixture: what it is, the frame, and the verdict it must get.
struct Case {
    what: &'static str,
    frame: Frame,
    verdict: u32,
}

fn case(what: &'static str, frame: Frame, verdict: u32) -> Case {
    Case {
        what,
        frame,
        verdict,
    }
}

fn action_of(verdict: u32) -> u32 {
    if is_drop(verdict) { XDP_DROP } else { XDP_PASS }
}

/// A filter with lists and a ban, limits high enough not to interfere.
fn lists_filter(pins: &PinDir) -> proxy_user::filter::Filter {
    let mut s = settings(pins.path());
    s.allow = cidrs(&["198.18.1.0/24", "fd72:1::/32", "198.18.2.128/25"]);
    s.block = cidrs(&["198.18.2.0/24", "198.18.3.3", "fd72:2::/32", "fd72:3::3"]);
    s.pps = limit(1_000_000, 1_000_000);
    s.syn = limit(1_000_000, 1_000_000);
    let mut f = load(&s);
    f.maps
        .ban(
            "198.18.4.4".parse().unwrap(),
            Some(Duration::from_secs(600)),
            ORIGIN_CLI,
        )
        .unwrap();
    f.maps
        .ban("fd72:4::4".parse().unwrap(), None, ORIGIN_CLI)
        .unwrap();
    f.maps
        .ban(
            "198.18.4.5".parse().unwrap(),
            Some(Duration::from_nanos(1)),
            ORIGIN_CLI,
        )
        .unwrap();
    f
}

#[test]
fn every_branch_gets_its_verdict() {
    if !require_root("every_branch_gets_its_verdict") {
        return;
    }
    let pins = PinDir::new("fixtures");
    let filter = lists_filter(&pins);
    // Let the 1 ns ban expire: the program reads bans on the coarse clock,
    // which is behind by up to a tick (4 ms at HZ=250).
    std::thread::sleep(Duration::from_millis(20));
    let cases = [
        case("plain IPv4 UDP", Frame::v4("198.18.0.9", DST4), PASS),
        case(
            "IPv4 TCP SYN",
            Frame::v4("198.18.0.9", DST4).tcp_syn(),
            PASS,
        ),
        case("IPv4 ICMP echo", Frame::v4("198.18.0.9", DST4).icmp(), PASS),
        case("plain IPv6 UDP", Frame::v6("fd72::9", DST6), PASS),
        case("IPv6 TCP SYN", Frame::v6("fd72::9", DST6).tcp_syn(), PASS),
        case("ARP is not IP", Frame::raw(0x0806, 28), NON_IP),
        case("LLDP is not IP", Frame::raw(0x88cc, 40), NON_IP),
        case(
            "VLAN-tagged ARP",
            Frame::raw(0x0806, 28).vlan(0x8100, 3),
            NON_IP,
        ),
        case(
            "allowlisted IPv4",
            Frame::v4("198.18.1.7", DST4),
            ALLOWLISTED,
        ),
        case(
            "allowlisted IPv6",
            Frame::v6("fd72:1::7", DST6).tcp_syn(),
            ALLOWLISTED,
        ),
        case(
            "allowlist wins over an overlapping blocklist",
            Frame::v4("198.18.2.200", DST4),
            ALLOWLISTED,
        ),
        case(
            "blocklisted IPv4 range",
            Frame::v4("198.18.2.7", DST4),
            BLOCKLISTED,
        ),
        case(
            "blocklisted IPv4 address",
            Frame::v4("198.18.3.3", DST4),
            BLOCKLISTED,
        ),
        case(
            "neighbour of a blocked address",
            Frame::v4("198.18.3.4", DST4),
            PASS,
        ),
        case(
            "blocklisted IPv6 range",
            Frame::v6("fd72:2::7", DST6),
            BLOCKLISTED,
        ),
        case(
            "blocklisted IPv6 address",
            Frame::v6("fd72:3::3", DST6),
            BLOCKLISTED,
        ),
        case(
            "banned IPv4 (TTL running)",
            Frame::v4("198.18.4.4", DST4),
            BANNED,
        ),
        case(
            "banned IPv6 (no expiry)",
            Frame::v6("fd72:4::4", DST6),
            BANNED,
        ),
        case(
            "expired ban is ignored",
            Frame::v4("198.18.4.5", DST4),
            PASS,
        ),
        case(
            "802.1Q-tagged blocked source",
            Frame::v4("198.18.2.7", DST4).vlan(0x8100, 10),
            BLOCKLISTED,
        ),
        case(
            "QinQ (802.1ad + 802.1Q) banned IPv6",
            Frame::v6("fd72:4::4", DST6)
                .vlan(0x88a8, 100)
                .vlan(0x8100, 10),
            BANNED,
        ),
        case(
            "QinQ pass",
            Frame::v4("198.18.0.9", DST4)
                .vlan(0x88a8, 1)
                .vlan(0x8100, 2)
                .tcp_syn(),
            PASS,
        ),
        case(
            "IPv4 with options, blocked",
            Frame::v4("198.18.3.3", DST4)
                .ipv4_options(&[0x94, 0x04, 0, 0])
                .tcp_syn(),
            BLOCKLISTED,
        ),
        case(
            "IPv4 with 40 bytes of options",
            Frame::v4("198.18.0.9", DST4)
                .ipv4_options(&[1; 40])
                .tcp_syn(),
            PASS,
        ),
        case(
            "IPv4 first fragment",
            Frame::v4("198.18.0.9", DST4)
                .tcp_syn()
                .fragment(0, true)
                .payload(100),
            PASS,
        ),
        case(
            "IPv4 later fragment (no TCP header)",
            Frame::v4("198.18.0.9", DST4).fragment(185, false),
            PASS,
        ),
        case(
            "IPv4 later fragment from a blocked source",
            Frame::v4("198.18.2.9", DST4).fragment(185, true),
            BLOCKLISTED,
        ),
        case(
            "IPv6 hop-by-hop then TCP",
            Frame::v6("fd72::9", DST6).ext(Ext::HopByHop).tcp_syn(),
            PASS,
        ),
        case(
            "IPv6 hop-by-hop, routing, dest-opts, AH then TCP from a blocked source",
            Frame::v6("fd72:3::3", DST6)
                .ext(Ext::HopByHop)
                .ext(Ext::Routing)
                .ext(Ext::DestOpts)
                .ext(Ext::Auth)
                .tcp_syn(),
            BLOCKLISTED,
        ),
        case(
            "IPv6 first fragment",
            Frame::v6("fd72::9", DST6).ext(Ext::Fragment(0)).tcp_syn(),
            PASS,
        ),
        case(
            "IPv6 later fragment",
            Frame::v6("fd72::9", DST6).ext(Ext::Fragment(100)).udp(),
            PASS,
        ),
        case(
            "IPv6 with nine extension headers",
            (0..9).fold(Frame::v6("fd72::9", DST6), |f, _| f.ext(Ext::DestOpts)),
            MALFORMED,
        ),
    ];
    let mut failures = Vec::new();
    for c in &cases {
        let (action, verdict) = verdict_of(&filter, &c.frame.build());
        if verdict != c.verdict || action != action_of(c.verdict) {
            failures.push(format!(
                "{}: expected {} (action {}), got {} (action {action})",
                c.what,
                VERDICT_NAMES[c.verdict as usize],
                action_of(c.verdict),
                VERDICT_NAMES[verdict as usize]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // The expired ban was cleaned up by the program when it was hit.
    let bans = filter.maps.bans().unwrap();
    assert!(
        bans.iter().all(|b| b.addr.to_string() != "198.18.4.5"),
        "expired ban still present: {bans:?}"
    );
    assert_eq!(bans.len(), 2);
}

#[test]
fn an_ipv6_ban_covers_its_64() {
    if !require_root("an_ipv6_ban_covers_its_64") {
        return;
    }
    let pins = PinDir::new("ban64");
    let mut filter = load(&settings(pins.path()));
    filter
        .maps
        .ban("fd72:6::1".parse().unwrap(), None, ORIGIN_CLI)
        .unwrap();
    let verdict =
        |f: &proxy_user::filter::Filter, src: &str| verdict_of(f, &Frame::v6(src, DST6).build()).1;
    assert_eq!(verdict(&filter, "fd72:6::1"), BANNED);
    assert_eq!(
        verdict(&filter, "fd72:6::ffff:2"),
        BANNED,
        "another address of the banned /64"
    );
    assert_eq!(
        verdict(&filter, "fd72:6:0:1::1"),
        PASS,
        "the next /64 is not banned"
    );
    let bans = filter.maps.bans().unwrap();
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].addr.to_string(), "fd72:6::", "kept by source");
    assert!(
        filter.maps.unban("fd72:6::42".parse().unwrap()).unwrap(),
        "lifted by any address of the /64"
    );
    assert_eq!(verdict(&filter, "fd72:6::1"), PASS);
}

#[test]
fn malformed_headers_are_counted_and_dropped() {
    if !require_root("malformed_headers_are_counted_and_dropped") {
        return;
    }
    let pins = PinDir::new("malformed");
    let filter = load(&settings(pins.path()));
    let mut bad_version = Frame::v4("198.18.0.9", DST4).build();
    bad_version[14] = 0x55; // version 5
    let mut short_ihl = Frame::v4("198.18.0.9", DST4).build();
    short_ihl[14] = 0x44; // header length 16 bytes
    let mut long_total = Frame::v4("198.18.0.9", DST4).build();
    long_total[16..18].copy_from_slice(&2000u16.to_be_bytes());
    let mut v6_long_payload = Frame::v6("fd72::9", DST6).build();
    v6_long_payload[18..20].copy_from_slice(&2000u16.to_be_bytes());
    let mut v6_bad_version = Frame::v6("fd72::9", DST6).build();
    v6_bad_version[14] = 0x40;
    // An IPv4 first fragment too short to hold the TCP flags (RFC 1858).
    let tiny = Frame::v4("198.18.0.9", DST4).tcp_syn().build();
    let mut tiny_first_fragment = tiny[..14 + 20 + 8].to_vec();
    tiny_first_fragment[16..18].copy_from_slice(&28u16.to_be_bytes());
    tiny_first_fragment[20] = 0x20; // more fragments
    for (what, frame) in [
        ("IPv4 version 5", bad_version),
        ("IPv4 IHL below 5", short_ihl),
        ("IPv4 total length past the frame", long_total),
        ("IPv6 payload length past the frame", v6_long_payload),
        ("IPv6 version 4", v6_bad_version),
        ("tiny first fragment", tiny_first_fragment),
    ] {
        let (action, verdict) = verdict_of(&filter, &frame);
        assert_eq!(
            verdict, MALFORMED,
            "{what}: got {}",
            VERDICT_NAMES[verdict as usize]
        );
        assert_eq!(action, XDP_DROP, "{what}");
    }
}

#[test]
fn truncation_at_every_length_is_malformed() {
    if !require_root("truncation_at_every_length_is_malformed") {
        return;
    }
    let pins = PinDir::new("truncation");
    let filter = load(&settings(pins.path()));
    let frames = [
        (
            "QinQ IPv4 with options, TCP",
            Frame::v4("198.18.0.9", DST4)
                .vlan(0x88a8, 1)
                .vlan(0x8100, 2)
                .ipv4_options(&[1; 8])
                .tcp_syn(),
        ),
        (
            "IPv6 with extension headers, TCP",
            Frame::v6("fd72::9", DST6)
                .ext(Ext::HopByHop)
                .ext(Ext::Fragment(0))
                .ext(Ext::Auth)
                .tcp(TCP_SYN | TCP_ACK),
        ),
        (
            "802.1Q IPv6 UDP",
            Frame::v6("fd72::9", DST6).vlan(0x8100, 5).udp(),
        ),
    ];
    for (what, frame) in frames {
        let full = frame.payload(0).build();
        // The kernel refuses test frames shorter than an Ethernet header.
        for len in 14..full.len() {
            let (action, verdict) = verdict_of(&filter, &full[..len]);
            assert_eq!(
                verdict,
                MALFORMED,
                "{what} cut to {len} of {} bytes: got {}",
                full.len(),
                VERDICT_NAMES[verdict as usize]
            );
            assert_eq!(action, XDP_DROP);
        }
        let (_, verdict) = verdict_of(&filter, &full);
        assert_eq!(verdict, PASS, "{what} whole");
    }
}

#[test]
fn limits_drop_over_burst_and_syn_only_counts_new_connections() {
    if !require_root("limits_drop_over_burst_and_syn_only_counts_new_connections") {
        return;
    }
    let pins = PinDir::new("limits");
    let mut s = settings(pins.path());
    // Slow rates so no budget comes back during the test.
    s.pps = limit(1, 5);
    s.syn = limit(1, 2);
    let filter = load(&s);
    let syn = Frame::v4("198.18.5.1", DST4).tcp_syn().build();
    let ack = Frame::v4("198.18.5.1", DST4).tcp(TCP_ACK).build();
    let synack = Frame::v4("198.18.5.1", DST4).tcp(TCP_SYN | TCP_ACK).build();
    assert_eq!(verdict_of(&filter, &syn).1, PASS);
    assert_eq!(verdict_of(&filter, &syn).1, PASS);
    assert_eq!(
        verdict_of(&filter, &syn).1,
        SYN_LIMITED,
        "third SYN is over the SYN burst of 2"
    );
    assert_eq!(
        verdict_of(&filter, &synack).1,
        PASS,
        "SYN+ACK is not a new connection"
    );
    assert_eq!(verdict_of(&filter, &ack).1, PASS);
    assert_eq!(verdict_of(&filter, &ack).1, PASS);
    assert_eq!(
        verdict_of(&filter, &ack).1,
        PPS_LIMITED,
        "sixth packet is over the packet burst of 5"
    );
    // Another source has its own budget; an IPv6 /64 is one source.
    assert_eq!(
        verdict_of(&filter, &Frame::v4("198.18.5.2", DST4).build()).1,
        PASS
    );
    for _ in 0..5 {
        assert_eq!(
            verdict_of(&filter, &Frame::v6("fd72:5::1", DST6).build()).1,
            PASS
        );
    }
    let other_host_same_64 = Frame::v6("fd72:5::ffff:2", DST6).build();
    assert_eq!(
        verdict_of(&filter, &other_host_same_64).1,
        PPS_LIMITED,
        "same /64 shares the budget"
    );
    assert_eq!(
        verdict_of(&filter, &Frame::v6("fd72:5:0:1::1", DST6).build()).1,
        PASS,
        "next /64 is another source"
    );
    // Per-source counters saw all of it.
    let st = filter
        .maps
        .source("198.18.5.1".parse().unwrap())
        .unwrap()
        .expect("tracked");
    assert_eq!((st.packets, st.drops), (7, 2));
    let st6 = filter
        .maps
        .source("fd72:5::42".parse().unwrap())
        .unwrap()
        .expect("tracked /64");
    assert_eq!((st6.packets, st6.drops), (6, 1));
}
