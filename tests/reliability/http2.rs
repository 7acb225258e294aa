//! HTTP/2 attacks, written frame by frame over cleartext HTTP/2 (prior
//! knowledge), while legitimate clients keep sending requests: rapid reset
//! (CVE-2023-44487), a CONTINUATION flood, an HPACK bomb, a SETTINGS flood
//! and a flow-control window that never opens. Target for each: the
//! daemon's CPU and memory stay bounded, the attacking connection is cut or
//! contained, and legitimate requests go on.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use tests::{
    backend::named_backend,
    load::{Load, Plan},
    netns::NetNs,
    privilege::require_root,
    process::{cpu_time, peak_rss_kib, rss_kib},
    scaled,
};

use crate::support::{EDGE, Edge, ONE_APP, figure};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK for `GET path` over http with authority `t`: indexed `:method GET`
/// and `:scheme http`, literal `:path` and `:authority` without indexing.
fn get_block(path: &str) -> Vec<u8> {
    let mut b = vec![0x82, 0x86];
    b.push(0x04); // :path, literal without indexing, name index 4
    b.push(path.len() as u8);
    b.extend_from_slice(path.as_bytes());
    b.extend_from_slice(&[0x01, 0x01, b't']); // :authority t
    b
}

/// HEADERS then CONTINUATION frames carrying `block` on `stream`, within
/// the default maximum frame size.
fn header_block(stream: u32, block: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < block.len() {
        let end = (at + 16_000).min(block.len());
        let kind = if at == 0 { HEADERS } else { CONTINUATION };
        let mut flags = if end == block.len() { END_HEADERS } else { 0 };
        if at == 0 {
            flags |= END_STREAM;
        }
        out.extend(frame(kind, flags, stream, &block[at..end]));
        at = end;
    }
    out
}

/// A literal header `name: value` without indexing (new name); lengths < 127.
fn literal(name: &str, value: &str) -> Vec<u8> {
    let mut b = vec![0x00, name.len() as u8];
    b.extend_from_slice(name.as_bytes());
    b.push(value.len() as u8);
    b.extend_from_slice(value.as_bytes());
    b
}

/// A cleartext HTTP/2 connection to `addr` with the preface and an empty
/// SETTINGS sent (plus `settings`, 6-byte entries).
fn h2c(addr: SocketAddr, settings: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(PREFACE).unwrap();
    s.write_all(&frame(SETTINGS, 0, 0, settings)).unwrap();
    s
}

/// What the server sent back on an attacking connection.
#[derive(Debug, Default)]
struct Seen {
    bytes: usize,
    /// GOAWAY's error code, if one came.
    goaway: Option<u32>,
    closed: bool,
}

/// Reads whatever the server sent until `wait` passes without data (or the
/// connection ends), looking for a GOAWAY.
fn drain(s: &mut TcpStream, seen: &mut Seen, wait: Duration) {
    let mut buf = vec![0u8; 1 << 16];
    let mut pending: Vec<u8> = Vec::new();
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < wait {
        match s.read(&mut buf) {
            Ok(0) => {
                seen.closed = true;
                return;
            }
            Ok(n) => {
                seen.bytes += n;
                pending.extend_from_slice(&buf[..n]);
                // Walk whole frames; keep a partial one for the next read.
                let mut at = 0;
                while pending.len() >= at + 9 {
                    let len = (usize::from(pending[at]) << 16)
                        | (usize::from(pending[at + 1]) << 8)
                        | usize::from(pending[at + 2]);
                    if pending.len() < at + 9 + len {
                        break;
                    }
                    if pending[at + 3] == GOAWAY && len >= 8 {
                        let p = &pending[at + 9..];
                        seen.goaway = Some(u32::from_be_bytes([p[4], p[5], p[6], p[7]]));
                    }
                    at += 9 + len;
                }
                pending.drain(..at);
                quiet_since = Instant::now();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                seen.closed = true;
                return;
            }
        }
    }
}

/// Writes `frames` until done or the server cuts the connection; returns
/// how many were written.
fn send_all(s: &mut TcpStream, frames: impl Iterator<Item = Vec<u8>>, seen: &mut Seen) -> usize {
    let mut sent = 0;
    let mut batch = Vec::new();
    for f in frames {
        batch.extend_from_slice(&f);
        sent += 1;
        if batch.len() >= 16 << 10 {
            if s.write_all(&batch).is_err() {
                seen.closed = true;
                return sent;
            }
            batch.clear();
            // Keep the server's answers flowing so it never blocks on us.
            drain(s, seen, Duration::ZERO);
            if seen.closed {
                return sent;
            }
        }
    }
    if s.write_all(&batch).is_err() {
        seen.closed = true;
    }
    sent
}

/// One attack: runs `attack` on a fresh connection while legitimate load
/// runs, and records the daemon's CPU and memory and the load's outcome.
struct Outcome {
    seen: Seen,
    sent: usize,
    cpu: Duration,
    rss_growth: i64,
    legit: tests::load::Report,
}

fn under_attack(edge: &Edge, attack: impl FnOnce(&mut TcpStream, &mut Seen) -> usize) -> Outcome {
    let pid = edge.pid();
    let load = Load::start(&edge.ns, legit());
    std::thread::sleep(Duration::from_millis(300));
    let (cpu0, rss0) = (cpu_time(pid), rss_kib(pid) as i64);
    let addr: SocketAddr = EDGE.parse().unwrap();
    let ns = NetNs::existing(edge.ns.name());
    let (seen, sent) = ns.with(|| {
        let mut s = h2c(addr, &[]);
        let mut seen = Seen::default();
        let sent = attack(&mut s, &mut seen);
        drain(&mut s, &mut seen, Duration::from_millis(500));
        (seen, sent)
    });
    let (cpu, rss_growth) = (cpu_time(pid) - cpu0, rss_kib(pid) as i64 - rss0);
    std::thread::sleep(Duration::from_millis(300));
    let legit = load.stop();
    Outcome {
        seen,
        sent,
        cpu,
        rss_growth,
        legit,
    }
}

fn legit() -> Plan {
    let mut plan = Plan::steady(EDGE, "/");
    plan.pace = Some(Duration::from_millis(5));
    plan
}

/// An HTTP/2 GET with curl (prior knowledge): the status.
fn curl_h2(ns: &NetNs) -> String {
    let out = ns
        .command("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["--http2-prior-knowledge", "--max-time", "5"])
        .arg(format!("http://{EDGE}/"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn report(case: &str, o: &Outcome, what: &str) {
    figure(
        case,
        format!(
            "{} frames sent; {what}; server answered {} bytes, GOAWAY {:?}, connection \
             closed: {}; daemon CPU {:?}, RSS {:+} KiB; legitimate: {}",
            o.sent,
            o.seen.bytes,
            o.seen.goaway,
            o.seen.closed,
            o.cpu,
            o.rss_growth,
            o.legit.summary()
        ),
    );
}

/// Every attack, one after the other, on one daemon.
#[test]
fn http2_attacks_are_contained_and_legitimate_requests_go_on() {
    if !require_root("http2_attacks_are_contained_and_legitimate_requests_go_on") {
        return;
    }
    let mut edge = Edge::new("h2at");
    // Prior knowledge on a plain listener: only where `http2` is on.
    edge.listener = "http2 = true".into();
    named_backend(&edge.ns, 9001, "app");
    edge.start(ONE_APP);
    assert_eq!(curl_h2(&edge.ns), "200");
    let hits_before = backend_hits(&edge);
    let streams = scaled(20_000u32, 500_000);

    // Rapid reset: open a stream and cancel it at once, over and over.
    let o = under_attack(&edge, |s, seen| {
        let frames = (0..streams).flat_map(|i| {
            let id = 2 * i + 1;
            [
                frame(HEADERS, END_STREAM | END_HEADERS, id, &get_block("/")),
                frame(RST_STREAM, 0, id, &8u32.to_be_bytes()),
            ]
        });
        send_all(s, frames, seen)
    });
    // The legitimate load goes to the same upstream: what is left is the attack's.
    let forwarded = (backend_hits(&edge) - hits_before).saturating_sub(o.legit.ok);
    report(
        "HTTP/2 rapid reset",
        &o,
        &format!("{streams} streams opened and reset; {forwarded} requests reached the upstream"),
    );
    assert!(
        o.seen.closed || o.seen.goaway.is_some(),
        "rapid reset never cut off"
    );
    assert!(
        forwarded < u64::from(streams) / 10,
        "{forwarded} of {streams} reset streams reached the upstream"
    );
    check_legit(&edge, &o);

    // CONTINUATION flood: a header block that never ends.
    let o = under_attack(&edge, |s, seen| {
        let first = frame(HEADERS, END_STREAM, 1, &get_block("/"));
        let junk: Vec<u8> = (0..100)
            .flat_map(|i| literal(&format!("x-flood-{i}"), "y"))
            .collect();
        let more = (0..scaled(20_000, 200_000)).map(move |_| frame(CONTINUATION, 0, 1, &junk));
        send_all(s, std::iter::once(first).chain(more), seen)
    });
    report(
        "HTTP/2 CONTINUATION flood",
        &o,
        "header block without END_HEADERS, 1.6 KB per CONTINUATION",
    );
    assert!(
        o.seen.closed || o.seen.goaway.is_some(),
        "CONTINUATION flood never cut off"
    );
    check_legit(&edge, &o);

    // HPACK bomb: one 4 KB header in the dynamic table, referenced
    // thousands of times from one small header block.
    let o = under_attack(&edge, |s, seen| {
        let mut block = get_block("/");
        // Literal with incremental indexing, new name: enters the table at 62.
        block.push(0x40);
        block.push(6);
        block.extend_from_slice(b"x-bomb");
        let value = "v".repeat(4000);
        block.push(0x7f); // length 4000 as a 7-bit prefixed integer
        let mut rest = 4000 - 127;
        while rest >= 128 {
            block.push((rest % 128) as u8 | 0x80);
            rest /= 128;
        }
        block.push(rest as u8);
        block.extend_from_slice(value.as_bytes());
        block.extend(std::iter::repeat_n(0xbe_u8, 8000)); // indexed 62, 8,000 times: 32 MB decoded
        let frames = (0..scaled(5u32, 50)).map(move |i| header_block(2 * i + 1, &block));
        send_all(s, frames, seen)
    });
    report(
        "HTTP/2 HPACK bomb",
        &o,
        "12 KB header blocks decoding to 32 MB each",
    );
    assert!(o.rss_growth < 64 * 1024, "RSS grew {} KiB", o.rss_growth);
    check_legit(&edge, &o);

    // SETTINGS flood: each one asks for an acknowledgement.
    let o = under_attack(&edge, |s, seen| {
        let entry = [0x00, 0x03, 0x00, 0x00, 0x00, 0x64]; // MAX_CONCURRENT_STREAMS 100
        let frames = (0..scaled(100_000, 1_000_000)).map(move |_| frame(SETTINGS, 0, 0, &entry));
        send_all(s, frames, seen)
    });
    report(
        "HTTP/2 SETTINGS flood",
        &o,
        "SETTINGS frames, each wanting an ACK",
    );
    assert!(o.rss_growth < 64 * 1024, "RSS grew {} KiB", o.rss_growth);
    check_legit(&edge, &o);

    // A window that never opens: the server cannot send any response body.
    let pid = edge.pid();
    let rss0 = rss_kib(pid) as i64;
    let addr: SocketAddr = EDGE.parse().unwrap();
    let stuck = edge.ns.with(|| {
        // INITIAL_WINDOW_SIZE = 0.
        let mut s = h2c(addr, &[0x00, 0x04, 0, 0, 0, 0]);
        let streams: Vec<Vec<u8>> = (0..100)
            .map(|i| {
                frame(
                    HEADERS,
                    END_STREAM | END_HEADERS,
                    2 * i + 1,
                    &get_block("/big/1000000"),
                )
            })
            .collect();
        let mut seen = Seen::default();
        send_all(&mut s, streams.into_iter(), &mut seen);
        drain(&mut s, &mut seen, Duration::from_secs(2));
        (s, seen)
    });
    let load = Load::start(&edge.ns, legit());
    std::thread::sleep(Duration::from_secs(2));
    let legit_report = load.stop();
    let growth = rss_kib(pid) as i64 - rss0;
    figure(
        "HTTP/2 zero window",
        format!(
            "100 streams of 1 MB responses behind a window that never opens: RSS {growth:+} KiB \
             (100 MB if buffered whole); server sent {} bytes; legitimate: {}",
            stuck.1.bytes,
            legit_report.summary()
        ),
    );
    drop(stuck);
    assert_eq!(legit_report.failed(), 0, "{}", legit_report.summary());
    assert!(
        growth < 100 * 1024,
        "RSS grew {growth} KiB: responses buffered whole"
    );
    assert_eq!(curl_h2(&edge.ns), "200", "HTTP/2 still served");
}

/// Legitimate requests failed none during an attack, and HTTP/2 still works.
fn check_legit(edge: &Edge, o: &Outcome) {
    assert_eq!(o.legit.failed(), 0, "{}", o.legit.summary());
    assert!(o.legit.ok > 10, "{}", o.legit.summary());
    assert_eq!(curl_h2(&edge.ns), "200", "HTTP/2 still served");
}

/// Requests the upstream has answered, from `rampart upstream list`.
fn backend_hits(edge: &Edge) -> u64 {
    edge.server("127.0.0.1:9001")["requests"].as_u64().unwrap()
}

/// Request bodies that never finish, on every stream of many HTTP/2
/// connections (flow control respected, as a real client would): the
/// memory they take stays within `body_memory` plus 10%, and legitimate
/// requests go on. Before, one connection could hold 128 streams x
/// `max_body` (three took RSS from 11 MiB to 410 MiB in 2 s).
#[test]
fn http2_request_bodies_stay_within_body_memory() {
    if !require_root("http2_request_bodies_stay_within_body_memory") {
        return;
    }
    const BUDGET_MIB: i64 = 256;
    const MAX_BODY: usize = 1 << 20;
    let connections = 50;
    let mut edge = Edge::new("h2body");
    edge.listener = "http2 = true".to_string();
    named_backend(&edge.ns, 9001, "app");
    edge.start(&format!(
        "[http]\nbody_memory = \"{BUDGET_MIB}M\"\nbody_memory_per_connection = \"64M\"\n\
         body_timeout = \"60s\"\n{ONE_APP}"
    ));
    assert_eq!(curl_h2(&edge.ns), "200");
    let pid = edge.pid();
    let load = Load::start(&edge.ns, legit());
    std::thread::sleep(Duration::from_millis(300));
    let rss0 = rss_kib(pid) as i64;
    let addr: SocketAddr = EDGE.parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (peak, streams, answered, during) = edge.ns.with(|| {
        runtime.block_on(async {
            // All but the last byte of a maximal body.
            let body = bytes::Bytes::from(vec![b'b'; MAX_BODY - 1]);
            let mut open = Vec::new();
            let mut answered = Vec::new();
            for _ in 0..connections {
                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                let (client, conn) = h2::client::handshake(tcp).await.unwrap();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                let mut client = client.ready().await.unwrap();
                // Every stream the server allows (128).
                for _ in 0..128 {
                    let req = hyper::Request::post(format!("http://{EDGE}/upload"))
                        .header("content-length", MAX_BODY)
                        .body(())
                        .unwrap();
                    let Ok((resp, mut stream)) = client.send_request(req, false) else {
                        break;
                    };
                    let _ = stream.send_data(body.clone(), false);
                    answered.push(tokio::spawn(async move {
                        resp.await.map(|r| r.status().as_u16()).unwrap_or(0)
                    }));
                    open.push(stream);
                    client = match client.ready().await {
                        Ok(c) => c,
                        Err(_) => break,
                    };
                }
            }
            // Let the bodies flow as far as the server lets them: until no
            // stream has been answered and RSS has not moved for 3 s (at
            // least 6 s, at most 60 s). A fixed 6 s, as before, ended
            // before a loaded machine had got to its peak.
            let (mut last_change, mut last) = (Instant::now(), (0usize, 0i64));
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(60) {
                tokio::time::sleep(Duration::from_millis(150)).await;
                let now = (
                    answered.iter().filter(|a| a.is_finished()).count(),
                    rss_kib(pid) as i64 - rss0,
                );
                if now.0 != last.0 || (now.1 - last.1).abs() > 1024 {
                    (last_change, last) = (Instant::now(), now);
                }
                if started.elapsed() > Duration::from_secs(6)
                    && last_change.elapsed() > Duration::from_secs(3)
                {
                    break;
                }
            }
            // The kernel's high-water mark (the daemon's, since it started:
            // before the attack it was at rss0): no peak falls between samples.
            let peak = peak_rss_kib(pid) as i64 - rss0;
            let during = curl_h2(&NetNs::existing(edge.ns.name()));
            let mut statuses = std::collections::BTreeMap::new();
            for a in answered {
                if a.is_finished() {
                    *statuses.entry(a.await.unwrap()).or_insert(0u32) += 1;
                }
            }
            (peak, open.len(), statuses, during)
        })
    });
    let legit_report = load.stop();
    figure(
        "HTTP/2 request bodies never finished",
        format!(
            "{connections} connections, {streams} streams each sending {MAX_BODY} B less one: \
             RSS peak {peak:+} KiB for body_memory = {BUDGET_MIB} MiB (target <= {} KiB); \
             streams answered by status: {answered:?}; curl during the attack: {during}; \
             legitimate: {}",
            BUDGET_MIB * 1024 * 11 / 10,
            legit_report.summary()
        ),
    );
    // The target: the budget plus 10%.
    assert!(
        peak <= BUDGET_MIB * 1024 * 110 / 100,
        "RSS grew {peak} KiB for a {BUDGET_MIB} MiB budget"
    );
    // 50 connections x 64 MiB (body_memory_per_connection) would be 3.2 GiB:
    // the process's budget is what held, and it answered 503.
    assert!(
        answered.get(&503).is_some_and(|n| *n > 0),
        "no stream got 503: {answered:?}"
    );
    assert_eq!(during, "200", "HTTP/2 served during the attack");
    assert_eq!(legit_report.failed(), 0, "{}", legit_report.summary());
    assert!(legit_report.ok > 10, "{}", legit_report.summary());
}
