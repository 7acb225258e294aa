//! The upstream request head written from the client's own bytes (issue
//! 17): on rampart's HTTP/1 server the request's head is kept as it came
//! ([`super::RequestBody::take_kept`]) with the places where the
//! connection's parse found its pieces ([`head_index`]), and written by
//! [`h1::upstream_head`] from those places with the proxy's edits, into one buffer,
//! instead of editing the request's `HeaderMap` (`strip_hop_by_hop`,
//! `add_forwarded`, `Host`, `X-Request-Id`: a hash per edit, an
//! allocation per added value) and writing that out.
//!
//! The same headers go upstream either way (`h1::upstream_head`'s tests
//! compare the two); the client's names keep their spelling and order.
//! Where the map path does something the bytes cannot show, it is used:
//! a WebSocket handshake, request header rules, headers set by an auth
//! service, a chunked body (read whole here and sent with its length), a
//! body whose length is not the head's, more headers than [`SLOTS`].
//!
//! A head without an index (more headers than it holds, no `Host`
//! header, a test) is parsed again here, into the same [`Parts`].

use std::net::IpAddr;

use crate::h1::{
    Framing, head_index,
    request::{self, Limits},
    upstream_head::{self, Forwarding, Parts},
};

/// Header slots on the stack for the second parse; a head with more takes
/// the map path.
const SLOTS: usize = 128;

/// What the upstream head says besides the client's head.
pub(super) struct Edits<'a> {
    pub client: IpAddr,
    pub https: bool,
    pub request_id: &'a [u8],
    /// The target forwarded (normalised, perhaps rewritten), origin form.
    pub target: &'a str,
    /// The body's length, as read.
    pub body_len: usize,
}

/// Appends the upstream head for the client's `head` with `edits` to
/// `out`, from the places in `index` (what the connection's parse of
/// `head` kept after it, [`head_index::keep`]; empty when none) or else
/// from a parse; `false` (nothing written) where the map path must be
/// taken.
pub(super) fn write(head: &[u8], index: &[u8], edits: &Edits<'_>, out: &mut Vec<u8>) -> bool {
    if let Some(written) = from_index(head, index, edits, out) {
        return written;
    }
    let mut slots = request::slots::<SLOTS>();
    // The head passed the connection's limits already; only its size here.
    let Ok(Some(req)) = request::parse(head, &Limits::head(head.len()), &mut slots) else {
        return false;
    };
    write_parts(&Parts::of(&req), edits, out)
}

/// [`write`] from `index`; `None` when it cannot tell (no `Host` header).
fn from_index(head: &[u8], index: &[u8], edits: &Edits<'_>, out: &mut Vec<u8>) -> Option<bool> {
    if index.is_empty() {
        return None;
    }
    let mut lines = [httparse::EMPTY_HEADER; head_index::LINES];
    let parts = head_index::parts(head, index, &mut lines)?;
    Some(write_parts(&parts, edits, out))
}

fn write_parts(req: &Parts<'_, '_>, edits: &Edits<'_>, out: &mut Vec<u8>) -> bool {
    let same_length = match req.framing {
        Framing::Empty => edits.body_len == 0,
        Framing::Length(n) => n == edits.body_len as u64,
        Framing::Chunked | Framing::Close => false,
    };
    if !same_length {
        return false;
    }
    let fwd = Forwarding {
        client: edits.client,
        https: edits.https,
        request_id: edits.request_id,
        websocket: false,
        rules: &[],
    };
    upstream_head::write_parts(req, edits.target, &fwd, out);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edits(target: &str, body_len: usize) -> Edits<'_> {
        Edits {
            client: "198.51.100.2".parse().unwrap(),
            https: true,
            request_id: b"rid1",
            target,
            body_len,
        }
    }

    /// The index the connection's parse keeps for `head`, if it keeps one.
    fn index_of(head: &str) -> Option<Vec<u8>> {
        let mut slots = request::slots::<256>();
        let limits = Limits::head(head.len());
        let req = request::parse(head.as_bytes(), &limits, &mut slots).ok()??;
        let kept = head_index::keep(head.as_bytes(), &req);
        assert_eq!(&kept[..req.head_len], &head.as_bytes()[..req.head_len]);
        let index = &kept[req.head_len..];
        (!index.is_empty()).then(|| index.to_vec())
    }

    fn write_with(head: &str, index: &[u8], e: &Edits<'_>) -> Option<String> {
        let mut out = Vec::new();
        let written = write(head.as_bytes(), index, e, &mut out);
        assert_eq!(
            written,
            !out.is_empty(),
            "written and nothing, or the reverse"
        );
        written.then(|| String::from_utf8(out).unwrap())
    }

    /// What a parse of `head` writes; the same bytes from its index, where
    /// it has one.
    fn write_str(head: &str, e: &Edits<'_>) -> Option<String> {
        let parsed = write_with(head, &[], e);
        if let Some(index) = index_of(head) {
            assert_eq!(
                write_with(head, &index, e),
                parsed,
                "from the index and from a parse: {head:?}"
            );
        }
        parsed
    }

    #[test]
    fn the_kept_places_write_what_a_parse_writes() {
        let mut exactly = String::from("GET /full HTTP/1.1\r\nHost: h\r\n");
        for i in 1..head_index::LINES {
            exactly.push_str(&format!("X-{i}: v{i}\r\n"));
        }
        let over = format!("{exactly}X-Last: one too many\r\n\r\n");
        exactly.push_str("\r\n");
        let big = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\n\r\n",
            "a".repeat(70_000)
        );
        // (head, whether the connection's parse keeps an index for it)
        let shapes: [(&str, bool); 11] = [
            (
                "GET /r HTTP/1.1\r\nHost: a\r\nAccept: x\r\nCookie: a=1\r\n\
                 Accept: y\r\nCookie: b=2\r\nHost: b\r\n\r\n",
                true,
            ),
            (
                "GET / HTTP/1.1\r\nhOsT: app\r\nx-FORWARDED_for: 10.0.0.1\r\n\
                 User-AGENT: ua\r\nCONNECTION: Keep-Alive\r\nx-request-ID: theirs\r\n\r\n",
                true,
            ),
            (
                "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret ,close\r\n\
                 X-Secret: s\r\nClose: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n\
                 connection: x-other\r\nX-Other: o\r\nX-Kept: k\r\n\r\n",
                true,
            ),
            (
                "GET / HTTP/1.1\r\nHost:    h   \r\nX-A:\tv w\t\r\nX-Empty:\r\n\r\n",
                true,
            ),
            ("\r\nGET /lead HTTP/1.1\r\nHost: h\r\n\r\n", true),
            ("GET / HTTP/1.1\nHost: h\nX-Bare: lf\n\n", true),
            (
                "OPTIONS http://h.example/p?q HTTP/1.1\r\nHost: h.example\r\n\r\n",
                true,
            ),
            // No `Host`: the index cannot tell the host, a parse does.
            (
                "GET http://abs.example/p HTTP/1.1\r\nAccept: */*\r\n\r\n",
                true,
            ),
            (&exactly, true),
            (&over, false),
            (&big, false),
        ];
        for (head, indexed) in shapes {
            assert_eq!(index_of(head).is_some(), indexed, "{head:.60?}");
            let out = write_str(head, &edits("/t", 0));
            assert!(out.is_some(), "{head:.60?}");
        }
        // Repeated names keep their order; listed ones go.
        let out = write_str(shapes[0].0, &edits("/t", 0)).unwrap();
        assert!(out.contains("Accept: x\r\nCookie: a=1\r\nAccept: y\r\nCookie: b=2\r\n"));
        assert!(
            out.contains("\r\nHost: a\r\n") && !out.contains("Host: b"),
            "{out}"
        );
        let out = write_str(shapes[2].0, &edits("/t", 0)).unwrap();
        for gone in [
            "X-Secret",
            "Close",
            "Keep-Alive",
            "TE:",
            "X-Other",
            "onnection",
        ] {
            assert!(!out.contains(gone), "{gone:?} in {out}");
        }
        assert!(out.contains("\r\nX-Kept: k\r\n"), "{out}");
        // A body framed otherwise than read, from the index too.
        let post = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
        assert!(index_of(post).is_some());
        assert_eq!(write_str(post, &edits("/", 3)), None);
        assert!(write_str(post, &edits("/", 5)).is_some());
        // An obs-folded line is refused by the connection's parse: no
        // index, and nothing written from the bytes either.
        let folded = "GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n b\r\n\r\n";
        assert_eq!(index_of(folded), None);
        assert_eq!(write_str(folded, &edits("/", 0)), None);
    }

    #[test]
    fn the_index_is_read_instead_of_the_head_being_parsed_again() {
        let head = "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n";
        let index = index_of(head).unwrap();
        // The same places in bytes no parse takes (the blank line gone):
        // only a writer that does not parse them writes the head.
        let cut = head.replace("\r\n\r\n", "\r\n--");
        assert_eq!(write_with(&cut, &[], &edits("/", 0)), None);
        let from_index = write_with(&cut, &index, &edits("/", 0)).unwrap();
        assert_eq!(Some(from_index), write_with(head, &[], &edits("/", 0)));
    }

    #[test]
    fn the_routed_target_goes_with_the_clients_headers_edited() {
        let head = "GET /a/../b?x=1 HTTP/1.1\r\nHost: app.example\r\nConnection: keep-alive\r\n\
                    X-Forwarded-For: 10.9.9.9\r\nX-Request-Id: theirs\r\nAccept: */*\r\n\r\n";
        let out = write_str(head, &edits("/b?x=1", 0)).unwrap();
        assert!(out.starts_with("GET /b?x=1 HTTP/1.1\r\n"), "{out}");
        for want in [
            "\r\nHost: app.example\r\n",
            "\r\nAccept: */*\r\n",
            "\r\nX-Forwarded-For: 198.51.100.2\r\n",
            "\r\nX-Real-IP: 198.51.100.2\r\n",
            "\r\nX-Forwarded-Proto: https\r\n",
            "\r\nX-Forwarded-Host: app.example\r\n",
            "\r\nX-Request-Id: rid1\r\n",
        ] {
            assert!(out.contains(want), "{want:?} in {out}");
        }
        for gone in ["Connection", "10.9.9.9", "theirs"] {
            assert!(!out.contains(gone), "{gone:?} in {out}");
        }
        assert!(out.ends_with("\r\n\r\n"));
    }

    #[test]
    fn a_body_read_whole_keeps_its_length() {
        let head = "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
        let out = write_str(head, &edits("/up", 5)).unwrap();
        assert!(out.contains("\r\nContent-Length: 5\r\n"), "{out}");
    }

    #[test]
    fn what_the_bytes_cannot_show_takes_the_map_path() {
        // A chunked body is read whole and sent with its length.
        let chunked = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(write_str(chunked, &edits("/", 5)), None);
        // A body whose length is not the head's.
        let length = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(write_str(length, &edits("/", 3)), None);
        let none = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        assert_eq!(write_str(none, &edits("/", 1)), None);
        // More headers than the slots.
        let mut many = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
        for i in 0..SLOTS {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(write_str(&many, &edits("/", 0)), None);
        // Not a head at all.
        assert_eq!(write_str("GET / HTTP/1.1\r\n", &edits("/", 0)), None);
    }
}
