//! What the XDP program's log costs per packet (issue 14), through
//! BPF_PROG_TEST_RUN: the pass path (no event: no log code runs) and the
//! malformed-frame path (an event: with the level below it, one array lookup
//! and a compare), with logging off and on, beside an object built without
//! logging (`--baseline PATH`, e.g. main's `target/ebpf/.../rampart-xdp`).
//!
//! Configurations are measured in turn, round after round, so that drift
//! on a shared machine spreads over all of them; each figure is the median
//! of the rounds' medians, with the spread of the rounds beside it, and the
//! ratio to the first row is taken round by round. Two clocks: wall time
//! per packet (as the per-packet section), and the kernel's own average
//! (whole ns; it leaves out the time the run gives up the CPU when another
//! task needs it, so it moves less on a busy machine).

use std::path::Path;

use proxy_common::{log as klog, stats};
use proxy_user::filter::Filter;
use tests::{
    filter::{Dispatched, dispatch},
    packet::Frame,
    pins::PinDir,
};

use crate::{
    Opts, full_settings,
    per_packet::{median, per_packet},
};

/// Rounds of the whole set of measurements.
const ROUNDS: usize = 15;

struct Subject {
    label: &'static str,
    filter: Filter,
    _pins: PinDir,
    _held: Dispatched,
}

fn subject(label: &'static str, object: &[u8], level: Option<u32>) -> Subject {
    let pins = PinDir::new("log14-bench");
    let mut filter = Filter::load_object(object, &full_settings(&pins, Vec::new()))
        .unwrap_or_else(|e| panic!("{label}: loading the filter: {e:?}"));
    if let Some(level) = level {
        filter
            .log
            .as_mut()
            .expect("this build's program has log maps")
            .set(level, 5)
            .unwrap();
    }
    let held = dispatch(&mut filter);
    Subject {
        label,
        filter,
        _pins: pins,
        _held: held,
    }
}

pub fn run(opts: &Opts, baseline: Option<&Path>) {
    eprintln!(
        "logging cost through BPF_PROG_TEST_RUN ({} packets per run, {ROUNDS} rounds)",
        opts.repeat
    );
    let ours = proxy_user::filter::object::FILTER;
    let base = baseline.map(|p| {
        std::fs::read(p)
            .unwrap_or_else(|e| panic!("reading the baseline object {}: {e}", p.display()))
    });
    let mut subjects = Vec::new();
    if let Some(b) = &base {
        subjects.push(subject("baseline object (no logging)", b, None));
    }
    subjects.push(subject("this object, log level off", ours, Some(klog::OFF)));
    subjects.push(subject(
        "this object, log level info (malformed frames logged, 5/s)",
        ours,
        Some(klog::INFO),
    ));
    let pass = Frame::v4("198.18.0.9", "198.18.0.1").tcp_syn().build();
    let mut malformed = Frame::v4("198.18.0.9", "198.18.0.1").payload(18).build();
    malformed[14] = 0x55;
    for s in &subjects {
        for (frame, verdict) in [(&pass, stats::PASS), (&malformed, stats::MALFORMED)] {
            let before = s.filter.maps.verdicts().unwrap()[verdict as usize].packets;
            tests::filter::run(&s.filter, frame);
            assert_eq!(
                s.filter.maps.verdicts().unwrap()[verdict as usize].packets,
                before + 1,
                "{}: benchmark frame takes the wrong path",
                s.label
            );
        }
    }
    // [clock][subject][path] -> one figure per round.
    let mut figures = vec![vec![[Vec::new(), Vec::new()]; subjects.len()]; 2];
    for round in 0..ROUNDS {
        eprintln!("  round {}/{ROUNDS}", round + 1);
        for (i, s) in subjects.iter().enumerate() {
            let p = s.filter.program().unwrap();
            for (path, frame) in [&pass, &malformed].into_iter().enumerate() {
                let [wall, kernel] = per_packet(p, frame, opts.repeat);
                figures[0][i][path].push(wall);
                figures[1][i][path].push(kernel);
            }
        }
    }
    println!("### Logging cost (BPF_PROG_TEST_RUN, issue 14)\n");
    println!(
        "{ROUNDS} interleaved rounds, each the median of 3 runs of {} packets: median \
         [min-max] of the rounds; \"vs first\": the median over rounds of this row's \
         figure divided by the first row's in the same round.\n",
        opts.repeat
    );
    for (clock, figures) in ["wall time", "kernel's average"].iter().zip(&figures) {
        println!(
            "| object and log level ({clock}) | pass, every check (ns) | vs first | malformed drop (ns) | vs first |"
        );
        println!("|---|---:|---:|---:|---:|");
        for (s, [pass, bad]) in subjects.iter().zip(figures) {
            let [pass0, bad0] = &figures[0];
            println!(
                "| {} | {} | {:.3}x | {} | {:.3}x |",
                s.label,
                summary(pass),
                paired(pass, pass0),
                summary(bad),
                paired(bad, bad0)
            );
        }
        println!();
    }
}

fn summary(v: &[f64]) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(0.0, f64::max);
    format!("{:.1} [{min:.1}-{max:.1}]", median(v.to_vec()))
}

/// Median over rounds of `v / base`, round by round.
fn paired(v: &[f64], base: &[f64]) -> f64 {
    median(v.iter().zip(base).map(|(a, b)| a / b).collect())
}
