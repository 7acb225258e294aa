//! One request and its response head over an upstream connection, in the
//! request's own task: the head (and a small body) in one write, then the
//! response head read into the connection's buffer and parsed in place
//! (`h1::response`). What follows the head is read by
//! [`ResponseBody`], from the same buffer and socket. No connection task,
//! no channel: hyper's client needed both for every request and every
//! body chunk.
//!
//! ```text
//! Pool::send ──Conn::exchange──▶ write(head + body) ──▶ read/parse head (1xx skipped)
//!                                         │
//!            Response<ResponseBody> ◀─────┘  body read on demand; at its clean end
//!                                            the Conn goes back to the pool
//! ```

use std::io;

use bytes::{Buf, Bytes};
use hyper::{
    HeaderMap, Method, Response, StatusCode, Version,
    header::{HeaderName, HeaderValue},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{conn::Conn, response_body::ResponseBody};
use crate::h1::{H1Error, request::slots, response};

/// hyper's client limits, kept: a response head up to its read buffer's
/// maximum (8 KiB + 100 × 4 KiB) and 100 header lines.
pub const MAX_HEAD: usize = 8192 + 4096 * 100;
const MAX_HEADERS: usize = 100;
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
    /// Sends `head` and `body`, and reads the final response's head.
    pub(super) async fn exchange(
        mut self,
        head: &[u8],
        body: &Bytes,
        method: &Method,
    ) -> Result<Response<ResponseBody>, Failed> {
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
    async fn read_response(mut self, method: &Method) -> Result<Response<ResponseBody>, SendError> {
        loop {
            if !self.buf.is_empty() {
                let mut room = slots::<MAX_HEADERS>();
                let parsed = response::parse(&self.buf, method.as_str(), MAX_HEAD, &mut room)
                    .map_err(SendError::Response)?;
                if let Some(head) = parsed {
                    if head.kind == response::Kind::Informational {
                        let len = head.head_len;
                        self.buf.advance(len);
                        continue;
                    }
                    let (parts, len) = response_parts(&head)?;
                    // A length beside chunked: followed as chunked, and the
                    // connection closed after it (RFC 9112 §6.3: it may be
                    // an attempt at response splitting).
                    let follow = (
                        head.kind,
                        head.framing,
                        head.keep_alive && !head.drop_length,
                    );
                    self.buf.advance(len);
                    let body = ResponseBody::new(self, follow.0, follow.1, follow.2);
                    return Ok(Response::from_parts(parts, body));
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

/// The parsed head as `http`'s response parts, and its length.
fn response_parts(
    head: &response::Response<'_, '_>,
) -> Result<(hyper::http::response::Parts, usize), SendError> {
    let invalid = |why| SendError::Response(H1Error::upstream(why));
    // Room for the header the proxy adds to every response (`X-Request-Id`,
    // `http::handle`): a map grown for it costs a second allocation and a
    // rehash per response.
    let mut headers = HeaderMap::with_capacity(head.headers.len() + 1);
    for h in head.headers {
        if head.drop_length && h.name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| invalid("invalid header name"))?;
        let value =
            HeaderValue::from_bytes(h.value).map_err(|_| invalid("invalid header value"))?;
        headers.append(name, value);
    }
    let (mut parts, ()) = Response::new(()).into_parts();
    parts.status = StatusCode::from_u16(head.status).map_err(|_| invalid("invalid status"))?;
    parts.version = if head.minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    parts.headers = headers;
    Ok((parts, head.head_len))
}

#[cfg(test)]
#[path = "exchange_tests.rs"]
mod tests;
