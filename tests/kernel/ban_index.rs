//! The ban index (`proxy_common::ban`, `ban_index_v4/v6`): bans are found
//! by an inlined probe with their expiry, kept in step with the ban tables
//! (added, re-added with a new expiry, lifted), and a ban that finds no
//! room in the index is still enforced through the hash.

use std::time::Duration;

use proxy_common::{
    config::{FLAG_BAN_INDEX_V4, FLAG_BAN_OVERFLOW_V4},
    list::ORIGIN_CLI,
    stats::{BANNED, PASS},
};
use tests::{
    filter::{load, settings, verdict_of},
    packet::Frame,
    pins::PinDir,
    privilege::require_root,
};

const DST4: &str = "198.18.0.1";
const DST6: &str = "fd72::1";

fn held(filter: &proxy_user::filter::Filter, v4: bool, source: &str) -> bool {
    filter
        .maps
        .ban_index_buckets(v4)
        .unwrap()
        .iter()
        .any(|(_, h)| h.iter().any(|e| e.starts_with(&format!("{source} "))))
}

#[test]
fn bans_are_indexed_with_their_expiry_and_lifted_from_the_index() {
    if !require_root("bans_are_indexed_with_their_expiry_and_lifted_from_the_index") {
        return;
    }
    let pins = PinDir::new("cost14-banidx");
    let mut filter = load(&settings(pins.path()));
    let cfg = filter.maps.config().unwrap();
    assert_ne!(cfg.flags & FLAG_BAN_INDEX_V4, 0, "the index is on");
    let a = Frame::v4("198.18.20.1", DST4).build();
    let b6 = Frame::v6("fd72:20::5", DST6).build();
    filter
        .maps
        .ban("198.18.20.1".parse().unwrap(), None, ORIGIN_CLI)
        .unwrap();
    filter
        .maps
        .ban("fd72:20::1".parse().unwrap(), None, ORIGIN_CLI)
        .unwrap();
    assert!(held(&filter, true, "198.18.20.1"));
    assert!(held(&filter, false, "fd72:20::"), "the /64 is the key");
    assert_eq!(verdict_of(&filter, &a).1, BANNED);
    assert_eq!(
        verdict_of(&filter, &b6).1,
        BANNED,
        "another address of the /64"
    );

    // Re-banned with a short expiry: the way's expiry is updated in place.
    filter
        .maps
        .ban(
            "198.18.20.1".parse().unwrap(),
            Some(Duration::from_millis(1)),
            ORIGIN_CLI,
        )
        .unwrap();
    // The program reads bans on the coarse clock (up to a tick behind).
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(verdict_of(&filter, &a).1, PASS, "expired");
    // Its expired way is free: a new ban on it is found again.
    filter
        .maps
        .ban("198.18.20.1".parse().unwrap(), None, ORIGIN_CLI)
        .unwrap();
    assert_eq!(verdict_of(&filter, &a).1, BANNED);

    assert!(filter.maps.unban("fd72:20::9".parse().unwrap()).unwrap());
    assert!(!held(&filter, false, "fd72:20::"), "lifted from the index");
    assert_eq!(verdict_of(&filter, &b6).1, PASS);
    assert_eq!(
        filter
            .maps
            .lift_bans(&["198.18.20.1".parse().unwrap()])
            .unwrap(),
        1
    );
    assert!(!held(&filter, true, "198.18.20.1"));
    assert_eq!(verdict_of(&filter, &a).1, PASS);
}

#[test]
fn a_ban_the_index_cannot_hold_is_enforced_through_the_hash() {
    if !require_root("a_ban_the_index_cannot_hold_is_enforced_through_the_hash") {
        return;
    }
    let pins = PinDir::new("cost14-banover");
    let mut filter = load(&settings(pins.path()));
    filter
        .maps
        .ban("198.18.21.1".parse().unwrap(), None, ORIGIN_CLI)
        .unwrap();
    assert_eq!(
        filter.maps.config().unwrap().flags & FLAG_BAN_OVERFLOW_V4,
        0,
        "no overflow while every ban has a way"
    );
    // The all-zero source marks an empty way, so it cannot be indexed.
    filter
        .maps
        .ban("0.0.0.0".parse().unwrap(), None, ORIGIN_CLI)
        .unwrap();
    assert!(!held(&filter, true, "0.0.0.0"));
    assert_ne!(
        filter.maps.config().unwrap().flags & FLAG_BAN_OVERFLOW_V4,
        0,
        "overflow flagged"
    );
    for src in ["0.0.0.0", "198.18.21.1"] {
        assert_eq!(
            verdict_of(&filter, &Frame::v4(src, DST4).build()).1,
            BANNED,
            "{src}"
        );
    }
    assert_eq!(
        verdict_of(&filter, &Frame::v4("198.18.21.2", DST4).build()).1,
        PASS
    );
}
