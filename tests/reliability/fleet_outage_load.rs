//! The fleet with Redis gone for a minute under load (issue 18's target:
//! "Redis killed for 60 s under load, then restarted empty: 0 failed
//! requests; local enforcement throughout; all entries back in Redis and
//! on every host within 5 s of its return"). Three daemons, a real
//! redis-server without persistence, eight client threads sending
//! keep-alive GETs to the three hosts before, during and after the
//! outage. RAMPART_OUTAGE_SECS shortens the outage while developing
//! (default 60, what CI runs).

use std::{
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpStream},
    sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed},
    time::{Duration, Instant},
};

use tests::redis::Redis;

use super::fleet_host::{FLEET, Host, get_path, root, wait_for};

const THREADS: usize = 8;
/// Per thread: the bound on its requests, whatever the outage's length.
const MAX_PER_THREAD: u64 = 1_000_000;
/// Between two requests of one thread (8 threads: at most ~8,000 r/s).
const PAUSE: Duration = Duration::from_millis(1);

const TABLE: &str = "[limit.local]\nrate = \"5r/s\"\nburst = 5\nnodelay = true\n";
const ROUTE: &str = "[[route]]\npath = \"/limited\"\nlimit = \"local\"\nrespond = 200\n";

/// Before, during and after the outage.
const PHASES: usize = 3;

#[derive(Default)]
struct Tally {
    served: [AtomicU64; PHASES],
    failed: [AtomicU64; PHASES],
}

fn outage() -> Duration {
    let secs = std::env::var("RAMPART_OUTAGE_SECS")
        .ok()
        .map(|s| {
            s.parse::<u64>()
                .unwrap_or_else(|e| panic!("RAMPART_OUTAGE_SECS={s}: {e}"))
        })
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// One keep-alive connection from `src` to 127.0.0.1:`port`.
fn connect(port: u16, src: &str) -> std::io::Result<BufReader<TcpStream>> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let src: SocketAddr = format!("{src}:0").parse().unwrap();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    sock.bind(&src.into())?;
    sock.connect_timeout(&to.into(), Duration::from_secs(2))?;
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_nodelay(true)?;
    Ok(BufReader::new(s))
}

/// One GET on the connection: its status, and whether the server keeps
/// the connection open. Any transport error, or an answer without a
/// `Content-Length`, is an error.
fn get(conn: &mut BufReader<TcpStream>) -> std::io::Result<(u16, bool)> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    conn.get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")?;
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Err(bad("closed before the answer"));
    }
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(&format!("status line {line:?}")))?;
    let (mut length, mut open) = (None, true);
    loop {
        line.clear();
        if conn.read_line(&mut line)? == 0 {
            return Err(bad("closed in the head"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let Some((name, value)) = l.split_once(':') else {
            return Err(bad(&format!("header {l:?}")));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            open = false;
        }
    }
    let mut body = vec![0; length.ok_or_else(|| bad("no Content-Length"))?];
    std::io::Read::read_exact(conn, &mut body)?;
    Ok((status, open))
}

/// One client thread: keep-alive GETs from `src` to `port` while `run`,
/// each counted in the current `phase` as served (a 200) or failed
/// (another status, or a transport error; the connection is then opened
/// anew; its first three failures are printed).
fn client(port: u16, src: &str, run: &AtomicBool, phase: &AtomicUsize, tally: &Tally) {
    let (start, limit) = (Instant::now(), outage() + Duration::from_secs(120));
    let (mut conn, mut said) = (None, 0);
    for _ in 0..MAX_PER_THREAD {
        if !run.load(Relaxed) || start.elapsed() > limit {
            return;
        }
        let p = phase.load(Relaxed);
        let answer = match conn.as_mut() {
            Some(c) => get(c),
            None => connect(port, src).and_then(|mut c| {
                let a = get(&mut c);
                conn = Some(c);
                a
            }),
        };
        match answer {
            Ok((200, open)) => {
                tally.served[p].fetch_add(1, Relaxed);
                if !open {
                    conn = None;
                }
            }
            Ok((status, _)) => {
                if said < 3 {
                    said += 1;
                    eprintln!("{src} -> {port}: status {status}");
                }
                tally.failed[p].fetch_add(1, Relaxed);
                conn = None;
            }
            Err(e) => {
                if said < 3 {
                    said += 1;
                    eprintln!("{src} -> {port}: {e}");
                }
                tally.failed[p].fetch_add(1, Relaxed);
                conn = None;
            }
        }
        std::thread::sleep(PAUSE);
    }
}

/// Local enforcement on `hosts`: every `banned` source refused everywhere,
/// `own` (banned on the first host during the outage) refused there, and `src`'s burst of 20 to `/limited` on each host limited (the 5 of
/// the burst served, the rest 429 but for what refills meanwhile: at
/// least 5 of the 20, so that a slow machine does not fail it).
fn enforcing(hosts: &[Host], banned: &[&str], own: &str, src: &str) {
    assert!(!hosts[0].serves(own), "{own} served by its host");
    for h in hosts {
        for b in banned {
            assert!(!h.serves(b), "{b} served during the outage");
        }
        let answers: Vec<Vec<u8>> = (0..20).map(|_| get_path(h.port, src, "/limited")).collect();
        let count = |s: &[u8]| answers.iter().filter(|a| a.starts_with(s)).count();
        let (ok, limited) = (count(b"HTTP/1.1 200"), count(b"HTTP/1.1 429"));
        assert!(
            ok >= 1 && limited >= 5 && ok + limited == 20,
            "the local limit during the outage: {ok} served, {limited} limited of 20"
        );
    }
}

#[test]
fn fleet_redis_killed_for_a_minute_under_load_fails_nothing_and_everything_returns() {
    if !tests::redis::available("fleet_redis_killed_for_a_minute_under_load") {
        return;
    }
    let outage = outage();
    let root = root("outload");
    let mut redis = Redis::start(&root.0);
    let mut hosts: Vec<Host> = ["a", "b", "c"]
        .into_iter()
        .map(|n| Host::configured(&root.0, n, redis.port, "", TABLE, ROUTE))
        .collect();
    for h in &mut hosts {
        h.start();
    }
    // Each host bans one source (each must republish its own); A one more
    // during the outage.
    let before = ["127.20.9.1", "127.20.9.2", "127.20.9.3"];
    for (h, addr) in hosts.iter().zip(before) {
        h.ban(addr, "before the outage", false);
    }
    wait_for("every ban on every host", Duration::from_secs(3), || {
        hosts.iter().all(|h| before.iter().all(|b| h.banned(b)))
    });

    let (run, phase, tally) = (AtomicBool::new(true), AtomicUsize::new(0), Tally::default());
    let ports: Vec<u16> = hosts.iter().map(|h| h.port).collect();
    let took = std::thread::scope(|s| {
        for i in 0..THREADS {
            let (run, phase, tally, port) = (&run, &phase, &tally, ports[i % ports.len()]);
            s.spawn(move || client(port, &format!("127.20.1.{}", 10 + i), run, phase, tally));
        }
        // Stops the clients however this scope ends (an assertion too).
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(false, Relaxed);
            }
        }
        let _stop = Stop(&run);
        std::thread::sleep(Duration::from_secs(2));

        redis.kill();
        phase.store(1, Relaxed);
        let down = Instant::now();
        hosts[0].ban("127.20.9.4", "during the outage", false);
        wait_for(
            "rampart_fleet_up 0 everywhere",
            Duration::from_secs(10),
            || hosts.iter().all(|h| h.metric("rampart_fleet_up") == 0),
        );
        // Local enforcement, checked every 5 s through the outage.
        let mut checks = 0;
        while down.elapsed() < outage {
            enforcing(
                &hosts,
                &before,
                "127.20.9.4",
                &format!("127.20.2.{}", 1 + checks),
            );
            checks += 1;
            std::thread::sleep(Duration::from_secs(5).min(outage.saturating_sub(down.elapsed())));
        }

        redis.restart_empty();
        phase.store(2, Relaxed);
        let back = Instant::now();
        let snap = format!("rampart:{{{FLEET}}}:snap");
        let banned = ["127.20.9.1", "127.20.9.2", "127.20.9.3", "127.20.9.4"];
        wait_for(
            "every entry back in Redis and on every host",
            Duration::from_secs(5),
            || {
                redis.cli(&["HLEN", &snap]) == banned.len().to_string()
                    && banned.iter().all(|b| {
                        redis.cli(&["HEXISTS", &snap, &format!("block|{b}")]) == "1"
                            && hosts.iter().all(|h| h.banned(b))
                    })
            },
        );
        let took = back.elapsed();
        // Load goes on a moment with Redis back.
        std::thread::sleep(Duration::from_secs(2));
        took
    });

    let sum = |c: &[AtomicU64; PHASES]| c.iter().map(|n| n.load(Relaxed)).collect::<Vec<_>>();
    let (served, failed) = (sum(&tally.served), sum(&tally.failed));
    super::support::figure(
        &format!("fleet Redis killed {outage:?} under load"),
        format!(
            "{THREADS} keep-alive clients over 3 hosts: served {} before, {} during, \
             {} after; failed {failed:?}; every entry (3 before, 1 during) back in Redis and on \
             every host {took:?} after Redis returned empty",
            served[0], served[1], served[2]
        ),
    );
    assert_eq!(
        failed, [0; PHASES],
        "requests failed (before, during, after)"
    );
    assert!(
        served[1] > 0,
        "no request served during the outage: no load"
    );
    for h in &hosts {
        assert!(h.metric("rampart_fleet_up") == 1, "the fleet not back up");
        let log = h.log();
        assert!(!log.contains("panicked"), "{log}");
    }
}
