//! Parking idle keep-alive connections, as nginx does: an HTTP/1
//! connection that has been idle between requests for
//! [`PARK_AFTER`](super::lifecycle::PARK_AFTER) gives
//! up its HTTP state and buffers (the HTTP/1 server's read and write
//! buffers), and waits for its next request with nothing but the socket.
//! When a whole request head has arrived, a fresh HTTP connection is built
//! on the same socket and given it.
//!
//! The guard ([`super::guard::Guarded`]) decides: only between requests
//! (nothing in flight, nothing of a new head read, the last response fully
//! written, the last read found no data), never on HTTP/2 or an upgraded
//! connection. It then ends the HTTP connection as if the client had
//! closed it while idle, and hands the socket back through a [`Slot`]
//! instead of shutting it down.
//!
//! A plain socket then waits in the worker's lot ([`super::lot`]), with no
//! task. A TLS connection waits in its task with its session ([`read_head`],
//! which holds only the bytes of the head read so far). Either way, no HTTP
//! state exists until a whole head has arrived, so a slow head (slowloris)
//! costs its bytes, as with nginx.

use std::sync::{Arc, Mutex};

use tokio::{
    io::{AsyncRead, AsyncReadExt},
    time::Instant,
};

use super::lifecycle::{Awaiting, Timeouts};

/// A parked connection: the socket and since when it has been idle.
pub struct Parked<S> {
    pub stream: S,
    pub idle_since: Instant,
}

/// Where a guard hands its stream back when it parks.
pub struct Slot<S>(Mutex<Option<Parked<S>>>);

impl<S> Slot<S> {
    pub fn new() -> Arc<Slot<S>> {
        Arc::new(Slot(Mutex::new(None)))
    }

    pub(super) fn put(&self, parked: Parked<S>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(parked);
    }

    /// The parked stream, if the guard parked it.
    pub fn take(&self) -> Option<Parked<S>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Why waiting for a head ended without one.
#[derive(Debug, PartialEq, Eq)]
pub enum NoHead {
    /// The client closed the connection (or it failed).
    Closed,
    /// `keepalive_timeout` before the first byte, `header_timeout` after it.
    TimedOut,
}

/// A client stream that can say when it has bytes without a buffer to
/// read them into: a parked connection holds no buffer at all.
pub trait Readiness {
    fn ready(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
}

/// A TLS session may hold decrypted bytes the socket cannot signal: it is
/// read at once (its own buffers dwarf the head's).
impl Readiness for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    fn ready(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send {
        std::future::ready(Ok(()))
    }
}

/// Reads from `stream` until a whole request head has arrived (or
/// `max_head` bytes, for the HTTP/1 server to refuse with 414 or 431), holding only the bytes
/// read: a slow client costs its head's size, not an HTTP connection's
/// buffers. The head is due as [`Awaiting::deadline`] says. Returns
/// everything read, head and any bytes after it.
pub async fn read_head<S: AsyncRead + Readiness + Unpin>(
    stream: &mut S,
    awaiting: Awaiting,
    timeouts: &Timeouts,
    max_head: usize,
) -> Result<Vec<u8>, NoHead> {
    let mut head = Vec::new();
    let mut deadline = awaiting.deadline(timeouts, None);
    match tokio::time::timeout_at(deadline, stream.ready()).await {
        Err(_) => return Err(NoHead::TimedOut),
        Ok(Err(_)) => return Err(NoHead::Closed),
        Ok(Ok(())) => {}
    }
    loop {
        if head.capacity() == head.len() {
            head.reserve(if head.is_empty() { 512 } else { head.len() });
        }
        let before = head.len();
        let read = tokio::time::timeout_at(deadline, stream.read_buf(&mut head)).await;
        match read {
            Err(_) => return Err(NoHead::TimedOut),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(NoHead::Closed),
            Ok(Ok(_)) => {}
        }
        if before == 0 {
            deadline = awaiting.deadline(timeouts, Some(Instant::now()));
        }
        if ends_head(&head, before) || head.len() >= max_head {
            return Ok(head);
        }
    }
}

/// Whether the bytes from `before` on (the ones just read) completed the
/// head in `head`. It looks from just before them, as the blank line may
/// straddle two reads; a bare LF ends lines too (RFC 9112 allows it).
/// Both look only at the line feeds (`memchr`, many bytes a step): every
/// new connection's head passes through here.
pub fn ends_head(head: &[u8], before: usize) -> bool {
    // The usual head arrives whole and alone: it ends in `\r\n\r\n`
    // after a line that is not empty, which both searches below would
    // find (the new bytes reach the end, so they include the last line
    // feed's `\n\r`). Settled without them: their `memchr` set-up cost
    // more than the head's bytes (issue 17: ~0.8k instructions per new
    // connection for a 52-byte head).
    if let Some(body) = head.strip_suffix(b"\r\n\r\n")
        && before < head.len()
        && body.iter().any(|b| *b != b'\r' && *b != b'\n')
    {
        return true;
    }
    let from = before.saturating_sub(3);
    let new = &head[from..];
    memchr::memchr_iter(b'\n', new).any(|i| matches!(new.get(i + 1), Some(b'\n' | b'\r')))
        && head_complete(head)
}

/// Whether `bytes` hold an empty line (the end of a head): `\r\n\r\n` or
/// `\n\n` (bare LF), after any empty lines a client may send first.
fn head_complete(bytes: &[u8]) -> bool {
    let rest = &bytes[first_line(bytes)..];
    memchr::memchr_iter(b'\n', rest).any(|i| {
        let after = &rest[i + 1..];
        after.first() == Some(&b'\n')
            || (i > 0 && rest[i - 1] == b'\r' && after.starts_with(b"\r\n"))
    })
}

/// Where the first line that is not empty starts (a client may send
/// empty lines before a request: RFC 9112 §2.2).
fn first_line(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(bytes.len())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const TIMEOUTS: Timeouts = Timeouts {
        header: Duration::from_secs(10),
        keepalive: Duration::from_secs(75),
        send: Duration::from_secs(60),
        body: Duration::from_secs(60),
    };

    impl Readiness for tokio::io::DuplexStream {
        fn ready(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send {
            std::future::ready(Ok(()))
        }
    }

    #[test]
    fn heads_end_at_an_empty_line() {
        assert!(head_complete(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(head_complete(b"GET / HTTP/1.1\nHost: x\n\n"));
        assert!(head_complete(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
        assert!(!head_complete(b"GET / HTTP/1.1\r\nHost: x\r\n"));
        assert!(!head_complete(b"\r\n\r\nGET / HTTP/1.1\r\n"));
    }

    /// The definition, a window at a time (how `ends_head` was written
    /// before it looked only at line feeds).
    fn ends_head_by_windows(head: &[u8], before: usize) -> bool {
        let start = head
            .iter()
            .position(|b| *b != b'\r' && *b != b'\n')
            .unwrap_or(head.len());
        let rest = &head[start..];
        head[before.saturating_sub(3)..]
            .windows(2)
            .any(|w| w == b"\n\n" || w == b"\n\r")
            && (rest.windows(4).any(|w| w == b"\r\n\r\n") || rest.windows(2).any(|w| w == b"\n\n"))
    }

    #[test]
    fn ends_head_agrees_with_its_definition_on_every_short_input() {
        // Every string of up to 8 bytes of `a`, CR and LF, read in two
        // pieces split at every place.
        let mut checked = 0;
        for len in 0..=8u32 {
            for n in 0..3usize.pow(len) {
                let head: Vec<u8> = (0..len)
                    .map(|k| b"a\r\n"[(n / 3usize.pow(k)) % 3])
                    .collect();
                for before in 0..=head.len() {
                    assert_eq!(
                        ends_head(&head, before),
                        ends_head_by_windows(&head, before),
                        "{:?} after {before}",
                        String::from_utf8_lossy(&head)
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 50_000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_is_read_whole_and_a_slow_one_times_out() {
        use tokio::io::AsyncWriteExt;
        let timeouts = TIMEOUTS;
        let (mut client, mut server) = tokio::io::duplex(64);
        let awaiting = Awaiting::next(Instant::now());
        let reading = tokio::spawn(async move {
            let r = read_head(&mut server, awaiting, &timeouts, 8192).await;
            (r, server)
        });
        client.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        client.write_all(b"st: x\r\n\r\nGET /next").await.unwrap();
        let (r, mut server) = reading.await.unwrap();
        assert_eq!(r.unwrap(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /next");

        // A head that never ends: cut at header_timeout after its first byte.
        let reading = tokio::spawn(async move {
            let awaiting = Awaiting::next(Instant::now());
            read_head(&mut server, awaiting, &timeouts, 8192).await
        });
        tokio::time::sleep(Duration::from_secs(30)).await;
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let started = Instant::now();
        assert_eq!(reading.await.unwrap(), Err(NoHead::TimedOut));
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    /// A first head is due `header_timeout` after the accept, however
    /// late its first byte came.
    #[tokio::test(start_paused = true)]
    async fn a_first_head_is_due_from_the_accept() {
        use tokio::io::AsyncWriteExt;
        let timeouts = TIMEOUTS;
        let (mut client, mut server) = tokio::io::duplex(64);
        let accepted = Instant::now();
        let reading = tokio::spawn(async move {
            read_head(&mut server, Awaiting::first(accepted), &timeouts, 8192).await
        });
        tokio::time::sleep(Duration::from_secs(8)).await;
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        assert_eq!(reading.await.unwrap(), Err(NoHead::TimedOut));
        assert_eq!(accepted.elapsed(), Duration::from_secs(10));
    }
}
