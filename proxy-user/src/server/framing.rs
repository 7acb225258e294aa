//! The HTTP/1 framing check: follows the raw request stream of a connection
//! (heads, then bodies by their declared length or chunks) and judges each
//! request head before hyper parses it.
//!
//! hyper settles ambiguous framing on its own terms: with both
//! `Content-Length` and `Transfer-Encoding` it drops the length, and it
//! accepts a repeated, equal `Content-Length`. Both are what request
//! smuggling is made of (RFC 9112 §6.3 lets a server reject them), so the
//! scanner marks such heads and the handler answers 400 and closes.
//!
//! The scanner never decides framing itself; hyper does. When it can no
//! longer follow the stream (HTTP/2 prior knowledge, a head hyper will
//! reject anyway, an oversized head), it stops and says so, and later
//! requests on that connection are not judged.
//!
//! A head that asks for an upgrade (`Upgrade`, or `CONNECT`) does not stop
//! it: whether the connection leaves HTTP is only known once the response
//! is a 101 (or a 2xx to `CONNECT`), and until then what follows is judged
//! as the next request, which it is when the upgrade is refused. The guard
//! drops the scanner once the connection has become a tunnel
//! ([`Scanner::upgrade_asked`]); verdicts judged from tunnel bytes before
//! that are never used, as no request follows a tunnel.

use std::mem::MaybeUninit;

use super::head_limits::HeadLimits;

/// The scanner's judgement of one request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Clear,
    /// Why the framing is ambiguous, for the 400 and the log.
    Ambiguous(&'static str),
    /// A line or the header count is over its limit ([`HeadLimits`]): 414
    /// for the request line, 431 for headers.
    TooLarge {
        status: u16,
        why: &'static str,
    },
}

/// What happened while feeding bytes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fed {
    /// Verdicts of the heads completed, in order.
    pub verdicts: Vec<Verdict>,
    /// The first bytes of a new head arrived.
    pub head_started: bool,
    /// A head completed and no new one has started.
    pub head_finished: bool,
    /// The scanner stopped following the stream.
    pub stopped: bool,
}

#[derive(Debug)]
enum State {
    Head,
    Body(u64),
    Chunked(Chunk),
    Stopped,
}

#[derive(Debug, Clone, Copy)]
enum Chunk {
    Size { value: u64, digits: u8, ext: bool },
    Data(u64),
    DataEnd { cr: bool },
    Trailer { line_start: bool },
}

/// Header lines parsed without an allocation; a larger configured limit
/// parses into the heap.
const MAX_HEADERS: usize = 128;

#[derive(Debug)]
pub struct Scanner {
    state: State,
    /// Bytes of a head that arrived over several reads.
    partial: Vec<u8>,
    /// Largest head followed; hyper answers 431 above its own limit.
    max_head: usize,
    /// A head asked for an upgrade: what follows may be a tunnel's bytes.
    upgrade_asked: bool,
    limits: HeadLimits,
}

impl Scanner {
    pub fn new(max_head: usize) -> Scanner {
        Scanner {
            state: State::Head,
            partial: Vec::new(),
            max_head,
            upgrade_asked: false,
            limits: HeadLimits::NONE,
        }
    }

    /// Refuses heads over `limits` (see [`Verdict::TooLarge`]).
    pub fn limited(mut self, limits: HeadLimits) -> Scanner {
        self.limits = limits;
        self
    }

    /// Whether a head followed asked for an upgrade: the connection may have
    /// left HTTP since, and then the scanner is to be dropped.
    pub fn upgrade_asked(&self) -> bool {
        self.upgrade_asked
    }

    /// True while a head has started and not completed.
    pub fn in_head(&self) -> bool {
        matches!(self.state, State::Head) && !self.partial.is_empty()
    }

    /// Bytes of a request body that must still arrive before anything
    /// else can: the rest of a `Content-Length` body, or of the chunk
    /// being read. `None` outside a body's data.
    pub fn body_left(&self) -> Option<u64> {
        match self.state {
            State::Body(left) | State::Chunked(Chunk::Data(left)) => Some(left),
            _ => None,
        }
    }

    /// Follows `data`, the next bytes read from the client.
    pub fn feed(&mut self, mut data: &[u8], fed: &mut Fed) {
        while !data.is_empty() {
            match &mut self.state {
                State::Stopped => return,
                State::Body(left) => {
                    let n = (*left).min(data.len() as u64);
                    *left -= n;
                    data = &data[n as usize..];
                    if *left == 0 {
                        self.state = State::Head;
                    }
                }
                State::Chunked(chunk) => match chunk_feed(chunk, data) {
                    Some((used, done)) => {
                        data = &data[used..];
                        if done {
                            self.state = State::Head;
                        }
                    }
                    None => return self.stop(fed),
                },
                State::Head => {
                    if self.partial.is_empty() {
                        // Empty lines before a request line are ignored (RFC 9112 §2.2).
                        let skip = data
                            .iter()
                            .position(|b| *b != b'\r' && *b != b'\n')
                            .unwrap_or(data.len());
                        data = &data[skip..];
                        if data.is_empty() {
                            return;
                        }
                        fed.head_started = true;
                        if let Some(end) = end_of_head(data, 0) {
                            let (head, rest) = data.split_at(end);
                            self.judge(head, fed);
                            data = rest;
                            continue;
                        }
                    }
                    let before = self.partial.len();
                    let take = data
                        .len()
                        .min(self.max_head + 4 - before.min(self.max_head));
                    self.partial.extend_from_slice(&data[..take]);
                    match end_of_head(&self.partial, before.saturating_sub(2)) {
                        Some(end) => {
                            let head = std::mem::take(&mut self.partial);
                            self.judge(&head[..end], fed);
                            self.partial = head;
                            self.partial.clear();
                            data = &data[end - before..];
                        }
                        None if self.partial.len() > self.max_head => return self.stop(fed),
                        None => return,
                    }
                }
            }
        }
    }

    fn stop(&mut self, fed: &mut Fed) {
        self.state = State::Stopped;
        self.partial = Vec::new();
        fed.stopped = true;
    }

    /// Judges one complete head and sets up following its body.
    fn judge(&mut self, head: &[u8], fed: &mut Fed) {
        fed.head_finished = true;
        // Room for as many headers as the limit allows, not initialised
        // (httparse writes what it parses): one more is TooManyHeaders.
        let mut on_stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut on_heap = Vec::new();
        let headers = match self.limits.headers {
            n if n <= MAX_HEADERS => &mut on_stack[..n],
            usize::MAX => &mut on_stack[..],
            n => {
                on_heap.reserve_exact(n);
                &mut on_heap.spare_capacity_mut()[..n]
            }
        };
        let mut req = httparse::Request::new(&mut []);
        let parsed = req.parse_with_uninit_headers(head, headers);
        // The line and count limits, from where the parsed headers start
        // (each byte is looked at once); a head httparse refuses (more
        // headers than the limit among others) is looked at line by line.
        let too_large = match parsed {
            Ok(httparse::Status::Complete(_)) => self.limits.check_parsed(head, req.headers),
            _ => self.limits.check(head),
        };
        if let Some(super::head_limits::TooLarge { status, why }) = too_large {
            // Answered and closed, as an ambiguous head.
            fed.verdicts.push(Verdict::TooLarge { status, why });
            return self.stop(fed);
        }
        let Ok(httparse::Status::Complete(_)) = parsed else {
            // hyper rejects what httparse rejects; nothing to follow.
            return self.stop(fed);
        };
        if req.method == Some("PRI") {
            return self.stop(fed);
        }
        let mut upgrade = req.method == Some("CONNECT");
        let (mut lengths, mut length, mut te, mut chunked) = (0, None, false, false);
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                lengths += 1;
                length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok());
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                te = true;
                // The final coding decides (RFC 9112 §6.3).
                chunked = h
                    .value
                    .rsplit(|b| *b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if h.name.eq_ignore_ascii_case("upgrade") {
                upgrade = true;
            }
        }
        let verdict = if te && lengths > 0 {
            Verdict::Ambiguous("Content-Length with Transfer-Encoding")
        } else if lengths > 1 {
            Verdict::Ambiguous("repeated Content-Length")
        } else {
            Verdict::Clear
        };
        fed.verdicts.push(verdict);
        self.upgrade_asked |= upgrade;
        self.state = match (verdict, te, length) {
            // The connection closes after the 400.
            (Verdict::Ambiguous(_) | Verdict::TooLarge { .. }, ..) => return self.stop(fed),
            (_, true, _) if chunked => State::Chunked(Chunk::Size {
                value: 0,
                digits: 0,
                ext: false,
            }),
            (_, true, _) => return self.stop(fed),
            (_, false, None) if lengths > 0 => return self.stop(fed),
            (_, false, Some(n)) if n > 0 => State::Body(n),
            _ => State::Head,
        };
    }
}

/// Index just past the blank line that ends a head, searching line ends
/// from `from`. Bare LF line ends count, as httparse accepts them.
fn end_of_head(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
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

/// Follows chunked framing; `Some((bytes used, body done))`, `None` when the
/// framing is broken (hyper answers 400 and closes).
fn chunk_feed(chunk: &mut Chunk, data: &[u8]) -> Option<(usize, bool)> {
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        match chunk {
            Chunk::Size { value, digits, ext } => {
                i += 1;
                match b {
                    b'\n' if *digits == 0 => return None,
                    b'\n' if *value == 0 => *chunk = Chunk::Trailer { line_start: true },
                    b'\n' => *chunk = Chunk::Data(*value),
                    _ if *ext => {}
                    b';' | b' ' | b'\t' => *ext = true,
                    b'\r' => {}
                    _ => {
                        let d = (b as char).to_digit(16)?;
                        *digits += 1;
                        if *digits > 15 {
                            return None;
                        }
                        *value = *value * 16 + d as u64;
                    }
                }
            }
            Chunk::Data(left) => {
                let n = (*left).min((data.len() - i) as u64);
                *left -= n;
                i += n as usize;
                if *left == 0 {
                    *chunk = Chunk::DataEnd { cr: false };
                }
            }
            Chunk::DataEnd { cr } => {
                i += 1;
                match b {
                    b'\r' if !*cr => *cr = true,
                    b'\n' => {
                        *chunk = Chunk::Size {
                            value: 0,
                            digits: 0,
                            ext: false,
                        }
                    }
                    _ => return None,
                }
            }
            Chunk::Trailer { line_start } => {
                i += 1;
                match b {
                    b'\n' if *line_start => return Some((i, true)),
                    b'\n' => *line_start = true,
                    b'\r' => {}
                    _ => *line_start = false,
                }
            }
        }
    }
    Some((i, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(stream: &[u8], step: usize) -> (Vec<Verdict>, bool) {
        let mut s = Scanner::new(8192);
        let mut fed = Fed::default();
        for piece in stream.chunks(step) {
            s.feed(piece, &mut fed);
        }
        (fed.verdicts, fed.stopped)
    }

    /// Every split of the stream gives the same verdicts as one read.
    fn check(stream: &[u8], want: &[Verdict], stopped: bool) {
        for step in [stream.len(), 1, 2, 3, 7, 64] {
            assert_eq!(
                verdicts(stream, step),
                (want.to_vec(), stopped),
                "read size {step}"
            );
        }
    }

    const CLEAR: Verdict = Verdict::Clear;

    #[test]
    fn pipelined_requests_with_bodies_are_followed() {
        let stream = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\
            POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
            POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
            5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n\
            GET /last HTTP/1.1\r\nHost: a\r\ncontent-length: 1\r\ncontent-LENGTH: 1\r\n\r\n";
        check(
            stream,
            &[
                CLEAR,
                CLEAR,
                CLEAR,
                Verdict::Ambiguous("repeated Content-Length"),
            ],
            true,
        );
    }

    #[test]
    fn length_with_transfer_encoding_is_ambiguous_in_either_order() {
        for head in [
            &b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
        ] {
            check(
                head,
                &[Verdict::Ambiguous("Content-Length with Transfer-Encoding")],
                true,
            );
        }
    }

    #[test]
    fn body_bytes_that_look_like_a_head_are_not_judged() {
        // The body of the first request holds a smuggled-looking request.
        let body = b"GET /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n";
        let mut stream =
            format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        stream.extend_from_slice(body);
        stream.extend_from_slice(b"GET / HTTP/1.1\n\n");
        check(&stream, &[CLEAR, CLEAR], false);
    }

    #[test]
    fn prior_knowledge_http2_stops_the_scanner() {
        check(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", &[], true);
    }

    /// Asking for an upgrade does not switch the check off: whether the
    /// connection leaves HTTP depends on the response (issue 13, item 8).
    #[test]
    fn heads_after_an_upgrade_request_are_still_judged() {
        for first in [
            &b"GET / HTTP/1.1\r\nUpgrade: foo\r\nConnection: upgrade\r\n\r\n"[..],
            b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
        ] {
            let mut stream = first.to_vec();
            stream.extend_from_slice(
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            );
            check(
                &stream,
                &[
                    CLEAR,
                    Verdict::Ambiguous("Content-Length with Transfer-Encoding"),
                ],
                true,
            );
            let mut s = Scanner::new(8192);
            s.feed(first, &mut Fed::default());
            assert!(s.upgrade_asked());
        }
        let mut s = Scanner::new(8192);
        s.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &mut Fed::default());
        assert!(!s.upgrade_asked());
    }

    #[test]
    fn broken_framing_stops_without_a_verdict_for_what_follows() {
        check(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            &[CLEAR],
            true,
        );
        // An oversized head: hyper answers 431.
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 9000));
        let (v, stopped) = verdicts(&big, 100);
        assert!(v.is_empty() && stopped);
    }

    #[test]
    fn body_left_counts_what_must_still_arrive() {
        let mut s = Scanner::new(8192);
        let mut fed = Fed::default();
        assert_eq!(s.body_left(), None);
        s.feed(
            b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc",
            &mut fed,
        );
        assert_eq!(s.body_left(), Some(7));
        s.feed(b"defghij", &mut fed);
        assert_eq!(s.body_left(), None);
        s.feed(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1",
            &mut fed,
        );
        // Inside a chunk-size line: how much follows is not known yet.
        assert_eq!(s.body_left(), None);
        s.feed(b"0\r\n0123", &mut fed);
        assert_eq!(s.body_left(), Some(12));
        s.feed(b"456789abcdef\r\n0\r\n\r\n", &mut fed);
        assert_eq!(s.body_left(), None);
        assert_eq!(fed.verdicts, vec![CLEAR, CLEAR]);
    }

    #[test]
    fn head_progress_is_reported() {
        let mut s = Scanner::new(8192);
        let mut fed = Fed::default();
        s.feed(b"\r\nGET / HT", &mut fed);
        assert!(fed.head_started && !fed.head_finished && s.in_head());
        let mut fed = Fed::default();
        s.feed(b"TP/1.1\r\n\r\n", &mut fed);
        assert!(!fed.head_started && fed.head_finished && !s.in_head());
        assert_eq!(fed.verdicts, vec![CLEAR]);
    }

    #[test]
    fn lines_and_header_counts_over_their_limits_are_refused() {
        let limits = HeadLimits {
            line: 64,
            headers: 3,
        };
        let judge = |head: String| {
            let mut s = Scanner::new(8192).limited(limits);
            let mut fed = Fed::default();
            s.feed(head.as_bytes(), &mut fed);
            (fed.verdicts, fed.stopped)
        };
        let (path, value) = ("a".repeat(50), "a".repeat(61));
        // At the limits (64-byte lines, 3 headers): clear.
        assert_eq!(
            judge(format!(
                "GET /{path} HTTP/1.1\r\nA: 1\r\nB: 2\r\nX: {value}\r\n\r\n"
            )),
            (vec![CLEAR], false)
        );
        let too_large = |status, why| (vec![Verdict::TooLarge { status, why }], true);
        assert_eq!(
            judge(format!("GET /{path}a HTTP/1.1\r\n\r\n")),
            too_large(414, "request line too long")
        );
        assert_eq!(
            judge(format!("GET / HTTP/1.1\nX: {value}a\n\n")),
            too_large(431, "header line too long")
        );
        assert_eq!(
            judge("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n".into()),
            too_large(431, "too many header lines")
        );
        // More headers than fit the stack are parsed, not given up on.
        let mut s = Scanner::new(1 << 20).limited(HeadLimits {
            line: 64,
            headers: 300,
        });
        let mut fed = Fed::default();
        let mut head = String::from("POST / HTTP/1.1\r\n");
        for i in 0..299 {
            head.push_str(&format!("X-{i}: v\r\n"));
        }
        head.push_str("Content-Length: 1\r\nContent-Length: 1\r\n\r\n");
        s.feed(head.as_bytes(), &mut fed);
        assert_eq!(
            fed.verdicts,
            vec![Verdict::TooLarge {
                status: 431,
                why: "too many header lines"
            }]
        );
        let mut s = Scanner::new(1 << 20).limited(HeadLimits {
            line: 64,
            headers: 300,
        });
        let mut fed = Fed::default();
        let head = head.replacen("X-0: v\r\nX-1: v\r\n", "", 1);
        s.feed(head.as_bytes(), &mut fed);
        assert_eq!(
            fed.verdicts,
            vec![Verdict::Ambiguous("repeated Content-Length")]
        );
    }
}
