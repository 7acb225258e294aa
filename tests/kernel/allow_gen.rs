//! The allowlist generation (`proxy-user/src/filter/allow_gen.rs`): the
//! program skips the allowlist lookup for a source whose LRU entry or
//! limited-cache slot was stamped under the current generation, and every
//! allowlist change moves the generation on, so the verdicts stay those of
//! a lookup on every packet: a known, limited source added to the
//! allowlist passes from its next packet, whichever path it was on.

use proxy_common::{
    config::FLAG_ALLOW_FINER_V6,
    list::ORIGIN_CLI,
    stats::{ALLOWLISTED, PASS, PPS_LIMITED},
};
use proxy_user::filter::{Filter, List};
use tests::{
    filter::{cidrs, limit, load, settings, verdict_of},
    packet::Frame,
    pins::PinDir,
    privilege::require_root,
};

use crate::ratelimit::pin_to_cpu;

/// Runs `frame` until its source is over its packet limit.
fn limited(filter: &Filter, frame: &[u8]) {
    for _ in 0..200 {
        if verdict_of(filter, frame).1 == PPS_LIMITED {
            return;
        }
    }
    panic!("the source never reached its limit");
}

/// The config's generation, and the one `ip`'s LRU entry carries.
fn generations(filter: &Filter, ip: &str) -> (u64, u64) {
    let state = filter
        .maps
        .source(ip.parse().unwrap())
        .unwrap()
        .expect("the source is tracked");
    (filter.maps.config().unwrap().allow_gen, state.allow_gen)
}

/// Both paths a known source's drop can take: the LRU entry (a burst of
/// one, decided on the exact clock) and the limited-drop cache (a burst
/// spanning many ticks, decided on the coarse clock).
#[test]
fn a_known_limited_source_added_to_the_allowlist_passes_at_once() {
    if !require_root("a_known_limited_source_added_to_the_allowlist_passes_at_once") {
        return;
    }
    pin_to_cpu(0);
    for (burst, what) in [(1, "LRU entry"), (100, "limited-drop cache")] {
        let pins = PinDir::new("h14xdp2-allow-gen");
        let mut s = settings(pins.path());
        // Some allowlist, so that entries vouch for their sources.
        s.allow = cidrs(&["10.99.0.0/16"]);
        s.pps = limit(1, burst);
        let mut filter = load(&s);
        let ip = "198.18.7.7";
        let frame = Frame::v4(ip, "198.18.0.1").payload(18).build();
        limited(&filter, &frame);
        limited(&filter, &frame);
        let (current, stamped) = generations(&filter, ip);
        assert_ne!(current, 0, "{what}: the loader sets a generation");
        assert_eq!(stamped, current, "{what}: the entry vouches for its source");

        // At runtime (the CLI's and auto-bans' path)...
        filter
            .maps
            .insert(List::Allow, format!("{ip}/32").parse().unwrap(), ORIGIN_CLI)
            .unwrap();
        assert_ne!(generations(&filter, ip).0, current, "{what}: moved on");
        for _ in 0..3 {
            assert_eq!(verdict_of(&filter, &frame).1, ALLOWLISTED, "{what}");
        }
        // ...and out again: limited again at once (its TAT is still ahead).
        filter
            .maps
            .remove(List::Allow, format!("{ip}/32").parse().unwrap())
            .unwrap();
        assert_eq!(verdict_of(&filter, &frame).1, PPS_LIMITED, "{what}");
        let (current, stamped) = generations(&filter, ip);
        assert_eq!(stamped, current, "{what}: stamped again after a lookup");

        // A source the LRU does not hold yet (its first packet is only in
        // the first stage) is looked up before it is promoted.
        let new = Frame::v4("198.18.8.8", "198.18.0.1").payload(18).build();
        assert_eq!(verdict_of(&filter, &new).1, PASS, "{what}: a first packet");

        // Through the configuration (a reload's reconcile).
        s.allow = cidrs(&["10.99.0.0/16", "198.18.7.0/24", "198.18.8.8"]);
        filter.sync(&s).unwrap();
        assert_eq!(verdict_of(&filter, &frame).1, ALLOWLISTED, "{what}, reload");
        for _ in 0..3 {
            assert_eq!(verdict_of(&filter, &new).1, ALLOWLISTED, "{what}, new");
        }
        assert!(
            filter
                .maps
                .source("198.18.8.8".parse().unwrap())
                .unwrap()
                .is_none()
        );
    }
}

/// An IPv6 source is a /64: when an allowlist entry is longer, one address
/// of a known source is allowlisted and another is not, and the entry can
/// vouch for neither.
#[test]
fn an_allowlisted_address_inside_a_known_ipv6_source_passes() {
    if !require_root("an_allowlisted_address_inside_a_known_ipv6_source_passes") {
        return;
    }
    pin_to_cpu(0);
    let pins = PinDir::new("h14xdp2-allow-finer");
    let mut s = settings(pins.path());
    s.allow = cidrs(&["2001:db8:99::/48"]);
    s.pps = limit(1, 1);
    let mut filter = load(&s);
    let config = filter.maps.config().unwrap();
    assert_eq!(config.flags & FLAG_ALLOW_FINER_V6, 0, "a /48 is not finer");
    let other = Frame::v6("fd72::9", "fd72::1").payload(18).build();
    let allowed = Frame::v6("fd72::5", "fd72::1").payload(18).build();
    limited(&filter, &other);
    filter
        .maps
        .insert(List::Allow, "fd72::5/128".parse().unwrap(), ORIGIN_CLI)
        .unwrap();
    assert_ne!(
        filter.maps.config().unwrap().flags & FLAG_ALLOW_FINER_V6,
        0,
        "a /128 is finer than the /64 source prefix"
    );
    // The other address first: its lookup stamps the /64's entry again.
    assert_eq!(verdict_of(&filter, &other).1, PPS_LIMITED);
    for _ in 0..3 {
        assert_eq!(verdict_of(&filter, &allowed).1, ALLOWLISTED);
        assert_eq!(verdict_of(&filter, &other).1, PPS_LIMITED);
    }
    filter
        .maps
        .remove(List::Allow, "fd72::5/128".parse().unwrap())
        .unwrap();
    assert_eq!(
        filter.maps.config().unwrap().flags & FLAG_ALLOW_FINER_V6,
        0,
        "cleared with the entry"
    );
    assert_eq!(verdict_of(&filter, &allowed).1, PPS_LIMITED);
}
