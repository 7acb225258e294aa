//! `cargo xtask bench fleet`: what the fleet costs Redis, simulated with
//! many hosts in one process against one real redis-server (issue 18,
//! docs/fleet.md "Scale"). Every simulated host runs the product's fleet
//! code, each with its own Redis connections; only the traffic is made up:
//!
//! - [`limits`]: fleet-wide limits' counts (a `fleet = true` zone);
//! - [`entries`]: the shared entries' path (bans published by one host,
//!   read from the log by every other), at `--bans-per-s` over the fleet;
//! - [`kernel`]: the kernel thresholds' counts (`fleet_pps`, `fleet_syn`),
//!   their bans shared through the entries' path.
//!
//! Redis's side is read from `INFO` before and after each row: commands
//! (script calls and the commands they run), bytes in and out, and its CPU
//! time, from which the tables say where one Redis core runs out and Redis
//! Cluster becomes necessary. Prints markdown on stdout (the xtask writes
//! it into BENCHMARKS.md); progress on stderr. Timing figures move with
//! the machine's load.

mod common;
mod entries;
mod hosts;
mod kernel;
mod limits;
mod report;

use tests::redis::Redis;

/// Options: `--quick`, `--bans-per-s N` (the entries' rate over the fleet,
/// 10 by default; a second row at 10x it), `--only limits|entries|kernel`
/// (one part, its tables only).
struct Args {
    quick: bool,
    bans_per_s: f64,
    only: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        quick: false,
        bans_per_s: 10.0,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--bans-per-s" => {
                a.bans_per_s = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|v: &f64| *v > 0.0 && *v <= 10_000.0)
                    .ok_or("--bans-per-s takes a rate from 0 to 10000")?;
            }
            "--only" => {
                let part = it.next().unwrap_or_default();
                if !["limits", "entries", "kernel"].contains(&part.as_str()) {
                    return Err("--only takes limits, entries or kernel".into());
                }
                a.only = Some(part);
            }
            other => {
                return Err(format!(
                    "unknown option `{other}` (--quick, --bans-per-s N, --only PART)"
                ));
            }
        }
    }
    Ok(a)
}

fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fleet-bench: {e}");
            std::process::exit(2);
        }
    };
    let dir = std::env::temp_dir().join(format!("rampart-fleet-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let redis = Redis::start(&dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let quick = args.quick;
    let run = |part: &str| args.only.as_deref().is_none_or(|o| o == part);
    let secs = if quick { 3 } else { 6 };
    let limit_cases: &[(usize, usize)] = if quick {
        &[(3, 100), (50, 100), (50, 2000)]
    } else {
        &[
            (3, 100),
            (10, 100),
            (50, 10),
            (50, 100),
            (50, 1000),
            (50, 2000),
            (100, 2000),
        ]
    };
    let mut limits = Vec::new();
    for &(hosts, sources) in limit_cases.iter().filter(|_| run("limits")) {
        eprintln!("fleet-bench: limits, {hosts} hosts x {sources} sources for {secs} s");
        redis.cli(&["FLUSHALL"]);
        limits.push(rt.block_on(limits::simulate(&redis, hosts, sources, secs)));
    }
    let rate = args.bans_per_s;
    let entry_cases: Vec<(usize, f64)> = if quick {
        vec![(3, rate), (50, rate)]
    } else {
        vec![
            (3, rate),
            (10, rate),
            (50, rate),
            (50, rate * 10.0),
            (100, rate),
        ]
    };
    let mut entries = Vec::new();
    for &(hosts, rate) in entry_cases.iter().filter(|_| run("entries")) {
        eprintln!("fleet-bench: entries, {hosts} hosts, {rate} bans/s for {secs} s");
        redis.cli(&["FLUSHALL"]);
        entries.push(rt.block_on(entries::simulate(&redis, hosts, rate, secs)));
    }
    // Long enough for the abusers to pass their thresholds (at 5 s).
    let ksecs = 9;
    let kernel_cases: &[(usize, usize)] = if quick {
        &[(3, 100), (50, 100)]
    } else {
        &[(3, 100), (10, 100), (50, 100), (100, 100)]
    };
    let mut kernel = Vec::new();
    for &(hosts, sources) in kernel_cases.iter().filter(|_| run("kernel")) {
        eprintln!(
            "fleet-bench: kernel thresholds, {hosts} hosts x {sources} sources for {ksecs} s"
        );
        redis.cli(&["FLUSHALL"]);
        kernel.push(rt.block_on(kernel::simulate(&redis, hosts, sources, ksecs)));
    }
    report::intro();
    report::limits(&limits, secs);
    report::entries(&entries, secs);
    report::kernel(&kernel, ksecs);
    if args.only.is_none() {
        report::capacity(&limits, &entries, &kernel);
    }
    if run("limits") {
        let n = if quick { 300_000 } else { 2_000_000 };
        let (mut on, mut off) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            off.push(rt.block_on(async { limits::decide_ns(false, n) }));
            on.push(rt.block_on(async { limits::decide_ns(true, n) }));
        }
        on.sort_by(f64::total_cmp);
        off.sort_by(f64::total_cmp);
        report::request_path(on[1], off[1]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
