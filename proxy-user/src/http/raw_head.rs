//! The upstream request head written from the client's own bytes (issue
//! 17): on rampart's HTTP/1 server the request's head is kept as it came
//! ([`super::RequestBody::take_head`]), parsed again in place and written
//! by [`h1::upstream_head`] with the proxy's edits, into one buffer,
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

use std::net::IpAddr;

use crate::h1::{
    Framing,
    request::{self, Limits},
    upstream_head::{self, Forwarding},
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
/// `out`; `false` (nothing written) where the map path must be taken.
pub(super) fn write(head: &[u8], edits: &Edits<'_>, out: &mut Vec<u8>) -> bool {
    let mut slots = request::slots::<SLOTS>();
    // The head passed the connection's limits already; only its size here.
    let Ok(Some(req)) = request::parse(head, &Limits::head(head.len()), &mut slots) else {
        return false;
    };
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
    upstream_head::write_to(&req, edits.target, &fwd, out);
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

    fn write_str(head: &str, e: &Edits<'_>) -> Option<String> {
        let mut out = Vec::new();
        let written = write(head.as_bytes(), e, &mut out);
        assert_eq!(
            written,
            !out.is_empty(),
            "written and nothing, or the reverse"
        );
        written.then(|| String::from_utf8(out).unwrap())
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
