//! The new-source budget and attack mode (`[filter.new_sources]`,
//! `proxy_common::new_sources`): past the budget a source the filter has
//! never seen is dropped before it touches the first stage or the LRU,
//! while known sources pass untouched and limited ones stay limited.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use aya::maps::{Array, Map, MapData, MapInfo};
use proxy_common::{
    admit::slot_tag_v4,
    stats::{NEW_LIMITED, PASS, PPS_LIMITED},
};
use proxy_user::{config::NewSources, filter::NewSourceMap};
use tests::{
    filter::{dispatch, limit, load, run, settings, verdict_of},
    packet::Frame,
    pins::PinDir,
    privilege::require_root,
};

const DST: &str = "198.18.0.1";
const XDP_PASS: u32 = 2;

/// The test settings with a budget of one new source per second (burst
/// one, attack mode held a second): the second new source is past it.
fn one_new_source_per_second(pin_dir: &std::path::Path) -> proxy_user::config::FilterSettings {
    let mut s = settings(pin_dir);
    s.new_sources = NewSources {
        rate: 1,
        burst: 1,
        hold: Duration::from_secs(1),
    };
    s
}

fn spoofed(i: u32) -> Vec<u8> {
    Frame::v4(&Ipv4Addr::from(0x0a00_0000 + i * 13).to_string(), DST).build()
}

#[test]
fn a_spoofed_burst_gets_at_most_the_budget_while_known_sources_pass() {
    if !require_root("a_spoofed_burst_gets_at_most_the_budget_while_known_sources_pass") {
        return;
    }
    let pins = PinDir::new("h14atk-budget");
    let mut s = settings(pins.path());
    s.pps = limit(1000, 100);
    s.new_sources = NewSources {
        rate: 100,
        burst: 50,
        hold: Duration::from_secs(1),
    };
    let mut filter = load(&s);
    let _dispatched = dispatch(&mut filter);
    // Known before the flood: two packets each put them in the LRU.
    let known = Frame::v4("198.18.9.1", DST).build();
    let abuser = Frame::v4("198.18.9.66", DST).build();
    for f in [&known, &known, &abuser, &abuser] {
        assert_eq!(verdict_of(&filter, f).1, PASS);
    }
    let before = filter.maps.verdicts().unwrap();
    let start = Instant::now();
    let (mut admitted, mut known_passed, mut abuser_passed, mut abuser_sent) = (0u64, 0, 0u64, 0);
    const FLOOD: u32 = 3000;
    for i in 0..FLOOD {
        if run(&filter, &spoofed(i)) == XDP_PASS {
            admitted += 1;
        }
        if i % 100 == 0 {
            let (_, v) = verdict_of(&filter, &known);
            assert_eq!(v, PASS, "a known source passes during the flood");
            known_passed += 1;
        }
        if i % 2 == 0 {
            abuser_sent += 1;
            let (_, v) = verdict_of(&filter, &abuser);
            assert_ne!(v, NEW_LIMITED, "a known abuser is not new");
            if v == PASS {
                abuser_passed += 1;
            } else {
                assert_eq!(v, PPS_LIMITED);
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let after = filter.maps.verdicts().unwrap();
    let dropped = after[NEW_LIMITED as usize].packets - before[NEW_LIMITED as usize].packets;
    let budget = 50.0 + 100.0 * secs;
    println!(
        "{FLOOD} spoofed sources in {secs:.2}s: {admitted} admitted (budget {budget:.0}), {dropped} dropped; \
         known passed {known_passed}; abuser {abuser_passed} of {abuser_sent}"
    );
    assert!(admitted >= 50, "the burst is admitted ({admitted})");
    assert!(
        admitted as f64 <= budget + 2.0,
        "{admitted} new sources admitted, the budget allows {budget:.0}"
    );
    assert_eq!(
        admitted + dropped,
        u64::from(FLOOD),
        "every other one dropped and counted"
    );
    let abuser_allowed = 2.0 + 100.0 + 1000.0 * secs;
    assert!(
        abuser_passed as f64 <= abuser_allowed * 1.1 + 1.0,
        "the abuser got {abuser_passed} through, its limit allows {abuser_allowed:.0}"
    );
    assert!(abuser_passed < abuser_sent, "the abuser stays limited");
    // The spoofed sources never reached the first stage's promotion: the
    // LRU holds the two known sources and what was admitted, at most.
    let tracked = filter.maps.sources().unwrap().len() as u64;
    assert!(tracked <= 2 + admitted, "LRU entries: {tracked}");

    // The budget is one for both families. The checks above take time in
    // which the budget earns a source back (one per 10 ms): spend it again
    // first, with IPv4 sources.
    let mut extra = FLOOD + 10;
    while run(&filter, &spoofed(extra)) == XDP_PASS {
        extra += 1;
        assert!(extra < FLOOD + 1000, "the budget is never spent");
    }
    let v6 = Frame::v6("fd14:a7::1", "fd72::1").build();
    assert_eq!(
        verdict_of(&filter, &v6).1,
        NEW_LIMITED,
        "IPv6 shares the budget"
    );

    let state = NewSourceMap::open(pins.path()).unwrap().get().unwrap();
    assert_eq!(state.attacks, 1, "attack mode entered once");
    assert!(state.attacking(proxy_user::filter::monotonic_ns()));
    assert_eq!((state.rate, state.burst), (100, 50));

    // A second after the last drop (the hold) and a budget back, the first
    // new source admitted ends attack mode.
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(verdict_of(&filter, &spoofed(FLOOD + 1)).1, PASS);
    let state = NewSourceMap::open(pins.path()).unwrap().get().unwrap();
    assert_eq!(state.attack_until_ns, 0, "attack mode left");
    assert!(!state.attacking(proxy_user::filter::monotonic_ns()));
}

#[test]
fn a_source_admitted_by_the_budget_is_promoted_without_spending_it_again() {
    if !require_root("a_source_admitted_by_the_budget_is_promoted_without_spending_it_again") {
        return;
    }
    let pins = PinDir::new("h14atk-promote");
    let s = one_new_source_per_second(pins.path());
    let filter = load(&s);
    let real = Frame::v4("198.18.10.1", DST).build();
    assert_eq!(verdict_of(&filter, &real).1, PASS, "the budget's one");
    assert_eq!(verdict_of(&filter, &spoofed(1)).1, NEW_LIMITED, "spent");
    // Its second packet finds it in the first stage: promoted, no budget.
    assert_eq!(verdict_of(&filter, &real).1, PASS);
    assert!(
        filter
            .maps
            .source("198.18.10.1".parse().unwrap())
            .unwrap()
            .is_some(),
        "promoted into the LRU"
    );
    assert_eq!(verdict_of(&filter, &real).1, PASS, "known: untouched");
    assert_eq!(verdict_of(&filter, &spoofed(2)).1, NEW_LIMITED);
}

#[test]
fn without_a_budget_every_new_source_is_admitted() {
    if !require_root("without_a_budget_every_new_source_is_admitted") {
        return;
    }
    let pins = PinDir::new("h14atk-off");
    let mut s = settings(pins.path());
    s.new_sources = NewSources::off();
    let mut filter = load(&s);
    for i in 0..500 {
        assert_eq!(verdict_of(&filter, &spoofed(i)).1, PASS);
    }
    // Turned on at run time (a reload): the program sees it at once.
    s.new_sources = NewSources {
        rate: 1,
        burst: 3,
        hold: Duration::from_secs(1),
    };
    filter.sync(&s).unwrap();
    let passed = (1000..1010)
        .filter(|&i| verdict_of(&filter, &spoofed(i)).1 == PASS)
        .count();
    assert!(
        (3..=4).contains(&passed),
        "{passed} of 10 admitted with a burst of 3"
    );
}

#[test]
fn attack_mode_entered_and_left_are_logged() {
    if !require_root("attack_mode_entered_and_left_are_logged") {
        return;
    }
    let pins = PinDir::new("h14atk-log");
    let s = one_new_source_per_second(pins.path());
    let mut filter = load(&s);
    let (mut logger, capture) = crate::xdp_log::reader(&filter);
    let mut xdp = filter.log.take().expect("the program's log");
    xdp.set(proxy_common::log::INFO, 100).unwrap();
    assert_eq!(run(&filter, &spoofed(0)), XDP_PASS);
    for i in 1..20 {
        assert_eq!(verdict_of(&filter, &spoofed(i)).1, NEW_LIMITED);
    }
    logger.flush();
    let records = capture.take();
    let entered: Vec<_> = records
        .iter()
        .filter(|r| r.2.starts_with("attack mode entered"))
        .collect();
    assert_eq!(entered.len(), 1, "{records:?}");
    assert_eq!(entered[0].0, log::Level::Warn);
    assert_eq!(entered[0].1, "rampart::xdp");
    assert!(
        entered[0].2.contains("more than 1 new sources/s (burst 1)"),
        "{}",
        entered[0].2
    );
    // The hold (1 s) passes and the budget is back: the next new source is
    // admitted and ends attack mode.
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(run(&filter, &spoofed(100)), XDP_PASS);
    logger.flush();
    let records = capture.take();
    assert!(
        records
            .iter()
            .any(|r| r.0 == log::Level::Info && r.2.starts_with("attack mode left after 1 s")),
        "{records:?}"
    );
}

/// The program's `first_tags_v4` map (not pinned: found through the program).
fn first_tags_v4(filter: &proxy_user::filter::Filter) -> Array<MapData, [u8; 64]> {
    let info = filter.program().unwrap().info().unwrap();
    for id in info.map_ids().unwrap().expect("map ids") {
        if MapInfo::from_id(id).unwrap().name_as_str() == Some("first_tags_v4") {
            let map = Map::from_map_data(MapData::from_id(id).unwrap()).unwrap();
            return Array::try_from(map).unwrap();
        }
    }
    panic!("the program has no first_tags_v4 map");
}

/// The tag byte of first-stage slot `slot`.
fn tag_at(filter: &proxy_user::filter::Filter, slot: u32) -> u8 {
    first_tags_v4(filter).get(&(slot / 64), 0).unwrap()[(slot % 64) as usize]
}

/// The first IPv4 address from `from` (below 192.0.0.0), other than
/// `not`, whose slot is `slot` and whose tag `same_tag` (true) is or
/// (false) is not `tag`.
fn colliding(seed: u64, from: u32, not: Ipv4Addr, slot: u32, tag: u8, same_tag: bool) -> Ipv4Addr {
    // About one address in 16.7 million shares both slot and tag.
    (from..0xc000_0000)
        .map(Ipv4Addr::from)
        .filter(|a| *a != not)
        .find(|a| {
            let (s, t) = slot_tag_v4(u32::from_ne_bytes(a.octets()), seed);
            s == slot && (t == tag) == same_tag
        })
        .expect("a colliding address")
}

/// Past the budget, a packet whose slot's tag is not its own is dropped
/// without the slot being read; a slot's tag is only a hint, though: a
/// source with the same slot and tag as the holder is still told apart by
/// its address, and the holder's second packet is still promoted.
#[test]
fn first_stage_tags_follow_their_slots_and_decide_nothing_alone() {
    if !require_root("first_stage_tags_follow_their_slots_and_decide_nothing_alone") {
        return;
    }
    let pins = PinDir::new("h14spoof-tags");
    let s = one_new_source_per_second(pins.path());
    let filter = load(&s);
    let seed = filter.maps.config().unwrap().admit_seed;
    let real: Ipv4Addr = "10.1.2.3".parse().unwrap();
    let (slot, tag) = slot_tag_v4(u32::from_ne_bytes(real.octets()), seed);
    let frame = |a: Ipv4Addr| Frame::v4(&a.to_string(), DST).build();
    // Found before the budget's one is spent: the search takes longer than
    // the budget takes to earn another (1/s).
    let twin = colliding(seed, 0x0a00_0000, real, slot, tag, true);
    let other = colliding(seed, 0x0a00_0000, real, slot, tag, false);
    assert_eq!(tag_at(&filter, slot), 0, "an empty slot has no tag");
    assert_eq!(
        verdict_of(&filter, &frame(real)).1,
        PASS,
        "the budget's one"
    );
    assert_eq!(tag_at(&filter, slot), tag, "recorded with its tag");
    // Same slot and tag, another address: read in full, not promoted.
    assert_eq!(verdict_of(&filter, &frame(twin)).1, NEW_LIMITED);
    assert_eq!(
        filter.maps.source(twin.into()).unwrap(),
        None,
        "a tag alone promotes nothing"
    );
    // Same slot, another tag: dropped, and the slot is left to its holder.
    assert_eq!(verdict_of(&filter, &frame(other)).1, NEW_LIMITED);
    assert_eq!(tag_at(&filter, slot), tag);
    // The holder's second packet finds its slot: promoted, tag cleared.
    assert_eq!(verdict_of(&filter, &frame(real)).1, PASS);
    assert!(
        filter.maps.source(real.into()).unwrap().is_some(),
        "promoted"
    );
    assert_eq!(
        tag_at(&filter, slot),
        0,
        "a promoted source leaves its slot"
    );
}
