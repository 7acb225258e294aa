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

use bytes::{Buf, Bytes, BytesMut};
use hyper::{
    HeaderMap, Method, Response, StatusCode, Version,
    header::{HeaderName, HeaderValue},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{conn::Conn, response_body::ResponseBody};
use crate::h1::{Framing, H1Error, hop_by_hop, request::slots, response};

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
                match take_head(&mut self.buf, method)? {
                    Taken::Partial => {}
                    Taken::Informational => continue,
                    Taken::Final(parts, follow) => {
                        let body = ResponseBody::new(self, follow.0, follow.1, follow.2);
                        return Ok(Response::from_parts(parts, body));
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

/// What [`take_head`] found at the start of the buffer.
enum Taken {
    /// Not a whole head yet.
    Partial,
    /// A 1xx head, consumed.
    Informational,
    /// A final head, consumed: the response's parts, and how its body is
    /// followed (kind, framing, keep-alive).
    Final(
        hyper::http::response::Parts,
        (response::Kind, Framing, bool),
    ),
}

/// Where a header's name and value are in the head.
#[derive(Clone, Copy, Debug, Default)]
struct Span {
    name: (u32, u32),
    value: (u32, u32),
}

/// Headers whose places are kept on the stack; more are kept in a `Vec`.
const INLINE_SPANS: usize = 16;

/// Parses the head at the start of `buf` and takes it out of `buf` (what
/// follows stays), without its hop-by-hop headers unless it is a tunnel's. The header values are slices of the head's bytes, cut
/// from the connection's buffer: no allocation per value, nor for the head.
fn take_head(buf: &mut BytesMut, method: &Method) -> Result<Taken, SendError> {
    let invalid = |why| SendError::Response(H1Error::upstream(why));
    let mut inline = [Span::default(); INLINE_SPANS];
    let mut spilled: Vec<Span> = Vec::new();
    let mut n = 0;
    // The parse borrows `buf`: what is kept of it is the places.
    let (status, minor, kind, framing, keep_alive, head_len) = {
        let mut room = slots::<MAX_HEADERS>();
        let parsed = response::parse(buf, method.as_str(), MAX_HEAD, &mut room)
            .map_err(SendError::Response)?;
        let Some(head) = parsed else {
            return Ok(Taken::Partial);
        };
        let base = buf.as_ptr() as usize;
        // Offsets in the head (under `MAX_HEAD`, so in a u32).
        let at = |piece: &[u8]| {
            let start = (piece.as_ptr() as usize - base) as u32;
            (start, start + piece.len() as u32)
        };
        // Hop-by-hop headers (and those `Connection` names) are left out
        // here, in the one pass, but from a tunnel's head (101), which
        // `http::proxy` edits itself.
        let strip = head.kind != response::Kind::Tunnel;
        let is_connection = |h: &httparse::Header<'_>| h.name.eq_ignore_ascii_case("connection");
        let connection = strip && head.headers.iter().any(is_connection);
        let named = |name: &str| {
            head.headers
                .iter()
                .filter(|c| is_connection(c))
                .flat_map(|c| c.value.split(|b| *b == b','))
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
        };
        for h in head.headers {
            // A length beside chunked: followed as chunked, and the
            // connection closed after it (RFC 9112 §6.3: it may be an
            // attempt at response splitting).
            if head.drop_length && h.name.eq_ignore_ascii_case("content-length") {
                continue;
            }
            if strip && (hop_by_hop::is(h.name) || (connection && named(h.name))) {
                continue;
            }
            let span = Span {
                name: at(h.name.as_bytes()),
                value: at(h.value),
            };
            if n < INLINE_SPANS && spilled.is_empty() {
                inline[n] = span;
            } else {
                if spilled.is_empty() {
                    spilled.extend_from_slice(&inline[..n]);
                }
                spilled.push(span);
            }
            n += 1;
        }
        (
            head.status,
            head.minor,
            head.kind,
            head.framing,
            head.keep_alive && !head.drop_length,
            head.head_len,
        )
    };
    if kind == response::Kind::Informational {
        buf.advance(head_len);
        return Ok(Taken::Informational);
    }
    let spans = if spilled.is_empty() {
        &inline[..n]
    } else {
        &spilled[..]
    };
    // The buffer is shared with the body's bytes already: cutting the
    // head out of it allocates nothing.
    let raw = buf.split_to(head_len).freeze();
    let piece = |(start, end): (u32, u32)| start as usize..end as usize;
    // Room for the header the proxy adds to every response (`X-Request-Id`,
    // `http::handle`): a map grown for it costs a second allocation and a
    // rehash per response.
    let mut headers = HeaderMap::with_capacity(spans.len() + 1);
    for span in spans {
        let name = HeaderName::from_bytes(&raw[piece(span.name)])
            .map_err(|_| invalid("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(raw.slice(piece(span.value)))
            .map_err(|_| invalid("invalid header value"))?;
        headers.append(name, value);
    }
    let (mut parts, ()) = Response::new(()).into_parts();
    parts.status = StatusCode::from_u16(status).map_err(|_| invalid("invalid status"))?;
    parts.version = if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    parts.headers = headers;
    Ok(Taken::Final(parts, (kind, framing, keep_alive)))
}

#[cfg(test)]
#[path = "exchange_tests.rs"]
mod tests;
