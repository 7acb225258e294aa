//! The guard's timer and low-water mark against a connection's reads.

use std::{
    pin::Pin,
    sync::atomic::{AtomicUsize, Ordering},
    task::{Wake, Waker},
    time::Duration,
};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::*;
use crate::server::{busy::Busy, lifecycle::PARK_AFTER};

/// Counts its wakes.
#[derive(Default)]
struct Wakes(AtomicUsize);

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn read<S: AsyncRead + Unpin>(g: &mut Guarded<S>, waker: &Waker) -> Poll<io::Result<usize>> {
    let mut buf = [0u8; 256];
    let mut rb = ReadBuf::new(&mut buf);
    let mut cx = Context::from_waker(waker);
    Pin::new(g)
        .poll_read(&mut cx, &mut rb)
        .map_ok(|()| rb.filled().len())
}

use crate::server::lowat::mark as rcvlowat;

/// While a body is due (as the HTTP/1 server says, [`Guarded::body_left`]),
/// a plain connection's reads wait for what it still owes (capped at
/// 16 KiB); once it is in, for any byte again.
#[tokio::test]
async fn a_body_due_sets_the_sockets_low_water_mark() {
    use std::os::fd::AsRawFd;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let fd = server.as_raw_fd();
    let timeouts = Timeouts {
        header: Duration::from_secs(10),
        keepalive: Duration::from_secs(75),
        send: Duration::from_secs(60),
        body: Duration::from_secs(60),
    };
    let mut g = Guarded::new(server, timeouts, false).body_lowat(fd);
    let waker = Waker::from(Arc::new(Wakes::default()));
    // Sends `bytes`, then reads until all of them are in, telling the
    // guard what the body still owes after each read as the server does
    // (`left`: the body's bytes not read yet, once its head is read).
    async fn send_and_read(
        client: &mut tokio::net::TcpStream,
        g: &mut Guarded<tokio::net::TcpStream>,
        waker: &Waker,
        bytes: &[u8],
        left: &mut Option<u64>,
    ) {
        client.write_all(bytes).await.unwrap();
        let mut got = 0;
        while got < bytes.len() {
            tokio::time::sleep(Duration::from_millis(10)).await;
            while let Poll::Ready(n) = read(g, waker) {
                let n = n.unwrap();
                got += n;
                if let Some(l) = left {
                    *l -= n as u64;
                    let owed = (*l > 0).then_some(*l);
                    g.body_left(owed);
                }
            }
        }
        // The read that found nothing more set the mark.
        assert!(read(g, waker).is_pending());
    }
    let head = b"POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n";
    send_and_read(&mut client, &mut g, &waker, head, &mut None).await;
    let _busy = Busy::enter(g.watch());
    assert_eq!(rcvlowat(fd), 1, "no body due yet");
    g.body_left(Some(100_000));
    let mut left = Some(100_000);
    send_and_read(&mut client, &mut g, &waker, b"abc", &mut left).await;
    assert_eq!(rcvlowat(fd), 16 * 1024);
    send_and_read(&mut client, &mut g, &waker, &[b'x'; 99_990], &mut left).await;
    assert_eq!(rcvlowat(fd), 7, "the body's last 7 bytes");
    send_and_read(&mut client, &mut g, &waker, b"1234567", &mut left).await;
    assert_eq!(rcvlowat(fd), 1, "no body due");
}

/// A request that takes a minute (a slow body, a long poll) used to
/// wake its connection every second to look for a deadline; now the
/// keep-alive timer fires once, the request's end wakes it, and the
/// connection is then parked on time.
#[tokio::test(start_paused = true)]
async fn a_long_request_wakes_its_connection_when_it_ends_not_every_second() {
    let (mut client, server) = tokio::io::duplex(1024);
    let timeouts = Timeouts {
        header: Duration::from_secs(10),
        keepalive: Duration::from_secs(75),
        send: Duration::from_secs(60),
        body: Duration::from_secs(60),
    };
    let mut g = Guarded::new(server, timeouts, false).parking_into(Slot::new());
    let wakes = Arc::new(Wakes::default());
    let waker = Waker::from(wakes.clone());
    client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    assert!(matches!(read(&mut g, &waker), Poll::Ready(Ok(n)) if n > 0));
    let busy = Busy::enter(g.watch());
    let mut polls = 0;
    for _ in 0..60 {
        if polls <= wakes.0.load(Ordering::SeqCst) {
            // Woken (or the first time): polled, as the task would be.
            assert!(read(&mut g, &waker).is_pending());
            polls += 1;
        }
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    let during = wakes.0.load(Ordering::SeqCst);
    assert!(during <= 2, "{during} wakes during a one-minute request");
    drop(busy);
    assert_eq!(wakes.0.load(Ordering::SeqCst), during + 1, "its end wakes");
    assert!(read(&mut g, &waker).is_pending());
    tokio::time::advance(PARK_AFTER).await;
    assert_eq!(
        read(&mut g, &waker).map(|r| r.unwrap()),
        Poll::Ready(0),
        "parked (end-of-file) a second after the request"
    );
}

/// A response still being written to a client that takes none of it is
/// timed by `send_timeout`, not `keepalive_timeout`: nginx starts the
/// keep-alive timer only once the response has been sent. Before, hyper's
/// read for the client's close, made while it wrote, found the
/// connection idle (its handler done) and closed it after
/// `keepalive_timeout` with the response half sent, whenever
/// `keepalive_timeout` was the shorter.
#[tokio::test(start_paused = true)]
async fn a_response_being_sent_is_not_idle() {
    use tokio::io::AsyncReadExt;
    let (mut client, server) = tokio::io::duplex(64);
    let timeouts = Timeouts {
        header: Duration::from_secs(10),
        keepalive: Duration::from_secs(5),
        send: Duration::from_secs(60),
        body: Duration::from_secs(60),
    };
    let mut g = Guarded::new(server, timeouts, false);
    let waker = Waker::from(Arc::new(Wakes::default()));
    let mut cx = Context::from_waker(&waker);
    client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    assert!(matches!(read(&mut g, &waker), Poll::Ready(Ok(n)) if n > 0));
    // Handled: its response is being written, and fills the pipe.
    drop(Busy::enter(g.watch()));
    let mut sent = 0;
    while let Poll::Ready(n) = Pin::new(&mut g).poll_write(&mut cx, &[b'x'; 1024]) {
        sent += n.unwrap();
    }
    assert_eq!(sent, 64);
    assert!(read(&mut g, &waker).is_pending());
    tokio::time::advance(Duration::from_secs(6)).await;
    assert!(
        read(&mut g, &waker).is_pending(),
        "closed at keepalive_timeout with its response still being sent"
    );
    // The client takes it: the rest goes, and idleness counts from then.
    let mut got = [0u8; 64];
    client.read_exact(&mut got).await.unwrap();
    assert!(matches!(
        Pin::new(&mut g).poll_write(&mut cx, b"end"),
        Poll::Ready(Ok(3))
    ));
    tokio::time::advance(Duration::from_secs(4)).await;
    assert!(read(&mut g, &waker).is_pending());
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(
        matches!(read(&mut g, &waker), Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::TimedOut),
        "closed keepalive_timeout after the response was sent"
    );
}

/// A client that takes none of its response is closed at `send_timeout`.
#[tokio::test(start_paused = true)]
async fn a_response_never_taken_is_closed_at_send_timeout() {
    let (_client, server) = tokio::io::duplex(64);
    let timeouts = Timeouts {
        header: Duration::from_secs(10),
        keepalive: Duration::from_secs(5),
        send: Duration::from_secs(60),
        body: Duration::from_secs(60),
    };
    let mut g = Guarded::new(server, timeouts, false);
    let waker = Waker::from(Arc::new(Wakes::default()));
    let mut cx = Context::from_waker(&waker);
    drop(Busy::enter(g.watch()));
    while let Poll::Ready(n) = Pin::new(&mut g).poll_write(&mut cx, &[b'x'; 1024]) {
        n.unwrap();
    }
    tokio::time::advance(Duration::from_secs(59)).await;
    assert!(read(&mut g, &waker).is_pending());
    assert!(Pin::new(&mut g).poll_write(&mut cx, b"x").is_pending());
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(matches!(
        Pin::new(&mut g).poll_write(&mut cx, b"x"),
        Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::TimedOut
    ));
}
