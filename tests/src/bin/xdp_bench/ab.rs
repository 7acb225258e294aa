//! A/B of two rampart objects on the per-packet paths issue 14 set targets
//! for (`--only ab --baseline OBJECT [--candidate OBJECT] [--rounds N]`):
//! this binary's object (or the candidate) and another (e.g. main's `target/ebpf/bpfel-unknown-none/release/rampart-xdp`),
//! both loaded by this binary's loader, so the baseline must share this
//! build's map layout.
//!
//! Paths come in groups that share a configuration. For each group, round
//! after round, both objects are loaded afresh and measured in turn, with
//! the trivial program measured in every round: drift on a shared machine
//! spreads over both, each ratio is taken against the floor of its own
//! round, and each round puts the JIT images somewhere new (see
//! [`run`]). Each figure is the median over rounds of that round's median of
//! three runs; two clocks, as in `logging`: wall time per packet, and the
//! kernel's own average (whole ns, leaving out time the run was preempted).

use std::path::Path;

use aya::{
    Ebpf,
    maps::ProgramArray,
    programs::{TestRun, TestRunOptions, Xdp},
};
use proxy_common::{list::ORIGIN_CLI, stats};
use proxy_user::{
    config::{FilterSettings, NewSources},
    filter::Filter,
};
use tests::{
    filter::{Dispatched, dispatch, dispatch_program, limit, settings},
    packet::Frame,
    pins::PinDir,
};

use crate::{
    Opts, bench_programs, feed, full_settings,
    per_packet::{median, per_packet},
    xdp,
};

/// How a path's frame reaches the program.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    /// The frame, repeated.
    Direct,
    /// Through `spoof_tail`: a new random source in 10.0.0.0/8 every packet;
    /// the cost of `spoof_tail` into `drop_all` is subtracted.
    Spoofed,
}

struct Path1 {
    label: &'static str,
    frame: Vec<u8>,
    /// The verdict the frame must take (checked once, directly, after
    /// `warm` runs of it).
    verdict: Option<u32>,
    warm: u32,
    via: Via,
}

struct Group {
    name: &'static str,
    settings: fn(&PinDir) -> FilterSettings,
    /// Sources banned after loading.
    bans: &'static [&'static str],
    paths: Vec<Path1>,
}

struct Subject {
    filter: Filter,
    _pins: PinDir,
    _held: Dispatched,
}

fn subject(object: &[u8], group: &Group, tag: &str) -> Subject {
    let pins = PinDir::new(&format!("h14xdp-ab-{tag}"));
    let mut filter = Filter::load_object(object, &(group.settings)(&pins))
        .unwrap_or_else(|e| panic!("{tag}: loading the filter: {e:?}"));
    for b in group.bans {
        filter
            .maps
            .ban(b.parse().unwrap(), None, ORIGIN_CLI)
            .unwrap();
    }
    let held = dispatch(&mut filter);
    Subject {
        filter,
        _pins: pins,
        _held: held,
    }
}

fn small_lists(pins: &PinDir) -> FilterSettings {
    let block = tests::filter::cidrs(&[
        "198.51.100.0/24",
        "192.0.2.7",
        "2001:db8:66::/48",
        "2001:db8:77::7",
    ]);
    full_settings(pins, block)
}

/// The small lists with 10,000 /24s allowlisted besides: a walk of a
/// larger trie for each allowlist lookup (none of them holds the measured
/// sources).
fn big_allow(pins: &PinDir) -> FilterSettings {
    let mut s = small_lists(pins);
    s.allow.extend(feed(0, 10_000));
    s
}

fn big_list(pins: &PinDir) -> FilterSettings {
    full_settings(pins, feed(95_000, 5_000))
}

/// New sources admitted: a new-source budget never spent (each packet
/// still takes from it, with a compare-and-exchange).
fn big_list_limited(pins: &PinDir) -> FilterSettings {
    let mut s = big_list(pins);
    s.pps = limit(1000, 1000);
    s.syn = limit(100, 100);
    s.new_sources = NewSources {
        rate: 100_000_000,
        burst: 100_000_000,
        ..NewSources::off()
    };
    s
}

/// New sources dropped: the new-source budget spent (attack mode).
fn budget_spent(pins: &PinDir) -> FilterSettings {
    let mut s = big_list_limited(pins);
    s.new_sources = NewSources {
        rate: 1,
        burst: 1,
        ..NewSources::off()
    };
    s
}

fn pps_one(pins: &PinDir) -> FilterSettings {
    let mut s = settings(pins.path());
    s.pps = limit(1, 1);
    s
}

/// `docs/configuration.md`'s example limits: bursts of two seconds.
fn documented(pins: &PinDir) -> FilterSettings {
    let mut s = settings(pins.path());
    s.pps = limit(10_000, 20_000);
    s.syn = limit(100, 200);
    s
}

fn syn_one(pins: &PinDir) -> FilterSettings {
    let mut s = settings(pins.path());
    s.syn = limit(1, 1);
    s
}

fn groups() -> Vec<Group> {
    let syn4 = || Frame::v4("198.18.0.9", "198.18.0.1").tcp_syn().build();
    let udp = || Frame::v4("198.18.9.9", "198.18.0.1").payload(18).build();
    vec![
        Group {
            name: "every check, small lists, a ban",
            settings: small_lists,
            bans: &["198.18.4.4"],
            paths: vec![
                Path1 {
                    label: "pass, every check and both limits, IPv4 (small lists)",
                    frame: syn4(),
                    verdict: Some(stats::PASS),
                    warm: 1,
                    via: Via::Direct,
                },
                Path1 {
                    label: "pass, every check and both limits, IPv6 (small lists)",
                    frame: Frame::v6("fd72::9", "fd72::1").tcp_syn().build(),
                    verdict: Some(stats::PASS),
                    warm: 1,
                    via: Via::Direct,
                },
                Path1 {
                    label: "ban drop",
                    frame: Frame::v4("198.18.4.4", "198.18.0.1").build(),
                    verdict: Some(stats::BANNED),
                    warm: 1,
                    via: Via::Direct,
                },
                Path1 {
                    label: "blocklist drop, single address (small lists)",
                    frame: Frame::v4("192.0.2.7", "198.18.0.1").build(),
                    verdict: Some(stats::BLOCKLISTED),
                    warm: 1,
                    via: Via::Direct,
                },
                // What every packet pays before any check: the config,
                // the Ethernet header, the verdict counter.
                Path1 {
                    label: "non-IP pass (ARP)",
                    frame: Frame::raw(0x0806, 28).build(),
                    verdict: Some(stats::NON_IP),
                    warm: 1,
                    via: Via::Direct,
                },
            ],
        },
        Group {
            name: "every check, 10,000-entry allowlist",
            settings: big_allow,
            bans: &[],
            paths: vec![Path1 {
                label: "pass, every check and both limits, IPv4 (10,000-entry allowlist)",
                frame: syn4(),
                verdict: Some(stats::PASS),
                warm: 1,
                via: Via::Direct,
            }],
        },
        Group {
            name: "one source over its packet limit",
            settings: pps_one,
            bans: &[],
            paths: vec![Path1 {
                label: "pps-limited drop (one source over its packet limit)",
                frame: syn4(),
                verdict: Some(stats::PPS_LIMITED),
                warm: 1,
                via: Via::Direct,
            }],
        },
        Group {
            name: "one source over its SYN limit",
            settings: syn_one,
            bans: &[],
            paths: vec![Path1 {
                label: "syn-limited drop (one source over its SYN limit)",
                frame: syn4(),
                verdict: Some(stats::SYN_LIMITED),
                warm: 1,
                via: Via::Direct,
            }],
        },
        Group {
            name: "one source over the documented example limits",
            settings: documented,
            bans: &[],
            paths: vec![
                Path1 {
                    label: "pps-limited drop, 10,000/s burst 20,000 (decided on the coarse clock)",
                    frame: udp(),
                    verdict: Some(stats::PPS_LIMITED),
                    warm: 25_000,
                    via: Via::Direct,
                },
                Path1 {
                    label: "syn-limited drop, 100/s burst 200 (decided on the coarse clock)",
                    frame: Frame::v4("198.18.9.10", "198.18.0.1").tcp_syn().build(),
                    verdict: Some(stats::SYN_LIMITED),
                    warm: 300,
                    via: Via::Direct,
                },
            ],
        },
        Group {
            name: "every check, 100,000-entry blocklist",
            settings: big_list,
            bans: &[],
            paths: vec![Path1 {
                label: "pass, every check and both limits, IPv4 (100,000-entry blocklist)",
                frame: syn4(),
                verdict: Some(stats::PASS),
                warm: 1,
                via: Via::Direct,
            }],
        },
        Group {
            name: "every check, 100,000-entry blocklist, limits 1000 pps / 100 SYN/s",
            settings: big_list_limited,
            bans: &[],
            paths: vec![
                Path1 {
                    label: "new source every packet, spoofed UDP",
                    frame: udp(),
                    verdict: None,
                    warm: 0,
                    via: Via::Spoofed,
                },
                Path1 {
                    label: "new source every packet, spoofed TCP SYN",
                    frame: Frame::v4("198.18.9.9", "198.18.0.1").tcp_syn().build(),
                    verdict: None,
                    warm: 0,
                    via: Via::Spoofed,
                },
            ],
        },
        Group {
            name: "every check, 100,000-entry blocklist, new-source budget spent",
            settings: budget_spent,
            bans: &[],
            paths: vec![
                Path1 {
                    label: "new source every packet over the new-source budget, spoofed UDP",
                    frame: udp(),
                    verdict: None,
                    warm: 0,
                    via: Via::Spoofed,
                },
                Path1 {
                    label: "new source every packet over the new-source budget, spoofed TCP SYN",
                    frame: Frame::v4("198.18.9.9", "198.18.0.1").tcp_syn().build(),
                    verdict: None,
                    warm: 0,
                    via: Via::Spoofed,
                },
            ],
        },
    ]
}

fn chain(bench: &mut Ebpf, program: &Xdp) {
    let fd = program.fd().unwrap().try_clone().unwrap();
    let mut tail = ProgramArray::try_from(bench.map_mut("TAIL").expect("TAIL map")).unwrap();
    tail.set(0, &fd, 0).expect("TAIL slot");
}

/// Figures of one path: `[object][clock]` -> per round (ns, ratio to floor).
type Figures = [[Vec<(f64, f64)>; 2]; 2];

pub fn run(
    opts: &Opts,
    baseline: &Path,
    candidate: Option<&Path>,
    rounds: usize,
    only: Option<&str>,
) {
    let read = |path: &Path| {
        std::fs::read(path).unwrap_or_else(|e| panic!("reading the object {}: {e}", path.display()))
    };
    let base = read(baseline);
    let cand = candidate.map(read);
    let objects: [(&str, &[u8]); 2] = [
        ("baseline", &base),
        match &cand {
            Some(c) => ("candidate", c),
            None => ("this build", proxy_user::filter::object::FILTER),
        },
    ];
    eprintln!(
        "A/B through BPF_PROG_TEST_RUN: {} against {} ({} packets per run, {rounds} rounds)",
        candidate.map_or(objects[1].0.to_string(), |c| c.display().to_string()),
        baseline.display(),
        opts.repeat
    );
    let mut bench = bench_programs();
    let _held_floor = dispatch_program(xdp(&mut bench, "drop_all"));
    let _held_spoof = dispatch_program(xdp(&mut bench, "spoof_tail"));
    let floor_frame = Frame::v4("198.18.0.9", "198.18.0.1").payload(18).build();
    let mut results: Vec<(&'static str, Figures)> = Vec::new();
    for group in groups()
        .into_iter()
        .filter(|g| only.is_none_or(|o| g.name.contains(o)))
    {
        eprintln!("  {}", group.name);
        let mut figures: Vec<Figures> = group.paths.iter().map(|_| Default::default()).collect();
        for round in 0..rounds {
            eprint!("    round {}/{rounds}\r", round + 1);
            // Loaded afresh every round: where the JIT puts a program moves
            // its branches against cache-line and fetch boundaries, which
            // changed one object's ban drop by 20% for a whole run of
            // rounds on one load (issue 14, branch h14xdp2); a new
            // placement per round spreads that over the rounds.
            let subjects = load_subjects(&objects, &group);
            measure_round(
                &mut bench,
                &subjects,
                &group,
                &floor_frame,
                opts,
                round,
                &mut figures,
            );
        }
        eprintln!();
        for (p, fig) in group.paths.iter().zip(figures) {
            results.push((p.label, fig));
        }
    }
    print(&results, rounds, opts.repeat);
}

/// Both objects loaded with `group`'s settings, each path checked to take
/// its verdict.
fn load_subjects(objects: &[(&str, &[u8]); 2], group: &Group) -> Vec<Subject> {
    let subjects: Vec<Subject> = objects
        .iter()
        .map(|(tag, obj)| subject(obj, group, &tag.replace(' ', "-")))
        .collect();
    for (s, (tag, _)) in subjects.iter().zip(objects) {
        for p in group.paths.iter().filter(|p| p.via == Via::Direct) {
            let v = p.verdict.unwrap();
            // A limited path is limited once its burst is spent.
            s.filter
                .program()
                .unwrap()
                .test_run(TestRunOptions {
                    data_in: Some(&p.frame),
                    repeat: p.warm,
                    ..Default::default()
                })
                .expect("BPF_PROG_TEST_RUN");
            // 1,000 packets: nearly all take the path (a limited
            // source gets its rate's worth through meanwhile; a limit
            // decided on the coarse clock gets a tick's worth at once when
            // the clock ticks during the run: 40 at 10,000/s and HZ=250).
            let before = s.filter.maps.verdicts().unwrap()[v as usize].packets;
            s.filter
                .program()
                .unwrap()
                .test_run(TestRunOptions {
                    data_in: Some(&p.frame),
                    repeat: 1000,
                    ..Default::default()
                })
                .expect("BPF_PROG_TEST_RUN");
            let took = s.filter.maps.verdicts().unwrap()[v as usize].packets - before;
            assert!(
                took >= 900,
                "{tag}: {} takes the wrong path ({took} of 1,000)",
                p.label
            );
        }
    }
    subjects
}

/// One round: the floor, then both objects in turn (which goes first
/// alternates with `round`).
fn measure_round(
    bench: &mut Ebpf,
    subjects: &[Subject],
    group: &Group,
    floor_frame: &[u8],
    opts: &Opts,
    round: usize,
    figures: &mut [Figures],
) {
    let floor = per_packet(xdp(bench, "drop_all"), floor_frame, opts.repeat);
    // What `spoof_tail` into `drop_all` costs, per spoofed frame.
    let drop_all = xdp(bench, "drop_all").fd().unwrap().try_clone().unwrap();
    let gen_floor: Vec<Option<[f64; 2]>> = group
        .paths
        .iter()
        .map(|p| {
            (p.via == Via::Spoofed).then(|| {
                let mut tail =
                    ProgramArray::try_from(bench.map_mut("TAIL").expect("TAIL map")).unwrap();
                tail.set(0, &drop_all, 0).expect("TAIL slot");
                per_packet(xdp(bench, "spoof_tail"), &p.frame, opts.repeat)
            })
        })
        .collect();
    // Alternate which object goes first.
    let order: [usize; 2] = if round.is_multiple_of(2) {
        [0, 1]
    } else {
        [1, 0]
    };
    for o in order {
        let program = subjects[o].filter.program().unwrap();
        for ((p, fig), g) in group.paths.iter().zip(figures.iter_mut()).zip(&gen_floor) {
            let ns = match p.via {
                Via::Direct => per_packet(program, &p.frame, opts.repeat),
                Via::Spoofed => {
                    chain(bench, program);
                    let total = per_packet(xdp(bench, "spoof_tail"), &p.frame, opts.repeat);
                    let g = g.unwrap();
                    [0, 1].map(|c| total[c] - g[c] + floor[c])
                }
            };
            for c in 0..2 {
                fig[o][c].push((ns[c], ns[c] / floor[c]));
            }
        }
    }
}

fn print(results: &[(&'static str, Figures)], rounds: usize, repeat: u32) {
    println!("### A/B per-packet cost (BPF_PROG_TEST_RUN, `xdp-bench --only ab`)\n");
    println!(
        "{rounds} interleaved rounds, each the median of 3 runs of {repeat} packets; \
         figures are medians over rounds, [min-max] of the rounds' ratios; a ratio is \
         to the trivial XDP_DROP program of the same round; \"after/before\" is the \
         median over rounds of the paired quotient.\n"
    );
    for (c, clock) in ["wall time", "kernel's average"].iter().enumerate() {
        println!(
            "| path ({clock}) | before ns | before ratio | after ns | after ratio | after/before |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        for (label, fig) in results {
            let ns = |o: usize| median(fig[o][c].iter().map(|f| f.0).collect());
            let ratio = |o: usize| {
                let r: Vec<f64> = fig[o][c].iter().map(|f| f.1).collect();
                let min = r.iter().copied().fold(f64::INFINITY, f64::min);
                let max = r.iter().copied().fold(0.0, f64::max);
                format!("{:.2}x [{min:.2}-{max:.2}]", median(r))
            };
            let paired = median(
                fig[1][c]
                    .iter()
                    .zip(&fig[0][c])
                    .map(|(a, b)| a.0 / b.0)
                    .collect(),
            );
            println!(
                "| {label} | {:.1} | {} | {:.1} | {} | {paired:.3} |",
                ns(0),
                ratio(0),
                ns(1),
                ratio(1)
            );
        }
        println!();
    }
}
