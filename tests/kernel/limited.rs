//! The limited-drop cache (`proxy-ebpf/src/limited.rs`, issue 14): a
//! source over a limit decided on the coarse clock is dropped from a
//! per-CPU slot, its drops still counted, and a changed limit ends the
//! entry at once; a source over a limit decided on the exact clock is
//! dropped from it too, until a guard before its TAT.

use std::net::Ipv4Addr;

use aya::{
    maps::{Map, MapData, MapInfo, PerCpuArray},
    programs::{TestRun, TestRunOptions},
};
use proxy_common::{
    config::{FLAG_PPS_COARSE, FLAG_SYN_COARSE},
    stats::{PASS, PPS_LIMITED, SYN_LIMITED},
};
use proxy_user::filter::Filter;
use tests::{
    filter::{dispatch, limit, load, settings, verdict_of},
    packet::Frame,
    pins::PinDir,
    privilege::require_root,
};

use crate::ratelimit::pin_to_cpu;

/// `limited::Limited` as words: addr (2), pps_until, syn_until,
/// pps_params (2), syn_params (2), pending packets, pending bytes,
/// allowlist generation, pending SYNs.
type Slot = [u64; 12];

/// The program's `limited_v4` map (not pinned: found through the program).
fn limited_v4(filter: &Filter) -> PerCpuArray<MapData, Slot> {
    let info = filter.program().unwrap().info().unwrap();
    for id in info.map_ids().unwrap().expect("map ids") {
        if MapInfo::from_id(id).unwrap().name_as_str() == Some("limited_v4") {
            let map = Map::from_map_data(MapData::from_id(id).unwrap()).unwrap();
            return PerCpuArray::try_from(map).unwrap();
        }
    }
    panic!("the program has no limited_v4 map");
}

/// The slot of CPU `cpu` that holds `ip`, if any.
fn slot_of(filter: &Filter, cpu: usize, ip: Ipv4Addr) -> Option<Slot> {
    let word = u32::from_ne_bytes(ip.octets()) as u64 | 1 << 32;
    let map = limited_v4(filter);
    (0..map.len())
        .map(|i| map.get(&i, 0).unwrap()[cpu])
        .find(|s| s[0] == word && s[1] == 0)
}

#[test]
fn a_source_over_a_coarse_limit_is_dropped_from_the_cache_and_still_counted() {
    if !require_root("a_source_over_a_coarse_limit_is_dropped_from_the_cache_and_still_counted") {
        return;
    }
    pin_to_cpu(0);
    let pins = PinDir::new("h14xdp-limited");
    let mut s = settings(pins.path());
    // 1/s with a burst of 100: a 99 s tolerance, decided on the coarse
    // clock; once the burst is spent the source stays over it for ~1 s.
    s.pps = limit(1, 100);
    let mut filter = load(&s);
    assert_ne!(filter.maps.config().unwrap().flags & FLAG_PPS_COARSE, 0);
    let _dispatched = dispatch(&mut filter);
    let ip: Ipv4Addr = "198.18.7.7".parse().unwrap();
    let frame = Frame::v4("198.18.7.7", "198.18.0.1").payload(18).build();
    let before = filter.maps.verdicts().unwrap();
    let sent = 10_000u64;
    filter
        .program()
        .unwrap()
        .test_run(TestRunOptions {
            data_in: Some(&frame),
            repeat: sent as u32,
            ..Default::default()
        })
        .unwrap();
    let after = filter.maps.verdicts().unwrap();
    let passed = after[PASS as usize].packets - before[PASS as usize].packets;
    let dropped = after[PPS_LIMITED as usize].packets - before[PPS_LIMITED as usize].packets;
    assert_eq!(passed + dropped, sent);
    assert!((100..=102).contains(&passed), "passed {passed}");

    // The drops went through this CPU's slot...
    let slot = slot_of(&filter, 0, ip).expect("the source is in the cache");
    assert!(slot[2] > 0, "a packet-limited drop is cached: {slot:?}");
    // ...and every packet is counted, in the LRU entry or still in the slot
    // (added every 64 drops).
    let state = filter.maps.source(ip.into()).unwrap().expect("tracked");
    assert!(
        slot[8] < 64,
        "pending drops are flushed every 64: {}",
        slot[8]
    );
    assert_eq!(
        state.packets + slot[8],
        sent,
        "packets: {state:?} + {}",
        slot[8]
    );
    assert_eq!(
        state.drops + slot[8],
        dropped,
        "drops: {state:?} + {}",
        slot[8]
    );
    assert_eq!(
        state.bytes + slot[9],
        sent * frame.len() as u64,
        "bytes: {state:?} + {}",
        slot[9]
    );
    assert_eq!((state.syns, slot[11]), (0, 0), "no SYN was sent");

    // A changed limit ends the entry at once: with a burst of 1,000 the
    // source's TAT (100 s ahead) conforms again, and the LRU path passes it
    // although the cached time has not come.
    s.pps = limit(1, 1000);
    filter.sync(&s).unwrap();
    assert_eq!(verdict_of(&filter, &frame).1, PASS);
    // The packet took the LRU path, which added the slot's drops.
    let state = filter.maps.source(ip.into()).unwrap().unwrap();
    assert_eq!(state.packets, sent + 1);
    assert_eq!(state.drops, dropped);
}

/// SYNs dropped from the cache count in the source's `syns` (the fleet's
/// `fleet_syn` reads them), as its packets do.
#[test]
fn syns_dropped_from_the_cache_are_counted() {
    if !require_root("syns_dropped_from_the_cache_are_counted") {
        return;
    }
    pin_to_cpu(0);
    let pins = PinDir::new("h18fin-limited-syn");
    let mut s = settings(pins.path());
    s.syn = limit(1, 100);
    let mut filter = load(&s);
    assert_ne!(filter.maps.config().unwrap().flags & FLAG_SYN_COARSE, 0);
    let _dispatched = dispatch(&mut filter);
    let ip: Ipv4Addr = "198.18.7.8".parse().unwrap();
    let syn = Frame::v4("198.18.7.8", "198.18.0.1").tcp_syn().build();
    let before = filter.maps.verdicts().unwrap();
    let sent = 10_000u64;
    filter
        .program()
        .unwrap()
        .test_run(TestRunOptions {
            data_in: Some(&syn),
            repeat: sent as u32,
            ..Default::default()
        })
        .unwrap();
    let after = filter.maps.verdicts().unwrap();
    let dropped = after[SYN_LIMITED as usize].packets - before[SYN_LIMITED as usize].packets;
    assert!(dropped > sent / 2, "dropped {dropped}");
    let slot = slot_of(&filter, 0, ip).expect("the source is in the cache");
    assert!(slot[3] > 0, "a SYN-limited drop is cached: {slot:?}");
    let state = filter.maps.source(ip.into()).unwrap().expect("tracked");
    assert_eq!(
        state.syns + slot[11],
        sent,
        "syns: {state:?} + {}",
        slot[11]
    );
    assert_eq!(state.packets + slot[8], sent);
    // A packet that is not a SYN takes the LRU path and adds the slot's SYNs.
    let ack = Frame::v4("198.18.7.8", "198.18.0.1").tcp(0x10).build();
    verdict_of(&filter, &ack);
    let state = filter.maps.source(ip.into()).unwrap().unwrap();
    assert_eq!((state.syns, state.packets), (sent, sent + 1));
}

#[test]
fn a_source_over_an_exact_clock_limit_is_dropped_from_the_cache_short_of_its_tat() {
    if !require_root(
        "a_source_over_an_exact_clock_limit_is_dropped_from_the_cache_short_of_its_tat",
    ) {
        return;
    }
    pin_to_cpu(0);
    let pins = PinDir::new("h14pkt-limited-exact");
    let mut s = settings(pins.path());
    // 1/s with a burst of 1: no tolerance, so decided on the exact clock.
    s.pps = limit(1, 1);
    let mut filter = load(&s);
    assert_eq!(filter.maps.config().unwrap().flags & FLAG_PPS_COARSE, 0);
    let _dispatched = dispatch(&mut filter);
    let ip: Ipv4Addr = "198.18.7.8".parse().unwrap();
    let frame = Frame::v4("198.18.7.8", "198.18.0.1").payload(18).build();
    let before = filter.maps.verdicts().unwrap();
    let sent = 10_000u64;
    filter
        .program()
        .unwrap()
        .test_run(TestRunOptions {
            data_in: Some(&frame),
            repeat: sent as u32,
            ..Default::default()
        })
        .unwrap();
    let after = filter.maps.verdicts().unwrap();
    let passed = after[PASS as usize].packets - before[PASS as usize].packets;
    let dropped = after[PPS_LIMITED as usize].packets - before[PPS_LIMITED as usize].packets;
    assert_eq!(passed + dropped, sent);
    // One packet, or two if the run crossed the second the first opened.
    assert!((1..=2).contains(&passed), "passed {passed}");

    // The drops went through this CPU's slot, cached until 30 ms
    // (`LAG_GUARD_NS`) before the TAT lets the source through again: past
    // that the LRU path decides on the exact time.
    let slot = slot_of(&filter, 0, ip).expect("the source is in the cache");
    let state = filter.maps.source(ip.into()).unwrap().expect("tracked");
    assert_eq!(
        slot[2],
        state.pps_tat - 30_000_000,
        "cached until the guard before the TAT (tolerance 0): {slot:?} {state:?}"
    );
    assert_eq!(state.packets + slot[8], sent, "{state:?} + {}", slot[8]);
    assert_eq!(state.drops + slot[8], dropped, "{state:?} + {}", slot[8]);
}
