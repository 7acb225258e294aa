//! One request and its response head over an upstream connection, in the
//! request's own task: the head (and a small body) in one write, then the
//! response head read into the connection's buffer and parsed in place
//! (`h1::response`, [`super::head`]). What follows the head is read by
//! [`ResponseBody`], from the same buffer and socket. No connection task,
//! no channel: hyper's client needed both for every request and every
//! body chunk.
//!
//! ```text
//! Pool::send ──Conn::exchange──▶ write(head + body) ──▶ read/parse head (1xx skipped)
//!                                         │
//!   Answer { head, ResponseBody } ◀──┘  body read on demand; at its clean end
//!                                            the Conn goes back to the pool
//! ```

use std::io;

use bytes::Bytes;
use hyper::Method;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    time::Instant,
};

use super::{
    conn::Conn,
    head::{self, Answer, Taken},
    response_body::ResponseBody,
};
use crate::h1::H1Error;

/// A body up to this size goes out in the head's write.
const COALESCE: usize = 16 << 10;
/// Read room reserved before each read.
const READ_ROOM: usize = 8 << 10;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be made: the server never saw the request.
    #[error("connect: {0}")]
    Connect(#[source] io::Error),
    /// The connection failed during the exchange: the server may have seen it.
    #[error("exchange: {0}")]
    Exchange(#[source] io::Error),
    /// The server's answer was not HTTP/1 as hyper's client accepts it
    /// (the server's fault: 502, and the connection is closed).
    #[error("invalid response: {0}")]
    Response(#[source] H1Error),
}

impl SendError {
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_))
    }

    /// The exchange stalled past `send_timeout` (or the connect timed out).
    pub fn timed_out(&self) -> bool {
        match self {
            SendError::Connect(e) | SendError::Exchange(e) => e.kind() == io::ErrorKind::TimedOut,
            SendError::Response(_) => false,
        }
    }
}

/// How an exchange on a reused connection failed.
pub(super) enum Failed {
    /// Not one byte of the request left: it may go over another connection.
    NotSent(io::Error),
    Sent(SendError),
}

impl Conn {
    /// Sends `head` and `body`, and reads the final response's head, by
    /// `read_by` if given (else `TimedOut`).
    pub(super) async fn exchange(
        mut self,
        head: &[u8],
        body: &Bytes,
        method: &Method,
        read_by: Option<Instant>,
    ) -> Result<Answer, Failed> {
        self.io.set_deadline(read_by);
        self.write_request(head, body).await?;
        self.read_response(method).await.map_err(Failed::Sent)
    }

    /// One write for the head and a small body; a larger body follows it.
    async fn write_request(&mut self, head: &[u8], body: &Bytes) -> Result<(), Failed> {
        let joined: Vec<u8>;
        let first: &[u8] = if !body.is_empty() && body.len() <= COALESCE {
            joined = [head, &body[..]].concat();
            &joined
        } else {
            head
        };
        let sent = |e| Failed::Sent(SendError::Exchange(e));
        match self.io.write(first).await {
            Ok(0) => {
                return Err(Failed::NotSent(io::ErrorKind::WriteZero.into()));
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(sent(e)),
            Err(e) => return Err(Failed::NotSent(e)),
            Ok(n) => self.io.write_all(&first[n..]).await.map_err(sent)?,
        }
        if first.len() == head.len() && !body.is_empty() {
            self.io.write_all(body).await.map_err(sent)?;
        }
        Ok(())
    }

    /// Reads heads until a final one (1xx but 101 are skipped, as hyper's
    /// client skips them), and makes it the response.
    async fn read_response(mut self, method: &Method) -> Result<Answer, SendError> {
        loop {
            if !self.buf.is_empty() {
                match head::take(&mut self.buf, method).map_err(SendError::Response)? {
                    Taken::Partial => {}
                    Taken::Informational => continue,
                    Taken::Final(head, follow) => {
                        // The body has deadlines of its own (`http::proxy`).
                        self.io.set_deadline(None);
                        let body = ResponseBody::new(self, follow.0, follow.1, follow.2);
                        return Ok(Answer { head, body });
                    }
                }
            }
            self.buf.reserve(READ_ROOM);
            let n = self
                .io
                .read_buf(&mut self.buf)
                .await
                .map_err(SendError::Exchange)?;
            if n == 0 {
                return Err(SendError::Exchange(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before the response head",
                )));
            }
        }
    }
}

#[cfg(test)]
#[path = "exchange_tests.rs"]
mod tests;
