//! An HTTP/1 request's header map, built only when something reads it
//! (issue 17).
//!
//! rampart's HTTP/1 server ([`crate::server`]'s `h1_conn`) parses the
//! client's head once and keeps a copy of its bytes with the request's
//! body ([`super::RequestBody::keep_head`]). A request proxied by a route
//! with nothing that reads its headers (the common case) needs only the
//! few values [`super::handle`] reads on every request ([`Picked`], found
//! during that parse) and the head's bytes, from which the upstream head
//! is written ([`super::raw_head`]): it gets no `HeaderMap` (two
//! allocations, a name and a value parsed and hashed per header).
//!
//! Whatever reads the map builds it first with [`materialise`]: the
//! configuration's request-wide readers (a route condition, a rewrite,
//! `real_ip`, headers kept for the response's rules or the log; see
//! `Config::request_map_early`), a route's (basic auth, `auth_request`,
//! static files, a redirect or templated response), a WebSocket or
//! CONNECT request, and an upstream head that cannot be written from the
//! client's bytes ([`fill`] into the request's parts). HTTP/2 requests
//! come with their map (hyper's) and are never pending.

use std::mem::MaybeUninit;

use bytes::Bytes;
use hyper::{
    HeaderMap, Request,
    header::{HeaderName, HeaderValue},
};

use super::RequestBody;
use crate::h1::{
    head_bytes,
    request::{self, Limits},
};

/// Header slots on the stack for [`fill`]'s parse; a head with more (up to
/// the connection's 1024) gets them allocated.
const SLOTS: usize = 128;

/// A value's place in the kept head. Small, as it rides in every HTTP/1
/// request (and so in every future holding one): a head longer than
/// 64 KiB gets its map built right away instead ([`Picked::see`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    at: u16,
    len: u16,
}

/// Where, in the client's head, the first value of each header
/// [`super::handle`] reads on every request is (`request_headers`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Picked {
    pub host: Option<Span>,
    pub content_length: Option<Span>,
    pub request_id: Option<Span>,
    pub referer: Option<Span>,
    pub user_agent: Option<Span>,
    pub accept_encoding: Option<Span>,
}

impl Picked {
    /// Notes header `name`, whose value is `value` (a slice of `head`), if
    /// it is one of those read and the first of its name; `false` if its
    /// place does not fit a [`Span`] (the caller builds the map then).
    pub fn see(&mut self, head: &[u8], name: &str, value: &[u8]) -> bool {
        let slot = match name.len() {
            4 if name.eq_ignore_ascii_case("host") => &mut self.host,
            7 if name.eq_ignore_ascii_case("referer") => &mut self.referer,
            10 if name.eq_ignore_ascii_case("user-agent") => &mut self.user_agent,
            12 if name.eq_ignore_ascii_case("x-request-id") => &mut self.request_id,
            14 if name.eq_ignore_ascii_case("content-length") => &mut self.content_length,
            15 if name.eq_ignore_ascii_case("accept-encoding") => &mut self.accept_encoding,
            _ => return true,
        };
        if slot.is_some() {
            return true;
        }
        let at = (value.as_ptr() as usize).wrapping_sub(head.as_ptr() as usize);
        let (Ok(at16), Ok(len)) = (u16::try_from(at), u16::try_from(value.len())) else {
            return false;
        };
        // A value not of `head` (never, for the parser's slices).
        if at + value.len() > head.len() {
            return false;
        }
        *slot = Some(Span { at: at16, len });
        true
    }

    /// The value at `span` in `head` (the kept copy), as a header value
    /// sharing its bytes.
    pub fn value(head: &Bytes, span: Option<Span>) -> Option<HeaderValue> {
        let Span { at, len } = span?;
        let (at, len) = (at as usize, len as usize);
        let bytes = head.get(at..at + len)?;
        HeaderValue::from_maybe_shared(head_bytes::slice_of(head, head, bytes)).ok()
    }
}

/// Builds `req`'s header map from its kept head if it is still pending;
/// a request that has its map (HTTP/2, or built already) is left as it is.
pub fn materialise(req: &mut Request<RequestBody>) {
    let Some(head) = req.body_mut().pending_head() else {
        return;
    };
    fill(req.headers_mut(), &head);
}

/// Appends the headers of the request head `head` (a whole head, the
/// connection's checks passed) to `map`, their values sharing `head`'s
/// bytes. A header no `HeaderMap` can hold is left out (never, for a head
/// the connection's parser took: its name and value bytes are the ones
/// `http` accepts; `tests::what_the_parser_takes_a_map_holds`).
pub fn fill(map: &mut HeaderMap, head: &Bytes) {
    let mut slots = request::slots::<SLOTS>();
    if fill_with(map, head, &mut slots) {
        return;
    }
    let mut slots: Vec<MaybeUninit<httparse::Header<'_>>> =
        std::iter::repeat_with(MaybeUninit::uninit)
            .take(1024)
            .collect();
    fill_with(map, head, &mut slots);
}

/// [`fill`] with `slots`; `false` when they were too few.
fn fill_with<'b>(
    map: &mut HeaderMap,
    head: &'b Bytes,
    slots: &mut [MaybeUninit<httparse::Header<'b>>],
) -> bool {
    let req = match request::parse(head, &Limits::head(head.len()), slots) {
        Ok(Some(req)) => req,
        Err(e) if e.status == 431 => return false,
        _ => return true,
    };
    map.reserve(req.headers.len());
    for h in req.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_maybe_shared(head_bytes::slice_of(head, head, h.value)),
        ) else {
            continue;
        };
        map.append(name, value);
    }
    true
}

#[cfg(test)]
#[path = "request_map_tests.rs"]
mod tests;
