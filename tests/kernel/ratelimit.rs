//! Rate-limit accuracy through BPF_PROG_TEST_RUN: one source floods at far
//! more than its limit, for a measured time, from one CPU or from both CPUs at
//! once, and the number of packets let through must be within ±10% of
//! `rate x time + burst`. Per-CPU buckets would let through twice the limit
//! from two CPUs; the shared GCRA must not.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use aya::programs::{TestRun, TestRunOptions};
use proxy_common::{
    config::{FLAG_PPS_COARSE, FLAG_SYN_COARSE},
    stats::{PASS, PPS_LIMITED, SYN_LIMITED},
};
use proxy_user::filter::Filter;
use tests::{
    filter::{dispatch, limit, load, settings},
    packet::Frame,
    pins::PinDir,
    privilege::require_root,
};

/// XDP_PASS (uapi linux/bpf.h).
const XDP_PASS: u32 = 2;

/// Packets per BPF_PROG_TEST_RUN call: large enough to amortise the syscall.
const REPEAT: u32 = 20_000;

/// Pins the calling thread (a test's own thread) to `cpu`.
pub(crate) fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET and sched_setaffinity on the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set),
            0,
            "sched_setaffinity"
        );
    }
}

/// Floods `frame` from `cpus` threads (one per CPU) for `time`; returns the
/// counter deltas of (passed, limited) and the time it really took.
fn flood(
    filter: &Arc<Filter>,
    frame: &[u8],
    cpus: usize,
    time: Duration,
    limited: u32,
) -> (u64, u64, Duration) {
    let before = filter.maps.verdicts().unwrap();
    let start = Instant::now();
    let threads: Vec<_> = (0..cpus)
        .map(|cpu| {
            let filter = Arc::clone(filter);
            let frame = frame.to_vec();
            std::thread::spawn(move || {
                pin_to_cpu(cpu);
                let program = filter.program().unwrap();
                let mut calls = 0u64;
                while start.elapsed() < time {
                    let opts = TestRunOptions {
                        data_in: Some(&frame),
                        repeat: REPEAT,
                        ..Default::default()
                    };
                    program.test_run(opts).expect("BPF_PROG_TEST_RUN");
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    let calls: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let took = start.elapsed();
    let after = filter.maps.verdicts().unwrap();
    let passed = after[PASS as usize].packets - before[PASS as usize].packets;
    let dropped = after[limited as usize].packets - before[limited as usize].packets;
    assert_eq!(
        passed + dropped,
        calls * REPEAT as u64,
        "every packet is either passed or limited"
    );
    (passed, dropped, took)
}

/// Checks one rate; returns a line for the report.
fn check(kind: &str, rate: u64, burst: u64, cpus: usize, time: Duration) -> Result<String, String> {
    let pins = PinDir::new("rate");
    let mut s = settings(pins.path());
    let (frame, limited) = match kind {
        "pps" => {
            s.pps = limit(rate, burst);
            (Frame::v4("198.18.9.1", "198.18.0.1").build(), PPS_LIMITED)
        }
        _ => {
            s.syn = limit(rate, burst);
            (
                Frame::v6("fd72:9::1", "fd72::1").tcp_syn().build(),
                SYN_LIMITED,
            )
        }
    };
    let mut filter = load(&s);
    let coarse = filter.maps.config().unwrap().flags & (FLAG_PPS_COARSE | FLAG_SYN_COARSE) != 0;
    let _dispatched = dispatch(&mut filter);
    let filter = Arc::new(filter);
    let (passed, dropped, took) = flood(&filter, &frame, cpus, time, limited);
    let expected = rate as f64 * took.as_secs_f64() + burst as f64;
    let offered = (passed + dropped) as f64 / took.as_secs_f64();
    let error = (passed as f64 - expected) / expected;
    let line = format!(
        "{kind} rate {rate}/s burst {burst} on {cpus} CPU(s) for {:.2}s ({} clock): passed {passed}, expected {expected:.0} ({:+.2}%), offered {:.1} Mpps",
        took.as_secs_f64(),
        if coarse { "coarse" } else { "lagging" },
        error * 100.0,
        offered / 1e6
    );
    if offered < rate as f64 * 1.5 {
        return Err(format!(
            "{line}: the flood did not exceed the limit, so this measures nothing"
        ));
    }
    if error.abs() > 0.10 {
        Err(line)
    } else {
        Ok(line)
    }
}

fn run_all(cases: &[(&str, u64, u64, usize, Duration)]) {
    let mut report = Vec::new();
    let mut failed = false;
    for &(kind, rate, burst, cpus, time) in cases {
        // One second of another process's scheduling can take a tenth
        // of a run's packets (seen once in a quiet CI-like run at 100k/s
        // on 2 CPUs: -15%, then -0.03% and -0.04%): a case outside the
        // bound is measured once more, and a limiter that is wrong fails
        // both times.
        let outcome = check(kind, rate, burst, cpus, time).or_else(|first| {
            check(kind, rate, burst, cpus, time)
                .map_err(|again| format!("{first}\n     again: {again}"))
        });
        match outcome {
            Ok(line) => report.push(format!("ok   {line}")),
            Err(line) => {
                failed = true;
                report.push(format!("FAIL {line}"));
            }
        }
    }
    println!("{}", report.join("\n"));
    assert!(!failed, "rate outside ±10%:\n{}", report.join("\n"));
}

#[test]
fn packet_limit_is_accurate_from_10_to_a_million_per_second() {
    if !require_root("packet_limit_is_accurate_from_10_to_a_million_per_second") {
        return;
    }
    let s = Duration::from_secs(1);
    run_all(&[
        ("pps", 10, 1, 1, Duration::from_secs(2)),
        ("pps", 1_000, 10, 1, s),
        ("pps", 100_000, 100, 1, s),
        ("pps", 1_000_000, 1_000, 1, s),
    ]);
}

#[test]
fn syn_limit_is_accurate_from_10_to_a_million_per_second() {
    if !require_root("syn_limit_is_accurate_from_10_to_a_million_per_second") {
        return;
    }
    let s = Duration::from_secs(1);
    run_all(&[
        ("syn", 10, 1, 1, Duration::from_secs(2)),
        ("syn", 10_000, 10, 1, s),
        ("syn", 1_000_000, 1_000, 1, s),
    ]);
}

/// Limits whose burst spans four ticks of the coarse clock are decided on
/// it alone, with no exact read (issue 14's limited drops): still within
/// ±10%, from one CPU and from two.
#[test]
fn limits_decided_on_the_coarse_clock_alone_are_accurate() {
    if !require_root("limits_decided_on_the_coarse_clock_alone_are_accurate") {
        return;
    }
    let cpus = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(2);
    let s = Duration::from_secs(1);
    let cases = [
        ("pps", 1_000, 100, 1, s),
        ("pps", 100_000, 10_000, 1, s),
        ("syn", 10_000, 1_000, 1, s),
        ("pps", 100_000, 10_000, cpus, s),
        ("syn", 10_000, 1_000, cpus, s),
    ];
    for &(kind, rate, burst, _, _) in &cases {
        let pins = PinDir::new("coarse");
        let mut st = settings(pins.path());
        let flag = if kind == "pps" {
            st.pps = limit(rate, burst);
            FLAG_PPS_COARSE
        } else {
            st.syn = limit(rate, burst);
            FLAG_SYN_COARSE
        };
        let flags = load(&st).maps.config().unwrap().flags;
        assert_ne!(
            flags & flag,
            0,
            "{kind} {rate}/s burst {burst}: not decided on the coarse clock"
        );
    }
    run_all(&cases);
}

#[test]
fn one_source_on_two_cpus_shares_one_budget() {
    if !require_root("one_source_on_two_cpus_shares_one_budget") {
        return;
    }
    let cpus = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(2);
    assert!(
        cpus == 2 || std::env::var("CI").is_err(),
        "this test needs two CPUs"
    );
    let s = Duration::from_secs(1);
    run_all(&[
        ("pps", 1_000, 10, cpus, s),
        ("pps", 100_000, 100, cpus, s),
        ("syn", 1_000_000, 1_000, cpus, s),
    ]);
}

#[test]
fn spoofed_flood_larger_than_the_lru_does_not_free_a_real_abuser() {
    if !require_root("spoofed_flood_larger_than_the_lru_does_not_free_a_real_abuser") {
        return;
    }
    let pins = PinDir::new("spoof");
    let mut s = settings(pins.path());
    s.maps.sources = 1024;
    s.pps = limit(10, 10);
    let mut filter = load(&s);
    let _dispatched = dispatch(&mut filter);
    let abuser = Frame::v4("198.18.66.6", "198.18.0.1").build();
    let start = Instant::now();
    let mut abuser_passed = 0;
    let mut sent = 0;
    // 40,000 spoofed sources (40 times the LRU), one packet each; the abuser
    // sends one packet for every ten of them, so it keeps sending throughout.
    for i in 0..40_000u32 {
        let spoofed = std::net::Ipv4Addr::from(0x6440_0000 + i).to_string();
        tests::filter::run(&filter, &Frame::v4(&spoofed, "198.18.0.1").build());
        if i % 10 == 0 {
            sent += 1;
            if tests::filter::run(&filter, &abuser) == XDP_PASS {
                abuser_passed += 1;
            }
        }
    }
    let allowed = 10.0 + 10.0 * start.elapsed().as_secs_f64();
    println!(
        "abuser: {abuser_passed} of {sent} passed in {:.2}s (limit allows {allowed:.0}); sources tracked: {}",
        start.elapsed().as_secs_f64(),
        filter.maps.sources().unwrap().len()
    );
    assert!(
        (abuser_passed as f64) <= allowed * 1.1 + 1.0,
        "the abuser got {abuser_passed} packets through, its limit allows {allowed:.0}"
    );
    assert!(
        filter.maps.sources().unwrap().len() <= 1024 + 64,
        "the LRU stays bounded"
    );
}
