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

mod chunked;
#[cfg(test)]
mod tests;

use std::mem::MaybeUninit;

use chunked::Chunk;

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
                State::Chunked(chunk) => match chunked::feed(chunk, data) {
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
            (_, true, _) if chunked => State::Chunked(Chunk::START),
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
