//! A ban closes the source's open connections, wherever they are: in
//! their task between keep-alive requests, parked in the lot, halfway
//! through a head, or HTTP/2; other sources' connections stay. Clients
//! bind 127.0.0.2 and 127.0.0.3 (all of 127/8 is local) to be two sources.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use proxy_common::list::ORIGIN_CLI;
use proxy_user::kick::Kick;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    time::{Instant, timeout},
};

use crate::support::{proxy, test_dir};

const CONFIG: &str = "[[listener]]\nbind = \"127.0.0.1:0\"\nhttp2 = true\n\
                      [[route]]\nrespond = 200\nbody = \"ok\"\n";

async fn connect_from(src: &str, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(format!("{src}:0").parse().unwrap()).unwrap();
    s.connect(to).await.unwrap()
}

/// A keep-alive HTTP/1.1 request and its whole answer.
async fn request(s: &mut TcpStream) {
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"ok") {
        let n = timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("answered")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"));
}

/// Waits for the server to close `s`; how long it took.
async fn closed(what: &str, s: &mut TcpStream, since: Instant) -> Duration {
    let mut buf = [0u8; 64];
    match timeout(Duration::from_secs(2), s.read(&mut buf)).await {
        Ok(Ok(0) | Err(_)) => since.elapsed(),
        Ok(Ok(n)) => panic!("{what}: {n} bytes instead of a close"),
        Err(_) => panic!("{what}: still open 2 s after the ban"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_closes_the_sources_open_connections() {
    let dir = test_dir("kick");
    let p = proxy(&dir, CONFIG).await;
    let state = p.shared.load();
    state.services.gate.activate();
    let to = p.addr();

    // Parked: idle past PARK_AFTER (1 s), so it waits in the lot with no task.
    let mut parked = connect_from("127.0.0.2", to).await;
    request(&mut parked).await;
    // Served: a keep-alive connection in its task.
    let mut served = connect_from("127.0.0.2", to).await;
    // Half a head: waiting in the lot.
    let mut half = connect_from("127.0.0.2", to).await;
    // HTTP/2 (prior knowledge), with its connection driven in a task.
    let h2_tcp = connect_from("127.0.0.2", to).await;
    let (mut h2, h2_conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(h2_tcp))
            .await
            .unwrap();
    let h2_conn = tokio::spawn(h2_conn);
    let resp = h2
        .send_request(
            Request::get("http://x/")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Another source, untouched.
    let mut other = connect_from("127.0.0.3", to).await;
    request(&mut other).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    request(&mut served).await;
    half.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    // The ban, as the daemon makes it in userspace mode: the gate, then the kick.
    let banned: IpAddr = "127.0.0.2".parse().unwrap();
    let at = Instant::now();
    state.services.gate.ban(banned, None, ORIGIN_CLI);
    state.services.kicks.kick(Kick {
        nets: vec![proxy_user::cidr::Cidr::host(banned)],
        except: vec![],
    });
    let figures = [
        ("parked in the lot", closed("parked", &mut parked, at).await),
        (
            "keep-alive in its task",
            closed("served", &mut served, at).await,
        ),
        ("half a head", closed("half", &mut half, at).await),
    ];
    timeout(Duration::from_secs(2), h2_conn)
        .await
        .expect("the HTTP/2 connection is closed")
        .unwrap()
        .ok();
    let h2_after = at.elapsed();
    for (what, took) in &figures {
        println!("{what}: closed {took:?} after the ban");
        assert!(*took < Duration::from_secs(1), "{what}: {took:?}");
    }
    println!("HTTP/2: closed {h2_after:?} after the ban");
    assert!(h2_after < Duration::from_secs(1));
    // A new connection from the banned source is refused at accept.
    let mut again = connect_from("127.0.0.2", to).await;
    closed("new", &mut again, Instant::now()).await;
    // The other source is still served on its connection.
    request(&mut other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_closes_the_sources_websocket_tunnels() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let b = crate::support::backend(0).await;
    let dir = test_dir("kickws");
    let p = proxy(
        &dir,
        &format!(
            "[[listener]]\nbind = \"127.0.0.1:0\"\n\n[upstream.app]\nservers = [\"{}\"]\n\n\
             [[route]]\nupstream = \"app\"\nidle_timeout = \"1h\"\n",
            b.addr
        ),
    )
    .await;
    let state = p.shared.load();
    state.services.gate.activate();
    let tcp = connect_from("127.0.0.2", p.addr()).await;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{}/ws", p.addr()), tcp)
        .await
        .unwrap();
    ws.send(Message::text("hello")).await.unwrap();
    let echo = ws.next().await.unwrap().unwrap();
    assert_eq!(echo.into_text().unwrap(), "hello");

    let at = Instant::now();
    state.services.kicks.kick(Kick {
        nets: vec!["127.0.0.2".parse().unwrap()],
        except: vec![],
    });
    let end = timeout(Duration::from_secs(2), ws.next())
        .await
        .expect("the tunnel is closed, not left to its 1 h idle timeout");
    match end {
        None | Some(Err(_)) => {}
        Some(Ok(m)) => assert!(m.is_close(), "expected a close, got {m:?}"),
    }
    println!("WebSocket tunnel: closed {:?} after the ban", at.elapsed());
    assert!(at.elapsed() < Duration::from_secs(1));
}

/// `n` kicks from a thread of their own, one a millisecond (an
/// escalation storm of 1,000 bans a second), of sources that have no
/// connection; the CPU the daemon's worker threads used from the first
/// kick until 300 ms after the last (the other tests of this binary, and
/// this test's clients, run on other threads).
async fn storm(
    kicks: std::sync::Arc<proxy_user::kick::Kicks>,
    daemon: &proxy_user::daemon::Handle,
    n: u32,
) -> Duration {
    let before = daemon.worker_cpu();
    let kicker = std::thread::spawn(move || {
        for i in 0..n {
            let ip = IpAddr::from([127, 200, (i >> 8) as u8, i as u8]);
            kicks.kick(Kick {
                nets: vec![proxy_user::cidr::Cidr::host(ip)],
                except: vec![],
            });
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    while !kicker.is_finished() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kicker.join().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    daemon.worker_cpu() - before
}

/// Issue 13 review: a kick woke every open connection (and had the lot
/// look at every waiting one) to check whether it was the banned source,
/// so an escalation storm cost O(connections x bans). Up to 10,000 idle
/// connections (half waiting in the lot for a first head, half HTTP/2 in
/// their tasks) from up to 100 sources (as many as the open-files limit
/// allows with room for the other tests, both ends being in this
/// process), then 1,000 bans of other sources in a second: the CPU the
/// server's workers spend beyond the same storm with no connection open.
/// Then a ban of one of the sources closes its 100 connections (and only
/// those) within a second.
#[tokio::test]
async fn a_ban_storm_costs_nothing_to_the_connections_it_does_not_close() {
    const SOURCES: u32 = 100;
    const PER_SOURCE: u32 = 100;
    const BANS: u32 = 1000;
    // Both ends of every connection are in this process: two descriptors
    // each, and 6,000 left for the tests running beside this one.
    // SAFETY: getrlimit/setrlimit fill and read a struct we own.
    let limit = unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        lim.rlim_cur
    };
    let sources =
        (SOURCES as u64).min(limit.saturating_sub(6000) / 2 / u64::from(PER_SOURCE)) as u32;
    assert!(sources >= 10, "open files limited to {limit}");
    let dir = test_dir("kickstorm");
    let p = proxy(
        &dir,
        "[http]\nheader_timeout = \"1h\"\nkeepalive_timeout = \"1h\"\n\
         [[listener]]\nbind = \"127.0.0.1:0\"\nhttp2 = true\nmax_connections = 100000\n\
         [[route]]\nrespond = 200\nbody = \"ok\"\n",
    )
    .await;
    let state = p.shared.load();
    let to = p.addr();
    let quiet = storm(state.services.kicks.clone(), p.handle(), BANS).await;

    let source = |s: u32| format!("127.0.{}.{}", 1 + s / 200, 2 + s % 200);
    let mut conns = Vec::new();
    for s in 0..sources {
        for i in 0..PER_SOURCE {
            let mut c = connect_from(&source(s), to).await;
            if i % 2 == 1 {
                // HTTP/2 with prior knowledge: the preface and an empty
                // SETTINGS frame; the connection then idles in its task.
                c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
                    .await
                    .unwrap();
            }
            conns.push((s, c));
        }
    }
    // Every connection accepted and settled (HTTP/2 ones have answered
    // with their SETTINGS).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let loaded = storm(state.services.kicks.clone(), p.handle(), BANS).await;
    let extra = loaded.saturating_sub(quiet);
    println!(
        "figure: {BANS} bans in 1 s with {} idle connections open: {loaded:?} of the server's \
         CPU, {quiet:?} with none open: {extra:?} for the connections ({:.1} us per ban)",
        conns.len(),
        extra.as_secs_f64() * 1e6 / f64::from(BANS)
    );

    // One of the sources is banned: its connections, and only those, close.
    let at = Instant::now();
    state.services.kicks.kick(Kick {
        nets: vec![source(7).parse().unwrap()],
        except: vec![],
    });
    let mut slowest = Duration::ZERO;
    for (s, c) in conns.iter_mut().filter(|(s, _)| *s == 7) {
        let mut buf = [0u8; 256];
        loop {
            match timeout(Duration::from_secs(2), c.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => break,
                // An HTTP/2 connection's SETTINGS, read before the close.
                Ok(Ok(_)) => continue,
                Err(_) => panic!("source {s}: a connection still open 2 s after the ban"),
            }
        }
        slowest = slowest.max(at.elapsed());
    }
    println!("the banned source's {PER_SOURCE} connections closed within {slowest:?}");
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
    // The others are open: nothing to read, no close.
    for (s, c) in conns.iter_mut().filter(|(s, _)| *s == 8) {
        let mut buf = [0u8; 256];
        loop {
            match timeout(Duration::from_millis(20), c.read(&mut buf)).await {
                Err(_) => break,
                Ok(Ok(n)) if n > 0 => continue,
                Ok(r) => panic!("source {s}: a connection closed by another's ban: {r:?}"),
            }
        }
    }
    // A storm of bans of other sources costs connections nothing: no more
    // than the storm itself with none open, whatever their number (the
    // connections cost over a second of CPU when each ban woke them all).
    assert!(
        extra < Duration::from_millis(100),
        "{BANS} bans cost {extra:?} of CPU with {} connections open",
        conns.len()
    );
}
