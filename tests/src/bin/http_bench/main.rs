//! The HTTP benchmark behind `cargo xtask bench http`: rampart, nginx and
//! HAProxy, configured alike (the same number of workers, upstream
//! keep-alive, no access log), each proxying to two backends in turn:
//! rampart's bench backend (hyper) and nginx's `return 200`. Per backend,
//! the proxies run one after another in each round, the order rotated
//! from round to round; every figure is the mean of the rounds and every
//! ratio is between proxies of the same run. Prints Markdown (or JSON with
//! `-j`) on stdout.
//!
//! - HTTP/1.1 keep-alive: wrk (2 threads) at 16, 64 and 256 connections:
//!   req/s, p99, CPU per request of the proxy and of the backend;
//! - HTTP/2 over TLS: h2load at N connections x M streams each (`-m`):
//!   req/s and CPU per request;
//! - CPU seconds of the proxy per 1,000 new TLS handshakes (h2load, one
//!   HTTP/1.1 request per connection), against the first backend only;
//! - peak RSS of the proxy's processes (VmHWM) under the loads above.
//!
//! CPU is utime + stime from /proc/PID/stat, summed over the process group.
//! Everything (load generators included) shares the machine's CPUs.

mod backends;
mod opts;
mod procstat;
mod proxies;
mod report;
mod tools;

use std::time::Duration;

use backends::Backend;
use opts::Opts;
use proxies::{Kind, Running};
use report::Record;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, port] = args.as_slice()
        && flag == "--serve-backend"
    {
        backends::serve_hyper(port.parse().expect("--serve-backend PORT"));
    }
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{}", opts::USAGE);
        return;
    }
    let opts = match Opts::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("http-bench: {e}\n\n{}", opts::USAGE);
            std::process::exit(2);
        }
    };
    // SAFETY: geteuid takes nothing and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "http-bench needs root (it binds ports and reads /proc of other users' processes)"
        );
        std::process::exit(1);
    }
    let dir = std::env::temp_dir().join(format!("rampart-http-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    certs(&dir, opts.tls_key);
    let started = utc_now();
    let load_before = procstat::load_average();
    let mut records = Vec::new();
    let mut loads = Vec::new();
    for (b, &backend_kind) in opts.backends.iter().enumerate() {
        let backend = Backend::start(backend_kind, &dir, opts.backend_keepalive_requests);
        for round in 0..opts.rounds {
            for kind in rotated(&opts.proxies, round) {
                let load = procstat::load_average();
                eprintln!(
                    "{} backend, round {round}: {} (load average {load})",
                    backend_kind.name(),
                    kind.name()
                );
                loads.push(load);
                let running = Running::start(kind, &dir, backend.addr, opts.tuning);
                std::thread::sleep(Duration::from_millis(300));
                for (row, value) in measure(&running, &backend, &opts, b == 0) {
                    records.push(Record {
                        backend: backend_kind.name(),
                        round,
                        proxy: kind,
                        row,
                        value,
                    });
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let rows = report::rows(&records, opts.rounds);
    if opts.json {
        let out = serde_json::json!({
            "started": started,
            "load_average_before": load_before,
            "load_average_after": procstat::load_average(),
            "load_average_at_each_proxy_start": loads,
            "options": opts.describe(),
            "rows": report::to_json(&rows),
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap());
        return;
    }
    println!(
        "Machine: {} CPUs, kernel {}. Measured {started}; load average (1/5/15 min) {load_before} \
         at the start, {} at the end: the machine is shared with other builds, so absolute \
         figures are under load and the ratios within this run are what count. {}\n",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        command_out("uname", &["-r"]),
        procstat::load_average(),
        opts.describe(),
    );
    for b in &opts.backends {
        println!(
            "### Backend: {}\n",
            b.describe(opts.backend_keepalive_requests)
        );
        println!("{}", report::table(&rows, b.name()));
    }
}

/// The proxies in `round`'s order: rotated by one each round.
fn rotated(proxies: &[Kind], round: usize) -> Vec<Kind> {
    let n = proxies.len().max(1);
    (0..proxies.len())
        .map(|i| proxies[(i + round) % n])
        .collect()
}

/// CPU seconds of the proxy and of the backend while `f` runs.
fn with_cpu<T>(p: &Running, b: &Backend, f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (p0, b0) = (p.cpu_seconds(), b.cpu_seconds());
    let out = f();
    (out, p.cpu_seconds() - p0, b.cpu_seconds() - b0)
}

fn per_request_us(cpu_s: f64, requests: u64) -> f64 {
    if requests == 0 {
        f64::NAN
    } else {
        cpu_s * 1e6 / requests as f64
    }
}

fn measure(p: &Running, b: &Backend, opts: &Opts, tls: bool) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let plain = format!("http://127.0.0.1:{}/", p.http_port);
    let secure = format!("https://127.0.0.1:{}/", p.https_port);
    // Warm-up: upstream pools filled, code paged in; not measured.
    if !opts.h1.is_empty() {
        tools::wrk(&plain, 64, 1);
    }
    if !opts.h2.is_empty() {
        tools::h2load_h2(&secure, 16, 10, 1, opts.h2load_threads);
    }
    for &conns in &opts.h1 {
        let (l, pc, bc) = with_cpu(p, b, || tools::wrk(&plain, conns, opts.secs));
        let name = format!("h1 {conns}c");
        out.push((format!("{name} req/s"), l.rps));
        out.push((format!("{name} p99 ms"), l.p99_ms.unwrap_or(f64::NAN)));
        out.push((
            format!("{name} proxy CPU µs/req"),
            per_request_us(pc, l.requests),
        ));
        out.push((
            format!("{name} backend CPU µs/req"),
            per_request_us(bc, l.requests),
        ));
        if l.errors > 0 {
            out.push((format!("{name} errors"), l.errors as f64));
        }
    }
    for &(conns, streams) in &opts.h2 {
        let (l, pc, bc) = with_cpu(p, b, || {
            tools::h2load_h2(&secure, conns, streams, opts.secs, opts.h2load_threads)
        });
        let name = format!("h2 {conns}c x {streams} streams");
        out.push((format!("{name} req/s"), l.rps));
        out.push((
            format!("{name} proxy CPU µs/req"),
            per_request_us(pc, l.requests),
        ));
        out.push((
            format!("{name} backend CPU µs/req"),
            per_request_us(bc, l.requests),
        ));
        if l.errors > 0 {
            out.push((format!("{name} errors"), l.errors as f64));
        }
    }
    // Peak memory of the loads above, before the handshake batches (whose
    // 1,000 simultaneous connections would dominate it).
    out.push(("peak RSS MiB".into(), p.peak_rss_mib()));
    if tls && opts.tls_batches > 0 {
        // Batches of 1,000 connections of one request each; enough batches
        // that the 10 ms CPU-time tick is a small error.
        let before = p.cpu_seconds();
        let mut errors = 0;
        for _ in 0..opts.tls_batches {
            let l = tools::h2load(&secure, &["-n", "1000", "-c", "1000", "-m", "1", "--h1"]);
            // Unanswered requests (refused, reset or timed-out handshakes)
            // count too: h2load's `failed` includes them.
            errors += l.errors.max(1000u64.saturating_sub(l.requests));
        }
        out.push((
            "TLS handshake + request: proxy CPU ms".into(),
            (p.cpu_seconds() - before) / opts.tls_batches as f64,
        ));
        if errors > 0 {
            out.push(("TLS handshake + request errors".into(), errors as f64));
        }
    }
    out
}

fn command_out(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn utc_now() -> String {
    command_out("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
}

fn certs(dir: &std::path::Path, key: ::tests::certs::KeyAlg) {
    ::tests::certs::self_signed_with(dir, "site", key);
    // HAProxy wants the certificate and key in one file.
    let pem = [
        std::fs::read(dir.join("site.crt")).unwrap(),
        std::fs::read(dir.join("site.key")).unwrap(),
    ]
    .concat();
    std::fs::write(dir.join("site.pem"), pem).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_rotates_by_one_each_round() {
        let all = Kind::ALL;
        assert_eq!(rotated(&all, 0), all.to_vec());
        assert_eq!(
            rotated(&all, 1),
            vec![Kind::Nginx, Kind::Haproxy, Kind::Rampart]
        );
        assert_eq!(rotated(&all, 3), all.to_vec());
        assert!(rotated(&[], 1).is_empty());
    }

    #[test]
    fn cpu_per_request_in_microseconds() {
        assert!((per_request_us(0.5, 25_000) - 20.0).abs() < 1e-9);
        assert!(per_request_us(0.5, 0).is_nan());
    }
}
