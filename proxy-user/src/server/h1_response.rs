//! Writing a response on rampart's own HTTP/1 connection
//! ([`super::h1_conn`]): the head and as much of the body as is ready, in
//! one buffer and one write; then the rest of the body as it comes.
//!
//! The framing is hyper's server's: the response's `Content-Length`, else
//! the body's exact size, else chunked (HTTP/1.1) or to the close
//! (HTTP/1.0); no body after a HEAD, 1xx, 204 or 304; `connection: close`
//! when the connection ends after it, `connection: keep-alive` to an
//! HTTP/1.0 client that keeps it; a `date` header when there is none.

use std::{
    cell::RefCell,
    io,
    pin::Pin,
    task::Poll,
    time::{SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Response, StatusCode,
    body::Body as _,
    header::{self, HeaderValue},
};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::http;

/// Buffered body bytes are written once there are this many.
const FLUSH_AT: usize = 64 << 10;

/// A data frame at least this large is written as it is, not copied into
/// the buffer.
const WRITE_THROUGH: usize = 16 << 10;

/// What the request says about its response.
#[derive(Clone, Copy, Debug)]
pub(super) struct Asked {
    /// A `HEAD` request: no body follows the head.
    pub head: bool,
    /// The request's HTTP/1 minor version (0 or 1).
    pub minor: u8,
    /// The connection ends after this response.
    pub close: bool,
}

/// How the body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Out {
    None,
    Length(u64),
    Chunked,
    ToClose,
}

/// Writes the response's head and then its body; `Ok(true)` when the
/// connection can carry another request (the response was whole and
/// nothing asked to close). `out` is the connection's write buffer (left
/// empty). A forwarded upstream head is written from its bytes
/// ([`forwarded_head`]), any other from its map.
pub(super) async fn write<S: AsyncWrite + Unpin>(
    io: &mut S,
    reply: http::Reply,
    asked: Asked,
    out: &mut Vec<u8>,
) -> io::Result<bool> {
    match reply {
        http::Reply::Forwarded(f) if f.head.plain() => {
            let http::Forwarded {
                head,
                body,
                request_id,
            } = f;
            match body {
                http::ForwardedBody::Whole(bytes) => {
                    let exact = Some(bytes.len() as u64);
                    let (framing, keep) =
                        forwarded_head(&head, request_id.as_ref(), exact, asked, out);
                    // Written: the head's bytes are a slice of its
                    // connection's read buffer, kept shared while held.
                    drop(head);
                    send(io, Full::new(bytes), framing, keep, out).await
                }
                http::ForwardedBody::Streamed(body) => {
                    let exact = body.size_hint().exact();
                    let (framing, keep) =
                        forwarded_head(&head, request_id.as_ref(), exact, asked, out);
                    // The buffer is read again while the body streams: a
                    // head kept shared would have it copied.
                    drop(head);
                    send(io, body, framing, keep, out).await
                }
            }
        }
        reply => {
            let (parts, body) = reply.into_response().into_parts();
            let (framing, keep) = head(&parts, body.size_hint().exact(), asked, out);
            // Written: an upstream head's values are slices of its
            // connection's read buffer (`upstream::head`), which they would
            // keep shared, so copied at its next read, while the body streams.
            drop(parts);
            send(io, body, framing, keep, out).await
        }
    }
}

/// Writes the body after the head in `out`, as `framing` says.
async fn send<S, B>(
    io: &mut S,
    mut body: B,
    framing: Out,
    keep: bool,
    out: &mut Vec<u8>,
) -> io::Result<bool>
where
    S: AsyncWrite + Unpin,
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    if framing == Out::None {
        io.write_all(out).await?;
        out.clear();
        return Ok(keep);
    }
    let mut left = match framing {
        Out::Length(n) => n,
        _ => u64::MAX,
    };
    let mut whole = true;
    loop {
        // What the body has now; only when it has nothing is what is
        // buffered written and the body awaited.
        let now = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await;
        let frame = match now {
            Poll::Ready(f) => f,
            Poll::Pending => {
                if !out.is_empty() {
                    io.write_all(out).await?;
                    out.clear();
                }
                std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            }
        };
        let data = match frame {
            None => break,
            Some(Err(e)) => {
                log::debug!("response body failed: {e}");
                whole = false;
                break;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(d) => d,
                Err(_) => continue,
            },
        };
        if data.is_empty() {
            continue;
        }
        let data = match framing {
            Out::Length(_) => {
                let take = left.min(data.len() as u64) as usize;
                left -= take as u64;
                if take < data.len() {
                    log::debug!("response body longer than its content-length");
                    whole = false;
                }
                data.slice(..take)
            }
            Out::Chunked => {
                out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                data
            }
            _ => data,
        };
        put(io, out, &data).await?;
        if framing == Out::Chunked {
            out.extend_from_slice(b"\r\n");
        }
        if !whole {
            break;
        }
    }
    match framing {
        Out::Chunked if whole => out.extend_from_slice(b"0\r\n\r\n"),
        Out::Length(n) if n > 0 && left > 0 => whole = false,
        _ => {}
    }
    io.write_all(out).await?;
    out.clear();
    Ok(keep && whole)
}

/// Buffers `data`, or writes it through when large.
async fn put<S: AsyncWrite + Unpin>(io: &mut S, out: &mut Vec<u8>, data: &Bytes) -> io::Result<()> {
    if data.len() >= WRITE_THROUGH {
        if !out.is_empty() {
            io.write_all(out).await?;
            out.clear();
        }
        return io.write_all(data).await;
    }
    out.extend_from_slice(data);
    if out.len() >= FLUSH_AT {
        io.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

/// Writes the response head into `out` from its map: how the body goes,
/// and whether the connection is kept.
fn head(
    parts: &hyper::http::response::Parts,
    exact: Option<u64>,
    asked: Asked,
    out: &mut Vec<u8>,
) -> (Out, bool) {
    let status = parts.status;
    let upgrade = status == StatusCode::SWITCHING_PROTOCOLS;
    let mut close = asked.close;
    status_line(out, status);
    let mut length = None;
    // Seen in the one pass over the headers: a lookup would hash the name.
    let mut dated = false;
    for (name, value) in &parts.headers {
        dated |= *name == header::DATE;
        if *name == header::TRANSFER_ENCODING {
            continue;
        }
        if *name == header::CONNECTION && !upgrade {
            if value
                .as_bytes()
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
            {
                close = true;
            }
            continue;
        }
        if *name == header::CONTENT_LENGTH {
            if bodiless(status) && status != StatusCode::NOT_MODIFIED {
                continue;
            }
            length = std::str::from_utf8(value.as_bytes())
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok());
        }
        line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    let known = Known {
        status,
        dated,
        length,
        exact,
        close,
    };
    end(known, asked, out)
}

/// Writes a forwarded upstream head into `out`: the status line, the
/// upstream's lines as they came (their hop-by-hop ones and a 204's length
/// left out already, `upstream::head`), the request id in place of the
/// upstream's, and what [`end`] adds.
fn forwarded_head(
    head: &crate::upstream::Head,
    request_id: Option<&HeaderValue>,
    exact: Option<u64>,
    asked: Asked,
    out: &mut Vec<u8>,
) -> (Out, bool) {
    status_line(out, head.status);
    let (before, after) = head.lines(request_id.is_some());
    out.extend_from_slice(before);
    out.extend_from_slice(after);
    if let Some(id) = request_id {
        line(out, b"x-request-id", id.as_bytes());
    }
    let known = Known {
        status: head.status,
        dated: head.dated(),
        length: head.length(),
        exact,
        close: asked.close,
    };
    end(known, asked, out)
}

/// What the end of a head depends on, from its headers and its body.
struct Known {
    status: StatusCode,
    /// It has a `Date` header.
    dated: bool,
    /// Its `Content-Length`.
    length: Option<u64>,
    /// The body's exact size, when known.
    exact: Option<u64>,
    /// The connection ends after it.
    close: bool,
}

fn bodiless(status: StatusCode) -> bool {
    status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Ends the head in `out`: `date` when it has none, the framing, the
/// connection's fate; how the body goes, and whether the connection is kept.
fn end(known: Known, asked: Asked, out: &mut Vec<u8>) -> (Out, bool) {
    let Known {
        status,
        dated,
        length,
        exact,
        mut close,
    } = known;
    let upgrade = status == StatusCode::SWITCHING_PROTOCOLS;
    if !dated {
        DATE.with(|d| line(out, b"date", d.borrow_mut().now()));
    }
    let framing = if bodiless(status) || upgrade {
        Out::None
    } else if asked.head {
        // A body of 0 says nothing of the resource (an upstream's answer
        // to a HEAD has none, whatever its length).
        if length.is_none()
            && let Some(n) = exact.filter(|n| *n > 0)
        {
            line(out, b"content-length", n.to_string().as_bytes());
        }
        Out::None
    } else if let Some(n) = length {
        Out::Length(n)
    } else if let Some(n) = exact {
        line(out, b"content-length", n.to_string().as_bytes());
        Out::Length(n)
    } else if asked.minor == 1 {
        line(out, b"transfer-encoding", b"chunked");
        Out::Chunked
    } else {
        close = true;
        Out::ToClose
    };
    if !upgrade {
        if close {
            line(out, b"connection", b"close");
        } else if asked.minor == 0 {
            line(out, b"connection", b"keep-alive");
        }
    }
    out.extend_from_slice(b"\r\n");
    (framing, !close && !upgrade)
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The `date` header's value, formatted once a second per thread.
struct Date {
    second: u64,
    text: String,
}

impl Date {
    fn now(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second || self.text.is_empty() {
            self.second = second;
            self.text = httpdate::fmt_http_date(now);
        }
        self.text.as_bytes()
    }
}

thread_local! {
    static DATE: RefCell<Date> = const { RefCell::new(Date { second: 0, text: String::new() }) };
}

/// The answer to a head refused before it could be handled (a syntax
/// error, or a head cut off at its size limit): the status alone, and the
/// connection closes (hyper's answer to a head it cannot parse).
pub(super) fn refusal(status: u16, out: &mut Vec<u8>) {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut parts = Response::new(()).into_parts().0;
    parts.status = status;
    let asked = Asked {
        head: false,
        minor: 1,
        close: true,
    };
    head(&parts, Some(0), asked, out);
}

#[cfg(test)]
#[path = "h1_response_tests.rs"]
mod tests;
