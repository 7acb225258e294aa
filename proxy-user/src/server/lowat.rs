//! The receive low-water mark of a plain client socket: while a request
//! body is due, the kernel wakes the proxy only once the rest of it (or
//! [`MAX`] bytes of it) has arrived, not for every segment.
//!
//! Request bodies are read whole before they are forwarded
//! (`http::proxy`), so bytes of a body that has not all arrived are of no
//! use yet. Waking for each of them costs a poll of the connection's HTTP
//! state: a client dripping its body a byte at a time (a slow-POST attack)
//! cost about 10 µs of the proxy's CPU per byte that way, against nginx's
//! 4.4 µs; with the mark set it costs the kernel's receive work alone.
//!
//! The mark never asks for more than the body still owes (as the HTTP/1
//! server following it says, [`super::guard::Guarded::body_left`]), so a
//! request's last bytes always wake it; a closed or reset connection wakes
//! it too. Outside a body the mark is 1, the kernel's default, so a
//! connection handed back to the lot waits for heads as before. A read
//! still returns whatever has arrived: only readiness waits for the mark.
//!
//! Bytes the mark holds back are not reads for `body_timeout` (the time
//! between two reads of a body): half a `body_timeout` after the last read
//! the guard lowers the mark to 1, Linux then signals what is queued, and
//! it is read ([`BodyMark::follow`]). A body dripping in below the mark
//! thus costs one wake per half `body_timeout` and is never cut while
//! bytes keep coming.
//!
//! TLS connections keep the default: their bytes are records, whose
//! boundaries the body's framing does not see.

use std::{future::Future, os::fd::RawFd, pin::Pin, task::Context};

use tokio::time::{Instant, Sleep};

use super::lifecycle::Timeouts;

/// The largest mark set. Linux grows the receive buffer to fit a mark and
/// then clamps the advertised window to it for the rest of the
/// connection; 16 KiB needs about 32 KiB of buffer, well under the
/// default 128 KiB, so neither happens.
pub const MAX: u64 = 16 * 1024;

/// One socket's mark, set only when it changes.
#[derive(Debug)]
pub struct RcvLowat {
    fd: RawFd,
    /// The mark now set on the socket.
    set: u64,
    /// Setting it failed once: not tried again.
    broken: bool,
}

impl RcvLowat {
    /// For the socket `fd`, whose mark is the default (1). The caller keeps
    /// `fd` open while it calls [`RcvLowat::want`].
    pub fn new(fd: RawFd) -> RcvLowat {
        RcvLowat {
            fd,
            set: 1,
            broken: false,
        }
    }

    /// Readiness once `bytes` have arrived (at least 1, at most [`MAX`]).
    pub fn want(&mut self, bytes: u64) {
        let want = bytes.clamp(1, MAX);
        if want == self.set || self.broken {
            return;
        }
        let value = want as libc::c_int;
        // SAFETY: `fd` is the connection's open socket (see `new`); the
        // option is an int, passed with its size.
        let rc = unsafe {
            libc::setsockopt(
                self.fd,
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            self.set = want;
        } else {
            log::debug!(
                "SO_RCVLOWAT on fd {}: {}",
                self.fd,
                std::io::Error::last_os_error()
            );
            self.broken = true;
        }
    }
}

/// A plain connection's mark as it follows the request body being read.
#[derive(Debug)]
pub struct BodyMark {
    mark: RcvLowat,
    /// Last read that returned bytes of a request body (the only reads
    /// timed: a clock read per read costs more than the rest of a read's
    /// bookkeeping in the guard).
    last_read: Instant,
    /// While the mark holds a body's bytes back: when to lower it so that
    /// what has arrived is read within `body_timeout` (created on first use).
    nudge: Option<Pin<Box<Sleep>>>,
}

impl BodyMark {
    /// For the socket `fd`, kept open while the mark is used.
    pub fn new(fd: RawFd) -> BodyMark {
        BodyMark {
            mark: RcvLowat::new(fd),
            last_read: Instant::now(),
            nudge: None,
        }
    }

    /// A read returned bytes of a request body.
    pub fn body_read(&mut self) {
        self.last_read = Instant::now();
    }

    /// Any byte wakes the socket again (it goes back to wait for a head).
    pub fn release(&mut self) {
        self.mark.want(1);
    }

    /// Before the connection waits for bytes: sets the mark to `left`, what
    /// the body being read still owes (1 outside a body). The handler
    /// times the body between reads (`body_timeout`), and bytes held back
    /// by the mark are not reads: so half a `body_timeout` after the last
    /// read ([`Timeouts::body_nudge`]) the mark drops to 1, which makes
    /// what has arrived readable (Linux signals readiness when the mark is
    /// lowered below what is queued), and a body trickling in slower than
    /// the mark costs a wake per half `body_timeout`.
    pub fn follow(&mut self, cx: &mut Context<'_>, left: u64, timeouts: &Timeouts) {
        if left <= 1 {
            self.mark.want(1);
            return;
        }
        let at = timeouts.body_nudge(self.last_read);
        if Instant::now() >= at {
            self.mark.want(1);
            return;
        }
        self.mark.want(left);
        let nudge = self
            .nudge
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if nudge.deadline() != at {
            nudge.as_mut().reset(at);
        }
        if nudge.as_mut().poll(cx).is_ready() {
            self.mark.want(1);
        }
    }
}

/// The socket's receive low-water mark, read back (for tests here and in `guard`).
#[cfg(test)]
pub(super) fn mark(fd: std::os::fd::RawFd) -> libc::c_int {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: an int option read into an int, with its size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0);
    v
}

#[cfg(test)]
mod tests {
    use std::{
        io::Write,
        net::{TcpListener, TcpStream},
        os::fd::AsRawFd,
        time::Duration,
    };

    use super::*;

    fn readable(s: &TcpStream, wait: Duration) -> bool {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let mut p = [PollFd::new(s, PollFlags::IN)];
        let wait = Timespec::try_from(wait).unwrap();
        poll(&mut p, Some(&wait)).unwrap() == 1
    }

    #[test]
    fn readiness_waits_for_the_mark_and_the_mark_is_capped() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let mut mark = RcvLowat::new(server.as_raw_fd());
        mark.want(10);
        client.write_all(b"123456789").unwrap();
        assert!(!readable(&server, Duration::from_millis(100)));
        client.write_all(b"0").unwrap();
        assert!(readable(&server, Duration::from_secs(2)));
        mark.want(1);
        assert_eq!(mark.set, 1);
        mark.want(u64::MAX);
        assert_eq!(mark.set, MAX);
        // A closed connection is readable whatever the mark.
        drop(client);
        assert!(readable(&server, Duration::from_secs(2)));
    }

    /// The mark drops half a `body_timeout` after the body's last read,
    /// timed from that read (the guard reads the clock for reads of a
    /// body only), not from an earlier moment of the connection.
    #[tokio::test]
    async fn the_mark_drops_half_a_body_timeout_after_the_bodys_last_read() {
        use std::{
            pin::Pin,
            sync::Arc,
            task::{Context, Poll, Waker},
        };

        use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};

        use crate::server::{busy::Busy, guard::Guarded, lifecycle::Timeouts};

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
            body: Duration::from_millis(400),
        };
        let mut g = Guarded::new(server, timeouts, false).body_lowat(fd);
        struct Ignored;
        impl std::task::Wake for Ignored {
            fn wake(self: Arc<Self>) {}
        }
        let waker = Waker::from(Arc::new(Ignored));
        let read = |g: &mut Guarded<tokio::net::TcpStream>| {
            let mut buf = [0u8; 256];
            let mut rb = ReadBuf::new(&mut buf);
            Pin::new(g)
                .poll_read(&mut Context::from_waker(&waker), &mut rb)
                .map_ok(|()| rb.filled().len())
        };
        // More than half a body_timeout after the connection began: a body
        // timed from then would get no mark at all.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let head = b"POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\nabc";
        client.write_all(head).await.unwrap();
        let mut got = 0;
        while got < head.len() {
            tokio::time::sleep(Duration::from_millis(10)).await;
            while let Poll::Ready(n) = read(&mut g) {
                got += n.unwrap();
            }
        }
        let _busy = Busy::enter(g.watch());
        // The server read the head (and the body's first bytes with it):
        // the body's data starts now.
        g.body_left(Some(100_000 - 3));
        assert!(read(&mut g).is_pending());
        assert_eq!(mark(fd), 16 * 1024);
        // Nothing more for half the body_timeout: the mark drops to 1, so
        // what has arrived is read and counts as a read of the body.
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(read(&mut g).is_pending());
        assert_eq!(mark(fd), 1);
    }
}
