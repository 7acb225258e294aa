//! Per-packet cost through BPF_PROG_TEST_RUN, beside the trivial program.

use std::time::Instant;

use aya::programs::{TestRun, TestRunOptions, Xdp};
use proxy_common::{list::ORIGIN_CLI, stats};
use proxy_user::cidr::Cidr;
use proxy_user::config::{SynCookieMode, SynCookies};
use tests::{
    filter::{dispatch, dispatch_program, limit, load, settings},
    packet::Frame,
    pins::PinDir,
    segment::{self, Segment},
};

use crate::{Opts, Row, bench_programs, feed, full_settings, table, xdp};

/// Median nanoseconds per packet of `program` on `frame` over three runs.
pub fn ns_per_packet(program: &Xdp, frame: &[u8], repeat: u32) -> f64 {
    let mut runs: Vec<f64> = (0..3)
        .map(|_| {
            let start = Instant::now();
            program
                .test_run(TestRunOptions {
                    data_in: Some(frame),
                    repeat,
                    ..Default::default()
                })
                .expect("BPF_PROG_TEST_RUN");
            start.elapsed().as_nanos() as f64 / repeat as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[1]
}

/// Nanoseconds per packet of `program` on `frame`, median of three runs:
/// [wall time, the kernel's reported average].
pub fn per_packet(program: &Xdp, frame: &[u8], repeat: u32) -> [f64; 2] {
    let mut wall = Vec::new();
    let mut kernel = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let r = program
            .test_run(TestRunOptions {
                data_in: Some(frame),
                repeat,
                ..Default::default()
            })
            .expect("BPF_PROG_TEST_RUN");
        wall.push(start.elapsed().as_nanos() as f64 / repeat as f64);
        kernel.push(r.duration.as_nanos() as f64);
    }
    [median(wall), median(kernel)]
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(opts: &Opts) {
    eprintln!(
        "per-packet cost through BPF_PROG_TEST_RUN ({} packets per run)",
        opts.repeat
    );
    let mut bench = bench_programs();
    let _held = dispatch_program(xdp(&mut bench, "drop_all"));
    let udp = Frame::v4("198.18.0.9", "198.18.0.1").payload(18).build();
    let floor = ns_per_packet(xdp(&mut bench, "drop_all"), &udp, opts.repeat);

    let mut rows = vec![Row {
        path: "trivial XDP_DROP (floor)".into(),
        value: floor,
        ratio: 1.0,
        target: "",
        met: None,
    }];
    let mut pass_big = 0.0;
    let mut add = |path: &str, ns: f64, max: Option<(f64, &'static str)>| {
        if path == "pass, every check and both limits, IPv4 (100,000-entry blocklist)" {
            pass_big = ns;
        }
        let ratio = ns / floor;
        rows.push(Row {
            path: path.into(),
            value: ns,
            ratio,
            target: max.map_or("", |m| m.1),
            met: max.map(|m| ratio <= m.0),
        });
    };

    let small_block: Vec<Cidr> = [
        "198.51.100.0/24",
        "192.0.2.7",
        "2001:db8:66::/48",
        "2001:db8:77::7",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let big_block = feed(95_000, 5_000);
    let big_host = big_block
        .iter()
        .find(|c| c.is_host())
        .unwrap()
        .addr()
        .to_string();
    let big_range = big_block
        .iter()
        .find(|c| !c.is_host())
        .unwrap()
        .addr()
        .to_string();
    let big_range_src = big_range.trim_end_matches(".0").to_string() + ".77";

    for (label, block) in [
        ("small lists", small_block),
        ("100,000-entry blocklist", big_block),
    ] {
        eprintln!("  {label}");
        let pins = PinDir::new("bench");
        let mut filter = load(&full_settings(&pins, block));
        filter
            .maps
            .ban("198.18.4.4".parse().unwrap(), None, ORIGIN_CLI)
            .unwrap();
        let _held = dispatch(&mut filter);
        let p = filter.program().unwrap();
        let check = |frame: &[u8], verdict: u32| {
            let before = filter.maps.verdicts().unwrap()[verdict as usize].packets;
            tests::filter::run(&filter, frame);
            assert_eq!(
                filter.maps.verdicts().unwrap()[verdict as usize].packets,
                before + 1,
                "benchmark frame takes the wrong path"
            );
        };
        let syn4 = Frame::v4("198.18.0.9", "198.18.0.1").tcp_syn().build();
        let syn6 = Frame::v6("fd72::9", "fd72::1").tcp_syn().build();
        check(&syn4, stats::PASS);
        add(
            &format!("pass, every check and both limits, IPv4 ({label})"),
            ns_per_packet(p, &syn4, opts.repeat),
            Some((8.0, "<= 8x")),
        );
        check(&syn6, stats::PASS);
        add(
            &format!("pass, every check and both limits, IPv6 ({label})"),
            ns_per_packet(p, &syn6, opts.repeat),
            Some((8.0, "<= 8x")),
        );
        if label == "small lists" {
            let range = Frame::v4("198.51.100.7", "198.18.0.1").build();
            check(&range, stats::BLOCKLISTED);
            add(
                "blocklist drop, range (small lists)",
                ns_per_packet(p, &range, opts.repeat),
                Some((2.5, "<= 2.5x")),
            );
            let host = Frame::v4("192.0.2.7", "198.18.0.1").build();
            check(&host, stats::BLOCKLISTED);
            add(
                "blocklist drop, single address (small lists)",
                ns_per_packet(p, &host, opts.repeat),
                Some((2.5, "<= 2.5x")),
            );
            let host6 = Frame::v6("2001:db8:77::7", "fd72::1").build();
            check(&host6, stats::BLOCKLISTED);
            add(
                "blocklist drop, single IPv6 address (small lists)",
                ns_per_packet(p, &host6, opts.repeat),
                Some((2.5, "<= 2.5x")),
            );
            let banned = Frame::v4("198.18.4.4", "198.18.0.1").build();
            check(&banned, stats::BANNED);
            add("ban drop", ns_per_packet(p, &banned, opts.repeat), None);
            let arp = Frame::raw(0x0806, 28).build();
            check(&arp, stats::NON_IP);
            add(
                "non-IP pass (ARP)",
                ns_per_packet(p, &arp, opts.repeat),
                None,
            );
        } else {
            let host = Frame::v4(&big_host, "198.18.0.1").build();
            check(&host, stats::BLOCKLISTED);
            add(
                "blocklist drop, single address (100,000-entry list)",
                ns_per_packet(p, &host, opts.repeat),
                Some((2.5, "<= 2.5x")),
            );
            let range = Frame::v4(&big_range_src, "198.18.0.1").build();
            check(&range, stats::BLOCKLISTED);
            add(
                "blocklist drop, range (100,000-entry list)",
                ns_per_packet(p, &range, opts.repeat),
                Some((2.5, "<= 2.5x")),
            );
        }
    }
    for (label, pps, syn, verdict) in [
        (
            "pps-limited drop (one source over its packet limit)",
            true,
            false,
            stats::PPS_LIMITED,
        ),
        (
            "syn-limited drop (one source over its SYN limit)",
            false,
            true,
            stats::SYN_LIMITED,
        ),
    ] {
        let pins = PinDir::new("bench");
        let mut s = settings(pins.path());
        if pps {
            s.pps = limit(1, 1);
        }
        if syn {
            s.syn = limit(1, 1);
        }
        let mut filter = load(&s);
        let _held = dispatch(&mut filter);
        let frame = Frame::v4("198.18.0.9", "198.18.0.1").tcp_syn().build();
        tests::filter::run(&filter, &frame);
        let before = filter.maps.verdicts().unwrap()[verdict as usize].packets;
        tests::filter::run(&filter, &frame);
        assert_eq!(
            filter.maps.verdicts().unwrap()[verdict as usize].packets,
            before + 1
        );
        add(
            label,
            ns_per_packet(filter.program().unwrap(), &frame, opts.repeat),
            None,
        );
    }
    // The documented example limits (bursts of two seconds): decided on the
    // coarse clock alone, and dropped from the per-CPU cache of limited
    // sources (docs/kernel-tier.md, "Clocks", "Limited sources").
    {
        let pins = PinDir::new("bench");
        let mut s = settings(pins.path());
        s.pps = limit(10_000, 20_000);
        s.syn = limit(100, 200);
        let mut filter = load(&s);
        let _held = dispatch(&mut filter);
        let p = filter.program().unwrap();
        for (label, frame, verdict, warm) in [
            (
                "pps-limited drop, limit 10,000/s burst 20,000 (coarse clock, cached)",
                Frame::v4("198.18.0.9", "198.18.0.1").payload(18).build(),
                stats::PPS_LIMITED,
                25_000,
            ),
            (
                "syn-limited drop, limit 100/s burst 200 (coarse clock, cached)",
                Frame::v4("198.18.0.10", "198.18.0.1").tcp_syn().build(),
                stats::SYN_LIMITED,
                300,
            ),
        ] {
            let burst = |repeat| {
                p.test_run(TestRunOptions {
                    data_in: Some(&frame),
                    repeat,
                    ..Default::default()
                })
                .expect("BPF_PROG_TEST_RUN");
            };
            burst(warm);
            let before = filter.maps.verdicts().unwrap()[verdict as usize].packets;
            burst(1000);
            let took = filter.maps.verdicts().unwrap()[verdict as usize].packets - before;
            assert!(took >= 990, "benchmark frame takes the wrong path");
            add(label, ns_per_packet(p, &frame, opts.repeat), None);
        }
    }
    syn_cookie_rows(opts, &mut add);
    rows.extend(crate::new_source::rows(opts, &mut bench, floor, pass_big));
    table(
        "### Per-packet cost (BPF_PROG_TEST_RUN)",
        "ns/packet",
        &rows,
    );
}

/// The SYN cookie path, in two parts (a SYN answered in place is a SYN-ACK
/// on the next of BPF_PROG_TEST_RUN's repeats, so the whole path cannot be
/// repeated): everything up to the SYN-ACK builder (`rampart`, the tail
/// call to `rampart_syn`, its checks and socket lookup, here a miss so the
/// frame stays a SYN), and the builder itself (`rampart_synack` run on its
/// own: each repeat rewrites the previous answer, options and all).
fn syn_cookie_rows(opts: &Opts, add: &mut impl FnMut(&str, f64, Option<(f64, &'static str)>)) {
    let pins = PinDir::new("bench");
    let mut s = settings(pins.path());
    s.syn_cookies = SynCookies {
        mode: SynCookieMode::On,
        ports: vec![80],
        ports_from_listeners: false,
        threshold: 1000,
        // The client veth runs an XDP program (client_rx): it takes XDP_TX frames.
        on_veth: true,
        // A budget never spent here: the rows pay its check, not its drops.
        synack_rate: 100_000_000,
    };
    let mut filter = load(&s);
    if let Some(why) = &filter.syn.unavailable {
        eprintln!("  SYN cookies unavailable here ({why}): no SYN cookie rows");
        return;
    }
    let _held = dispatch(&mut filter);
    let mut syn = Segment::new("198.18.0.9", "198.18.0.1", 40000, 80);
    syn.seq = 7;
    syn.options = segment::linux_syn_options(1460, 12345);
    let frame = syn.build();
    let before = filter.maps.verdicts().unwrap()[stats::PASS as usize].packets;
    tests::filter::run(&filter, &frame);
    assert_eq!(
        filter.maps.verdicts().unwrap()[stats::PASS as usize].packets,
        before + 1,
        "no listener: the SYN passes"
    );
    add(
        "SYN cookies on: a SYN up to the SYN-ACK builder (tail call, checks, socket lookup)",
        ns_per_packet(filter.program().unwrap(), &frame, opts.repeat),
        None,
    );
    add(
        "SYN cookies on: the SYN-ACK builder (options, SipHash cookie, rewrite, checksums)",
        ns_per_packet(
            filter.xdp_program("rampart_synack").unwrap(),
            &frame,
            opts.repeat,
        ),
        None,
    );
}
