//! The first stage in front of the per-source LRU (`proxy_common::admit`):
//! a source gets an LRU entry from its second packet, with the first one
//! accounted for, and sources that send one packet each (a spoofed flood)
//! no longer push real sources' state out of the LRU.

use proxy_common::stats::{PASS, PPS_LIMITED};
use tests::{
    filter::{limit, load, run, settings, verdict_of},
    packet::Frame,
    pins::PinDir,
    privilege::require_root,
};

const DST: &str = "198.18.0.1";

#[test]
fn a_source_enters_the_lru_at_its_second_packet_with_its_first_counted() {
    if !require_root("a_source_enters_the_lru_at_its_second_packet_with_its_first_counted") {
        return;
    }
    let pins = PinDir::new("cost14-admit");
    let mut s = settings(pins.path());
    // A burst of 2 at 1/s: the third packet is over, whichever stage saw the first.
    s.pps = limit(1, 2);
    let mut filter = load(&s);
    let seed = filter.maps.config().unwrap().admit_seed;
    assert_ne!(seed, 0, "the loader keys the slot hash");
    filter.sync(&s).unwrap();
    assert_eq!(
        filter.maps.config().unwrap().admit_seed,
        seed,
        "and keeps the key when the settings are written again"
    );
    let frame = Frame::v4("198.18.7.1", DST).payload(30).build();
    let len = frame.len() as u64;
    let src = "198.18.7.1".parse().unwrap();

    assert_eq!(verdict_of(&filter, &frame).1, PASS, "first packet");
    assert_eq!(
        filter.maps.source(src).unwrap(),
        None,
        "one packet: not in the LRU"
    );
    assert_eq!(verdict_of(&filter, &frame).1, PASS, "second packet");
    let st = filter.maps.source(src).unwrap().expect("promoted");
    assert_eq!((st.packets, st.bytes, st.drops), (2, 2 * len, 0));
    assert_ne!(st.pps_tat, 0, "both packets spent budget");
    assert_eq!(
        verdict_of(&filter, &frame).1,
        PPS_LIMITED,
        "the first packet's budget was carried into the LRU entry"
    );
    let st = filter.maps.source(src).unwrap().unwrap();
    assert_eq!((st.packets, st.drops), (3, 1));

    // IPv6: a /64 is one source in the first stage too.
    let a = Frame::v6("fd72:7::1", "fd72::1").build();
    let b = Frame::v6("fd72:7::2", "fd72::1").build();
    assert_eq!(verdict_of(&filter, &a).1, PASS);
    assert_eq!(
        filter.maps.source("fd72:7::9".parse().unwrap()).unwrap(),
        None
    );
    assert_eq!(verdict_of(&filter, &b).1, PASS);
    let st6 = filter
        .maps
        .source("fd72:7::9".parse().unwrap())
        .unwrap()
        .expect("the /64 promoted by its second address");
    assert_eq!(st6.packets, 2);
    assert_eq!(verdict_of(&filter, &a).1, PPS_LIMITED);
}

#[test]
fn a_spoofed_flood_does_not_evict_the_real_sources() {
    if !require_root("a_spoofed_flood_does_not_evict_the_real_sources") {
        return;
    }
    let pins = PinDir::new("cost14-keep");
    let mut s = settings(pins.path());
    s.maps.sources = 1024;
    s.pps = limit(1000, 1000);
    let filter = load(&s);
    // 200 real sources, two packets each: all in the LRU.
    let real: Vec<String> = (0..200).map(|i| format!("198.18.8.{}", i + 1)).collect();
    for src in &real {
        let f = Frame::v4(src, DST).build();
        run(&filter, &f);
        run(&filter, &f);
    }
    // 20,000 spoofed sources (20 times the LRU), one packet each, while the
    // real sources are silent: before the first stage, they evicted all 200.
    for i in 0..20_000u32 {
        let spoofed = std::net::Ipv4Addr::from(0x0a00_0000 + i * 7).to_string();
        assert_eq!(run(&filter, &Frame::v4(&spoofed, DST).build()), 2);
    }
    let kept = real
        .iter()
        .filter(|s| filter.maps.source(s.parse().unwrap()).unwrap().is_some())
        .count();
    let tracked = filter.maps.sources().unwrap().len();
    println!("real sources kept: {kept} of 200; entries in the LRU: {tracked}");
    assert_eq!(kept, 200, "every real source keeps its state");
    assert!(
        tracked < 300,
        "spoofed one-packet sources stay out of the LRU ({tracked} entries)"
    );
}
