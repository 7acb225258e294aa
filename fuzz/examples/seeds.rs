//! Writes the seed frames of the `xdp` corpus into `corpus/xdp/` (run from
//! `fuzz/`: `cargo run --example seeds`). Each file is one frame, named
//! after what it exercises; the fuzzer mutates them into everything else.

use std::net::Ipv6Addr;

use rampart_fuzz::frame::Frame;

fn v6(s: &str) -> Ipv6Addr {
    s.parse().expect("an IPv6 address")
}

fn main() -> std::io::Result<()> {
    let seeds: Vec<(&str, Frame)> = vec![
        ("v4-udp-pass", Frame::v4([198, 18, 0, 1])),
        ("v4-tcp-syn", Frame::v4([198, 18, 0, 1]).tcp(0x02)),
        ("v4-tcp-synack", Frame::v4([198, 18, 0, 1]).tcp(0x12)),
        ("v4-icmp", Frame::v4([198, 18, 0, 1]).icmp()),
        ("v4-blocked-range", Frame::v4([198, 51, 100, 9]).tcp(0x02)),
        ("v4-blocked-host", Frame::v4([203, 0, 113, 7])),
        ("v4-blocked-26", Frame::v4([203, 0, 113, 70])),
        ("v4-blocked-10", Frame::v4([100, 64, 1, 1])),
        ("v4-allowed", Frame::v4([10, 2, 3, 4])),
        ("v4-allowed-over-block", Frame::v4([10, 1, 2, 3])),
        ("v4-banned", Frame::v4([192, 0, 2, 66]).tcp(0x02)),
        ("v4-banned-allowed", Frame::v4([10, 9, 9, 9])),
        ("v4-ban-expired", Frame::v4([192, 0, 2, 77])),
        ("v4-vlan", Frame::v4([198, 51, 100, 1]).vlan(0x8100)),
        (
            "v4-qinq",
            Frame::v4([192, 0, 2, 66]).vlan(0x88a8).vlan(0x8100),
        ),
        (
            "v4-options",
            Frame::v4([203, 0, 113, 7]).options(3).tcp(0x02),
        ),
        (
            "v4-fragment",
            Frame::v4([198, 18, 0, 1]).fragment(64).tcp(0x02),
        ),
        ("v6-udp-pass", Frame::v6(v6("2001:db8:e::1"))),
        ("v6-tcp-syn", Frame::v6(v6("2001:db8:e::1")).tcp(0x02)),
        ("v6-icmp", Frame::v6(v6("2001:db8:e::1")).icmp()),
        ("v6-blocked", Frame::v6(v6("2001:db8:b::7")).tcp(0x02)),
        ("v6-blocked-host", Frame::v6(v6("2001:db8::dead"))),
        ("v6-blocked-40", Frame::v6(v6("2001:db8:cff::1"))),
        ("v6-allowed-over-block", Frame::v6(v6("2001:db8:a:1::1"))),
        ("v6-banned", Frame::v6(v6("2001:db8:c::1")).tcp(0x02)),
        ("v6-ban-expired", Frame::v6(v6("2001:db8:d::5"))),
        (
            "v6-ext-chain",
            Frame::v6(v6("2001:db8:b::1"))
                .ext(0)
                .ext(43)
                .ext(60)
                .ext(51)
                .tcp(0x02),
        ),
        (
            "v6-frag-first",
            Frame::v6(v6("2001:db8:e::1")).ext(44).tcp(0x02),
        ),
        (
            "v6-frag-later",
            Frame::v6(v6("2001:db8:e::1")).v6_fragment().tcp(0x02),
        ),
        (
            "v6-vlan",
            Frame::v6(v6("2001:db8:c::1")).vlan(0x8100).tcp(0x02),
        ),
        ("arp", Frame::raw(0x0806)),
        ("vlan-arp", Frame::raw(0x0806).vlan(0x8100)),
        ("v4-big", Frame::v4([198, 18, 0, 1]).payload(1400)),
    ];
    let dir = std::path::Path::new("corpus/xdp");
    std::fs::create_dir_all(dir)?;
    for (name, frame) in &seeds {
        std::fs::write(dir.join(name), frame.build())?;
    }
    println!("{} seeds in {}", seeds.len(), dir.display());
    Ok(())
}
