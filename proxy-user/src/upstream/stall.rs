//! `send_timeout` of an `[upstream.NAME]` (nginx's `proxy_send_timeout`):
//! a write to the server that makes no progress for this long fails the
//! exchange. Reads are the proxy's to time (`read_timeout`, per request),
//! so they pass through untouched, but for the exchange's deadline
//! ([`WriteStall::set_deadline`]): until the response head, reads and
//! writes fail once it has passed.
//!
//! The deadline's timer is the connection's, kept across its requests:
//! armed at the first deadline it waits for and moved only when a
//! deadline comes earlier, or when it fires before the deadline it now
//! guards (then it is armed again at that one). A keep-alive connection
//! registers a timer once per `read_timeout`, not once per request.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep},
};

/// An upstream connection whose stalled writes time out.
#[derive(Debug)]
pub struct WriteStall<S> {
    io: S,
    send: Duration,
    /// Armed at the first write that could not proceed, until one does.
    stalled: Option<Pin<Box<Sleep>>>,
    timed_out: bool,
    /// Made at the first deadline, and kept: boxed, so that the
    /// connection, moved in and out of the pool at every request, stays
    /// small enough to be moved without a `memcpy` call.
    deadline: Option<Box<Deadline>>,
}

/// The exchange's deadline and its timer.
#[derive(Debug)]
struct Deadline {
    /// The deadline, while one applies.
    at: Option<Instant>,
    /// What the timer is armed for: never later than the deadline it guards.
    armed: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<S> WriteStall<S> {
    pub fn new(io: S, send: Duration) -> WriteStall<S> {
        WriteStall {
            io,
            send,
            stalled: None,
            timed_out: false,
            deadline: None,
        }
    }

    /// Reads and writes fail with `TimedOut` once `deadline` has passed
    /// (`None`: no deadline).
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        match (&mut self.deadline, deadline) {
            (Some(d), at) => d.at = at,
            (None, Some(at)) => {
                self.deadline = Some(Box::new(Deadline {
                    at: Some(at),
                    armed: at,
                    timer: Box::pin(tokio::time::sleep_until(at)),
                }));
            }
            (None, None) => {}
        }
    }

    /// A read or write is pending: whether the deadline has passed (else
    /// the task is woken when it may have).
    fn overdue(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(d) = self.deadline.as_deref_mut() else {
            return false;
        };
        let Some(deadline) = d.at else {
            return false;
        };
        loop {
            if d.armed > deadline || d.timer.is_elapsed() {
                d.timer.as_mut().reset(deadline);
                d.armed = deadline;
            }
            if d.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            if Instant::now() >= deadline {
                return true;
            }
        }
    }

    /// The stream, for what needs no deadline (a look at an idle socket).
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// A write is pending: `Ready` with the error once it has been for `send`.
    fn pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let send = self.send;
        let timer = self.stalled.get_or_insert_with(|| {
            Box::pin(tokio::time::sleep_until(crate::later::Later::later(
                Instant::now(),
                send,
            )))
        });
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.timed_out = true;
                Poll::Ready(timed_out())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// The outcome of a write call: progress disarms the timer.
    fn wrote<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if self.timed_out {
            return Poll::Ready(Err(timed_out()));
        }
        match r {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending if self.overdue(cx) => Poll::Ready(Err(read_timed_out())),
            Poll::Pending => self.pending(cx).map(Err),
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "send timed out")
}

fn read_timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "no response head within read_timeout",
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteStall<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Pending if self.overdue(cx) => Poll::Ready(Err(read_timed_out())),
            r => r,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteStall<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, data);
        self.wrote(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.wrote(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_write_that_makes_no_progress_times_out_and_reads_never_do() {
        let (near, mut far) = tokio::io::duplex(16);
        let mut s = WriteStall::new(near, Duration::from_secs(2));
        // Progress, however slow, keeps it going.
        for _ in 0..4 {
            s.write_all(&[7; 16]).await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            far.read_exact(&mut [0; 16]).await.unwrap();
        }
        // Nobody reads: the buffer fills and the write stalls.
        let started = Instant::now();
        let e = s.write_all(&[7; 64]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert!(s.write(&[1]).await.is_err(), "stays timed out");
        // Reading has no deadline here.
        let (near, _far) = tokio::io::duplex(16);
        let mut s = WriteStall::new(near, Duration::from_secs(2));
        let read = tokio::time::timeout(Duration::from_secs(60), s.read(&mut [0; 4])).await;
        assert!(read.is_err(), "still waiting after a minute");
    }

    /// A read answered `after` seconds, while it waits.
    async fn answered(s: &mut WriteStall<DuplexStream>, far: &mut DuplexStream, after: u64) {
        let mut room = [0; 4];
        let (read, ()) = tokio::join!(s.read(&mut room), async {
            tokio::time::sleep(Duration::from_secs(after)).await;
            far.write_all(b"x").await.unwrap();
        });
        assert_eq!(read.unwrap(), 1);
    }

    /// A read nobody answers, with `deadline`: it fails then, not before.
    async fn times_out_at(s: &mut WriteStall<DuplexStream>, deadline: Instant) {
        s.set_deadline(Some(deadline));
        let e = s.read(&mut [0; 4]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(Instant::now(), deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn reads_time_out_at_each_deadline_on_one_timer() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut s = WriteStall::new(near, Duration::from_secs(60));
        let secs = Duration::from_secs;
        // Answered in time: the timer is armed for 5 s and left so.
        let t0 = Instant::now();
        s.set_deadline(Some(t0 + secs(5)));
        answered(&mut s, &mut far, 2).await;
        // A later deadline: the timer fires at 5 s, before it, and is
        // armed again for it.
        times_out_at(&mut s, t0 + secs(10)).await;
        // An earlier deadline than the timer's: the timer is moved to it.
        s.set_deadline(Some(Instant::now() + secs(30)));
        answered(&mut s, &mut far, 20).await;
        times_out_at(&mut s, Instant::now() + secs(3)).await;
        // Writes too: nobody reads, the duplex fills, the deadline ends it
        // before `send_timeout` (60 s) would.
        let t3 = Instant::now();
        s.set_deadline(Some(t3 + secs(4)));
        let e = s.write_all(&[7; 256]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(t3.elapsed(), secs(4));
        // No deadline: no timeout.
        let (near, _far) = tokio::io::duplex(16);
        let mut s = WriteStall::new(near, Duration::from_secs(2));
        s.set_deadline(Some(Instant::now() + secs(1)));
        s.set_deadline(None);
        let read = tokio::time::timeout(secs(60), s.read(&mut [0; 4])).await;
        assert!(read.is_err(), "still waiting after a minute");
    }
}
