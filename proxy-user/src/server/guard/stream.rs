//! The guard as the connection's stream: reads that find nothing wait for
//! the phase's read deadline; writes
//! that make no progress wait for `send_timeout`; a parked connection
//! reads end-of-file and shuts down by handing its stream back.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Guarded;
use crate::server::lifecycle::{Due, Expiry};

/// The stream, or the error every call gets once it was handed back.
fn io<S: Unpin>(io: &mut Option<S>) -> io::Result<Pin<&mut S>> {
    io.as_mut()
        .map(Pin::new)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "connection parked"))
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.check_expired()?;
        if this.parking {
            // End-of-file while idle: HTTP/1 ends the connection cleanly.
            return Poll::Ready(Ok(()));
        }
        if this.prefix_at < this.prefix.len() {
            let prefix = std::mem::take(&mut this.prefix);
            let (from, to) = (
                this.prefix_at,
                prefix.len().min(this.prefix_at + buf.remaining()),
            );
            buf.put_slice(&prefix[from..to]);
            this.drained = false;
            if to < prefix.len() {
                this.prefix = prefix;
                this.prefix_at = to;
            } else {
                this.prefix_at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match io(&mut this.io)?.poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.drained = false;
                if buf.filled().len() > before
                    && this.body_left.is_some()
                    && let Some(mark) = &mut this.lowat
                {
                    mark.body_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                this.drained = true;
                this.set_lowat(cx);
                match this.phase().due(&this.timeouts) {
                    Due::At(deadline, what) if this.wait(cx, deadline).is_ready() => match what {
                        Expiry::Close(why) => Poll::Ready(Err(this.expire(why))),
                        Expiry::Park => {
                            this.parking = true;
                            Poll::Ready(Ok(()))
                        }
                    },
                    Due::At(..) | Due::Never => Poll::Pending,
                    Due::AfterRequest => {
                        this.keep_armed(cx);
                        Poll::Pending
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.check_expired()?;
        match io(&mut this.io)?.poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                this.wrote();
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.write_pending(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.check_expired()?;
        match io(&mut this.io)?.poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                this.wrote();
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.write_pending(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(|io| io.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.check_expired()?;
        match io(&mut this.io)?.poll_flush(cx) {
            Poll::Ready(r) => {
                if r.is_ok() {
                    this.write_stalled = None;
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.write_pending(cx).map(Err),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.parking {
            // Not closed: the socket goes back to wait for the next request.
            self.hand_back();
            return Poll::Ready(Ok(()));
        }
        io(&mut self.io)?.poll_shutdown(cx)
    }
}
