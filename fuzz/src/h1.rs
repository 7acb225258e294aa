//! The reference for the `h1_differential` target: what rampart's HTTP/1
//! path did with a request or response head before its own server
//! (`proxy_user::h1`) replaced hyper's (issue 17). The framing scanner
//! (`server/framing/` with `server/head_limits.rs`, removed with hyper's
//! HTTP/1 server; its rules live on here) judged a whole head first, then
//! hyper 1.x parsed it (`proto/h1/role.rs`, the `http` crate's `Uri`,
//! `HeaderValue` and `StatusCode`). Written from those rules with httparse
//! and the `http` crate's own types, sharing no code with `proxy_user::h1`.

use hyper::{
    Uri,
    header::{HeaderName, HeaderValue},
};

/// Header slots both sides parse with.
pub const SLOTS: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_head: usize,
    pub line: usize,
    pub headers: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Empty,
    Length(u64),
    Chunked,
    Close,
}

/// An accepted request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub framing: Framing,
    pub head_len: usize,
    pub keep_alive: bool,
    pub upgrade: bool,
}

/// The answer to a request head: accepted, incomplete (`None`), refused
/// with a status, or `Skip` for a request target outside the compared
/// domain (not origin form: the codec reads those forms itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Accepted(Accepted),
    Incomplete,
    Refused(u16),
    Skip,
}

/// The scanner's end of a head: just past the blank line, bare LFs count.
fn scanner_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < buf.len() {
        let nl = i + buf[i..].iter().position(|b| *b == b'\n')?;
        match buf.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
    None
}

/// The scanner's line and count limits (`HeadLimits::check`), line by line.
fn scanner_limits(head: &[u8], limits: &Limits) -> Option<u16> {
    let mut lines = head
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    if lines.next().is_some_and(|l| l.len() > limits.line) {
        return Some(414);
    }
    let mut count = 0;
    for line in lines.take_while(|l| !l.is_empty()) {
        count += 1;
        if line.len() > limits.line || count > limits.headers {
            return Some(431);
        }
    }
    None
}

fn text(v: &[u8]) -> Option<String> {
    HeaderValue::from_bytes(v)
        .ok()?
        .to_str()
        .ok()
        .map(str::to_string)
}

fn from_digits(v: &str) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

fn last_is_chunked(v: &[u8]) -> bool {
    text(v).is_some_and(|s| {
        s.rsplit(',')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"))
    })
}

fn lists(v: &[u8], token: &str) -> bool {
    text(v).is_some_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Today's answer to the request head at the start of `buf`.
pub fn request(buf: &[u8], limits: &Limits) -> Answer {
    // hyper's read buffer holds at most `max_head` bytes.
    let buf = &buf[..buf.len().min(limits.max_head)];
    let mut headers = [httparse::EMPTY_HEADER; SLOTS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= limits.max_head => {
            // serve_http: a request line already over the line limit is 414.
            let start = buf
                .iter()
                .position(|b| *b != b'\r' && *b != b'\n')
                .unwrap_or(buf.len());
            let line = buf[start..]
                .iter()
                .position(|b| *b == b'\n')
                .unwrap_or(buf.len() - start);
            return Answer::Refused(if line > limits.line { 414 } else { 431 });
        }
        Ok(httparse::Status::Partial) => return Answer::Incomplete,
        Err(httparse::Error::TooManyHeaders) => return Answer::Refused(431),
        Err(_) => return Answer::Refused(400),
    };
    if len > limits.max_head {
        return Answer::Refused(431);
    }
    // The scanner's verdicts, on the head it delimits.
    let start = buf
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(buf.len());
    let head = match scanner_end(&buf[start..]) {
        Some(end) => &buf[start..start + end],
        None => &buf[start..len],
    };
    if let Some(status) = scanner_limits(head, limits) {
        return Answer::Refused(status);
    }
    let count = |name: &str| {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .count()
    };
    let (lengths, codings) = (count("content-length"), count("transfer-encoding"));
    if (lengths > 0 && codings > 0) || lengths > 1 {
        return Answer::Refused(400);
    }
    // hyper.
    let path = req.path.unwrap_or_default();
    if path.len() > u16::MAX as usize - 1 {
        return Answer::Refused(414);
    }
    let method = req.method.unwrap_or_default();
    if !path.starts_with('/') || method == "CONNECT" {
        return Answer::Skip;
    }
    if Uri::try_from(path).is_err() {
        return Answer::Refused(400);
    }
    let http11 = req.version == Some(1);
    let mut keep_alive = http11;
    let mut saw_close = false;
    let mut upgrade = false;
    let mut framing = Framing::Empty;
    let mut chunked = None;
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).expect("httparse checked the name");
        match name.as_str() {
            "transfer-encoding" => {
                if !http11 {
                    return Answer::Refused(400);
                }
                chunked = Some(last_is_chunked(h.value));
            }
            "content-length" => {
                let Some(n) = text(h.value).as_deref().and_then(from_digits) else {
                    return Answer::Refused(400);
                };
                if n > u64::MAX - 2 {
                    return Answer::Refused(431);
                }
                framing = Framing::Length(n);
            }
            "connection" => {
                if saw_close || lists(h.value, "close") {
                    saw_close = true;
                    keep_alive = false;
                } else if !keep_alive {
                    keep_alive = lists(h.value, "keep-alive");
                }
            }
            "upgrade" => upgrade = http11,
            _ => {}
        }
    }
    match chunked {
        Some(false) => return Answer::Refused(400),
        Some(true) => framing = Framing::Chunked,
        None => {}
    }
    Answer::Accepted(Accepted {
        framing,
        head_len: len,
        keep_alive,
        upgrade,
    })
}

/// What a response head means, as hyper's client reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response {
    Incomplete,
    Refused,
    Informational,
    Tunnel,
    Final { framing: Framing, head_len: usize },
}

/// hyper's client: `Client::parse` and `Client::decoder`.
pub fn response(buf: &[u8], method: &str, max_head: usize) -> Response {
    let buf = &buf[..buf.len().min(max_head)];
    let mut headers = [httparse::EMPTY_HEADER; SLOTS];
    let mut res = httparse::Response::new(&mut headers);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= max_head => n,
        Ok(httparse::Status::Partial) if buf.len() < max_head => return Response::Incomplete,
        _ => return Response::Refused,
    };
    let Ok(status) = hyper::StatusCode::from_u16(res.code.unwrap_or(0)) else {
        return Response::Refused;
    };
    // hyper's map, with values as received (hyper takes them unchecked).
    let map: Vec<(HeaderName, &[u8])> = res
        .headers
        .iter()
        .map(|h| {
            let name =
                HeaderName::from_bytes(h.name.as_bytes()).expect("httparse checked the name");
            (name, h.value)
        })
        .collect();
    let all = |name: &'static str| values(&map, name);
    let code = status.as_u16();
    match code {
        101 => return Response::Tunnel,
        100..=199 => return Response::Informational,
        204 | 304 => {
            return Response::Final {
                framing: Framing::Empty,
                head_len: len,
            };
        }
        _ => {}
    }
    if method == "HEAD" {
        return Response::Final {
            framing: Framing::Empty,
            head_len: len,
        };
    }
    if method == "CONNECT" && (200..300).contains(&code) {
        return Response::Tunnel;
    }
    let framing = if let Some(last) = all("transfer-encoding").last() {
        if res.version == Some(0) {
            return Response::Refused;
        }
        if last_is_chunked(last) {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else if all("content-length").next().is_some() {
        let mut length = None;
        for v in all("content-length") {
            let Some(s) = text(v) else {
                return Response::Refused;
            };
            for part in s.split(',') {
                match from_digits(part.trim()) {
                    Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                    _ => return Response::Refused,
                }
            }
        }
        match length {
            Some(n) if n <= u64::MAX - 2 => Framing::Length(n),
            _ => return Response::Refused,
        }
    } else {
        Framing::Close
    };
    Response::Final {
        framing,
        head_len: len,
    }
}

/// A chunked body read whole, by hyper's grammar: `Some(len)` when it ends
/// after `len` bytes, `None` when more must come, `Err` when it is broken.
pub fn chunked(body: &[u8], max_trailer: usize, max_trailers: usize) -> Result<Option<usize>, ()> {
    let mut at = 0;
    let mut extensions = 0u64;
    let next = |at: &mut usize| -> Option<u8> {
        let b = body.get(*at).copied();
        *at += 1;
        b
    };
    loop {
        // size [ws] [; ext] CRLF
        let mut size: u64 = 0;
        let mut digits = 0;
        let mut c;
        loop {
            let Some(b) = next(&mut at) else {
                return Ok(None);
            };
            c = b;
            let Some(d) = (b as char).to_digit(16) else {
                break;
            };
            size = size
                .checked_mul(16)
                .and_then(|s| s.checked_add(u64::from(d)))
                .ok_or(())?;
            digits += 1;
        }
        if digits == 0 {
            return Err(());
        }
        while c == b' ' || c == b'\t' {
            let Some(b) = next(&mut at) else {
                return Ok(None);
            };
            c = b;
        }
        if c == b';' {
            loop {
                let Some(b) = next(&mut at) else {
                    return Ok(None);
                };
                c = b;
                if c == b'\r' {
                    break;
                }
                if c == b'\n' {
                    return Err(());
                }
                extensions += 1;
                if extensions >= 16 * 1024 {
                    return Err(());
                }
            }
        }
        if c != b'\r' {
            return Err(());
        }
        match next(&mut at) {
            None => return Ok(None),
            Some(b'\n') => {}
            Some(_) => return Err(()),
        }
        if size == 0 {
            break;
        }
        let Some(end) = usize::try_from(size).ok().and_then(|s| at.checked_add(s)) else {
            return Ok(None);
        };
        if end > body.len() {
            return Ok(None);
        }
        at = end;
        for want in [b'\r', b'\n'] {
            match next(&mut at) {
                None => return Ok(None),
                Some(b) if b == want => {}
                Some(_) => return Err(()),
            }
        }
    }
    // Trailer lines (any bytes but CR, then LF), then CRLF.
    let (mut bytes, mut lines) = (0usize, 0usize);
    loop {
        let Some(b) = next(&mut at) else {
            return Ok(None);
        };
        if b == b'\r' {
            return match next(&mut at) {
                None => Ok(None),
                Some(b'\n') => Ok(Some(at)),
                Some(_) => Err(()),
            };
        }
        // A trailer line: this byte, up to CR LF.
        let mut c = b;
        loop {
            bytes += 1;
            if bytes > max_trailer {
                return Err(());
            }
            if c == b'\r' {
                break;
            }
            let Some(b) = next(&mut at) else {
                return Ok(None);
            };
            c = b;
        }
        match next(&mut at) {
            None => return Ok(None),
            Some(b'\n') => {}
            Some(_) => return Err(()),
        }
        if lines >= max_trailers {
            return Err(());
        }
        lines += 1;
    }
}

/// The values of header `name` (lower case), in order.
fn values<'a>(
    map: &'a [(HeaderName, &'a [u8])],
    name: &'static str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    map.iter().filter(move |(n, _)| n == name).map(|(_, v)| *v)
}
