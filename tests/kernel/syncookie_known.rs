//! Known sources skip the SYN-ACK budget: a SYN whose source has its LRU
//! entry (it went through its own per-source SYN limit) is answered even
//! while a flood of new sources has spent the budget; the SYNs of new
//! sources stay capped by it. The per-source SYN limit is what bounds the
//! SYN-ACKs a known (or forged known) address draws. Through
//! BPF_PROG_TEST_RUN in a namespace with a real listener.

use std::{
    net::TcpListener,
    time::{Duration, Instant},
};

use proxy_common::{stats, syncookie::STAT_OVER_BUDGET};
use proxy_user::{
    config::{RateLimit, SynCookieMode, SynCookies},
    filter::{Filter, SynCookieMaps},
};
use tests::{
    filter::{load, settings, verdict_of},
    netns::NetNs,
    pins::PinDir,
    privilege::require_root,
    segment::{self, Segment},
};

const XDP_PASS: u32 = 2;
const XDP_DROP: u32 = 1;
const XDP_TX: u32 = 3;
const PORT: u16 = 8080;
/// SYN-ACKs a second: spent by the first few SYNs of the burst.
const RATE: u32 = 4;
const KNOWN: &str = "198.19.0.7";

fn filter(pins: &PinDir, syn: Option<RateLimit>) -> Filter {
    let mut s = settings(pins.path());
    s.syn = syn;
    s.syn_cookies = SynCookies {
        mode: SynCookieMode::On,
        ports: vec![PORT],
        ports_from_listeners: false,
        threshold: 1000,
        on_veth: true,
        synack_rate: RATE,
    };
    let f = load(&s);
    assert_eq!(f.syn.unavailable, None, "SYN cookies available here");
    f
}

/// Makes `KNOWN` known: two ACKs (not SYNs, so no budget is spent), the
/// first recorded by the first stage, the second promoting it into the LRU.
fn make_known(f: &Filter) {
    for i in 0..2 {
        let mut ack = Segment::new(KNOWN, "198.18.0.1", 40000 + i, PORT);
        ack.flags = segment::ACK;
        assert_eq!(verdict_of(f, &ack.build()), (XDP_PASS, stats::PASS));
    }
}

fn syn(src: &str, sport: u16) -> Vec<u8> {
    let mut s = Segment::new(src, "198.18.0.1", sport, PORT);
    s.seq = 1000 + u32::from(sport);
    s.options = segment::linux_syn_options(1460, 1);
    s.build()
}

/// How a SYN ended: answered (true), or dropped as `syn_limited` (false).
fn answered(f: &Filter, frame: &[u8], what: &str) -> bool {
    match verdict_of(f, frame) {
        (XDP_TX, stats::SYN_COOKIE) => true,
        (XDP_DROP, stats::SYN_LIMITED) => false,
        other => panic!("{what}: unexpected (action, verdict) {other:?}"),
    }
}

/// The most a GCRA of `rate`/s with a burst of `rate` lets through in `took`.
fn allowed(rate: u32, took: Duration) -> u32 {
    rate + (took.as_secs_f64() * f64::from(rate)).ceil() as u32
}

#[test]
fn a_known_source_is_answered_while_new_sources_are_capped_by_the_budget() {
    if !require_root("a_known_source_is_answered_while_new_sources_are_capped_by_the_budget") {
        return;
    }
    let ns = NetNs::new("h14known1");
    ns.with(|| {
        let _l = TcpListener::bind(("0.0.0.0", PORT)).expect("listen");
        let pins = PinDir::new("h14known1");
        let f = filter(&pins, None);
        let maps = SynCookieMaps::open(pins.path()).unwrap();
        make_known(&f);

        // 40 SYNs from 40 new sources, each followed by one of the known
        // source's: the new ones spend the budget, the known ones pass by it.
        let (mut new_answered, mut known_answered) = (0, 0);
        let start = Instant::now();
        for i in 0..40u16 {
            let src = format!("198.18.{}.{}", 1 + i / 200, 2 + i % 200);
            new_answered += u32::from(answered(&f, &syn(&src, 10000 + i), "new source"));
            known_answered += u32::from(answered(&f, &syn(KNOWN, 20000 + i), "known source"));
        }
        let took = start.elapsed();
        assert_eq!(known_answered, 40, "every SYN of the known source answered");
        assert!(
            new_answered >= RATE && new_answered <= allowed(RATE, took),
            "{new_answered} SYN-ACKs to new sources in {took:?} with a budget of {RATE}/s"
        );
        let over = maps.stats().unwrap()[STAT_OVER_BUDGET as usize];
        assert_eq!(
            over,
            u64::from(40 - new_answered),
            "only new sources over budget"
        );
    });
}

#[test]
fn a_known_source_is_bounded_by_its_own_syn_limit() {
    if !require_root("a_known_source_is_bounded_by_its_own_syn_limit") {
        return;
    }
    let ns = NetNs::new("h14known2");
    ns.with(|| {
        let _l = TcpListener::bind(("0.0.0.0", PORT)).expect("listen");
        let pins = PinDir::new("h14known2");
        // Its own limit: 10 SYNs a second with a burst of 10, more than the
        // budget of 4 (which the new sources below spend first).
        let limit = 10;
        let f = filter(
            &pins,
            Some(RateLimit {
                rate: u64::from(limit),
                burst: u64::from(limit),
            }),
        );
        let maps = SynCookieMaps::open(pins.path()).unwrap();
        make_known(&f);
        let start = Instant::now();
        for i in 0..20u16 {
            let src = format!("198.18.{}.{}", 1 + i / 200, 2 + i % 200);
            answered(&f, &syn(&src, 10000 + i), "new source");
        }
        let over_before = maps.stats().unwrap()[STAT_OVER_BUDGET as usize];
        assert!(over_before > 0, "the new sources spent the budget");

        // A forger of the known address gets what that address's SYN limit
        // allows, however many SYNs it sends: the backscatter to it is
        // bounded per source.
        let known_answered = (0..40u16)
            .filter(|&i| answered(&f, &syn(KNOWN, 20000 + i), "known source"))
            .count() as u32;
        let took = start.elapsed();
        assert!(
            known_answered >= limit && known_answered <= allowed(limit, took),
            "{known_answered} SYN-ACKs to the known source in {took:?}, its limit {limit}/s"
        );
        let over = maps.stats().unwrap()[STAT_OVER_BUDGET as usize];
        assert_eq!(
            over, over_before,
            "its drops are its own limit's, not the budget's"
        );
    });
}
