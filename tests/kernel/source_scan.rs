//! The bounded reads of the XDP sources maps that `[filter] fleet_pps`
//! counts from (`proxy_user::filter::source_scan`, docs/fleet.md "Kernel
//! thresholds"), against a loaded filter's real maps.

use std::time::Instant;

use aya::maps::{HashMap, MapData};
use proxy_common::{pin, source::SourceState};
use proxy_user::{
    filter::source_scan::{Delta, SourceScan},
    fleet::kernel::SCAN_BUDGET,
};
use tests::{pins::PinDir, privilege::require_root};

/// Every entry of a full map found over bounded calls, each once; deltas
/// exact; the debug build's time per call (release: `scan-bench`).
#[test]
fn scan_reads_a_full_map_in_bounded_slices() {
    if !require_root("scan_reads_a_full_map_in_bounded_slices") {
        return;
    }
    let pins = PinDir::new("h18scan");
    let _filter = tests::filter::load(&tests::filter::settings(pins.path()));
    let data = MapData::from_pin(pins.path().join(pin::SOURCES_V4)).unwrap();
    let mut map: HashMap<MapData, [u8; 4], SourceState> =
        HashMap::try_from(aya::maps::Map::LruHashMap(data)).unwrap();
    let key = |i: u32| (0x0a00_0000 + i).to_be_bytes();
    for i in 0..60_000u32 {
        let s = SourceState {
            packets: u64::from(i),
            ..SourceState::default()
        };
        map.insert(key(i), s, 0).unwrap();
    }
    let present = map.keys().filter_map(Result::ok).count();
    let mut scan = SourceScan::open(pins.path()).unwrap();
    // The first pass records; count the calls and time them.
    let mut calls = 0;
    let mut slowest = std::time::Duration::ZERO;
    let start = Instant::now();
    while scan.passes == 0 {
        let t = Instant::now();
        assert!(
            scan.read(SCAN_BUDGET).unwrap().is_empty(),
            "the first pass reports nothing"
        );
        slowest = slowest.max(t.elapsed());
        calls += 1;
        assert!(calls <= 10, "no pass end after {calls} calls");
    }
    let pass = start.elapsed();
    assert_eq!(scan.entries_read as usize, present, "every entry read once");
    assert!(
        calls >= present.div_ceil(SCAN_BUDGET),
        "{calls} calls for {present}"
    );
    println!(
        "figure: fleet_pps scan of {present} sources (one family): {calls} calls of at most \
         {SCAN_BUDGET} entries, slowest {slowest:?}, pass {pass:?}, {:.0} ns/entry",
        pass.as_nanos() as f64 / present as f64
    );
    // Deltas: 7 sources sent more (i of them SYNs), one was evicted and
    // came back lower.
    for i in 0..7u32 {
        let mut s = map.get(&key(i * 1000 + 5), 0).unwrap();
        s.packets += u64::from(i) + 1;
        s.syns += u64::from(i);
        map.insert(key(i * 1000 + 5), s, 0).unwrap();
    }
    let back = SourceState {
        packets: 3,
        syns: 2,
        ..SourceState::default()
    };
    map.insert(key(59_999), back, 0).unwrap();
    // An IPv6 source (its /64's key) that sent 9 (4 SYNs) since the last pass.
    let data6 = MapData::from_pin(pins.path().join(pin::SOURCES_V6)).unwrap();
    let mut map6: HashMap<MapData, [u8; 16], SourceState> =
        HashMap::try_from(aya::maps::Map::LruHashMap(data6)).unwrap();
    let net6: std::net::Ipv6Addr = "2001:db8:7:1::".parse().unwrap();
    let nine = SourceState {
        packets: 9,
        syns: 4,
        ..SourceState::default()
    };
    map6.insert(net6.octets(), nine, 0).unwrap();
    let mut found = Vec::new();
    while scan.passes == 1 {
        found.extend(scan.read(SCAN_BUDGET).unwrap());
    }
    found.sort_by_key(|f| f.0);
    let delta = |packets, syns| Delta { packets, syns };
    let mut want: Vec<(std::net::IpAddr, Delta)> = (0..7u32)
        .map(|i| {
            (
                std::net::Ipv4Addr::from(key(i * 1000 + 5)).into(),
                delta(u64::from(i) + 1, u64::from(i)),
            )
        })
        .collect();
    want.push((std::net::Ipv4Addr::from(key(59_999)).into(), delta(3, 2)));
    want.push((net6.into(), delta(9, 4)));
    want.sort_by_key(|f| f.0);
    assert_eq!(found, want);
}
