//! An upstream response's head kept as the upstream's bytes: its status
//! and its header lines, cut out of the connection's read buffer, less
//! the hop-by-hop ones. An HTTP/1 client is sent the lines as they are
//! (`server::h1_response`), with the proxy's edits around them; a
//! `HeaderMap` is made of them only where one is needed ([`Head::headers`]:
//! HTTP/2, compression, header rules, error pages, an upgrade,
//! `auth_request`).
//!
//! ```text
//! upstream bytes  HTTP/1.1 200 OK\r\n | Content-Length: 5\r\n Connection: keep-alive\r\n Server: x\r\n | \r\n
//!                 (status: parsed)      └ kept ┘ └──── hop-by-hop: left out ───┘ └ kept ┘
//! lines           Content-Length: 5\r\nServer: x\r\n   (moved together in the buffer, no copy elsewhere)
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};
use hyper::{
    HeaderMap, Method, Response, StatusCode, Version,
    header::{HeaderName, HeaderValue},
};

use crate::h1::{Framing, H1Error, hop_by_hop, request::slots, response};

/// hyper's client limits, kept: a response head up to its read buffer's
/// maximum (8 KiB + 100 × 4 KiB) and 100 header lines.
pub const MAX_HEAD: usize = 8192 + 4096 * 100;
const MAX_HEADERS: usize = 100;

/// Header lines whose places are kept on the stack; more are kept in a `Vec`.
const INLINE_LINES: usize = 16;

/// A response head as the upstream sent it.
#[derive(Clone, Debug)]
pub struct Head {
    pub status: StatusCode,
    pub version: Version,
    /// The header lines kept, each `name:OWS value\r\n` as it came (or
    /// written so, for a head whose lines were not).
    lines: Bytes,
    /// A `Date` line is among them.
    dated: bool,
    /// The value of its one `Content-Length` line.
    length: Option<u64>,
    /// Where its one `X-Request-Id` line is in `lines` (the proxy sets
    /// its own in its place).
    request_id: Option<(u32, u32)>,
    /// The lines can be written as they are: a final response's, with at
    /// most one `Content-Length` (a number) and one `X-Request-Id`.
    plain: bool,
}

/// A response head and its body, as an exchange gives them.
#[derive(Debug)]
pub struct Answer {
    pub head: Head,
    pub body: super::ResponseBody,
}

impl Answer {
    /// The response with its headers in a map (see [`Head::headers`]).
    pub fn into_response(self) -> Response<super::ResponseBody> {
        self.head.into_response(self.body)
    }
}

impl Head {
    /// The lines can be forwarded as they are ([`Head::lines`]); else
    /// a map is made of them.
    pub fn plain(&self) -> bool {
        self.plain
    }

    /// A `Date` header is among the lines.
    pub fn dated(&self) -> bool {
        self.dated
    }

    /// The response's `Content-Length`.
    pub fn length(&self) -> Option<u64> {
        self.length
    }

    /// The header lines, in two pieces around the `X-Request-Id` line
    /// when `without_request_id` (the second piece is empty otherwise).
    pub fn lines(&self, without_request_id: bool) -> (&[u8], &[u8]) {
        match self.request_id {
            Some((a, b)) if without_request_id => {
                (&self.lines[..a as usize], &self.lines[b as usize..])
            }
            _ => (&self.lines[..], &[]),
        }
    }

    /// The headers in a map, their values slices of the head's bytes.
    pub fn headers(&self) -> HeaderMap {
        let lines = &self.lines;
        // Room for the one header the proxy adds to every response
        // (`X-Request-Id`).
        let mut map = HeaderMap::with_capacity(memchr::memchr_iter(b'\n', lines).count() + 1);
        for line in lines.split(|b| *b == b'\n') {
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                continue;
            };
            let value = line[colon + 1..].trim_ascii();
            // The names and values were parsed by httparse, whose
            // characters are those `http` takes (tests below).
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(&line[..colon]),
                HeaderValue::from_maybe_shared(lines.slice_ref(value)),
            ) {
                map.append(name, value);
            }
        }
        map
    }

    /// The response, with [`Head::headers`], and `body`.
    pub fn into_response<B>(self, body: B) -> Response<B> {
        let mut resp = Response::new(body);
        *resp.status_mut() = self.status;
        *resp.version_mut() = self.version;
        *resp.headers_mut() = self.headers();
        resp
    }
}

/// What [`take`] found at the start of the buffer.
pub(super) enum Taken {
    /// Not a whole head yet.
    Partial,
    /// A 1xx head, consumed.
    Informational,
    /// A final head, consumed, and how its body is followed (kind,
    /// framing, keep-alive).
    Final(Head, (response::Kind, Framing, bool)),
}

/// Where a kept header line is in the head.
#[derive(Clone, Copy, Debug, Default)]
struct Line {
    name: (u32, u32),
    value: (u32, u32),
    /// Where the line ends (past its CRLF).
    end: u32,
    request_id: bool,
}

/// Parses the head at the start of `buf` and takes it out of `buf` (what
/// follows stays), without its hop-by-hop headers unless it is a
/// tunnel's. The kept lines are moved together in the buffer (the ones
/// left out are overwritten) and cut from it: no allocation, no copy
/// elsewhere. A head whose lines are not each `name:OWS value\r\n` has
/// them written so, into a buffer of their own.
pub(super) fn take(buf: &mut BytesMut, method: &Method) -> Result<Taken, H1Error> {
    let mut inline = [Line::default(); INLINE_LINES];
    let mut spilled: Vec<Line> = Vec::new();
    let mut n = 0;
    let mut dated = false;
    let mut lengths = 0u32;
    let mut length = None;
    let mut request_ids = 0u32;
    // Every kept line ends in CRLF right after its value, and the next
    // line (or the head's end) right after: they can be moved as they are.
    let mut verbatim = true;
    // The parse borrows `buf`: what is kept of it is the places.
    let (status, minor, kind, framing, keep_alive, head_len, first) = {
        let mut room = slots::<MAX_HEADERS>();
        let parsed = response::parse(buf, method.as_str(), MAX_HEAD, &mut room)?;
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
        // No length on a 204 (RFC 9110 §8.6; hyper's server drops it too).
        let no_length = head.status == 204;
        let is_connection = |h: &httparse::Header<'_>| h.name.eq_ignore_ascii_case("connection");
        let connection = strip && head.headers.iter().any(is_connection);
        let named = |name: &str| {
            head.headers
                .iter()
                .filter(|c| is_connection(c))
                .flat_map(|c| c.value.split(|b| *b == b','))
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
        };
        let head_end = head.head_len as u32;
        let first = head
            .headers
            .first()
            .map_or(head_end, |h| at(h.name.as_bytes()).0);
        for (i, h) in head.headers.iter().enumerate() {
            let is_length = h.name.eq_ignore_ascii_case("content-length");
            // A length beside chunked: followed as chunked, and the
            // connection closed after it (RFC 9112 §6.3: it may be an
            // attempt at response splitting).
            if is_length && (head.drop_length || no_length) {
                continue;
            }
            if strip && (hop_by_hop::is(h.name) || (connection && named(h.name))) {
                continue;
            }
            let name = at(h.name.as_bytes());
            let value = at(h.value);
            let end = value.1 + 2;
            let next = head
                .headers
                .get(i + 1)
                .map_or(head_end - 2, |h| at(h.name.as_bytes()).0);
            verbatim &= !h.value.is_empty()
                && end == next
                && buf.get(value.1 as usize..end as usize) == Some(&b"\r\n"[..]);
            dated |= h.name.eq_ignore_ascii_case("date");
            if is_length {
                lengths += 1;
                length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok());
            }
            let request_id = h.name.eq_ignore_ascii_case("x-request-id");
            request_ids += u32::from(request_id);
            let line = Line {
                name,
                value,
                end,
                request_id,
            };
            if n < INLINE_LINES && spilled.is_empty() {
                inline[n] = line;
            } else {
                if spilled.is_empty() {
                    spilled.extend_from_slice(&inline[..n]);
                }
                spilled.push(line);
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
            first as usize,
        )
    };
    if kind == response::Kind::Informational {
        buf.advance(head_len);
        return Ok(Taken::Informational);
    }
    let kept = if spilled.is_empty() {
        &inline[..n]
    } else {
        &spilled[..]
    };
    let piece = |(start, end): (u32, u32)| start as usize..end as usize;
    let mut request_id = None;
    let lines = if verbatim {
        // The kept lines moved up over those left out, in place.
        let mut w = first;
        for line in kept {
            let start = line.name.0 as usize;
            let len = line.end as usize - start;
            if start != w {
                buf.copy_within(start..start + len, w);
            }
            if line.request_id && request_id.is_none() {
                request_id = Some(((w - first) as u32, (w - first + len) as u32));
            }
            w += len;
        }
        // The buffer is shared with the body's bytes already: cutting
        // the head out of it allocates nothing.
        let head = buf.split_to(head_len).freeze();
        head.slice(first..w)
    } else {
        let mut out = BytesMut::with_capacity(head_len);
        for line in kept {
            let start = out.len() as u32;
            out.put_slice(&buf[piece(line.name)]);
            out.put_slice(b": ");
            out.put_slice(&buf[piece(line.value)]);
            out.put_slice(b"\r\n");
            if line.request_id && request_id.is_none() {
                request_id = Some((start, out.len() as u32));
            }
        }
        buf.advance(head_len);
        out.freeze()
    };
    let status = StatusCode::from_u16(status).map_err(|_| H1Error::upstream("invalid status"))?;
    let head = Head {
        status,
        version: if minor == 0 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        },
        lines,
        dated,
        length,
        request_id,
        plain: kind == response::Kind::Final
            && request_ids <= 1
            && (lengths == 0 || (lengths == 1 && length.is_some())),
    };
    Ok(Taken::Final(head, (kind, framing, keep_alive)))
}

/// The head of `bytes`, a whole response head to a GET (tests).
#[cfg(test)]
pub fn head_of(bytes: &[u8]) -> Head {
    match take(&mut BytesMut::from(bytes), &Method::GET) {
        Ok(Taken::Final(head, _)) => head,
        _ => panic!("not a final head: {:?}", String::from_utf8_lossy(bytes)),
    }
}

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;
