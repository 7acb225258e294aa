//! The known-source filter (`proxy_common::known`): a source whose bit is
//! clear skips the LRU lookup; the program marks the sources it promotes
//! in both filters; a rebuild reads every LRU entry and drops stale bits.

use std::{net::Ipv4Addr, time::Duration};

use aya::maps::{HashMap, Map, MapData};
use proxy_common::{
    pin,
    source::SourceState,
    stats::{NEW_LIMITED, PASS},
};
use proxy_user::config::NewSources;
use tests::{
    filter::{dispatch, limit, load, run, settings, verdict_of},
    packet::Frame,
    pins::PinDir,
    privilege::require_root,
};

const DST: &str = "198.18.0.1";
const XDP_PASS: u32 = 2;

fn frame(src: &str) -> Vec<u8> {
    Frame::v4(src, DST).build()
}

fn key(src: &str) -> [u8; 4] {
    src.parse::<Ipv4Addr>().unwrap().octets()
}

/// Sends new sources until one is dropped: the budget (one a second) is
/// spent, whatever it earned back meanwhile.
fn spend(filter: &proxy_user::filter::Filter, next: &mut u32) {
    let start = *next;
    while run(
        filter,
        &frame(&Ipv4Addr::from(0x0a00_0000 + *next * 13).to_string()),
    ) == XDP_PASS
    {
        *next += 1;
        assert!(*next < start + 100, "the budget is never spent");
    }
    *next += 1;
}

#[test]
fn known_filter_skips_the_lru_only_for_sources_it_never_marked() {
    if !require_root("known_filter_skips_the_lru_only_for_sources_it_never_marked") {
        return;
    }
    let pins = PinDir::new("h14known");
    let mut s = settings(pins.path());
    s.pps = limit(1000, 100);
    s.new_sources = NewSources {
        rate: 1,
        burst: 1,
        hold: Duration::from_secs(1),
    };
    let mut filter = load(&s);
    let _dispatched = dispatch(&mut filter);
    let seed = filter.maps.config().unwrap().admit_seed;
    let known = filter.known.as_ref().expect("the object has the filter");
    assert!(known.is_on(), "Filter::load turns the filter on");

    // A source the program promotes is marked in both filters.
    let promoted = "198.18.9.1";
    assert_eq!(verdict_of(&filter, &frame(promoted)).1, PASS);
    assert_eq!(verdict_of(&filter, &frame(promoted)).1, PASS);
    let known = filter.known.as_ref().unwrap();
    assert_eq!(
        known.bits(&key(promoted), seed),
        [true, true],
        "promoted: marked in both filters"
    );

    // Spend the budget: the next new source is dropped.
    let mut next = 0u32;
    spend(&filter, &mut next);
    assert_eq!(
        verdict_of(&filter, &frame(promoted)).1,
        PASS,
        "a marked source is looked up and passes in attack mode"
    );

    // An LRU entry the program did not make (written here, as a migration
    // does before the first rebuild) has no bit: its packets skip the
    // lookup and are new, so past the budget they are dropped.
    let planted = "198.18.9.2";
    let path = pins.path().join(pin::SOURCES_V4);
    let mut lru: HashMap<MapData, [u8; 4], SourceState> =
        HashMap::try_from(Map::LruHashMap(MapData::from_pin(&path).unwrap())).unwrap();
    lru.insert(key(planted), SourceState::default(), 0).unwrap();
    assert_eq!(
        filter.known.as_ref().unwrap().bits(&key(planted), seed),
        [false, false]
    );
    spend(&filter, &mut next);
    assert_eq!(
        verdict_of(&filter, &frame(planted)).1,
        NEW_LIMITED,
        "an unmarked source is not looked up"
    );

    // A rebuild reads it from the LRU: now it is looked up, and passes as
    // a known source does in attack mode.
    let read = filter.rebuild_known().unwrap();
    assert!(read.is_some_and(|n| n >= 2), "rebuild read {read:?}");
    assert_eq!(verdict_of(&filter, &frame(planted)).1, PASS);
    assert_eq!(verdict_of(&filter, &frame(promoted)).1, PASS);

    // A source gone from the LRU keeps its bit until a rebuild, which
    // leaves it out of the filter it makes active.
    lru.remove(&key(promoted)).unwrap();
    filter.rebuild_known().unwrap();
    let known = filter.known.as_ref().unwrap();
    let active = (known.state() >> proxy_common::known::ACTIVE_SHIFT) & 1;
    assert!(!known.bits(&key(promoted), seed)[active as usize]);
    assert!(known.bits(&key(planted), seed)[active as usize]);
    spend(&filter, &mut next);
    assert_eq!(
        verdict_of(&filter, &frame(promoted)).1,
        NEW_LIMITED,
        "forgotten by the LRU and the filter: new again"
    );
}
