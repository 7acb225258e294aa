//! A response head parsed in place, as [`super::request`] parses requests:
//! the status, reason and headers are slices of the upstream read buffer,
//! and what follows the head is decided by hyper's client rules
//! ([`super::framing`]). Faults are the upstream's (502).

use std::mem::MaybeUninit;

use super::{
    error::{H1Error, syntax},
    framing::{Fields, Framing},
};

/// What a response head means for the exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A final response; its body is framed as [`Response::framing`] says.
    Final,
    /// 1xx but 101: forwarded, and another head follows.
    Informational,
    /// 101 to an upgrade, or 2xx to CONNECT: the connection leaves HTTP.
    Tunnel,
}

/// A parsed response head, borrowing the read buffer and the slots.
#[derive(Debug)]
pub struct Response<'b, 'h> {
    pub status: u16,
    pub reason: &'b str,
    pub minor: u8,
    pub headers: &'h [httparse::Header<'b>],
    pub head_len: usize,
    pub kind: Kind,
    pub framing: Framing,
    /// `Content-Length` came with `Transfer-Encoding`, which decides: the
    /// length must not be forwarded (RFC 9112 §6.3).
    pub drop_length: bool,
    pub keep_alive: bool,
}

/// Parses the response head at the start of `buf`, to a request of
/// `method`; `Ok(None)` while it is incomplete, an error past `max_head`.
pub fn parse<'b, 'h>(
    buf: &'b [u8],
    method: &str,
    max_head: usize,
    slots: &'h mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<Response<'b, 'h>>, H1Error> {
    // As a request head: only the first `max_head` bytes are looked at.
    let buf = &buf[..buf.len().min(max_head)];
    let mut res = httparse::Response::new(&mut []);
    let parsed =
        httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut res, buf, slots);
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max_head => {
            return Err(H1Error::upstream("response head too large"));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(H1Error::upstream(syntax(e))),
    };
    let (Some(status), Some(minor)) = (res.code, res.version) else {
        return Err(H1Error::upstream("incomplete status line"));
    };
    if !(100..=999).contains(&status) {
        return Err(H1Error::upstream(syntax(httparse::Error::Status)));
    }
    let mut fields = Fields::default();
    for h in res.headers.iter() {
        fields.see(h.name, h.value, true);
    }
    let (kind, framing) = match status {
        // In hyper's order: a 204 to CONNECT is a final response.
        101 => (Kind::Tunnel, Framing::Empty),
        100..=199 => (Kind::Informational, Framing::Empty),
        204 | 304 => (Kind::Final, Framing::Empty),
        _ if method == "HEAD" => (Kind::Final, Framing::Empty),
        200..=299 if method == "CONNECT" => (Kind::Tunnel, Framing::Empty),
        _ => (Kind::Final, fields.response(minor)?),
    };
    Ok(Some(Response {
        status,
        reason: res.reason.unwrap_or(""),
        minor,
        headers: res.headers,
        head_len,
        kind,
        framing,
        drop_length: fields.length_overridden(),
        keep_alive: !fields.close && (minor == 1 || fields.keep_alive) && framing != Framing::Close,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1::{error::Blame, request::slots};

    fn head(buf: &str, method: &str) -> Result<(Kind, Framing, bool), H1Error> {
        let whole = {
            let mut s = slots::<16>();
            parse(buf.as_bytes(), method, 8192, &mut s)?.map(|r| (r.kind, r.framing, r.keep_alive))
        };
        // Every prefix is incomplete (or refused the same way).
        for cut in 0..buf.len() {
            let mut s = slots::<16>();
            match parse(&buf.as_bytes()[..cut], method, 8192, &mut s) {
                Ok(None) => {}
                Err(e) => panic!("a prefix of {cut} bytes refused: {e}"),
                Ok(Some(_)) => panic!("complete at {cut} of {buf:?}"),
            }
        }
        Ok(whole.expect("complete"))
    }

    #[test]
    fn bodies_by_status_method_and_headers() {
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            head(chunked, "GET"),
            Ok((Kind::Final, Framing::Chunked, true))
        );
        assert_eq!(
            head(chunked, "HEAD"),
            Ok((Kind::Final, Framing::Empty, true))
        );
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(head(ok, "GET"), Ok((Kind::Final, Framing::Length(5), true)));
        assert_eq!(
            head(ok, "CONNECT"),
            Ok((Kind::Tunnel, Framing::Empty, true))
        );
        let no_content = "HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(
            head(no_content, "CONNECT"),
            Ok((Kind::Final, Framing::Empty, true))
        );
        for status in ["204 No Content", "304 Not Modified"] {
            let h = format!("HTTP/1.1 {status}\r\nContent-Length: 5\r\n\r\n");
            assert_eq!(head(&h, "GET"), Ok((Kind::Final, Framing::Empty, true)));
        }
        assert_eq!(
            head("HTTP/1.1 100 Continue\r\n\r\n", "POST"),
            Ok((Kind::Informational, Framing::Empty, true))
        );
        assert_eq!(
            head(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
                "GET"
            ),
            Ok((Kind::Tunnel, Framing::Empty, true))
        );
        // Read to the close: the connection cannot be reused.
        assert_eq!(
            head("HTTP/1.0 200 OK\r\n\r\n", "GET"),
            Ok((Kind::Final, Framing::Close, false))
        );
    }

    #[test]
    fn a_length_beside_chunked_is_not_to_be_forwarded() {
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut s = slots::<8>();
        let r = parse(buf, "GET", 8192, &mut s).unwrap().unwrap();
        assert!(r.drop_length && r.framing == Framing::Chunked);
        assert_eq!((r.status, r.reason), (200, "OK"));
    }

    #[test]
    fn broken_responses_are_the_upstreams_fault() {
        for (buf, why) in [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "invalid Content-Length",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                "invalid Content-Length",
            ),
            (
                "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                "Transfer-Encoding in HTTP/1.0",
            ),
            ("HTTP/1.1 2000 OK\r\n\r\n", "invalid status"),
            (
                "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
                "invalid header name",
            ),
        ] {
            let e = head(buf, "GET").unwrap_err();
            assert_eq!(
                (e.blame, e.status, e.why),
                (Blame::Upstream, 502, why),
                "{buf:?}"
            );
        }
        let mut big = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 200));
        let mut s = slots::<8>();
        assert_eq!(
            parse(&big, "GET", 100, &mut s).unwrap_err().why,
            "response head too large"
        );
    }
}
