//! `send_timeout` of an `[upstream.NAME]` (nginx's `proxy_send_timeout`):
//! a write to the server that makes no progress for this long fails the
//! exchange. Reads are the proxy's to time (`read_timeout`, per request),
//! so they pass through untouched.

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
}

impl<S> WriteStall<S> {
    pub fn new(io: S, send: Duration) -> WriteStall<S> {
        WriteStall {
            io,
            send,
            stalled: None,
            timed_out: false,
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
            Poll::Pending => self.pending(cx).map(Err),
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "send timed out")
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteStall<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
}
