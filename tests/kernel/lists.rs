//! Lists and settings changing under a loaded program: reconciles, runtime
//! entries, the allowlist winning over overlapping blocks and bans, and the
//! blocklist indexes (address buckets with overflow, range probes and the
//! trie fallback), all checked through BPF_PROG_TEST_RUN.

use proxy_common::{list::ORIGIN_CLI, stats::*};
use proxy_user::filter::{Index, List};
use tests::{
    filter::{cidrs, limit, load, settings, verdict_of},
    packet::Frame,
    pins::PinDir,
    privilege::require_root,
};

const DST4: &str = "198.18.0.1";
const DST6: &str = "fd72::1";

#[test]
fn settings_change_in_place_without_reload() {
    if !require_root("settings_change_in_place_without_reload") {
        return;
    }
    let pins = PinDir::new("live");
    let mut s = settings(pins.path());
    s.pps = limit(1, 1);
    let mut filter = load(&s);
    let prog_id = filter.program().unwrap().info().unwrap().id();
    let f = Frame::v4("198.18.6.1", DST4).build();
    assert_eq!(verdict_of(&filter, &f).1, PASS);
    assert_eq!(verdict_of(&filter, &f).1, PPS_LIMITED);
    // Raise the limit and block a network: same program, new behaviour.
    s.pps = limit(1, 1_000);
    s.block = cidrs(&["198.18.7.0/24"]);
    filter.sync(&s).unwrap();
    assert_eq!(verdict_of(&filter, &f).1, PASS);
    assert_eq!(
        verdict_of(&filter, &Frame::v4("198.18.7.1", DST4).build()).1,
        BLOCKLISTED
    );
    // Disable the filter entirely: everything passes.
    s.enabled = false;
    filter.sync(&s).unwrap();
    assert_eq!(
        verdict_of(&filter, &Frame::v4("198.18.7.1", DST4).build()).1,
        PASS
    );
    assert_eq!(filter.program().unwrap().info().unwrap().id(), prog_id);
    // A runtime entry survives a reconcile of the configured list.
    s.enabled = true;
    filter
        .maps
        .insert(List::Block, "198.18.8.8".parse().unwrap(), ORIGIN_CLI)
        .unwrap();
    s.block = vec![];
    filter.sync(&s).unwrap();
    let blocked = filter.maps.entries(List::Block).unwrap();
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    assert_eq!(
        verdict_of(&filter, &Frame::v4("198.18.8.8", DST4).build()).1,
        BLOCKLISTED
    );
    assert_eq!(
        verdict_of(&filter, &Frame::v4("198.18.7.1", DST4).build()).1,
        PASS
    );
}

#[test]
fn allowlist_wins_over_runtime_blocks_and_bans() {
    if !require_root("allowlist_wins_over_runtime_blocks_and_bans") {
        return;
    }
    let pins = PinDir::new("overlap");
    let mut s = settings(pins.path());
    s.block = cidrs(&["198.18.10.0/24"]);
    let mut filter = load(&s);
    let inside = Frame::v4("198.18.10.5", DST4).build();
    assert_eq!(verdict_of(&filter, &inside).1, BLOCKLISTED);
    // An allow entry added at runtime inside a blocked range wins at once.
    filter
        .maps
        .insert(List::Allow, "198.18.10.5".parse().unwrap(), ORIGIN_CLI)
        .unwrap();
    assert_eq!(verdict_of(&filter, &inside).1, ALLOWLISTED);
    assert_eq!(
        verdict_of(&filter, &Frame::v4("198.18.10.6", DST4).build()).1,
        BLOCKLISTED
    );
    // A ban on an allowlisted address does not drop it either.
    filter
        .maps
        .ban("198.18.10.5".parse().unwrap(), None, ORIGIN_CLI)
        .unwrap();
    filter
        .maps
        .insert(List::Block, "198.18.10.5".parse().unwrap(), ORIGIN_CLI)
        .unwrap();
    assert_eq!(verdict_of(&filter, &inside).1, ALLOWLISTED);
    // Without the allow entry, the ban and the exact block entry apply
    // again; the ban is checked first, so it names the drop.
    filter
        .maps
        .remove(List::Allow, "198.18.10.5".parse().unwrap())
        .unwrap();
    assert_eq!(verdict_of(&filter, &inside).1, BANNED);
    assert!(filter.maps.unban("198.18.10.5".parse().unwrap()).unwrap());
    assert_eq!(verdict_of(&filter, &inside).1, BLOCKLISTED);
    filter
        .maps
        .ban("198.18.10.5".parse().unwrap(), None, ORIGIN_CLI)
        .unwrap();
    filter
        .maps
        .remove(List::Block, "198.18.10.5".parse().unwrap())
        .unwrap();
    s.block = vec![];
    filter.sync(&s).unwrap();
    assert_eq!(verdict_of(&filter, &inside).1, BANNED);
    assert_eq!(
        filter.maps.config().unwrap().flags & proxy_common::config::FLAG_ALLOW_OVERLAPS,
        0,
        "no overlap left, so no allowlist lookup on drops"
    );
}

#[test]
fn ranges_match_by_hash_probes_and_by_trie() {
    if !require_root("ranges_match_by_hash_probes_and_by_trie") {
        return;
    }
    use proxy_common::config::{FLAG_RANGES_INDEXED_V4, FLAG_RANGES_INDEXED_V6};
    let pins = PinDir::new("ranges");
    let mut s = settings(pins.path());
    // Enough ranges (all in 10.128.0.0/9 or fd72:40::/32) to make hash probes worthwhile.
    let filler: Vec<String> = (0..200)
        .flat_map(|i| {
            [
                format!("10.{}.{}.0/24", 128 + i / 100, i % 100),
                format!("fd72:40:{i:x}::/48"),
            ]
        })
        .collect();
    s.block = cidrs(&[
        "198.18.20.0/24",
        "198.18.32.0/20",
        "fd72:20::/48",
        "fd72:30::/33",
    ]);
    s.block.extend(
        filler
            .iter()
            .map(|c| c.parse::<proxy_user::cidr::Cidr>().unwrap()),
    );
    let mut filter = load(&s);
    let expect = |filter: &proxy_user::filter::Filter, mode: &str| {
        for (src, verdict) in [
            ("198.18.20.9", BLOCKLISTED),
            ("198.18.47.250", BLOCKLISTED),
            ("198.18.48.1", PASS),
            ("198.18.21.1", PASS),
        ] {
            assert_eq!(
                verdict_of(filter, &Frame::v4(src, DST4).build()).1,
                verdict,
                "{src} ({mode})"
            );
        }
        for (src, verdict) in [
            ("fd72:20::1", BLOCKLISTED),
            ("fd72:30:7fff::1", BLOCKLISTED),
            ("fd72:30:8000::1", PASS),
        ] {
            assert_eq!(
                verdict_of(filter, &Frame::v6(src, DST6).build()).1,
                verdict,
                "{src} ({mode})"
            );
        }
    };
    let flags = |f: &proxy_user::filter::Filter| f.maps.config().unwrap().flags;
    assert_ne!(
        flags(&filter) & FLAG_RANGES_INDEXED_V4,
        0,
        "two IPv4 lengths: probed by hash"
    );
    assert_ne!(flags(&filter) & FLAG_RANGES_INDEXED_V6, 0);
    expect(&filter, "hash probes");
    // Five distinct IPv4 lengths: the trie takes over, same verdicts.
    s.block
        .extend(cidrs(&["11.0.0.0/8", "13.1.0.0/16", "12.1.2.0/25"]));
    filter.sync(&s).unwrap();
    assert_eq!(
        flags(&filter) & FLAG_RANGES_INDEXED_V4,
        0,
        "five IPv4 lengths: trie"
    );
    expect(&filter, "trie");
    assert_eq!(
        verdict_of(&filter, &Frame::v4("12.1.2.100", DST4).build()).1,
        BLOCKLISTED
    );
    assert_eq!(
        verdict_of(&filter, &Frame::v4("12.1.2.200", DST4).build()).1,
        PASS
    );
    // Back to few lengths, and a runtime range with a new length.
    s.block.truncate(4 + filler.len());
    filter.sync(&s).unwrap();
    filter
        .maps
        .insert(List::Block, "198.18.64.0/18".parse().unwrap(), ORIGIN_CLI)
        .unwrap();
    assert_ne!(flags(&filter) & FLAG_RANGES_INDEXED_V4, 0);
    expect(&filter, "hash probes again");
    assert_eq!(
        verdict_of(&filter, &Frame::v4("198.18.100.1", DST4).build()).1,
        BLOCKLISTED
    );
    assert_eq!(
        verdict_of(&filter, &Frame::v4("11.1.1.1", DST4).build()).1,
        PASS
    );
    assert_eq!(
        verdict_of(&filter, &Frame::v4("10.129.5.1", DST4).build()).1,
        BLOCKLISTED
    );
    // Few ranges: the small trie is used.
    s.block = cidrs(&["198.18.20.0/24"]);
    filter.sync(&s).unwrap();
    assert_eq!(
        flags(&filter) & FLAG_RANGES_INDEXED_V4,
        0,
        "a handful of ranges: trie"
    );
    assert_eq!(
        verdict_of(&filter, &Frame::v4("198.18.20.1", DST4).build()).1,
        BLOCKLISTED
    );
}

#[test]
fn address_index_with_overflow_still_blocks_every_address() {
    if !require_root("address_index_with_overflow_still_blocks_every_address") {
        return;
    }
    use proxy_common::{
        config::{FLAG_INDEX_OVERFLOW_V4, FLAG_INDEX_V4},
        index::{WAYS_V4, buckets_for, slots_v4},
    };
    let pins = PinDir::new("index");
    let mut s = settings(pins.path());
    s.maps.block_addrs = 16;
    let mask = buckets_for(16, WAYS_V4) - 1;
    // Twelve addresses whose two candidate buckets are both bucket 0: only
    // eight fit, four must overflow to the hash.
    let crowded: Vec<String> = (1u32..)
        .map(|i| std::net::Ipv4Addr::from(0xc612_0000 | i))
        .filter(|ip| slots_v4(u32::from_ne_bytes(ip.octets()), mask) == [0, 0])
        .take(12)
        .map(|ip| ip.to_string())
        .collect();
    s.block = crowded.iter().map(|a| a.parse().unwrap()).collect();
    s.block.push("0.0.0.0".parse().unwrap());
    let mut filter = load(&s);
    let flags = filter.maps.config().unwrap().flags;
    assert_ne!(flags & FLAG_INDEX_V4, 0, "index in use");
    assert_ne!(flags & FLAG_INDEX_OVERFLOW_V4, 0, "bucket 0 overflowed");
    let in_index: usize = filter
        .maps
        .index_buckets(Index::Addresses, true)
        .unwrap()
        .iter()
        .map(|(_, a)| a.len())
        .sum();
    assert_eq!(in_index, WAYS_V4, "bucket 0 full, the rest in the hash");
    for a in crowded.iter().map(String::as_str).chain(["0.0.0.0"]) {
        assert_eq!(
            verdict_of(&filter, &Frame::v4(a, DST4).build()).1,
            BLOCKLISTED,
            "{a}"
        );
    }
    assert_eq!(
        verdict_of(&filter, &Frame::v4("198.18.255.254", DST4).build()).1,
        PASS
    );
    // Removing an indexed address unblocks it and leaves the others blocked.
    let gone: std::net::IpAddr = filter.maps.index_buckets(Index::Addresses, true).unwrap()[0].1[0]
        .parse()
        .unwrap();
    filter
        .maps
        .remove(List::Block, proxy_user::cidr::Cidr::host(gone))
        .unwrap();
    assert_eq!(
        verdict_of(&filter, &Frame::v4(&gone.to_string(), DST4).build()).1,
        PASS
    );
    let others = crowded.iter().filter(|a| **a != gone.to_string()).count();
    let still = crowded
        .iter()
        .filter(|a| verdict_of(&filter, &Frame::v4(a, DST4).build()).1 == BLOCKLISTED)
        .count();
    assert_eq!(still, others);
}
