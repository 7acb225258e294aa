//! The request head sent upstream, written from the client's bytes with
//! the proxy's edits into one buffer (one write): what `http/proxy.rs` and
//! `http/headers.rs` do to a `HeaderMap` today, as a filter over the parsed
//! header slices.
//!
//! - The request line becomes `METHOD origin-form HTTP/1.1`.
//! - Hop-by-hop headers go (RFC 9110 §7.6.1: `Connection`, `Keep-Alive`,
//!   `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`,
//!   `Proxy-Authenticate`), and so do those the `Connection` header names
//!   (and a header named `close` when it says `close`). A WebSocket
//!   handshake keeps `Upgrade` and gets `Connection: upgrade`.
//! - The forwarding headers are the proxy's: the client's
//!   `X-Forwarded-For/-Proto/-Host/-Port`, `X-Real-IP` and `Forwarded`, in
//!   any spelling with `_` for `-`, go; `X-Forwarded-For` and `X-Real-IP`
//!   are the client's address, `X-Forwarded-Proto` its scheme,
//!   `X-Forwarded-Host` the host it asked for.
//! - `Host` is the request's host (the header's first value, or the
//!   target's authority); `X-Request-Id` is the request's id.
//! - The route's header rules (issue 10) apply last, as nginx's
//!   `proxy_set_header`: see [`Edit`].
//! - The body keeps its framing: `Content-Length` is copied, a chunked body
//!   gets `Transfer-Encoding: chunked` (the client's `Transfer-Encoding` is
//!   hop-by-hop). Today's path reads the body whole and sends a length.
//!   Neither a header the client's `Connection` names nor a header rule
//!   removes or adds `Content-Length`/`Transfer-Encoding`: the framing is
//!   the proxy's, or the upstream would read a body as the next request.
//!
//! Names keep the client's spelling and order (hyper lowercases them).

use std::{io::Write as _, net::IpAddr};

use super::{Framing, framing::has_token, request::Request};

/// One header rule, its value rendered for this request (`http::header_rules`
/// renders templates; a value no header can carry is left out by it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edit<'a> {
    /// Replace every value; an empty value removes the header.
    Set(&'a str, &'a [u8]),
    /// Add a value beside those there.
    Add(&'a str, &'a [u8]),
    /// Set only when absent.
    Default(&'a str, &'a [u8]),
    Remove(&'a str),
}

impl<'a> Edit<'a> {
    fn name(&self) -> &'a str {
        match *self {
            Edit::Set(n, _) | Edit::Add(n, _) | Edit::Default(n, _) | Edit::Remove(n) => n,
        }
    }

    /// Whether this rule clears the header (every value before it goes).
    fn clears(&self, name: &str) -> bool {
        matches!(self, Edit::Set(..) | Edit::Remove(_)) && self.name().eq_ignore_ascii_case(name)
    }
}

/// What the upstream is told about the downstream side.
#[derive(Clone, Copy, Debug)]
pub struct Forwarding<'a> {
    pub client: IpAddr,
    pub https: bool,
    pub request_id: &'a [u8],
    /// A WebSocket handshake: `Upgrade` is kept.
    pub websocket: bool,
    pub rules: &'a [Edit<'a>],
}

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded.
const HOP_BY_HOP: [&str; 8] = super::hop_by_hop::NAMES;

/// The forwarding headers the proxy owns; the client's never pass.
const OWNED: [&str; 6] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-real-ip",
    "forwarded",
];

/// Headers the proxy writes itself (so the client's are not copied).
const REWRITTEN: [&str; 2] = ["host", "x-request-id"];

/// Appends the upstream request head for `req` to `out` (cleared first
/// by the caller if it is reused: the head is appended).
pub fn write(req: &Request<'_, '_>, fwd: &Forwarding<'_>, out: &mut Vec<u8>) {
    write_to(req, req.target.path_and_query(), fwd, out);
}

/// [`write`] with the request line's target given: the proxy forwards the
/// target it routed (normalised, perhaps rewritten), in origin form.
pub fn write_to(req: &Request<'_, '_>, target: &str, fwd: &Forwarding<'_>, out: &mut Vec<u8>) {
    write_parts(&Parts::of(req), target, fwd, out);
}

/// What of a client's request head the upstream head is written from: a
/// parse's ([`Parts::of`]), or the places the connection's parse kept
/// (`super::head_index`), so that the head is not parsed again.
#[derive(Clone, Copy, Debug)]
pub struct Parts<'b, 'h> {
    pub method: &'b str,
    pub headers: &'h [httparse::Header<'b>],
    /// The request's host ([`Request::host`]).
    pub host: Option<&'b [u8]>,
    pub framing: Framing,
    /// The client's head's length (the upstream head is about as long).
    pub head_len: usize,
}

impl<'b, 'h> Parts<'b, 'h> {
    /// A parsed head's parts.
    pub fn of(req: &Request<'b, 'h>) -> Parts<'b, 'h> {
        Parts {
            method: req.method,
            headers: req.headers,
            host: req.host(),
            framing: req.framing,
            head_len: req.head_len,
        }
    }
}

/// [`write_to`] from a head's [`Parts`].
pub fn write_parts(req: &Parts<'_, '_>, target: &str, fwd: &Forwarding<'_>, out: &mut Vec<u8>) {
    out.reserve(req.head_len + 192);
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");

    let connection = Connection::of(req.headers);
    let rules = fwd.rules;
    let ruled = |name: &str| ruled(rules, name);
    for h in req.headers {
        if !dropped(h.name, &connection, fwd.websocket) && !ruled(h.name) {
            header(out, h.name, h.value);
        }
    }
    let host = req.host;
    let mut ip = [0u8; 39];
    let ip = ip_text(fwd.client, &mut ip);
    let proto: &[u8] = if fwd.https { b"https" } else { b"http" };
    let upgrade: &[u8] = b"upgrade";
    let own: [(&str, Option<&[u8]>); 7] = [
        ("Host", host),
        ("X-Forwarded-For", Some(ip)),
        ("X-Real-IP", Some(ip)),
        ("X-Forwarded-Proto", Some(proto)),
        ("X-Forwarded-Host", host),
        ("X-Request-Id", Some(fwd.request_id)),
        ("Connection", fwd.websocket.then_some(upgrade)),
    ];
    for (name, value) in own {
        if let Some(v) = value
            && !ruled(name)
        {
            header(out, name, v);
        }
    }
    if req.framing == Framing::Chunked && !ruled("transfer-encoding") {
        header(out, "Transfer-Encoding", b"chunked");
    }
    if !rules.is_empty() {
        apply_rules(req, fwd, &connection, &own, out);
    }
    out.extend_from_slice(b"\r\n");
}

fn header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// What the request's `Connection` headers say, for the hop-by-hop filter.
struct Connection<'r, 'b> {
    close: bool,
    /// The headers, when a `Connection` value names a header other than
    /// the usual tokens (rare): each header is then looked up in it.
    lists: Option<&'r [httparse::Header<'b>]>,
}

impl<'r, 'b> Connection<'r, 'b> {
    fn of(headers: &'r [httparse::Header<'b>]) -> Connection<'r, 'b> {
        let mut close = false;
        let mut named = false;
        for h in headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        {
            close |= has_token(h.value, b"close");
            named |= h.value.split(|b| *b == b',').any(|t| {
                let t = t.trim_ascii();
                !t.is_empty()
                    && !t.eq_ignore_ascii_case(b"close")
                    && !HOP_BY_HOP
                        .iter()
                        .any(|n| t.eq_ignore_ascii_case(n.as_bytes()))
            });
        }
        Connection {
            close,
            lists: named.then_some(headers),
        }
    }

    /// Whether a `Connection` header names `name`.
    fn names(&self, name: &str) -> bool {
        let Some(headers) = self.lists else {
            return false;
        };
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .any(|h| {
                h.value
                    .split(|b| *b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
            })
    }
}

/// The headers that frame the body: never removed by the client's
/// `Connection` nor by a header rule, or the upstream would read the body
/// as the next request (today hyper sets the length itself).
const FRAMING: [&str; 2] = ["content-length", "transfer-encoding"];

/// Whether a header rule applies to `name` (not to the framing).
fn ruled(rules: &[Edit<'_>], name: &str) -> bool {
    rules.iter().any(|r| r.clears(name)) && !FRAMING.iter().any(|n| name.eq_ignore_ascii_case(n))
}

/// Whether the client's header `name` is not forwarded as it is.
fn dropped(name: &str, connection: &Connection<'_, '_>, websocket: bool) -> bool {
    let kept_upgrade = |n: &str| websocket && n.eq_ignore_ascii_case("upgrade");
    let any = |list: &[&str]| list.iter().any(|n| name.eq_ignore_ascii_case(n));
    // `Connection` is rewritten for a WebSocket, never passed on.
    (any(&HOP_BY_HOP) && !kept_upgrade(name))
        || any(&REWRITTEN)
        || owned(name)
        || (connection.close && name.eq_ignore_ascii_case("close"))
        || (connection.names(name) && !kept_upgrade(name) && !name.eq_ignore_ascii_case(FRAMING[0]))
}

/// A forwarding header of the proxy's, however spelt (`_` for `-`).
fn owned(name: &str) -> bool {
    // Every owned name starts with `x` or `f`: one byte tells most apart.
    if !matches!(name.as_bytes().first(), Some(b'x' | b'X' | b'f' | b'F')) {
        return false;
    }
    OWNED.iter().any(|n| {
        n.len() == name.len()
            && n.bytes()
                .zip(name.bytes())
                .all(|(a, b)| a == b.to_ascii_lowercase() || (a == b'-' && b == b'_'))
    })
}

/// The route's rules, in order, over what was written: a header a rule
/// sets or removes was already left out above; what a rule adds is written
/// unless a later rule sets or removes it.
fn apply_rules(
    req: &Parts<'_, '_>,
    fwd: &Forwarding<'_>,
    connection: &Connection<'_, '_>,
    own: &[(&str, Option<&[u8]>)],
    out: &mut Vec<u8>,
) {
    let rules = fwd.rules;
    // Whether the head before the rules has the header.
    let before = |name: &str| {
        req.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case(name) && !dropped(h.name, connection, fwd.websocket)
        }) || own
            .iter()
            .any(|(n, v)| v.is_some() && n.eq_ignore_ascii_case(name))
            || (req.framing == Framing::Chunked && name.eq_ignore_ascii_case("transfer-encoding"))
    };
    let mut applied = vec![false; 0];
    let mut small = [false; 32];
    let applied: &mut [bool] = if rules.len() <= small.len() {
        &mut small[..rules.len()]
    } else {
        applied.resize(rules.len(), false);
        &mut applied
    };
    for (i, rule) in rules.iter().enumerate() {
        let name = rule.name();
        if FRAMING.iter().any(|n| name.eq_ignore_ascii_case(n)) {
            continue;
        }
        let adds = match *rule {
            Edit::Set(_, v) => !v.is_empty(),
            Edit::Add(..) => true,
            Edit::Default(..) => {
                let same = |r: &Edit<'_>| r.name().eq_ignore_ascii_case(name);
                let cleared = rules[..i].iter().rposition(|r| r.clears(name));
                let from = cleared.map_or(0, |k| k + 1);
                let present = match cleared {
                    Some(k) => applied[k],
                    None => before(name),
                } || (from..i).any(|j| applied[j] && same(&rules[j]));
                !present
            }
            Edit::Remove(_) => false,
        };
        applied[i] = adds;
        let survives = !ruled(&rules[i + 1..], name);
        if adds && survives {
            let (Edit::Set(n, v) | Edit::Add(n, v) | Edit::Default(n, v)) = *rule else {
                continue;
            };
            header(out, n, v);
        }
    }
}

/// An address as text, into `buf` (IPv4 without the formatting machinery).
fn ip_text(ip: IpAddr, buf: &mut [u8; 39]) -> &[u8] {
    let IpAddr::V4(v4) = ip else {
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        // 39 bytes hold any IPv6 address's text.
        let _ = write!(cursor, "{ip}");
        let n = cursor.position() as usize;
        return &buf[..n];
    };
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            buf[len] = b'.';
            len += 1;
        }
        if octet >= 100 {
            buf[len] = b'0' + octet / 100;
            len += 1;
        }
        if octet >= 10 {
            buf[len] = b'0' + octet / 10 % 10;
            len += 1;
        }
        buf[len] = b'0' + octet % 10;
        len += 1;
    }
    &buf[..len]
}

#[cfg(test)]
#[path = "upstream_head_tests.rs"]
mod tests;
