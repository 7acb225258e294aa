//! The XDP benchmark behind `cargo xtask bench xdp`. Prints Markdown tables
//! (stdout) comparing every path of the rampart program with baselines
//! measured in the same run on the same machine:
//!
//! 1. nanoseconds per packet through BPF_PROG_TEST_RUN, beside a trivial
//!    program that only returns XDP_DROP (the floor), with small lists and with
//!    a 100,000-entry blocklist;
//! 2. packets per second dropped on a veth pair fed by an XDP_TX generator
//!    (BPF_PROG_TEST_RUN with live frames) or, where the kernel refuses live
//!    frames, a devmap-broadcast bouncer (see `generator`), beside the
//!    trivial program, `xdp-filter` and an nftables netdev-ingress rule;
//! 3. the same for floods whose every frame has a new random source in
//!    10.0.0.0/8, as UDP and as TCP SYN (`spoofed`), and the new TCP
//!    connections a real client completes during such a SYN flood
//!    (`connections`);
//! 4. on request (`--only logging [--baseline OBJECT]`), what the program's
//!    log costs on the pass and malformed paths, beside an object built
//!    without it (`logging`);
//! 5. on request (`--only ab --baseline OBJECT [--rounds N] [--group TEXT]`), this build's
//!    program (or `--candidate OBJECT`) against another object on the paths
//!    issue 14 set targets for, interleaved round by round (`ab`).
//!
//! Needs root. Figures are ratios first: absolute numbers depend on the
//! machine, and on 2 vCPUs the generator and the receiver share CPUs.

use aya::{Ebpf, programs::Xdp};
use proxy_user::{cidr::Cidr, config::FilterSettings};
use tests::{
    filter::{limit, settings},
    netns::sh,
    pins::PinDir,
    privilege::require_root,
};

pub struct Opts {
    /// Packets per BPF_PROG_TEST_RUN measurement.
    pub repeat: u32,
    /// Seconds per veth measurement.
    pub veth_secs: u64,
    /// `--flood-rate N`: the connections section's flood at N frames per
    /// second (live frames) instead of the generator's full rate.
    pub flood_rate: Option<u64>,
    /// `--shared-queue`: the connections section's real client, server and
    /// their packets wherever the scheduler and the flows' hashes put them,
    /// sharing the flood's CPU and receive ring, instead of on CPU 1 and
    /// queue 1 away from the generator (see `connections`).
    pub shared_queue: bool,
    /// `--fin-close`: the connections section's client closes each
    /// connection with a FIN, as before 2026-12-07, instead of a reset
    /// (`tests::connects`: its ephemeral ports then run out).
    pub fin_close: bool,
    /// `--rows TEXT`: the spoofed section measures, beside its floor, only
    /// the rows whose path contains TEXT (to profile one of them).
    pub rows: Option<String>,
}

mod ab;
mod arrivals;
mod connections;
mod generator;
mod logging;
mod new_source;
mod per_packet;
mod spoofed;
mod veth;

/// `xdp-bench --help`.
const USAGE: &str = "\
usage: xdp-bench [--quick] [--only SECTION] [OPTIONS]

Runs every section (per-packet, veth, spoofed, connections) unless --only
names one; needs root. Prints Markdown tables on stdout.

  --quick               fewer packets per TEST_RUN (2M) and 1 s per veth run
  --only SECTION        per-packet | veth | spoofed | connections | logging | ab
  --object PATH         measure this rampart object instead of the build's
  --rows TEXT           spoofed: only the rows whose path contains TEXT
  --bouncer             force the devmap-broadcast bouncer generator
  --flood-rate N        connections: flood at N frames/s (live frames only)
  --shared-queue        connections: client and flood share CPU and queue
  --fin-close           connections: close each connection with a FIN
  --baseline OBJECT     ab, logging: the object to compare against
  --candidate OBJECT    ab: measure this object instead of the build's
  --rounds N            ab: interleaved rounds (default 9)
  --group TEXT          ab: only the groups whose name contains TEXT
";

/// Flags without a value, and options followed by one.
const FLAGS: &[&str] = &["--quick", "--bouncer", "--shared-queue", "--fin-close"];
const OPTIONS: &[&str] = &[
    "--only",
    "--object",
    "--rows",
    "--flood-rate",
    "--baseline",
    "--candidate",
    "--rounds",
    "--group",
];

/// Exits with the usage for `--help`, and with an error for an argument
/// this benchmark does not know (it used to be ignored, so a mistyped
/// option ran the whole benchmark).
fn check_args(args: &[String]) {
    let mut rest = args.iter().skip(1);
    while let Some(a) = rest.next() {
        if a == "--help" || a == "-h" {
            print!("{USAGE}");
            std::process::exit(0);
        }
        if OPTIONS.contains(&a.as_str()) {
            if rest.next().is_none() {
                eprintln!("xdp-bench: {a} needs a value\n\n{USAGE}");
                std::process::exit(2);
            }
        } else if !FLAGS.contains(&a.as_str()) {
            eprintln!("xdp-bench: unknown argument {a:?}\n\n{USAGE}");
            std::process::exit(2);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    check_args(&args);
    let quick = args.iter().any(|a| a == "--quick");
    // `--flood-rate N`: the connections section's flood offered at N
    // frames per second (live frames only) instead of the full rate.
    let flood_rate = match args
        .iter()
        .position(|a| a == "--flood-rate")
        .map(|i| args.get(i + 1).map(|n| n.parse::<u64>()))
    {
        None => None,
        Some(Some(Ok(n))) if n > 0 => Some(n),
        Some(_) => {
            eprintln!("--flood-rate needs a number of frames per second above 0");
            std::process::exit(2);
        }
    };
    let rows = args
        .iter()
        .position(|a| a == "--rows")
        .and_then(|i| args.get(i + 1).cloned());
    let opts = if quick {
        Opts {
            repeat: 2_000_000,
            veth_secs: 1,
            flood_rate,
            shared_queue: args.iter().any(|a| a == "--shared-queue"),
            fin_close: args.iter().any(|a| a == "--fin-close"),
            rows: rows.clone(),
        }
    } else {
        Opts {
            repeat: 10_000_000,
            veth_secs: 3,
            flood_rate,
            shared_queue: args.iter().any(|a| a == "--shared-queue"),
            fin_close: args.iter().any(|a| a == "--fin-close"),
            rows: rows.clone(),
        }
    };
    if !require_root("xdp-bench") {
        std::process::exit(1);
    }
    println!("{}", machine());
    // `--only SECTION` (per-packet, veth, spoofed, connections, logging) runs one
    // section; `--bouncer` forces the fallback generator, to compare it with
    // live frames on a kernel that allows both.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let wants = |section: &str| only.as_deref().is_none_or(|o| o == section);
    if wants("per-packet") {
        per_packet::run(&opts);
    }
    // Only on request: `--only ab --baseline OBJECT [--rounds N]`.
    if only.as_deref() == Some("ab") {
        let Some(baseline) = args
            .iter()
            .position(|a| a == "--baseline")
            .and_then(|i| args.get(i + 1))
        else {
            eprintln!("--only ab needs --baseline OBJECT");
            std::process::exit(2);
        };
        let rounds = args
            .iter()
            .position(|a| a == "--rounds")
            .and_then(|i| args.get(i + 1))
            .map_or(9, |n| n.parse().expect("--rounds N"));
        // `--group TEXT`: only the groups whose name contains TEXT.
        let group = args
            .iter()
            .position(|a| a == "--group")
            .and_then(|i| args.get(i + 1));
        // `--candidate OBJECT`: measured instead of this build's object.
        let candidate = args
            .iter()
            .position(|a| a == "--candidate")
            .and_then(|i| args.get(i + 1));
        ab::run(
            &opts,
            std::path::Path::new(baseline),
            candidate.map(std::path::Path::new),
            rounds,
            group.map(String::as_str),
        );
        return;
    }
    // Only on request: `--only logging [--baseline OBJECT]`.
    if only.as_deref() == Some("logging") {
        let baseline = args
            .iter()
            .position(|a| a == "--baseline")
            .and_then(|i| args.get(i + 1))
            .map(std::path::PathBuf::from);
        logging::run(&opts, baseline.as_deref());
        return;
    }
    if !(wants("veth") || wants("spoofed") || wants("connections")) {
        return;
    }
    if let Some(path) = args
        .iter()
        .position(|a| a == "--object")
        .and_then(|i| args.get(i + 1))
    {
        let object = std::fs::read(path).unwrap_or_else(|e| panic!("--object {path}: {e}"));
        veth::OBJECT.set(object).unwrap();
    }
    let generator = if args.iter().any(|a| a == "--bouncer") {
        generator::Kind::Bouncer
    } else {
        generator::probe()
    };
    if wants("veth") {
        veth::run(&opts, generator);
    }
    if wants("spoofed") {
        spoofed::run(&opts, generator);
    }
    if wants("connections") {
        connections::run(&opts, generator);
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let kernel = String::from_utf8_lossy(&sh("uname", &["-r"]).stdout)
        .trim()
        .to_string();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!(
        "Machine: {cpu}, {cpus} CPUs, kernel {kernel}. Measured {}.\n",
        String::from_utf8_lossy(&sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).stdout).trim()
    )
}

pub fn bench_programs() -> Ebpf {
    let mut ebpf = Ebpf::load(proxy_user::filter::object::BENCH).expect("load bench programs");
    for name in [
        "drop_all",
        "tx_gen",
        "tx_gen_spoof",
        "bounce",
        "client_rx",
        "spoof_tail",
        "pass_one",
    ] {
        let p: &mut Xdp = ebpf.program_mut(name).unwrap().try_into().unwrap();
        p.load().expect("load bench program");
    }
    ebpf
}

pub fn xdp<'a>(ebpf: &'a mut Ebpf, name: &str) -> &'a mut Xdp {
    ebpf.program_mut(name).unwrap().try_into().unwrap()
}

/// A deterministic threat feed: `hosts` single IPv4 addresses and `ranges` /24s,
/// none of them in 198.18.0.0/15 (where the benchmark's passing sources live).
pub fn feed(hosts: usize, ranges: usize) -> Vec<Cidr> {
    let mut x: u32 = 0x9e37_79b9;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let mut out = std::collections::BTreeSet::new();
    while out.len() < hosts {
        let a = next() | 0x0100_0000;
        if a >> 17 != 198 << 7 | 9 {
            out.insert(Cidr::host(std::net::Ipv4Addr::from(a).into()));
        }
    }
    let mut n = 0;
    while n < ranges {
        let a = (next() | 0x0100_0000) & 0xffff_ff00;
        if a >> 17 != 198 << 7 | 9
            && out.insert(
                format!("{}/24", std::net::Ipv4Addr::from(a))
                    .parse()
                    .unwrap(),
            )
        {
            n += 1;
        }
    }
    out.into_iter().collect()
}

/// Settings where every check runs: non-empty allow and block lists, a ban,
/// and both limits so high that the measured source always passes.
pub fn full_settings(pins: &PinDir, block: Vec<Cidr>) -> FilterSettings {
    let mut s = settings(pins.path());
    s.allow = vec![
        "10.99.0.0/16".parse().unwrap(),
        "2001:db8:99::/48".parse().unwrap(),
    ];
    s.block = block;
    s.pps = limit(1_000_000_000, 1_000_000_000);
    s.syn = limit(1_000_000_000, 1_000_000_000);
    s
}

pub struct Row {
    pub path: String,
    pub value: f64,
    pub ratio: f64,
    pub target: &'static str,
    pub met: Option<bool>,
}

pub fn table(header: &str, unit: &str, rows: &[Row]) {
    println!("{header}\n");
    let versus = if unit.starts_with("conn") {
        "ratio to no flood"
    } else {
        "ratio to trivial XDP_DROP"
    };
    println!("| path | {unit} | {versus} | target | met |");
    println!("|---|---:|---:|---|---|");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        let value = if unit.starts_with("ns") {
            format!("{:.1}", r.value)
        } else if unit.starts_with("conn") {
            format!("{:.0}", r.value)
        } else {
            format!("{:.2}", r.value)
        };
        println!(
            "| {} | {value} | {:.2}x | {} | {met} |",
            r.path, r.ratio, r.target
        );
    }
    println!();
}
