//! The body of an upstream response, read from the connection's socket in
//! the task that polls it (the request's), following the framing with
//! `h1::body::Body`: a `Content-Length` body's bytes pass as they are read,
//! a chunked one's data is cut out of its framing (the downstream side
//! frames it again), a body to the close ends at the close.
//!
//! When the body ended cleanly, the response allows keep-alive and nothing
//! was read past the body, the connection can serve another request
//! ([`ResponseBody::reusable`]); otherwise it is closed when dropped. A
//! framing fault is the upstream's (`H1Error` with `Blame::Upstream`): the
//! body ends with the error, and the client's response is cut.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Buf, Bytes};
use hyper::body::{Frame, SizeHint};

use super::{conn::Conn, stall::WriteStall, stream::Stream};
use crate::h1::{Blame, Framing, H1Error, body::Body, body::BodyLimits, response::Kind};

/// Read room reserved before each read of the body.
const READ_ROOM: usize = 16 << 10;

/// Why a response body could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("upstream read: {0}")]
    Io(#[from] io::Error),
    #[error("upstream body: {0}")]
    Framing(#[from] H1Error),
}

/// A response's body, owning its connection until it ends.
#[derive(Debug)]
pub struct ResponseBody {
    conn: Option<Conn>,
    follow: Body,
    framing: Framing,
    /// The response's head allows another request on the connection.
    keep_alive: bool,
    /// 101 (or a 2xx to CONNECT): the connection is the caller's.
    tunnel: bool,
    /// A read or framing error ended it: never reused.
    failed: bool,
}

impl ResponseBody {
    pub(super) fn new(conn: Conn, kind: Kind, framing: Framing, keep_alive: bool) -> ResponseBody {
        ResponseBody {
            conn: Some(conn),
            follow: Body::new(framing, Blame::Upstream, BodyLimits::default()),
            framing,
            keep_alive,
            tunnel: kind == Kind::Tunnel,
            failed: false,
        }
    }

    /// A 101 (or a 2xx to CONNECT): its head kept its hop-by-hop headers.
    pub fn is_tunnel(&self) -> bool {
        self.tunnel
    }

    /// The connection, if the body was read to a clean end and another
    /// request may follow on it.
    pub fn reusable(&mut self) -> Option<Conn> {
        let clean = !self.failed
            && !self.tunnel
            && self.keep_alive
            && self.follow.is_done()
            && self.conn.as_ref().is_some_and(|c| c.buf.is_empty());
        if clean { self.conn.take() } else { None }
    }

    /// Follows what was read with the head (a copy of the follower, so
    /// nothing is consumed): a framing fault in it is known before the
    /// response goes to the client, which then gets a 502 instead of a
    /// response cut short. The connection is then closed.
    pub fn check_buffered(&mut self) -> Result<(), H1Error> {
        let Some(conn) = &self.conn else {
            return Ok(());
        };
        if conn.buf.is_empty() || self.framing != Framing::Chunked {
            return Ok(());
        }
        let r = self.follow.clone().advance(&conn.buf).map(drop);
        if r.is_err() {
            self.failed = true;
            self.conn = None;
        }
        r
    }

    /// After a 101: the raw connection and what the server sent past its head.
    pub fn into_upgraded(mut self) -> Option<(WriteStall<Stream>, Bytes)> {
        if !self.tunnel {
            return None;
        }
        let conn = self.conn.take()?;
        Some((conn.io, conn.buf.freeze()))
    }

    /// The body's next data out of what was read: `None` when `buf` has
    /// none (empty, or framing bytes only, now consumed).
    fn data(&mut self) -> Result<Option<Bytes>, H1Error> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(None);
        };
        let buf = &mut conn.buf;
        while !buf.is_empty() && !self.follow.is_done() {
            if self.framing == Framing::Close {
                let all = buf.split().freeze();
                self.follow.advance(&all)?;
                return Ok(Some(all));
            }
            if let Some(left) = self.follow.data_left() {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                self.follow.advance(&buf[..n])?;
                return Ok(Some(buf.split_to(n).freeze()));
            }
            // Chunk framing (size lines, CRLFs, trailers): followed, not passed on.
            self.follow.advance(&buf[..1])?;
            buf.advance(1);
        }
        Ok(None)
    }

    fn fail(&mut self, e: impl Into<BodyError>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.failed = true;
        self.conn = None;
        Poll::Ready(Some(Err(e.into())))
    }
}

impl hyper::body::Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.tunnel || this.failed {
            return Poll::Ready(None);
        }
        loop {
            match this.data() {
                Ok(Some(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(None) => {}
                Err(e) => return this.fail(e),
            }
            if this.follow.is_done() {
                return Poll::Ready(None);
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            conn.buf.reserve(READ_ROOM);
            let read = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut conn.io),
                cx,
                &mut conn.buf
            ));
            match read {
                Ok(0) => {
                    // The server closed: the end of a body read to the close, a fault otherwise.
                    this.keep_alive = false;
                    if let Err(e) = this.follow.at_eof() {
                        return this.fail(e);
                    }
                    return Poll::Ready(None);
                }
                Ok(_) => {}
                Err(e) => return this.fail(e),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.tunnel || self.failed || self.follow.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            _ if self.follow.is_done() => SizeHint::with_exact(0),
            Framing::Length(_) => SizeHint::with_exact(self.follow.data_left().unwrap_or(0)),
            _ => SizeHint::default(),
        }
    }
}
