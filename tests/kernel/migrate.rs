//! Pinned maps of a build with another layout are migrated in place
//! (`proxy-user/src/filter/migrate.rs`): the daemon used to refuse such a
//! pin directory and fall back to the userspace gate (this replaces
//! `attach::pinned_maps_of_another_layout_are_refused_with_advice`).

use aya::maps::MapInfo;
use proxy_common::{
    config::FilterConfig,
    list::{ORIGIN_CLI, ORIGIN_ESCALATION},
    stats::{BANNED, BLOCKLISTED, PASS},
};
use proxy_user::filter::{Filter, List, migrate};
use tests::{
    filter::{load, run, settings, verdict_of},
    netns::sh,
    packet::Frame,
    pins::PinDir,
    privilege::require_root,
};

#[test]
fn pinned_maps_of_another_layout_are_migrated_with_their_entries() {
    if !require_root("pinned_maps_of_another_layout_are_migrated_with_their_entries") {
        return;
    }
    let pins = PinDir::new("h14xdp-migrate");
    let dir = pins.path();
    let s = settings(dir);
    let banned = Frame::v4("198.18.5.5", "198.18.0.1").build();
    let blocked = Frame::v4("198.18.6.6", "198.18.0.1").build();
    let tracked = Frame::v4("198.18.7.7", "198.18.0.1").build();
    {
        let mut filter = load(&s);
        filter
            .maps
            .ban("198.18.5.5".parse().unwrap(), None, ORIGIN_ESCALATION)
            .unwrap();
        filter
            .maps
            .insert(List::Block, "198.18.6.6".parse().unwrap(), ORIGIN_CLI)
            .unwrap();
        // Two packets: the source gets its LRU entry.
        run(&filter, &tracked);
        run(&filter, &tracked);
        assert_eq!(verdict_of(&filter, &banned).1, BANNED);
    }
    // The `config` map as an older build laid it out (232 bytes).
    let config = dir.join("config");
    std::fs::remove_file(&config).unwrap();
    let out = sh(
        "bpftool",
        &[
            "map",
            "create",
            config.to_str().unwrap(),
            "type",
            "array",
            "key",
            "4",
            "value",
            "232",
            "entries",
            "1",
            "name",
            "config",
        ],
    );
    assert!(out.status.success(), "bpftool map create: {out:?}");

    // Loaded as the daemon does: migrated, not refused.
    let filter = Filter::load(&s).expect("a pin directory of another layout is migrated");
    assert!(!dir.join(migrate::ASIDE).exists(), "nothing left aside");
    assert_eq!(
        MapInfo::from_pin(&config).unwrap().value_size() as usize,
        size_of::<FilterConfig>(),
        "config has this build's layout"
    );
    // The ban, the CLI block entry and the per-source state came across,
    // and the indexes were rebuilt from them.
    assert_eq!(verdict_of(&filter, &banned).1, BANNED);
    assert_eq!(verdict_of(&filter, &blocked).1, BLOCKLISTED);
    let state = filter
        .maps
        .source("198.18.7.7".parse().unwrap())
        .unwrap()
        .expect("the source's state was copied");
    assert_eq!(state.packets, 2);
    assert_eq!(verdict_of(&filter, &tracked).1, PASS);
    assert_eq!(
        filter
            .maps
            .source("198.18.7.7".parse().unwrap())
            .unwrap()
            .unwrap()
            .packets,
        3
    );
}

/// Replaces `dir`'s pinned `sources_v4` with a map of an older build's
/// value size holding one source, 198.18.8.8, whose value is `value`.
fn pin_old_sources(dir: &std::path::Path, value: &[u8]) {
    let sources = dir.join("sources_v4");
    std::fs::remove_file(&sources).unwrap();
    let path = sources.to_str().unwrap();
    let size = value.len().to_string();
    let out = sh(
        "bpftool",
        &[
            "map",
            "create",
            path,
            "type",
            "lru_hash",
            "key",
            "4",
            "value",
            &size,
            "entries",
            "65536",
            "name",
            "sources_v4",
        ],
    );
    assert!(out.status.success(), "bpftool map create: {out:?}");
    let value: Vec<String> = value.iter().map(u8::to_string).collect();
    let mut args = vec![
        "map", "update", "pinned", path, "key", "198", "18", "8", "8", "value",
    ];
    args.extend(value.iter().map(String::as_str));
    let out = sh("bpftool", &args);
    assert!(out.status.success(), "bpftool map update: {out:?}");
}

/// Loads the filter over `dir` (its `sources_v4` of an older layout) and
/// returns what 198.18.8.8's converted entry holds, after checking the map
/// has this build's layout and the source's next packet is counted in it.
fn load_converted(dir: &std::path::Path) -> proxy_common::source::SourceState {
    let filter = Filter::load(&settings(dir)).expect("migrated");
    assert_eq!(
        MapInfo::from_pin(dir.join("sources_v4"))
            .unwrap()
            .value_size() as usize,
        size_of::<proxy_common::source::SourceState>()
    );
    let ip = "198.18.8.8".parse().unwrap();
    let state = filter.maps.source(ip).unwrap().expect("converted");
    let syn = Frame::v4("198.18.8.8", "198.18.0.1").tcp_syn().build();
    assert_eq!(verdict_of(&filter, &syn).1, PASS);
    let after = filter.maps.source(ip).unwrap().unwrap();
    assert_eq!(
        (after.packets, after.syns),
        (state.packets + 1, state.syns + 1),
        "the next packet (a SYN) is counted in the converted entry"
    );
    state
}

/// The per-source state of builds before `allow_gen` (48 bytes) is
/// converted, not dropped: a source keeps its counters and limits.
#[test]
fn per_source_state_of_the_48_byte_layout_is_converted() {
    if !require_root("per_source_state_of_the_48_byte_layout_is_converted") {
        return;
    }
    let pins = PinDir::new("h14xdp2-migrate-sources");
    let dir = pins.path();
    drop(load(&settings(dir)));
    // pps_tat, syn_tat 0; packets 5; bytes 300; drops 2; last seen 0.
    let mut value = [0u8; 48];
    value[16] = 5;
    value[24..26].copy_from_slice(&300u16.to_le_bytes());
    value[32] = 2;
    pin_old_sources(dir, &value);
    let state = load_converted(dir);
    assert_eq!(
        (
            state.packets,
            state.bytes,
            state.drops,
            state.allow_gen,
            state.syns
        ),
        (5, 300, 2, 0, 0)
    );
}

/// The per-source state of builds before `syns` (56 bytes) is converted:
/// a source keeps its counters, limits and allowlist generation, and its
/// SYNs are counted from 0.
#[test]
fn per_source_state_of_the_56_byte_layout_is_converted() {
    if !require_root("per_source_state_of_the_56_byte_layout_is_converted") {
        return;
    }
    let pins = PinDir::new("h18fin-migrate-sources");
    let dir = pins.path();
    drop(load(&settings(dir)));
    // pps_tat, syn_tat 0; packets 7; bytes 420; drops 3; last seen 0; allow_gen 9.
    let mut value = [0u8; 56];
    value[16] = 7;
    value[24..26].copy_from_slice(&420u16.to_le_bytes());
    value[32] = 3;
    value[48] = 9;
    pin_old_sources(dir, &value);
    let state = load_converted(dir);
    assert_eq!(
        (
            state.packets,
            state.bytes,
            state.drops,
            state.allow_gen,
            state.syns
        ),
        (7, 420, 3, 9, 0)
    );
}
