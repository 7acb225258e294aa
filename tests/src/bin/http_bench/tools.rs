//! The load generators (wrk for HTTP/1.1, h2load for HTTP/2 and TLS
//! handshakes) and what is read from their output.

use std::process::Command;

/// One load run's outcome, as the tool reported it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    pub rps: f64,
    /// Requests completed (successful or not).
    pub requests: u64,
    /// Failed requests, socket errors and non-2xx/3xx responses.
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// wrk, 2 threads, keep-alive: `conns` connections for `secs` seconds.
pub fn wrk(url: &str, conns: u32, secs: u64) -> Load {
    let out = Command::new("wrk")
        .args(["-t", "2", "-c", &conns.to_string()])
        .args([
            "-d",
            &format!("{secs}s"),
            "--timeout",
            "5s",
            "--latency",
            url,
        ])
        .output()
        .expect("running wrk");
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

/// Reads wrk's `--latency` report.
pub fn parse_wrk(text: &str) -> Load {
    let lines = || text.lines().map(str::trim);
    let num = |s: &str| s.trim().parse::<f64>().unwrap_or(0.0);
    let rps = lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .map_or(0.0, num);
    let requests = lines()
        .find_map(|l| l.split_once(" requests in ").map(|(n, _)| n))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let non2xx: u64 = lines()
        .find_map(|l| l.strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    // "Socket errors: connect 0, read 1, write 0, timeout 2"
    let socket: u64 = lines()
        .find_map(|l| l.strip_prefix("Socket errors:"))
        .map_or(0, |s| {
            s.split(',')
                .filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum()
        });
    let pct = |p: &str| {
        lines()
            .find_map(|l| l.strip_prefix(p))
            .and_then(|v| to_ms(v.trim()))
    };
    Load {
        rps,
        requests,
        errors: non2xx + socket,
        p50_ms: pct("50%"),
        p99_ms: pct("99%"),
    }
}

/// wrk's and h2load's durations (`312.00us`, `2.60ms`, `1.02s`) in ms.
fn to_ms(v: &str) -> Option<f64> {
    let at = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = v.split_at(at);
    let n: f64 = num.parse().ok()?;
    match unit {
        "us" => Some(n / 1000.0),
        "ms" => Some(n),
        "s" => Some(n * 1000.0),
        "m" => Some(n * 60_000.0),
        _ => None,
    }
}

/// h2load over TLS with ALPN h2: `conns` connections with at most
/// `streams` requests in flight on each, for `secs` seconds, on `threads` threads.
pub fn h2load_h2(url: &str, conns: u32, streams: u32, secs: u64, threads: u32) -> Load {
    let threads = threads.min(conns).max(1);
    h2load(
        url,
        &[
            "-t",
            &threads.to_string(),
            "-c",
            &conns.to_string(),
            "-m",
            &streams.to_string(),
            "-D",
            &secs.to_string(),
        ],
    )
}

/// Runs h2load with `args` against `url`.
pub fn h2load(url: &str, args: &[&str]) -> Load {
    let out = Command::new("h2load")
        .args(args)
        .arg(url)
        .output()
        .expect("running h2load");
    parse_h2load(&String::from_utf8_lossy(&out.stdout))
}

/// Reads h2load's summary: the `finished in` line's rate and the
/// `requests:` and `status codes:` lines' counts.
pub fn parse_h2load(text: &str) -> Load {
    let line = |p: &str| text.lines().find_map(|l| l.trim().strip_prefix(p));
    let rps = line("finished in")
        .and_then(|l| l.split(',').nth(1))
        .and_then(|s| s.trim().strip_suffix(" req/s"))
        .map_or(0.0, |v| v.trim().parse().unwrap_or(0.0));
    // "requests: 100 total, 100 started, 100 done, 98 succeeded, 2 failed, 2 errored, 0 timeout"
    let count = |l: Option<&str>, what: &str| -> u64 {
        l.and_then(|l| {
            l.split(',').find_map(|p| {
                let mut w = p.split_whitespace();
                let n = w.next()?.parse().ok()?;
                (w.next()? == what).then_some(n)
            })
        })
        .unwrap_or(0)
    };
    let reqs = line("requests:");
    let codes = line("status codes:");
    // "failed" counts the errored and timed-out ones too.
    let errors = count(reqs, "failed") + count(codes, "4xx") + count(codes, "5xx");
    Load {
        rps,
        requests: count(reqs, "done"),
        errors,
        p50_ms: None,
        p99_ms: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 5s test @ http://127.0.0.1:8080/
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   420.51us  310.22us   9.99ms   91.02%
    Req/Sec    19.13k     1.02k   21.20k    70.00%
  Latency Distribution
     50%  312.00us
     75%  450.00us
     90%  700.00us
     99%    2.60ms
  190380 requests in 5.00s, 23.42MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 12
Requests/sec:  38076.12
Transfer/sec:      4.68MB
";

    #[test]
    fn wrk_report_is_read() {
        let l = parse_wrk(WRK);
        assert!((l.rps - 38076.12).abs() < 1e-6);
        assert_eq!(l.requests, 190_380);
        assert_eq!(l.errors, 12 + 3 + 2);
        assert_eq!(l.p50_ms, Some(0.312));
        assert_eq!(l.p99_ms, Some(2.6));
    }

    #[test]
    fn empty_or_failed_wrk_output_reads_as_nothing_done() {
        let l = parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n");
        assert_eq!(l.rps, 0.0);
        assert_eq!(l.requests, 0);
        assert_eq!(l.p99_ms, None);
    }

    const H2LOAD: &str = "starting benchmark...
spawning thread #0: 16 total client(s). Timing-based test with 0s of warm-up time and 5s of main duration for measurements.
Application protocol: h2
finished in 5.00s, 54464.70 req/s, 1.73MB/s
requests: 272324 total, 272330 started, 272324 done, 272320 succeeded, 4 failed, 1 errored, 0 timeout
status codes: 272320 2xx, 0 3xx, 0 4xx, 3 5xx
traffic: 8.67MB (9091234) total, 2.08MB (2180000) headers (space savings 93.10%), 3.38MB (3540212) data
";

    #[test]
    fn h2load_summary_is_read() {
        let l = parse_h2load(H2LOAD);
        assert!((l.rps - 54464.70).abs() < 1e-6);
        assert_eq!(l.requests, 272_324);
        assert_eq!(l.errors, 4 + 3, "failed + 5xx (errored is part of failed)");
        assert_eq!(l.p99_ms, None);
    }

    #[test]
    fn durations_convert_to_ms() {
        assert_eq!(to_ms("1.5s"), Some(1500.0));
        assert_eq!(to_ms("250.00us"), Some(0.25));
        assert_eq!(to_ms("12ms"), Some(12.0));
        assert_eq!(to_ms("12"), None);
        assert_eq!(to_ms("x1ms"), None);
    }
}
