//! Abuse at L7 with no kernel filter in front (so the proxy alone is tested;
//! the XDP tier would limit these sources' connection rate first):
//! slowloris heads and slow bodies beside legitimate clients, and ten
//! thousand idle keep-alive connections, measured against nginx.

use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpStream},
    os::unix::process::CommandExt,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use tests::{
    backend::named_backend,
    load::{Load, Plan},
    netns::NetNs,
    privilege::require_root,
    process::{Spawned, cpu_time, raise_open_files, rss_kib},
    scaled,
};

use crate::support::{EDGE, Edge, ONE_APP, figure};

/// Attack connections that send `prefix`, then one byte of `drip` a second,
/// each reconnecting when the server closes it, until stopped.
struct Trickle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Connections the server closed.
    reaped: Arc<AtomicU64>,
    /// Connections open now.
    open: Arc<AtomicU64>,
    /// Bytes dripped so far (prefixes not counted).
    dripped: Arc<AtomicU64>,
}

impl Trickle {
    fn start(ns: &NetNs, addr: &str, n: usize, prefix: &'static [u8], drip: u8) -> Trickle {
        let addr: SocketAddr = addr.parse().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (reaped, open, dripped) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let (s, r, o, d, ns) = (
            stop.clone(),
            reaped.clone(),
            open.clone(),
            dripped.clone(),
            ns.name().to_string(),
        );
        let thread = std::thread::spawn(move || {
            NetNs::existing(&ns).enter();
            let connect = || {
                let c = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
                (&c).write_all(prefix).ok()?;
                c.set_nonblocking(true).ok()?;
                Some(c)
            };
            let mut conns: Vec<Option<TcpStream>> = (0..n).map(|_| connect()).collect();
            let limit = Instant::now() + Duration::from_secs(600);
            let mut buf = [0u8; 512];
            while !s.load(Ordering::Relaxed) && Instant::now() < limit {
                let mut alive = 0;
                for slot in conns.iter_mut() {
                    let closed = match slot {
                        None => true,
                        Some(c) => {
                            let answered = !matches!(c.read(&mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock);
                            let closed = answered || c.write_all(&[drip]).is_err();
                            d.fetch_add(u64::from(!closed), Ordering::Relaxed);
                            closed
                        }
                    };
                    if closed {
                        if slot.is_some() {
                            r.fetch_add(1, Ordering::Relaxed);
                        }
                        *slot = connect();
                    }
                    alive += usize::from(slot.is_some());
                }
                o.store(alive as u64, Ordering::Relaxed);
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        Trickle {
            stop,
            thread: Some(thread),
            reaped,
            open,
            dripped,
        }
    }
}

impl Trickle {
    fn dripped(&self) -> u64 {
        self.dripped.load(Ordering::Relaxed)
    }
}

impl Drop for Trickle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Legitimate clients: one keep-alive and one new-connection client, a
/// request every 10 ms each.
fn polite(addr: &str) -> Plan {
    let mut plan = Plan::steady(addr, "/");
    plan.pace = Some(Duration::from_millis(10));
    plan
}

/// What a proxy showed under the slow attack.
struct Slowed {
    p99_before: Duration,
    p99_during: Duration,
    failed: u64,
    served: u64,
    reaped_heads: u64,
    reaped_bodies: u64,
    rss_before: u64,
    rss_peak: u64,
    /// The proxy's CPU a second while only legitimate clients came, and
    /// during the attack.
    cpu_before: Duration,
    cpu_during: Duration,
    /// Attack bytes dripped a second during the attack.
    dripped: f64,
}

impl Slowed {
    fn ratio(&self) -> f64 {
        self.p99_during.as_secs_f64() / self.p99_before.as_secs_f64().max(1e-6)
    }

    /// The proxy's CPU a second before and during the attack, and what
    /// the attack cost: the difference (the legitimate clients' share
    /// taken out) in milliseconds a second and microseconds per attack
    /// byte, or that it was within the noise of the measure.
    fn attack_cpu(&self) -> String {
        let (before, during) = (
            self.cpu_before.as_secs_f64() * 1e3,
            self.cpu_during.as_secs_f64() * 1e3,
        );
        let cost = during - before;
        let what = if cost > 0.0 {
            format!(
                "the attack cost {cost:.1} ms a second, {:.2} µs per attack byte",
                cost * 1e3 / self.dripped.max(1.0)
            )
        } else {
            "no cost of the attack measurable".to_string()
        };
        format!(
            "CPU {before:.1} ms a second before, {during:.1} during: {what} ({:.0} bytes a \
             second)",
            self.dripped
        )
    }
}

/// The proxy's resources, as `slow_attack` reads them.
struct Gauges<'a> {
    /// Resident memory in KiB.
    rss: &'a dyn Fn() -> u64,
    /// CPU time used so far.
    cpu: &'a dyn Fn() -> Duration,
}

/// `n` slow heads and `n` slow bodies against the proxy at `addr`, with
/// legitimate clients measured before and during.
fn slow_attack(ns: &NetNs, addr: &str, n: usize, proxy: Gauges) -> Slowed {
    let Gauges { rss, cpu } = proxy;
    let load = Load::start(ns, polite(addr));
    let quiet = Duration::from_secs(scaled(5, 60));
    let cpu0 = cpu();
    std::thread::sleep(quiet);
    let cpu_before = (cpu() - cpu0).div_f64(quiet.as_secs_f64());
    let before = load.stop();
    let rss_before = rss();
    let heads = Trickle::start(ns, addr, n, b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ", b'x');
    let bodies = Trickle::start(
        ns,
        addr,
        n,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n",
        b'a',
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while heads.open.load(Ordering::Relaxed) + bodies.open.load(Ordering::Relaxed)
        < 2 * n as u64 - 50
    {
        assert!(Instant::now() < deadline, "the attack could not connect");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Past the header timeout (10 s), so the heads get reaped.
    let attack = Duration::from_secs(scaled(15, 120));
    let load = Load::start(ns, polite(addr));
    let started = Instant::now();
    let (cpu0, dripped0) = (cpu(), heads.dripped() + bodies.dripped());
    let mut rss_peak = 0;
    while started.elapsed() < attack {
        rss_peak = rss_peak.max(rss());
        std::thread::sleep(Duration::from_millis(250));
    }
    let took = started.elapsed().as_secs_f64();
    let cpu_during = (cpu() - cpu0).div_f64(took);
    let dripped = (heads.dripped() + bodies.dripped() - dripped0) as f64 / took;
    let during = load.stop();
    let slowed = Slowed {
        p99_before: before.percentile(99.0),
        p99_during: during.percentile(99.0),
        failed: before.failed() + during.failed(),
        served: during.ok,
        reaped_heads: heads.reaped.load(Ordering::Relaxed),
        reaped_bodies: bodies.reaped.load(Ordering::Relaxed),
        rss_before,
        rss_peak,
        cpu_before,
        cpu_during,
        dripped,
    };
    drop((heads, bodies));
    slowed
}

/// 2,000 slowloris connections (a head one byte a second) and 2,000 slow
/// POST bodies (one byte a second), against rampart and then nginx in the
/// same run. Target: legitimate clients' p99 during the attack within 2x
/// of before it, and no failed request.
#[test]
fn slowloris_and_slow_bodies_leave_legitimate_clients_served() {
    if !require_root("slowloris_and_slow_bodies_leave_legitimate_clients_served") {
        return;
    }
    raise_open_files(65_536);
    let mut edge = Edge::new("slow");
    named_backend(&edge.ns, 9001, "app");
    edge.start(ONE_APP);
    let pid = edge.pid();
    let n = 2000;
    let r = slow_attack(
        &edge.ns,
        EDGE,
        n,
        Gauges {
            rss: &|| rss_kib(pid),
            cpu: &|| cpu_time(pid),
        },
    );
    let nginx = nginx(&edge.ns, &edge.dir, "127.0.0.1:8081");
    let x = slow_attack(
        &edge.ns,
        "127.0.0.1:8081",
        n,
        Gauges {
            rss: &|| nginx.rss_kib(),
            cpu: &|| nginx.cpu_time(),
        },
    );
    let line = |s: &Slowed| {
        format!(
            "p99 {:?} before, {:?} during = {:.2}x; failed {} of {}; {} slow heads closed \
             at the header timeout, {} slow bodies closed; RSS {} KiB before, peak {} KiB \
             (+{} KiB per attack connection); {}",
            s.p99_before,
            s.p99_during,
            s.ratio(),
            s.failed,
            s.served + s.failed,
            s.reaped_heads,
            s.reaped_bodies,
            s.rss_before,
            s.rss_peak,
            s.rss_peak.saturating_sub(s.rss_before) / (2 * n as u64),
            s.attack_cpu()
        )
    };
    figure(
        "slowloris + slow bodies",
        format!(
            "{n} slow heads + {n} slow bodies; legitimate clients: rampart {} (target <= 2x: \
             {}); nginx {}",
            line(&r),
            if r.ratio() <= 2.0 { "met" } else { "missed" },
            line(&x)
        ),
    );
    assert_eq!(r.failed, 0, "{}", line(&r));
    assert!(r.served > 100, "{}", line(&r));
    assert!(
        r.reaped_heads >= n as u64 / 2,
        "slow heads were not closed at header_timeout: {}",
        line(&r)
    );
}

/// Opens `n` connections to `addr`, each sending one GET and reading its
/// answer (ending in `body`), then left idle.
fn idle_connections(addr: SocketAddr, n: usize, body: &[u8]) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(n);
    let mut buf = Vec::new();
    for i in 0..n {
        let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("connection {i} to {addr}: {e}"));
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        buf.clear();
        let mut chunk = [0u8; 1024];
        while !(buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.ends_with(body)) {
            let got = c
                .read(&mut chunk)
                .unwrap_or_else(|e| panic!("connection {i} to {addr}: {e}"));
            assert!(
                got > 0,
                "connection {i} closed: {}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..got]);
        }
        conns.push(c);
    }
    conns
}

/// A process started in a process group of its own; the whole group is
/// killed on drop (nginx's workers with its master).
struct Group(Spawned);

impl Group {
    fn rss_kib(&self) -> u64 {
        self.pids().map(rss_kib).sum()
    }

    fn cpu_time(&self) -> Duration {
        self.pids().map(cpu_time).sum()
    }

    /// The group's processes.
    fn pids(&self) -> impl Iterator<Item = i32> + use<> {
        let pgid = self.0.pid();
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(move |pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|s| {
                        s.rsplit(')')
                            .next()?
                            .split_whitespace()
                            .nth(2)?
                            .parse::<i32>()
                            .ok()
                    })
                    == Some(pgid)
            })
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: signalling the process group this test started.
        unsafe { libc::kill(-self.0.pid(), libc::SIGKILL) };
    }
}

/// nginx with two workers proxying `listen` to 127.0.0.1:9001, keep-alive
/// on both sides as the benchmark configures it, and rampart's default
/// timeouts (header 10 s, keep-alive 75 s).
fn nginx(ns: &NetNs, dir: &std::path::Path, listen: &str) -> Group {
    let d = dir.display();
    let cfg = format!(
        "worker_processes 2;\nworker_rlimit_nofile 20000;\ndaemon off;\npid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log warn;\nevents {{ worker_connections 20000; }}\n\
         http {{\n access_log off;\n keepalive_timeout 75s;\n client_header_timeout 10s;\n keepalive_requests 1000000;\n\
         upstream app {{ server 127.0.0.1:9001; keepalive 32; }}\n\
         server {{\n  listen {listen};\n  location / {{ proxy_pass http://app; \
         proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n }}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), cfg).unwrap();
    let mut cmd = ns.command("nginx");
    cmd.arg("-c")
        .arg(dir.join("nginx.conf"))
        .args(["-e", &format!("{d}/nginx-error.log")])
        .process_group(0);
    let mut proc = Spawned::start("nginx", cmd, &dir.join("nginx.log"));
    let addr: SocketAddr = listen.parse().unwrap();
    proc.wait_until(Duration::from_secs(10), || {
        ns.run(move || TcpStream::connect(addr).is_ok())
    });
    Group(proc)
}

/// 10,000 idle keep-alive connections (each has made one request). Target:
/// memory per connection no more than nginx's, measured in the same run.
#[test]
fn ten_thousand_idle_keepalive_connections_cost_no_more_than_with_nginx() {
    if !require_root("ten_thousand_idle_keepalive_connections_cost_no_more_than_with_nginx") {
        return;
    }
    let n = 10_000;
    // The client ends of the connections are in this process.
    let hard = raise_open_files(2 * n as u64 + 1024);
    assert!(
        hard > n as u64 + 1024,
        "the open-files hard limit ({hard}) is too low to hold {n} connections"
    );
    let mut edge = Edge::new("idle");
    // As nginx's worker_connections below: room for them all.
    edge.listener = "max_connections = 20000".into();
    named_backend(&edge.ns, 9001, "app");
    edge.start(
        "[upstream.app]\nservers = [\"127.0.0.1:9001\"]\n\n\
         [[route]]\nupstream = \"app\"\naccess_log = false\n",
    );
    let nginx = nginx(&edge.ns, &edge.dir, "127.0.0.1:8081");
    let pid = edge.pid();
    let mut per_conn = Vec::new();
    for (name, addr) in [("rampart", EDGE), ("nginx", "127.0.0.1:8081")] {
        let addr: SocketAddr = addr.parse().unwrap();
        let rss = |name: &str| {
            if name == "rampart" {
                rss_kib(pid)
            } else {
                nginx.rss_kib()
            }
        };
        // Warm up: the first requests size buffers and pools.
        drop(edge.ns.run(move || idle_connections(addr, 100, b"app")));
        std::thread::sleep(Duration::from_millis(300));
        let before = rss(name);
        let conns = edge.ns.run(move || idle_connections(addr, n, b"app"));
        // Long enough for idle connections to be parked (after a second of
        // idleness) and for freed memory to go back (looked at every 10 s).
        std::thread::sleep(Duration::from_secs(if name == "rampart" { 11 } else { 3 }));
        let after = rss(name);
        // Still open and served after the idle second.
        let mut last = conns.last().unwrap();
        last.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 512];
        assert!(
            last.read(&mut buf).unwrap() > 0,
            "{name} closed an idle connection"
        );
        drop(conns);
        per_conn.push((
            name,
            before,
            after,
            (after.saturating_sub(before)) * 1024 / n as u64,
        ));
    }
    let (r, x) = (per_conn[0].3, per_conn[1].3);
    let ratio = r as f64 / x.max(1) as f64;
    figure(
        "10k idle keep-alive connections",
        format!(
            "bytes of RSS per idle connection: rampart {r} ({} -> {} KiB), nginx {x} \
             ({} -> {} KiB) = {ratio:.2}x nginx (target <= 1x: {})",
            per_conn[0].1,
            per_conn[0].2,
            per_conn[1].1,
            per_conn[1].2,
            if ratio <= 1.0 { "met" } else { "missed" }
        ),
    );
    // The target, asserted: a build that keeps freed connection buffers
    // resident (mimalloc or jemalloc without a give-back: 20x nginx,
    // BENCHMARKS.md) fails here instead of only printing "missed".
    assert!(
        ratio <= 1.0,
        "idle keep-alive connections cost {r} bytes of RSS each against nginx's {x} ({ratio:.2}x)"
    );
}
