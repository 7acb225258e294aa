//! `bpftool map dump pinned` reads every pinned map while the program runs,
//! with typed keys and values (the maps carry BTF).

use std::{process::Command, time::Duration};

use proxy_common::{list::ORIGIN_CLI, pin};
use tests::{
    filter::{cidrs, dispatch, limit, load, run, settings},
    packet::Frame,
    pins::PinDir,
    privilege::require_root,
};

fn dump(path: &std::path::Path) -> serde_json::Value {
    let out = Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned"])
        .arg(path)
        .output()
        .expect("run bpftool");
    assert!(
        out.status.success(),
        "bpftool map dump {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bpftool JSON for {}: {e}", path.display()))
}

#[test]
fn bpftool_dumps_every_pinned_map_typed() {
    if !require_root("bpftool_dumps_every_pinned_map_typed") {
        return;
    }
    let pins = PinDir::new("bpftool");
    let mut s = settings(pins.path());
    s.allow = cidrs(&["198.18.1.0/24", "fd72:1::/32"]);
    s.block = cidrs(&["198.18.2.0/24", "198.18.3.3", "fd72:2::/32", "fd72:3::3"]);
    s.pps = limit(1000, 100);
    // Small maps: bpftool prints every slot of an array, and the index is one.
    s.maps.block_addrs = 1024;
    s.maps.block_ranges = 1024;
    s.maps.bans = 1024;
    let mut filter = load(&s);
    let _running = dispatch(&mut filter);
    filter
        .maps
        .ban(
            "198.18.4.4".parse().unwrap(),
            Some(Duration::from_secs(60)),
            ORIGIN_CLI,
        )
        .unwrap();
    filter
        .maps
        .ban("fd72:4::4".parse().unwrap(), None, ORIGIN_CLI)
        .unwrap();
    // Two packets each: a source enters `sources_*` at its second.
    for _ in 0..2 {
        run(&filter, &Frame::v4("198.18.0.9", "198.18.0.1").build());
        run(&filter, &Frame::v6("fd72::9", "fd72::1").build());
    }

    for name in pin::ALL_MAPS {
        let v = dump(&pins.path().join(name));
        let entries = v
            .as_array()
            .unwrap_or_else(|| panic!("{name}: not a list: {v}"));
        assert!(!entries.is_empty(), "{name}: no entries");
        // With BTF, bpftool adds a "formatted" object with named fields beside the hex bytes.
        for e in entries {
            assert!(
                e.get("formatted").is_some_and(|f| f.get("key").is_some()),
                "{name}: not typed: {e}"
            );
        }
    }
    let config = dump(&pins.path().join(pin::CONFIG));
    assert_eq!(
        config[0]["formatted"]["value"]["pps_interval_ns"], 1_000_000,
        "config decoded by field name: {config}"
    );
    let sources = dump(&pins.path().join(pin::SOURCES_V4));
    assert_eq!(sources[0]["formatted"]["value"]["packets"], 2, "{sources}");
    let bans = dump(&pins.path().join(pin::BANS_V6));
    assert_eq!(
        bans[0]["formatted"]["value"]["expires_at_ns"],
        serde_json::json!(u64::MAX),
        "{bans}"
    );
    let trie = dump(&pins.path().join(pin::BLOCK_V4));
    assert_eq!(trie[0]["formatted"]["key"]["prefix_len"], 24, "{trie}");
}
