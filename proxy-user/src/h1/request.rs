//! A request head parsed in place: the method, target and headers are
//! slices of the connection's read buffer (httparse), the framing and the
//! connection's fate are decided in the same pass, and nothing is copied
//! or allocated. The caller owns the header slots (on its stack, or a
//! per-worker array), so a head costs one parse and one look at each
//! header.

use std::mem::MaybeUninit;

use super::{
    error::{H1Error, syntax},
    framing::{Fields, Framing},
    target::{MAX_TARGET, Target},
};

/// Header slots for one head, uninitialised until httparse fills them.
pub type Slots<'b, const N: usize> = [MaybeUninit<httparse::Header<'b>>; N];

/// Empty slots (nothing is written until a parse).
pub const fn slots<'b, const N: usize>() -> Slots<'b, N> {
    [const { MaybeUninit::uninit() }; N]
}

/// The limits a head is held to (the settings `max_header_size`,
/// `max_header_line`, `max_headers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest head, its blank line included (hyper's `max_buf_size`):
    /// over it, 431.
    pub max_head: usize,
    /// Longest request line (414) or header line (431), without its end.
    pub line: usize,
    /// Most header lines (431).
    pub headers: usize,
}

impl Limits {
    /// Nothing but the head's size.
    pub const fn head(max_head: usize) -> Limits {
        Limits {
            max_head,
            line: usize::MAX,
            headers: usize::MAX,
        }
    }
}

/// A parsed request head, borrowing the read buffer (`'b`) and the header
/// slots (`'h`).
#[derive(Debug)]
pub struct Request<'b, 'h> {
    pub method: &'b str,
    pub target: Target<'b>,
    /// The target as sent.
    pub raw_target: &'b str,
    /// 0 or 1 (HTTP/1.0, HTTP/1.1).
    pub minor: u8,
    pub headers: &'h [httparse::Header<'b>],
    /// Bytes of the buffer the head took, blank lines before it included:
    /// the body (or the next request) starts there.
    pub head_len: usize,
    pub framing: Framing,
    /// The connection may carry another request after this one.
    pub keep_alive: bool,
    /// `CONNECT`, or an HTTP/1.1 `Upgrade` header: the connection may
    /// leave HTTP once the response says so.
    pub upgrade: bool,
    pub expect_continue: bool,
}

impl<'b> Request<'b, '_> {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// The host the request is for: the `Host` header, else the target's
    /// authority (as `http/proxy.rs` takes it).
    pub fn host(&self) -> Option<&'b [u8]> {
        self.header("host")
            .or_else(|| self.target.authority().map(str::as_bytes))
    }
}

/// Parses the request head at the start of `buf`. `Ok(None)`: the head is
/// not complete yet (read more, into the same buffer). Whether `buf` holds
/// the head in one read or many makes no difference to the answer.
pub fn parse<'b, 'h>(
    buf: &'b [u8],
    limits: &Limits,
    slots: &'h mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<Request<'b, 'h>>, H1Error> {
    // Only the first `max_head` bytes can be a head (hyper's read buffer
    // holds no more): what lies past them is never judged, so an error
    // there is the head's size, whatever the bytes (fuzz finding).
    let buf = &buf[..buf.len().min(limits.max_head)];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= limits.max_head => {
            return Err(cut_off(buf, limits));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(H1Error::downstream(431, "too many header lines"));
        }
        Err(e) => return Err(H1Error::bad_request(syntax(e))),
    };
    let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(H1Error::bad_request("incomplete request line"));
    };
    check_lines(buf, method, req.headers, limits)?;
    let mut fields = Fields::default();
    for h in req.headers.iter() {
        fields.see(h.name, h.value, false);
    }
    // In today's order: the scanner's verdict, then hyper's target, then
    // hyper's framing checks (only the status differs with the order).
    fields.ambiguity()?;
    if path.len() > MAX_TARGET {
        return Err(H1Error::downstream(414, "request target too long"));
    }
    let target =
        Target::parse(method, path).ok_or(H1Error::bad_request("invalid request target"))?;
    let framing = fields.request(minor)?;
    let keep_alive = !fields.close && (minor == 1 || fields.keep_alive);
    Ok(Some(Request {
        method,
        target,
        raw_target: path,
        minor,
        headers: req.headers,
        head_len,
        framing,
        keep_alive,
        upgrade: method == "CONNECT" || (fields.upgrade && minor == 1),
        expect_continue: fields.expect_continue,
    }))
}

/// The refusal of a head that filled `max_head` without ending: 414 when
/// its request line is already over the line limit (nginx), else 431.
fn cut_off(buf: &[u8], limits: &Limits) -> H1Error {
    let start = buf
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(buf.len());
    let line = buf[start..]
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(buf.len() - start);
    if line > limits.line {
        H1Error::downstream(414, "request line too long")
    } else {
        H1Error::downstream(431, "request head too large")
    }
}

/// The line limits, from where the parsed pieces start (each byte is not
/// looked at again): a line runs from its first byte to the next line's.
fn check_lines(
    buf: &[u8],
    method: &str,
    headers: &[httparse::Header<'_>],
    limits: &Limits,
) -> Result<(), H1Error> {
    if limits.line == usize::MAX && headers.len() <= limits.headers {
        return Ok(());
    }
    let base = buf.as_ptr() as usize;
    let at = |s: &[u8]| (s.as_ptr() as usize).wrapping_sub(base);
    let mut start = at(method.as_bytes());
    let mut status = 414;
    let lines = headers
        .iter()
        .map(|h| at(h.name.as_bytes()))
        .chain(std::iter::once(usize::MAX));
    for (count, next) in lines.enumerate() {
        // The end of this line: the next one's start, or the blank line's.
        let end = if next == usize::MAX {
            let rest = &buf[start..];
            start + rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len()) + 1
        } else {
            next
        };
        let mut len = end - start - 1;
        if len > 0 && buf[start + len - 1] == b'\r' {
            len -= 1;
        }
        if len > limits.line {
            return Err(H1Error::downstream(
                status,
                if status == 414 {
                    "request line too long"
                } else {
                    "header line too long"
                },
            ));
        }
        if count > limits.headers {
            return Err(H1Error::downstream(431, "too many header lines"));
        }
        status = 431;
        start = next;
        if next == usize::MAX {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
