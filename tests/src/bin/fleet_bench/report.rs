//! The markdown tables `cargo xtask bench fleet` writes into BENCHMARKS.md.

use crate::{
    common::{Cost, PERIOD},
    entries, kernel,
    limits::{self, BURST, RATE},
};

fn ms(d: std::time::Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

fn cost_cells(c: &Cost) -> String {
    format!(
        "{:.1} | {:.0} | {:.0} | {:.0} | {:.1}%",
        c.scripts_per_host,
        c.commands_per_host,
        c.in_per_host,
        c.out_per_host,
        c.cpu * 100.0
    )
}

pub fn intro() {
    println!(
        "Against one real redis-server (Debian 7.0, no persistence, on the same 2-CPU \
         machine), simulated hosts in one process, each running the product's fleet code \
         with its own connections. Redis commands count those scripts run; CPU is Redis's \
         (user + sys) over the row.\n"
    );
}

pub fn limits(rows: &[limits::Row], secs: u64) {
    if rows.is_empty() {
        return;
    }
    println!(
        "**Fleet-wide limits' counts**: each host has a `fleet = true` zone ({RATE} r/s \
         burst {BURST}) exchanging every {} ms; per period each host serves `sources` \
         clients of its own once, and one abuser is spread evenly over all hosts at 3x the \
         limit. {secs} s per row. `scripts/s per host` is 5 when the simulation keeps up \
         with its 200 ms periods; below, the simulator (one thread) was the bottleneck, not \
         Redis, and the row's figures are for that slower pace. An exchange that fails \
         (Redis's 2 s timeout) is counted and its reports lost, as in the daemon.\n",
        PERIOD.as_millis()
    );
    println!(
        "| hosts | sources per host | reports/s (fleet) | failed exchanges | members of the window set at the end | scripts/s per host | Redis commands/s per host | bytes/s in per host | bytes/s out per host | Redis CPU (one core) | abuser served / fleet limit |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {:.3} |",
            r.hosts,
            r.sources,
            r.reported,
            r.failed,
            r.members,
            cost_cells(&r.cost),
            r.held
        );
    }
    if let Some(r) = rows.iter().max_by(|a, b| a.reported.total_cmp(&b.reported)) {
        let us = r.cost.cpu * 1e6 / r.reported.max(1.0);
        let bytes =
            (r.cost.in_per_host + r.cost.out_per_host) * r.hosts as f64 / r.reported.max(1.0);
        println!(
            "\nPer reported source Redis receives and sends about {bytes:.0} bytes and runs \
             one `ZINCRBY`, for about {us:.1} µs of its CPU (the busiest row); per host and \
             zone, 5 scripts a second whatever the sources.\n"
        );
    }
}

pub fn entries(rows: &[entries::Row], secs: u64) {
    if rows.is_empty() {
        return;
    }
    println!(
        "**Shared entries** (bans and blocks): every host runs the fleet task (the log read \
         every 100 ms, a heartbeat and every host's heartbeat read each second); bans are \
         issued host after host at the rate shown over the whole fleet, each published by \
         its host and received by every other. Delay: from the ban's publish on its host to \
         its arrival in another host's main loop (where the daemon puts it in its XDP maps), \
         over every (ban, other host) pair. {secs} s per row.\n"
    );
    println!(
        "| hosts | bans/s (fleet) | arrived / expected | delay p50 ms | p99 ms | max ms | scripts/s per host | Redis commands/s per host | bytes/s in per host | bytes/s out per host | Redis CPU (one core) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.0} | {} / {} | {} | {} | {} | {} |",
            r.hosts,
            r.rate,
            r.arrived,
            r.issued * (r.hosts - 1),
            ms(r.p50),
            ms(r.p99),
            ms(r.max),
            cost_cells(&r.cost)
        );
    }
    println!();
}

pub fn kernel(rows: &[kernel::Row], secs: u64) {
    if rows.is_empty() {
        return;
    }
    let (p, s) = (kernel::PPS, kernel::SYN);
    println!(
        "**Kernel thresholds' counts**: each host runs the product's `fleet_pps` ({} packets \
         within {} s) and `fleet_syn` ({} SYNs within {} s) rules, exchanged every {} ms as \
         the daemon does, fed the per-source counts a scan of its XDP maps would give; a \
         ban a host decides is shared through the entries' path (its fleet task, included \
         in the cost). Per period each host sees `sources` sources of its own just over the \
         reporting floor (each counted and reported), and {} abusers are spread over all \
         hosts at 2x a threshold (half SYNs; one starting every 130 ms). Delay: from the moment an abuser's fleet total \
         passed the threshold to its ban on the last host. An exchange that fails (Redis's \
         2 s timeout) is counted and its reports lost, as in the daemon. {secs} s per row.\n",
        p.count,
        p.within.as_secs(),
        s.count,
        s.within.as_secs(),
        PERIOD.as_millis(),
        kernel::ABUSERS
    );
    println!(
        "| hosts | sources per host | reports/s (fleet) | failed exchanges | abusers banned on every host | benign banned | delay p50 ms | max ms | scripts/s per host | Redis commands/s per host | bytes/s in per host | bytes/s out per host | Redis CPU (one core) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {:.0} | {} | {} / {} | {} | {} | {} | {} |",
            r.hosts,
            r.sources,
            r.reported,
            r.failed,
            r.banned_everywhere,
            kernel::ABUSERS,
            r.wrongly_banned,
            ms(r.p50),
            ms(r.max),
            cost_cells(&r.cost)
        );
    }
    println!();
}

/// Where one Redis core runs out, from the rows measured here.
pub fn capacity(limits: &[limits::Row], entries: &[entries::Row], kernel: &[kernel::Row]) {
    let all: Vec<Cost> = limits
        .iter()
        .map(|r| r.cost)
        .chain(entries.iter().map(|r| r.cost))
        .chain(kernel.iter().map(|r| r.cost))
        .collect();
    let (cmds, cpu) = all
        .iter()
        .fold((0.0, 0.0), |(n, c), r| (n + r.commands, c + r.cpu));
    let us = cpu * 1e6 / f64::max(cmds, 1.0);
    print!(
        "**Capacity.** Over every row, Redis spent {us:.1} µs of CPU per command (scripts' \
         commands counted); at 70% of one core that is about {:.0} commands a second. ",
        0.7e6 / us.max(1e-3)
    );
    // A host of each part at 50 hosts, 100 sources per host.
    let pick = |c: Option<Cost>, hosts: usize| c.map(|c| c.cpu / hosts as f64);
    let l = pick(
        limits
            .iter()
            .find(|r| r.hosts == 50 && r.sources == 100)
            .map(|r| r.cost),
        50,
    );
    let e = pick(entries.iter().find(|r| r.hosts == 50).map(|r| r.cost), 50);
    let k = pick(
        kernel
            .iter()
            .find(|r| r.hosts == 50 && r.sources == 100)
            .map(|r| r.cost),
        50,
    );
    if let (Some(l), Some(e), Some(k)) = (l, e, k) {
        let host = l + e + k;
        println!(
            "At 50 hosts, one host with one `fleet = true` zone and both kernel thresholds \
             (100 sources each per period) and its share of the bans costs Redis {:.2}% of a \
             core ({:.2}% limits, {:.2}% entries, {:.2}% kernel): one core at 70% carries \
             about {:.0} such hosts. Past that (or for more zones or sources), Redis Cluster is \
             necessary: a fleet's keys share one slot, so split the load into fleets (each its \
             own hash tag, so its own node).\n",
            host * 100.0,
            l * 100.0,
            e * 100.0,
            k * 100.0,
            0.7 / host.max(1e-9)
        );
    } else {
        println!();
    }
}

pub fn request_path(on: f64, off: f64) {
    println!(
        "Request path: a limit decision takes {on:.0} ns with `fleet = true` and {off:.0} ns \
         without (median of 3 runs, one zone, 1000 clients); no Redis round trip on it.\n"
    );
}
