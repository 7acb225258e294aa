//! The hop-by-hop headers (RFC 9110 §7.6.1): one list for every side of
//! the proxy. They describe one connection, so none is forwarded: not in
//! the upstream head written from the client's bytes
//! ([`super::upstream_head`]), not in an upstream response's head
//! (`upstream::head::take` leaves them out, but a 101's), not by
//! the `HeaderMap` edits of requests and responses (`http::headers`,
//! HTTP/2 requests and 101 responses), and a
//! header rule may not set or remove the ones that frame the connection
//! (`config::header_rules`).

/// The hop-by-hop headers, lower case. All but the last say how the
/// connection and its bodies are carried ([`frames_the_connection`]).
pub const NAMES: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
];

/// How many of [`NAMES`], from the first, carry the connection's framing.
const FRAMING: usize = 7;

/// Whether `name` (in any case) is hop-by-hop.
pub fn is(name: &str) -> bool {
    NAMES.iter().any(|n| name.eq_ignore_ascii_case(n))
}

/// Whether `name` (in any case) carries the connection's framing: the
/// hop-by-hop headers but `proxy-authenticate`, and `content-length`.
/// rampart sets them; a header rule may not.
pub fn frames_the_connection(name: &str) -> bool {
    name.eq_ignore_ascii_case("content-length")
        || NAMES[..FRAMING]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_in_any_case() {
        for n in NAMES {
            assert!(is(n) && is(&n.to_ascii_uppercase()), "{n}");
            assert_eq!(frames_the_connection(n), n != "proxy-authenticate", "{n}");
        }
        assert!(frames_the_connection("Content-Length"));
        assert!(!is("content-length") && !is("host") && !is("x-connection"));
        assert!(!frames_the_connection("proxy-authenticate"));
    }
}
