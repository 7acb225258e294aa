//! The XDP program on mutated frames, through BPF_PROG_TEST_RUN, against a
//! pure-Rust model of its decision ([`rampart_fuzz::packet`] parses,
//! [`rampart_fuzz::policy`] decides). Needs root (CAP_BPF).
//!
//! The program is loaded once per process with fixed map contents: the
//! allowlist, blocklist (single addresses and ranges, both families) and bans
//! (live and expired) of [`rampart_fuzz::policy`], and per-source limits so
//! high they never trigger, so the verdict of a frame depends on the frame
//! alone.
//!
//! Oracle, per frame: the test run succeeds; exactly one verdict counter
//! moves, by one packet and the frame's length in bytes; that verdict is the
//! model's; the action is XDP_DROP for the drop verdicts and XDP_PASS
//! otherwise.
#![no_main]

use std::{net::IpAddr, path::PathBuf, sync::LazyLock, time::Duration};

use aya::programs::{TestRun, TestRunOptions};
use libfuzzer_sys::fuzz_target;
use proxy_common::{list::ORIGIN_CLI, stats};
use proxy_user::{
    config::{
        AttachMode, FilterSettings, MapSizes, NewSources, OnExit, RateLimit, SynCookieMode,
        SynCookies,
    },
    filter::Filter,
};
use rampart_fuzz::{
    packet,
    policy::{self, verdict},
};

/// Frames longer than this are cut: BPF_PROG_TEST_RUN takes up to about a
/// page for XDP, and the program reads at most a few hundred bytes.
const MAX_FRAME: usize = 1600;
/// Shorter frames are refused by the kernel before the program runs.
const ETH_HLEN: usize = 14;
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

fn cidrs(list: &[&str]) -> Vec<proxy_user::cidr::Cidr> {
    list.iter()
        .map(|s| s.parse().expect("the policy's networks are valid"))
        .collect()
}

static FILTER: LazyLock<Filter> = LazyLock::new(|| {
    // The model's verdict numbers are rampart's.
    assert_eq!(
        [
            verdict::PASS,
            verdict::ALLOWLISTED,
            verdict::BLOCKLISTED,
            verdict::BANNED,
            verdict::MALFORMED,
            verdict::NON_IP
        ],
        [
            stats::PASS,
            stats::ALLOWLISTED,
            stats::BLOCKLISTED,
            stats::BANNED,
            stats::MALFORMED,
            stats::NON_IP
        ]
    );
    let pin_dir = PathBuf::from(format!("/sys/fs/bpf/rampart-fuzz-{}", std::process::id()));
    let never = Some(RateLimit {
        rate: 1_000_000_000,
        burst: 1_000_000_000,
    });
    let settings = FilterSettings {
        enabled: true,
        interfaces: vec![],
        mode: AttachMode::Auto,
        pin_dir: pin_dir.clone(),
        allow: cidrs(policy::ALLOW),
        block: cidrs(policy::BLOCK),
        pps: never,
        syn: never,
        fleet_pps: None,
        fleet_syn: None,
        ipv6_prefix: 64,
        track_sources: true,
        pass_unparsed: false,
        maps: MapSizes {
            sources: 4096,
            ..MapSizes::default()
        },
        on_exit: OnExit::Detach,
        // The model knows no SYN cookies: every SYN it passes must pass.
        syn_cookies: SynCookies {
            mode: SynCookieMode::Off,
            ..SynCookies::default()
        },
        // The model knows no new-source budget (every new source it passes
        // must pass): off, as `never` is for the per-source limits.
        new_sources: NewSources::off(),
    };
    let mut filter = Filter::load(&settings)
        .unwrap_or_else(|e| panic!("loading the XDP program (the xdp target needs root): {e:?}"));
    for (addr, expired) in policy::BANS {
        let ip: IpAddr = addr.parse().expect("the policy's bans are addresses");
        let ttl = expired.then_some(Duration::from_nanos(1));
        filter
            .maps
            .ban(ip, ttl, ORIGIN_CLI)
            .unwrap_or_else(|e| panic!("banning {ip}: {e:?}"));
    }
    // The program reads bans on the coarse clock, which lags by up to two
    // ticks (docs/kernel-tier.md, "Clocks"): a ban that expired a nanosecond
    // after it was made is still live for the program until the clock has
    // moved past it. Without this wait the first frame from an expired ban
    // (corpus/xdp/v4-ban-expired, when libFuzzer runs it first) was banned.
    std::thread::sleep(Duration::from_nanos(
        3 * proxy_user::filter::coarse_tick_ns(),
    ));
    // The maps stay alive through the program's and our descriptors; unpin
    // them now so that nothing outlives the process.
    let _ = std::fs::remove_dir_all(&pin_dir);
    filter
});

fuzz_target!(|data: &[u8]| {
    if data.len() < ETH_HLEN {
        return;
    }
    let frame = &data[..data.len().min(MAX_FRAME)];
    let filter = &*FILTER;
    let before = filter
        .maps
        .verdicts()
        .expect("reading the verdict counters");
    let opts = TestRunOptions {
        data_in: Some(frame),
        repeat: 1,
        ..Default::default()
    };
    let action = filter
        .program()
        .expect("the program")
        .test_run(opts)
        .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN on a {}-byte frame: {e:?}", frame.len()))
        .return_value;
    let after = filter
        .maps
        .verdicts()
        .expect("reading the verdict counters");
    let moved: Vec<u32> = (0..stats::VERDICTS)
        .filter(|&v| after[v as usize] != before[v as usize])
        .collect();
    let [got] = moved[..] else {
        panic!("exactly one verdict counter must move, moved: {moved:?}");
    };
    let (b, a) = (before[got as usize], after[got as usize]);
    assert_eq!(a.packets, b.packets + 1, "packets counted");
    assert_eq!(a.bytes, b.bytes + frame.len() as u64, "bytes counted");
    let parsed = packet::parse(frame);
    let want = policy::verdict(parsed);
    assert_eq!(
        stats::VERDICT_NAMES[got as usize],
        stats::VERDICT_NAMES[want as usize],
        "verdict for {parsed:?}"
    );
    let want_action = if policy::drops(want) {
        XDP_DROP
    } else {
        XDP_PASS
    };
    assert_eq!(action, want_action, "action for {parsed:?}");
});
