//! Loading the filter for tests and running frames through BPF_PROG_TEST_RUN.

use std::path::Path;

use aya::programs::{TestRun, TestRunOptions, Xdp, XdpMode};
use proxy_common::stats::{self, Counter};

use crate::netns::Link;
use proxy_user::{
    config::{AttachMode, FilterSettings, MapSizes, NewSources, OnExit, RateLimit, SynCookies},
    filter::Filter,
};

/// Settings with no lists and no limits, pinned in `pin_dir`.
pub fn settings(pin_dir: &Path) -> FilterSettings {
    FilterSettings {
        enabled: true,
        interfaces: vec![],
        mode: AttachMode::Auto,
        pin_dir: pin_dir.to_path_buf(),
        allow: vec![],
        block: vec![],
        pps: None,
        syn: None,
        ipv6_prefix: 64,
        track_sources: true,
        pass_unparsed: false,
        maps: MapSizes::default(),
        on_exit: OnExit::Keep,
        // Auto, but no ports (there are no listeners): off.
        syn_cookies: SynCookies::default(),
        // The default budget for the default LRU size.
        new_sources: NewSources::for_sources(MapSizes::default().sources),
        fleet_pps: None,
        fleet_syn: None,
    }
}

pub fn limit(rate: u64, burst: u64) -> Option<RateLimit> {
    Some(RateLimit { rate, burst })
}

/// Parses CIDR strings for settings.
pub fn cidrs(list: &[&str]) -> Vec<proxy_user::cidr::Cidr> {
    list.iter()
        .map(|s| s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
        .collect()
}

/// Loads the filter (not attached) and panics with the loader's error.
pub fn load(settings: &FilterSettings) -> Filter {
    Filter::load(settings).unwrap_or_else(|e| panic!("loading the filter: {e:?}"))
}

/// Keeps a program registered in the kernel's XDP dispatcher while alive.
///
/// BPF_PROG_TEST_RUN with `repeat > 1` adds the program to the XDP
/// dispatcher for the call and removes it afterwards; each change patches
/// kernel text and synchronises every CPU, which costs 15-40 ms per call on
/// this machine (and much less when another CPU is busy). Attaching the
/// program natively somewhere keeps it in the dispatcher, so calls cost only
/// the packets they run. Throughput tests and benchmarks hold one of these.
pub struct Dispatched {
    _link: Link,
}

/// Attaches `filter` natively to a veth in a private namespace (see [`Dispatched`]).
pub fn dispatch(filter: &mut Filter) -> Dispatched {
    let (link, iface) = dispatch_link();
    link.edge
        .with(|| filter.attach(&iface, AttachMode::Native))
        .expect("native XDP on veth");
    Dispatched { _link: link }
}

/// As [`dispatch`], for any loaded XDP program (benchmark baselines).
pub fn dispatch_program(program: &mut Xdp) -> Dispatched {
    let (link, iface) = dispatch_link();
    link.edge
        .with(|| program.attach(&iface, XdpMode::Driver))
        .expect("native XDP on veth");
    Dispatched { _link: link }
}

fn dispatch_link() -> (Link, String) {
    let link = Link::new("dsp");
    let iface = link.edge_if.clone();
    // Down, so no stray traffic (IPv6 neighbour discovery) reaches the counters.
    link.edge.ip(&["link", "set", &iface, "down"]);
    (link, iface)
}

/// Runs one frame through the program; returns the XDP action.
pub fn run(filter: &Filter, frame: &[u8]) -> u32 {
    let opts = TestRunOptions {
        data_in: Some(frame),
        repeat: 1,
        ..Default::default()
    };
    filter
        .program()
        .unwrap()
        .test_run(opts)
        .expect("BPF_PROG_TEST_RUN")
        .return_value
}

/// Runs a frame and returns which verdict counter moved (exactly one must).
pub fn verdict_of(filter: &Filter, frame: &[u8]) -> (u32, u32) {
    let before = filter.maps.verdicts().unwrap();
    let action = run(filter, frame);
    let after = filter.maps.verdicts().unwrap();
    let moved: Vec<u32> = (0..stats::VERDICTS)
        .filter(|&i| after[i as usize].packets != before[i as usize].packets)
        .collect();
    assert_eq!(
        moved.len(),
        1,
        "exactly one verdict counter must move, moved: {moved:?}"
    );
    let v = moved[0];
    let c: Counter = after[v as usize];
    assert_eq!(c.packets, before[v as usize].packets + 1);
    assert_eq!(
        c.bytes,
        before[v as usize].bytes + frame.len() as u64,
        "bytes counted for {v}"
    );
    (action, v)
}
