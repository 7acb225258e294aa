//! The SYN-ACK budget (`[filter.syn_cookies] synack_rate`): cookies answer
//! at most that many SYNs a second across CPUs, with a second's worth of
//! burst; past it a SYN that would get a cookie is dropped (verdict
//! `syn_limited`, counted in `syn_stats` as `syns_over_budget`), so a
//! spoofed flood reflects a bounded stream of SYN-ACKs onto the addresses
//! it forges. Through BPF_PROG_TEST_RUN in a namespace with a real
//! listener (the program answers only SYNs a socket listens for).

use std::{
    net::TcpListener,
    time::{Duration, Instant},
};

use proxy_common::{stats, syncookie::STAT_OVER_BUDGET};
use proxy_user::{
    config::{SynCookieMode, SynCookies},
    filter::{Filter, SynCookieMaps},
};
use tests::{
    filter::{load, settings, verdict_of},
    netns::NetNs,
    pins::PinDir,
    privilege::require_root,
    segment::{self, Segment},
};

const XDP_DROP: u32 = 1;
const XDP_TX: u32 = 3;
const PORT: u16 = 8080;

fn budget_filter(pins: &PinDir, synack_rate: u32) -> Filter {
    let mut s = settings(pins.path());
    s.syn_cookies = SynCookies {
        mode: SynCookieMode::On,
        ports: vec![PORT],
        ports_from_listeners: false,
        threshold: 1000,
        on_veth: true,
        synack_rate,
    };
    let f = load(&s);
    assert_eq!(f.syn.unavailable, None, "SYN cookies available here");
    f
}

/// Sends `n` SYNs from distinct sources; returns how many were answered,
/// how many dropped, and the time the burst took.
fn burst(f: &Filter, n: u16, first_port: u16) -> (u32, u32, Duration) {
    let (mut answered, mut dropped) = (0, 0);
    let start = Instant::now();
    for i in 0..n {
        let src = format!("198.18.{}.{}", 1 + i / 200, 2 + i % 200);
        let mut syn = Segment::new(&src, "198.18.0.1", first_port + i, PORT);
        syn.seq = 1000 + u32::from(i);
        syn.options = segment::linux_syn_options(1460, 1);
        match verdict_of(f, &syn.build()) {
            (XDP_TX, stats::SYN_COOKIE) => answered += 1,
            (XDP_DROP, stats::SYN_LIMITED) => dropped += 1,
            other => panic!("SYN {i}: unexpected (action, verdict) {other:?}"),
        }
    }
    (answered, dropped, start.elapsed())
}

/// The most a GCRA of `rate`/s with a burst of `rate` lets through in `took`.
fn allowed(rate: u32, took: Duration) -> u32 {
    rate + (took.as_secs_f64() * f64::from(rate)).ceil() as u32
}

#[test]
fn syn_acks_stop_at_the_budget_and_resume_the_next_second() {
    if !require_root("syn_acks_stop_at_the_budget_and_resume_the_next_second") {
        return;
    }
    let ns = NetNs::new("syn14bud");
    ns.with(|| {
        let _l = TcpListener::bind(("0.0.0.0", PORT)).expect("listen");
        let pins = PinDir::new("syn14bud");
        let rate = 4;
        let f = budget_filter(&pins, rate);
        let maps = SynCookieMaps::open(pins.path()).unwrap();

        let (answered, dropped, took) = burst(&f, 40, 10000);
        assert!(
            answered >= rate && answered <= allowed(rate, took),
            "{answered} SYN-ACKs in {took:?} with a budget of {rate}/s"
        );
        assert_eq!(answered + dropped, 40);
        let over = maps.stats().unwrap()[STAT_OVER_BUDGET as usize];
        assert_eq!(over, u64::from(dropped), "each drop counted as over budget");

        // A second later the budget is back.
        std::thread::sleep(Duration::from_millis(1100));
        let (again, _, took) = burst(&f, 10, 20000);
        assert!(
            again >= rate && again <= allowed(rate, took),
            "{again} SYN-ACKs after a second's rest"
        );

        // Without a cap (0) every SYN is answered.
        let pins = PinDir::new("syn14nocap");
        let f = budget_filter(&pins, 0);
        let (answered, dropped, _) = burst(&f, 40, 30000);
        assert_eq!((answered, dropped), (40, 0), "no cap: every SYN answered");
    });
}
