//! The HTTP benchmark behind `cargo xtask bench http`: rampart, nginx and
//! HAProxy, configured alike (2 workers, upstream keep-alive, no access log),
//! proxying to the same fixed-response backend on this machine, measured in
//! one run with the order alternating between rounds. Prints Markdown (stdout).
//!
//! - HTTP/1.1 keep-alive: wrk at 16, 64 and 256 connections (req/s, p50, p99);
//! - HTTP/2 over TLS: h2load;
//! - CPU seconds of the proxy per 1,000 new TLS handshakes (4 batches of 1,000; h2load, one
//!   request per connection), read from /proc;
//! - peak RSS of the proxy's processes (VmHWM) under the wrk and h2load loads.

mod proxies;
mod tools;

use std::time::Duration;

use proxies::{Kind, Running};

pub struct Opts {
    pub secs: u64,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let opts = Opts {
        secs: if quick { 2 } else { 5 },
    };
    // SAFETY: geteuid takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "http-bench needs root (it binds ports and reads /proc of other users' processes)"
        );
        std::process::exit(1);
    }
    let backend = tools::backend();
    let dir = std::env::temp_dir().join(format!("rampart-http-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    tools::certs(&dir);
    let kinds = [Kind::Rampart, Kind::Nginx, Kind::Haproxy];
    let mut results: Vec<(Kind, Vec<(String, f64)>)> =
        kinds.iter().map(|k| (*k, Vec::new())).collect();
    // Two rounds, the order reversed in the second, averaged.
    for round in 0..2 {
        let order: Vec<usize> = if round == 0 {
            vec![0, 1, 2]
        } else {
            vec![2, 1, 0]
        };
        for i in order {
            let kind = kinds[i];
            eprintln!("round {round}: {kind:?}");
            let running = Running::start(kind, &dir, backend);
            std::thread::sleep(Duration::from_millis(500));
            let m = measure(&running, &opts);
            for (name, v) in m {
                match results[i].1.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, acc)) => *acc = (*acc + v) / 2.0,
                    None => results[i].1.push((name, v)),
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    report(&results);
}

fn measure(p: &Running, opts: &Opts) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for conns in [16, 64, 256] {
        let w = tools::wrk(
            &format!("http://127.0.0.1:{}/", p.http_port),
            conns,
            opts.secs,
        );
        out.push((format!("h1 {conns} rps"), w.rps));
        out.push((format!("h1 {conns} p50 ms"), w.p50_ms));
        out.push((format!("h1 {conns} p99 ms"), w.p99_ms));
    }
    let h2 = tools::h2load(
        &format!("https://127.0.0.1:{}/", p.https_port),
        &["-c", "16", "-m", "10", "-D", &opts.secs.to_string()],
    );
    out.push(("h2 rps".into(), h2));
    // Peak memory of the load above, before the handshake batches (whose
    // 1,000 simultaneous connections would dominate it).
    let rss = p.peak_rss_mib();
    let before = p.cpu_seconds();
    // Batches of 1,000 connections of one request each; enough batches that
    // the 10 ms CPU-time tick is a small error.
    let batches = if opts.secs >= 5 { 4 } else { 1 };
    for _ in 0..batches {
        tools::h2load(
            &format!("https://127.0.0.1:{}/", p.https_port),
            &["-n", "1000", "-c", "1000", "-m", "1", "--h1"],
        );
    }
    out.push((
        "tls cpu s/1000".into(),
        (p.cpu_seconds() - before) / batches as f64,
    ));
    out.push(("peak rss MiB".into(), rss));
    out
}

fn report(results: &[(Kind, Vec<(String, f64)>)]) {
    let nginx = &results.iter().find(|(k, _)| *k == Kind::Nginx).unwrap().1;
    let get = |m: &[(String, f64)], name: &str| {
        m.iter()
            .find(|(n, _)| n == name)
            .map_or(f64::NAN, |(_, v)| *v)
    };
    println!(
        "Machine: {} CPUs, kernel {}. Backend: a fixed 13-byte response from a 1-thread hyper server. Each proxy: 2 workers, keep-alive to the backend, no access log.\n",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        String::from_utf8_lossy(
            &std::process::Command::new("uname")
                .arg("-r")
                .output()
                .unwrap()
                .stdout
        )
        .trim()
    );
    println!("| measure | rampart | nginx | HAProxy | rampart / nginx | HAProxy / nginx |");
    println!("|---|---:|---:|---:|---:|---:|");
    let names: Vec<String> = results[0].1.iter().map(|(n, _)| n.clone()).collect();
    for name in names {
        let v: Vec<f64> = results.iter().map(|(_, m)| get(m, &name)).collect();
        let base = get(nginx, &name);
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.2}x | {:.2}x |",
            v[0],
            v[1],
            v[2],
            v[0] / base,
            v[2] / base
        );
    }
    println!();
}
