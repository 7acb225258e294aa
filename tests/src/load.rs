//! Steady HTTP/1.1 load for fault tests: GETs over new connections and over
//! keep-alive connections, from threads inside a namespace, until stopped
//! (or a time limit). Every request's outcome and latency is recorded.
//!
//! The keep-alive clients behave as HTTP clients do: when the server closes
//! an idle keep-alive connection just as a request goes out (nothing of a
//! response read), the idempotent request is sent again on a new connection
//! (RFC 9112 §9.3.1) and counted as a retry. Anything else that is not a
//! 200 counts as a failure.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::netns::NetNs;

/// What to send.
#[derive(Clone, Debug)]
pub struct Plan {
    pub addr: SocketAddr,
    pub path: String,
    /// Threads reusing one connection.
    pub keep_alive: usize,
    /// Threads opening a connection per request.
    pub new_connections: usize,
    /// Pause between a thread's requests (`None`: as fast as answers come).
    pub pace: Option<Duration>,
    /// Load stops by itself after this long, whatever happens.
    pub limit: Duration,
    /// Read timeout per request.
    pub timeout: Duration,
}

impl Plan {
    /// One keep-alive thread and one new-connection thread, unpaced, GET `path`.
    pub fn steady(addr: &str, path: &str) -> Plan {
        Plan {
            addr: addr.parse().unwrap(),
            path: path.to_string(),
            keep_alive: 1,
            new_connections: 1,
            pace: None,
            limit: Duration::from_secs(240),
            timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed_new: AtomicU64,
    failed_kept: AtomicU64,
    retried: AtomicU64,
    /// Answers other than 200, by status (0: no answer).
    statuses: Mutex<BTreeMap<u16, u64>>,
    /// Latency of every request that got an answer, in microseconds.
    latencies: Mutex<Vec<u32>>,
}

/// Load running in the background; [`Load::stop`] ends it and reports.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    tally: Arc<Tally>,
}

/// What the load saw.
#[derive(Debug)]
pub struct Report {
    pub ok: u64,
    pub failed_new: u64,
    pub failed_kept: u64,
    pub retried: u64,
    pub statuses: BTreeMap<u16, u64>,
    /// Sorted latencies of answered requests.
    pub latencies: Vec<Duration>,
}

impl Report {
    pub fn failed(&self) -> u64 {
        self.failed_new + self.failed_kept
    }

    /// The `p`th percentile (0-100) of answered requests' latency.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)]
    }

    /// "N served, M failed (a on new connections, b on keep-alive ones), r retries".
    pub fn summary(&self) -> String {
        format!(
            "{} served, {} failed ({} on new connections, {} on keep-alive ones; \
             statuses {:?}), {} idempotent retries; p50 {:?}, p99 {:?}, max {:?}",
            self.ok,
            self.failed(),
            self.failed_new,
            self.failed_kept,
            self.statuses,
            self.retried,
            self.percentile(50.0),
            self.percentile(99.0),
            self.latencies.last().copied().unwrap_or_default()
        )
    }
}

impl Load {
    /// Starts `plan` from namespace `ns` (threads enter it by name).
    pub fn start(ns: &NetNs, plan: Plan) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let mut threads = Vec::new();
        let kinds = std::iter::repeat_n(true, plan.keep_alive)
            .chain(std::iter::repeat_n(false, plan.new_connections));
        for keep_alive in kinds {
            let (stop, tally, plan) = (stop.clone(), tally.clone(), plan.clone());
            let ns = ns.name().to_string();
            threads.push(std::thread::spawn(move || {
                NetNs::existing(&ns).enter();
                client(&plan, keep_alive, &stop, &tally);
            }));
        }
        Load {
            stop,
            threads,
            tally,
        }
    }

    /// Requests answered with 200 so far.
    pub fn ok(&self) -> u64 {
        self.tally.ok.load(Ordering::Relaxed)
    }

    /// Failures so far.
    pub fn failed(&self) -> u64 {
        self.tally.failed_new.load(Ordering::Relaxed)
            + self.tally.failed_kept.load(Ordering::Relaxed)
    }

    pub fn stop(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let t = &self.tally;
        let mut latencies: Vec<Duration> = t
            .latencies
            .lock()
            .unwrap()
            .iter()
            .map(|us| Duration::from_micros(u64::from(*us)))
            .collect();
        latencies.sort();
        Report {
            ok: t.ok.load(Ordering::Relaxed),
            failed_new: t.failed_new.load(Ordering::Relaxed),
            failed_kept: t.failed_kept.load(Ordering::Relaxed),
            retried: t.retried.load(Ordering::Relaxed),
            statuses: t.statuses.lock().unwrap().clone(),
            latencies,
        }
    }
}

fn client(plan: &Plan, keep_alive: bool, stop: &AtomicBool, tally: &Tally) {
    let deadline = Instant::now() + plan.limit;
    let mut conn: Option<BufReader<TcpStream>> = None;
    let failed = if keep_alive {
        &tally.failed_kept
    } else {
        &tally.failed_new
    };
    let fail = |status: u16| {
        failed.fetch_add(1, Ordering::Relaxed);
        *tally.statuses.lock().unwrap().entry(status).or_default() += 1;
    };
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        if let Some(pace) = plan.pace {
            std::thread::sleep(pace);
        }
        let started = Instant::now();
        let reused = conn.is_some();
        let Some(mut c) = conn.take().or_else(|| connect(plan)) else {
            fail(0);
            continue;
        };
        let mut outcome = request(&mut c, &plan.path, !keep_alive);
        // Closed before any response on a reused connection: retry once on a new one.
        if outcome.is_err() && reused {
            tally.retried.fetch_add(1, Ordering::Relaxed);
            match connect(plan) {
                Some(fresh) => {
                    c = fresh;
                    outcome = request(&mut c, &plan.path, false);
                }
                None => outcome = Err(()),
            }
        }
        let took = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        match outcome {
            Ok(200) => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
                tally.latencies.lock().unwrap().push(took);
                if keep_alive {
                    conn = Some(c);
                }
            }
            Ok(status) => {
                tally.latencies.lock().unwrap().push(took);
                fail(status);
            }
            Err(()) => fail(0),
        }
    }
}

fn connect(plan: &Plan) -> Option<BufReader<TcpStream>> {
    let s = TcpStream::connect_timeout(&plan.addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(plan.timeout)).ok()?;
    s.set_nodelay(true).ok()?;
    Some(BufReader::new(s))
}

/// One GET on `stream`: the status, or `Err` when the connection closed
/// before any byte of a response (or the body was cut short: status 0 then).
fn request(stream: &mut BufReader<TcpStream>, path: &str, close: bool) -> Result<u16, ()> {
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\n{}\r\n",
        if close { "Connection: close\r\n" } else { "" }
    );
    stream
        .get_mut()
        .write_all(head.as_bytes())
        .map_err(|_| ())?;
    let mut status = String::new();
    match stream.read_line(&mut status) {
        Ok(0) | Err(_) => return Err(()),
        Ok(_) => {}
    }
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).unwrap_or(0) == 0 {
            return Ok(0);
        }
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    if stream.read_exact(&mut body).is_err() {
        return Ok(0);
    }
    Ok(code)
}
