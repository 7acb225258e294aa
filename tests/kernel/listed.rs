//! The listed-source filter (`proxy_common::listed`): with it on, banned,
//! blocklisted and range-blocked sources are still dropped, entries added
//! at run time drop at once, a source whose bit is set but that is on no
//! list passes; and the filter is really consulted: an entry written into
//! a hash and its index behind its back (no bit) is not seen until a
//! rebuild reads it, or the filter is off.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use aya::maps::{Array, HashMap, Map, MapData};
use proxy_common::{
    ban::{Ban, BanBucketV4, NEVER},
    config::FLAG_RANGES_INDEXED_V4,
    index::{self, BucketV4},
    list::{ListValue, ORIGIN_CLI},
    listed::{ADDR, BAN, RANGE},
    pin,
    stats::{BANNED, BLOCKLISTED, PASS},
};
use proxy_user::filter::{Filter, FilterMaps, List, listed_block_entry, listed_hash};
use tests::{
    daemon::{Daemon, cli, control_section, filter_section},
    filter::{cidrs, load, settings, verdict_of},
    netns::Link,
    packet::Frame,
    pins::PinDir,
    privilege::require_root,
    scratch::Scratch,
    traffic::{received, send_udp, udp_receiver},
};

const DST: &str = "198.18.0.1";
const DST6: &str = "fd72::1";

fn v4(src: &str) -> Vec<u8> {
    Frame::v4(src, DST).build()
}

fn v6(src: &str) -> Vec<u8> {
    Frame::v6(src, DST6).build()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// 200 blocklisted /24s (10.0.0.0/24 .. 10.0.199.0/24): enough ranges of
/// one length for the program to probe the range index (and so the
/// filter's range bits) instead of walking the trie.
fn ranges() -> Vec<String> {
    (0..200).map(|i| format!("10.0.{i}.0/24")).collect()
}

/// Whether the active filter has the bit of `kind` for `hash`.
fn active_bit(maps: &FilterMaps, kind: u32, hash: u64) -> bool {
    let l = maps.listed().expect("the object has the filter");
    l.bits(kind, hash)[l.active() as usize]
}

#[test]
fn listed_filter_drops_every_listed_source_and_passes_the_rest() {
    if !require_root("listed_filter_drops_every_listed_source_and_passes_the_rest") {
        return;
    }
    let pins = PinDir::new("h14listed");
    let mut s = settings(pins.path());
    let mut block = ranges();
    block.extend(["192.0.2.1".into(), "2001:db8::1".into()]);
    s.block = cidrs(&block.iter().map(String::as_str).collect::<Vec<_>>());
    let mut filter = load(&s);
    let listed = filter.maps.listed().expect("the object has the filter");
    assert!(listed.is_on(), "Filter::load turns the filter on");
    let cfg = filter.maps.config().unwrap();
    assert!(cfg.has(FLAG_RANGES_INDEXED_V4), "ranges are probed");
    filter
        .maps
        .ban(
            ip("198.51.100.7"),
            Some(Duration::from_secs(60)),
            ORIGIN_CLI,
        )
        .unwrap();
    filter
        .maps
        .ban(ip("2001:db8:1::5"), None, ORIGIN_CLI)
        .unwrap();

    // Every kind of entry is still dropped, both families.
    for (frame, want, what) in [
        (v4("198.51.100.7"), BANNED, "a banned source"),
        (v6("2001:db8:1::77"), BANNED, "a source inside a banned /64"),
        (v4("192.0.2.1"), BLOCKLISTED, "a blocklisted address"),
        (v6("2001:db8::1"), BLOCKLISTED, "a blocklisted IPv6 address"),
        (
            v4("10.0.5.77"),
            BLOCKLISTED,
            "a source inside a blocklisted range",
        ),
        (v4("10.0.199.1"), BLOCKLISTED, "inside the last range"),
        (v4("203.0.113.9"), PASS, "a source on no list"),
        (v4("10.0.200.1"), PASS, "next to the ranges"),
        (v6("2001:db8:2::1"), PASS, "an IPv6 source on no list"),
    ] {
        assert_eq!(verdict_of(&filter, &frame).1, want, "{what}");
    }
    let maps = &filter.maps;
    assert!(active_bit(maps, BAN, listed_hash(ip("198.51.100.7"))));
    assert!(active_bit(maps, BAN, listed_hash(ip("2001:db8:1::"))));
    assert!(active_bit(maps, ADDR, listed_hash(ip("192.0.2.1"))));
    let (kind, hash) = listed_block_entry("10.0.5.0/24".parse().unwrap());
    assert_eq!(kind, RANGE);
    assert!(active_bit(maps, kind, hash));

    // Entries made while the filter is on drop at once.
    filter
        .maps
        .ban(ip("198.51.100.8"), None, ORIGIN_CLI)
        .unwrap();
    filter
        .maps
        .insert(List::Block, "192.0.2.2".parse().unwrap(), ORIGIN_CLI)
        .unwrap();
    assert_eq!(verdict_of(&filter, &v4("198.51.100.8")).1, BANNED);
    assert_eq!(verdict_of(&filter, &v4("192.0.2.2")).1, BLOCKLISTED);

    // Removed entries keep their bits until a rebuild, and pass: a set
    // bit only costs the probes.
    filter.maps.unban(ip("198.51.100.8")).unwrap();
    filter
        .maps
        .remove(List::Block, "192.0.2.2".parse().unwrap())
        .unwrap();
    assert!(active_bit(
        &filter.maps,
        BAN,
        listed_hash(ip("198.51.100.8"))
    ));
    assert!(active_bit(&filter.maps, ADDR, listed_hash(ip("192.0.2.2"))));
    assert_eq!(verdict_of(&filter, &v4("198.51.100.8")).1, PASS);
    assert_eq!(verdict_of(&filter, &v4("192.0.2.2")).1, PASS);
    // The rebuild drops their bits and keeps every entry's.
    filter.maps.rebuild_listed().unwrap();
    assert!(!active_bit(
        &filter.maps,
        BAN,
        listed_hash(ip("198.51.100.8"))
    ));
    assert!(!active_bit(
        &filter.maps,
        ADDR,
        listed_hash(ip("192.0.2.2"))
    ));
    for (frame, want) in [
        (v4("198.51.100.7"), BANNED),
        (v6("2001:db8:1::77"), BANNED),
        (v4("192.0.2.1"), BLOCKLISTED),
        (v4("10.0.5.77"), BLOCKLISTED),
        (v4("198.51.100.8"), PASS),
    ] {
        assert_eq!(verdict_of(&filter, &frame).1, want);
    }
}

fn array<V: aya::Pod>(pins: &PinDir, name: &str) -> Array<MapData, V> {
    Array::try_from(Map::Array(
        MapData::from_pin(pins.path().join(name)).unwrap(),
    ))
    .unwrap()
}

fn hash<V: aya::Pod>(pins: &PinDir, name: &str) -> HashMap<MapData, [u8; 4], V> {
    HashMap::try_from(Map::HashMap(
        MapData::from_pin(pins.path().join(name)).unwrap(),
    ))
    .unwrap()
}

/// Writes `addr` into the blocklist hash and its address-index bucket, as
/// a writer that does not know the filter would (no bit).
fn plant_block(pins: &PinDir, filter: &Filter, addr: &str) {
    let octets = addr.parse::<Ipv4Addr>().unwrap().octets();
    hash::<ListValue>(pins, pin::BLOCK_ADDR_V4)
        .insert(octets, ListValue { origin: ORIGIN_CLI }, 0)
        .unwrap();
    let word = u32::from_ne_bytes(octets);
    let mask = filter.maps.config().unwrap().index_mask_v4;
    let slot = index::slots_v4(word, mask)[0];
    let mut index: Array<MapData, BucketV4> = array(pins, pin::BLOCK_INDEX_V4);
    let mut bucket = index.get(&slot, 0).unwrap();
    let way = bucket.addrs.iter().position(|w| *w == 0).unwrap();
    bucket.addrs[way] = word;
    index.set(slot, bucket, 0).unwrap();
}

/// As [`plant_block`], for a ban without expiry.
fn plant_ban(pins: &PinDir, filter: &Filter, addr: &str) {
    let octets = addr.parse::<Ipv4Addr>().unwrap().octets();
    hash::<Ban>(pins, pin::BANS_V4)
        .insert(
            octets,
            Ban {
                expires_at_ns: NEVER,
                origin: ORIGIN_CLI,
                _pad: 0,
            },
            0,
        )
        .unwrap();
    let word = u32::from_ne_bytes(octets);
    let mask = filter.maps.config().unwrap().ban_mask_v4;
    let slot = index::slots_v4(word, mask)[0];
    let mut index: Array<MapData, BanBucketV4> = array(pins, pin::BAN_INDEX_V4);
    let mut bucket = index.get(&slot, 0).unwrap();
    let way = bucket.addrs.iter().position(|w| *w == 0).unwrap();
    bucket.addrs[way] = word;
    bucket.expires[way] = NEVER;
    index.set(slot, bucket, 0).unwrap();
}

#[test]
fn an_entry_written_behind_the_filters_back_is_not_seen_until_a_rebuild() {
    if !require_root("an_entry_written_behind_the_filters_back_is_not_seen_until_a_rebuild") {
        return;
    }
    let pins = PinDir::new("h14plant");
    let mut s = settings(pins.path());
    // One entry of each kind through rampart: the program then probes the
    // address index and the ban index.
    s.block = cidrs(&["192.0.2.1"]);
    let mut filter = load(&s);
    filter
        .maps
        .ban(ip("198.51.100.7"), None, ORIGIN_CLI)
        .unwrap();
    assert_eq!(verdict_of(&filter, &v4("192.0.2.1")).1, BLOCKLISTED);
    assert_eq!(verdict_of(&filter, &v4("198.51.100.7")).1, BANNED);

    // Planted in the hashes and indexes without their bits: the program
    // reads the filter and does not probe for them.
    plant_block(&pins, &filter, "192.0.2.99");
    plant_ban(&pins, &filter, "198.51.100.99");
    assert!(!active_bit(
        &filter.maps,
        ADDR,
        listed_hash(ip("192.0.2.99"))
    ));
    assert!(!active_bit(
        &filter.maps,
        BAN,
        listed_hash(ip("198.51.100.99"))
    ));
    assert_eq!(
        verdict_of(&filter, &v4("192.0.2.99")).1,
        PASS,
        "an entry without its bit is not probed for"
    );
    assert_eq!(verdict_of(&filter, &v4("198.51.100.99")).1, PASS);

    // A rebuild reads them from the hashes: dropped.
    let read = filter.maps.rebuild_listed().unwrap();
    assert!(read.is_some_and(|n| n >= 4), "rebuild read {read:?}");
    assert_eq!(verdict_of(&filter, &v4("192.0.2.99")).1, BLOCKLISTED);
    assert_eq!(verdict_of(&filter, &v4("198.51.100.99")).1, BANNED);

    // With the filter off, the program probes every list as before.
    plant_block(&pins, &filter, "192.0.2.98");
    plant_ban(&pins, &filter, "198.51.100.98");
    assert_eq!(verdict_of(&filter, &v4("192.0.2.98")).1, PASS);
    filter.maps.listed().unwrap().turn_off();
    assert_eq!(verdict_of(&filter, &v4("192.0.2.98")).1, BLOCKLISTED);
    assert_eq!(verdict_of(&filter, &v4("198.51.100.98")).1, BANNED);
    assert_eq!(verdict_of(&filter, &v4("203.0.113.9")).1, PASS);

    // A new load adopts the pinned filter and rebuilds it before anything
    // else: entries an older build wrote without bits are seen.
    drop(filter);
    let filter = load(&s);
    assert!(filter.maps.listed().unwrap().is_on());
    for a in ["192.0.2.1", "192.0.2.98", "192.0.2.99"] {
        assert_eq!(verdict_of(&filter, &v4(a)).1, BLOCKLISTED, "{a}");
    }
    for a in ["198.51.100.7", "198.51.100.98", "198.51.100.99"] {
        assert_eq!(verdict_of(&filter, &v4(a)).1, BANNED, "{a}");
    }
}

const EDGE: &str = "198.18.1.1";
const PORT: u16 = 9997;
const CLIENT: &str = "198.18.1.10";
const OTHER: &str = "198.18.1.130";

#[test]
fn a_ban_and_a_range_blocked_through_the_daemon_drop_at_once() {
    if !require_root("a_ban_and_a_range_blocked_through_the_daemon_drop_at_once") {
        return;
    }
    let link = Link::new("lstd");
    link.edge_addr(&format!("{EDGE}/24"));
    link.client_addr(&format!("{CLIENT}/24"));
    link.client_addr(&format!("{OTHER}/24"));
    let pins = PinDir::new("lstd");
    let dir = Scratch::new("lstd");
    let config = dir.join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n{}\n",
            filter_section(&link.edge_if, pins.path(), &["192.0.2.1"]),
            control_section(&dir)
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&link.edge, &config, &link.edge_if);
    let socket = dir.join("control.sock");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let ctl = |args: &[&str]| {
        let mut all = vec!["-c", config.to_str().unwrap()];
        all.extend_from_slice(args);
        let (ok, out, err) = cli(&link.edge, &all);
        assert!(ok, "rampart {args:?}: {err}{out}");
    };
    let maps = FilterMaps::open(pins.path()).unwrap();
    assert!(maps.listed().is_some_and(|l| l.is_on()), "on once loaded");

    let tally = udp_receiver(&link.edge, &format!("{EDGE}:{PORT}"));
    let dst = format!("{EDGE}:{PORT}");
    send_udp(&link.client, CLIENT, &dst, 50);
    send_udp(&link.client, OTHER, &dst, 50);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(received(&tally, CLIENT), 50);
    assert_eq!(received(&tally, OTHER), 50);

    // A ban and a range, through the control socket: dropped from the
    // next packet, and their bits are set in both filters.
    ctl(&["block", "add", CLIENT, "--ttl", "1h"]);
    ctl(&["block", "add", "198.18.1.128/25"]);
    send_udp(&link.client, CLIENT, &dst, 50);
    send_udp(&link.client, OTHER, &dst, 50);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(received(&tally, CLIENT), 50, "the ban drops at once");
    assert_eq!(received(&tally, OTHER), 50, "the range drops at once");
    let l = maps.listed().unwrap();
    assert_eq!(l.bits(BAN, listed_hash(ip(CLIENT))), [true, true]);
    let (kind, hash) = listed_block_entry("198.18.1.128/25".parse().unwrap());
    assert_eq!(l.bits(kind, hash), [true, true]);

    // Lifted: it passes again (its bit left set until a rebuild).
    ctl(&["block", "del", CLIENT]);
    send_udp(&link.client, CLIENT, &dst, 50);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(received(&tally, CLIENT), 100);
    daemon.stop();
}
