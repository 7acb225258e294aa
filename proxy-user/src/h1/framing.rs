//! The body framing decision for a head, taken once (RFC 9112 §6.3), with
//! the rules rampart enforced split between the framing scanner
//! (`server::framing`, which judged heads before hyper, removed with
//! hyper's HTTP/1 server) and hyper's own parse — here in one place:
//!
//! | request head | today | here |
//! |---|---|---|
//! | `Content-Length` and `Transfer-Encoding` | scanner: 400 | 400 |
//! | `Content-Length` twice, even equal | scanner: 400 | 400 |
//! | `Content-Length` not all digits | hyper: 400 | 400 |
//! | `Content-Length` over 2⁶⁴−3 | hyper: 431 | 431 |
//! | `Transfer-Encoding` in HTTP/1.0 | hyper: 400 | 400 |
//! | `Transfer-Encoding` whose last line does not end in `chunked` | hyper: 400 | 400 |
//!
//! A response (hyper's client rules, which a proxy must follow: RFC 9112
//! §6.3): no body after 1xx, 204, 304 or to a HEAD; a 2xx to CONNECT and a
//! 101 leave HTTP; `Transfer-Encoding` wins over `Content-Length` (which is
//! then not to be forwarded), is chunked when its last line ends in
//! `chunked` and read to the close otherwise (refused in HTTP/1.0);
//! `Content-Length` values (comma lists, repeated lines) must all agree;
//! with neither, the body runs to the close.

use super::error::{Blame, H1Error};

/// How a message's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (a request without length, a 204, a HEAD's response...).
    Empty,
    /// Exactly this many bytes (0 included, as sent).
    Length(u64),
    /// `Transfer-Encoding: chunked` (see [`super::body`]).
    Chunked,
    /// Until the upstream closes (responses only).
    Close,
}

impl Framing {
    /// Whether body bytes follow the head.
    pub fn has_body(self) -> bool {
        !matches!(self, Framing::Empty | Framing::Length(0))
    }
}

/// hyper's largest length (`DecodedLength::MAX_LEN`): above it, refused.
const MAX_LENGTH: u64 = u64::MAX - 2;

/// What the headers of one head say, gathered in one pass.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    lengths: u32,
    /// The first `Content-Length`, if all digits and in range.
    length: Option<u64>,
    /// A `Content-Length` was not a number (requests: one value per line).
    length_invalid: bool,
    /// Response `Content-Length` values disagree or one is not a number.
    lengths_disagree: bool,
    te: bool,
    /// The last `Transfer-Encoding` line ends in `chunked`.
    chunked: bool,
    pub close: bool,
    pub keep_alive: bool,
    pub upgrade: bool,
    pub expect_continue: bool,
}

impl Fields {
    /// Takes one header into account (`response`: Content-Length is a list).
    pub(crate) fn see(&mut self, name: &str, value: &[u8], response: bool) {
        match name.len() {
            14 if name.eq_ignore_ascii_case("content-length") => {
                self.lengths += 1;
                if response {
                    self.see_length_list(value);
                } else {
                    match digits(value) {
                        Some(n) if self.length.is_none() => self.length = Some(n),
                        Some(_) => {}
                        None => self.length_invalid = true,
                    }
                }
            }
            17 if name.eq_ignore_ascii_case("transfer-encoding") => {
                self.te = true;
                self.chunked = ends_in_chunked(value);
            }
            10 if name.eq_ignore_ascii_case("connection") => {
                self.close |= has_token(value, b"close");
                self.keep_alive |= has_token(value, b"keep-alive");
            }
            7 if name.eq_ignore_ascii_case("upgrade") => self.upgrade = true,
            6 if name.eq_ignore_ascii_case("expect") => {
                self.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
            }
            _ => {}
        }
    }

    /// hyper's `content_length_parse_all`: every comma-separated value of
    /// every line a number, all equal.
    fn see_length_list(&mut self, value: &[u8]) {
        if !visible(value) {
            self.lengths_disagree = true;
            return;
        }
        for v in value.split(|b| *b == b',') {
            match digits(trim(v)) {
                Some(n) if self.length.is_none_or(|l| l == n) => self.length = Some(n),
                _ => self.lengths_disagree = true,
            }
        }
    }

    /// The framing verdicts checked before anything else in the head (the
    /// request target included): a length with a coding, or two lengths,
    /// even equal.
    pub(crate) fn ambiguity(&self) -> Result<(), H1Error> {
        if self.te && self.lengths > 0 {
            return Err(H1Error::bad_request(
                "Content-Length with Transfer-Encoding",
            ));
        }
        if self.lengths > 1 {
            return Err(H1Error::bad_request("repeated Content-Length"));
        }
        Ok(())
    }

    /// The framing of a request head of HTTP/1.`minor`.
    pub(crate) fn request(&self, minor: u8) -> Result<Framing, H1Error> {
        self.ambiguity()?;
        if self.te {
            if minor == 0 {
                return Err(H1Error::bad_request("Transfer-Encoding in HTTP/1.0"));
            }
            if !self.chunked {
                return Err(H1Error::bad_request(
                    "Transfer-Encoding does not end in chunked",
                ));
            }
            return Ok(Framing::Chunked);
        }
        match self.length {
            _ if self.length_invalid => Err(H1Error::bad_request("invalid Content-Length")),
            // hyper's `Parse::TooLarge`.
            Some(n) if n > MAX_LENGTH => Err(H1Error::downstream(431, "Content-Length too large")),
            Some(n) => Ok(Framing::Length(n)),
            None => Ok(Framing::Empty),
        }
    }

    /// The framing of a final response's head of HTTP/1.`minor` to a
    /// request that was not HEAD (which the caller settles).
    pub(crate) fn response(&self, minor: u8) -> Result<Framing, H1Error> {
        if self.te {
            if minor == 0 {
                return Err(H1Error::upstream("Transfer-Encoding in HTTP/1.0"));
            }
            return Ok(if self.chunked {
                Framing::Chunked
            } else {
                Framing::Close
            });
        }
        if self.lengths == 0 {
            return Ok(Framing::Close);
        }
        match self.length {
            Some(n) if !self.lengths_disagree && n <= MAX_LENGTH => Ok(Framing::Length(n)),
            _ => Err(H1Error::on(Blame::Upstream, "invalid Content-Length")),
        }
    }

    /// `Content-Length` is present but `Transfer-Encoding` decides: the
    /// length must not be forwarded (RFC 9112 §6.3 item 3).
    pub fn length_overridden(&self) -> bool {
        self.te && self.lengths > 0
    }
}

/// A decimal length, digits only (hyper's `from_digits`).
pub(crate) fn digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |n, b| match b {
        b'0'..=b'9' => n.checked_mul(10)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

/// Visible ASCII, space and tab: what a header value must be for hyper to
/// read it as text (`HeaderValue::to_str`).
fn visible(v: &[u8]) -> bool {
    v.iter().all(|b| (0x20..0x7f).contains(b) || *b == b'\t')
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !matches!(b, b' ' | b'\t'));
    let Some(start) = start else { return &[] };
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(start);
    &v[start..=end]
}

/// Whether the last coding of a `Transfer-Encoding` line is `chunked`.
fn ends_in_chunked(v: &[u8]) -> bool {
    visible(v)
        && v.rsplit(|b| *b == b',')
            .next()
            .is_some_and(|last| trim(last).eq_ignore_ascii_case(b"chunked"))
}

/// Whether a comma-separated list holds `token` (visible, without commas
/// or blanks), in any case.
pub(crate) fn has_token(v: &[u8], token: &[u8]) -> bool {
    debug_assert!(!token.is_empty() && token.iter().all(|b| b.is_ascii_graphic() && *b != b','));
    // The usual value is one token (`close`, `keep-alive`): a value no
    // longer than `token` holds it only if it is `token` (an element of
    // the list is at most the whole value, and trimming only shortens it),
    // settled without walking the list (issue 17: three calls per
    // `Connection: close` request were ~0.9k instructions).
    if v.len() <= token.len() {
        return v.eq_ignore_ascii_case(token);
    }
    visible(v)
        && v.split(|b| *b == b',')
            .any(|t| trim(t).eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)], minor: u8) -> Result<Framing, H1Error> {
        let mut f = Fields::default();
        for (n, v) in headers {
            f.see(n, v.as_bytes(), false);
        }
        f.request(minor)
    }

    fn response(headers: &[(&str, &str)]) -> Result<Framing, H1Error> {
        let mut f = Fields::default();
        for (n, v) in headers {
            f.see(n, v.as_bytes(), true);
        }
        f.response(1)
    }

    #[test]
    fn request_lengths_and_chunked() {
        assert_eq!(request(&[], 1), Ok(Framing::Empty));
        assert_eq!(
            request(&[("Content-Length", "0")], 1),
            Ok(Framing::Length(0))
        );
        assert_eq!(
            request(&[("content-length", "42")], 0),
            Ok(Framing::Length(42))
        );
        assert_eq!(
            request(&[("Transfer-Encoding", "gzip, chunked")], 1),
            Ok(Framing::Chunked)
        );
        assert!(!Framing::Length(0).has_body() && Framing::Chunked.has_body());
    }

    /// The smuggling rules: each refused with 400, blamed on the client.
    #[test]
    fn ambiguous_request_framing_is_refused() {
        for (headers, minor, why) in [
            (
                &[("Content-Length", "4"), ("Transfer-Encoding", "chunked")][..],
                1,
                "Content-Length with Transfer-Encoding",
            ),
            (
                &[("Transfer-Encoding", "chunked"), ("Content-Length", "4")],
                1,
                "Content-Length with Transfer-Encoding",
            ),
            (
                &[("Content-Length", "4"), ("content-length", "4")],
                1,
                "repeated Content-Length",
            ),
            (&[("Content-Length", "+4")], 1, "invalid Content-Length"),
            (&[("Content-Length", "4, 4")], 1, "invalid Content-Length"),
            (&[("Content-Length", "")], 1, "invalid Content-Length"),
            (
                &[("Content-Length", "18446744073709551616")],
                1,
                "invalid Content-Length",
            ),
            (
                &[("Transfer-Encoding", "chunked")],
                0,
                "Transfer-Encoding in HTTP/1.0",
            ),
            (
                &[("Transfer-Encoding", "chunked, gzip")],
                1,
                "Transfer-Encoding does not end in chunked",
            ),
            (
                &[
                    ("Transfer-Encoding", "chunked"),
                    ("Transfer-Encoding", "gzip"),
                ],
                1,
                "Transfer-Encoding does not end in chunked",
            ),
            (
                &[("Transfer-Encoding", "xchunked")],
                1,
                "Transfer-Encoding does not end in chunked",
            ),
            (
                &[("Transfer-Encoding", "chunked\u{b}")],
                1,
                "Transfer-Encoding does not end in chunked",
            ),
        ] {
            assert_eq!(
                request(headers, minor),
                Err(H1Error::bad_request(why)),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn lengths_past_hypers_largest_are_431() {
        assert_eq!(
            request(&[("Content-Length", "18446744073709551613")], 1),
            Ok(Framing::Length(u64::MAX - 2))
        );
        assert_eq!(
            request(&[("Content-Length", "18446744073709551614")], 1),
            Err(H1Error::downstream(431, "Content-Length too large"))
        );
    }

    #[test]
    fn response_framing_follows_the_client_rules() {
        assert_eq!(response(&[]), Ok(Framing::Close));
        assert_eq!(
            response(&[("Content-Length", "5, 5")]),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            response(&[("Content-Length", "5"), ("Content-Length", "5")]),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            response(&[("Content-Length", "5"), ("Content-Length", "6")]),
            Err(H1Error::upstream("invalid Content-Length"))
        );
        assert_eq!(
            response(&[("Content-Length", "5"), ("Transfer-Encoding", "chunked")]),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            response(&[("Transfer-Encoding", "gzip")]),
            Ok(Framing::Close)
        );
        let mut f = Fields::default();
        f.see("Transfer-Encoding", b"chunked", true);
        assert_eq!(
            f.response(0),
            Err(H1Error::upstream("Transfer-Encoding in HTTP/1.0"))
        );
    }

    #[test]
    fn connection_tokens_are_read_in_any_case() {
        let mut f = Fields::default();
        f.see("Connection", b"Keep-Alive , CLOSE", false);
        f.see("Expect", b"100-Continue", false);
        assert!(f.close && f.keep_alive && f.expect_continue);
        assert!(has_token(b"a,\tupgrade ", b"upgrade"));
        assert!(!has_token(b"upgrade\x80", b"upgrade"));
    }

    /// The list walk alone, without `has_token`'s shortcut for short values.
    fn walk(v: &[u8], token: &[u8]) -> bool {
        visible(v)
            && v.split(|b| *b == b',')
                .any(|t| trim(t).eq_ignore_ascii_case(token))
    }

    #[test]
    fn the_short_value_shortcut_agrees_with_the_list_walk() {
        // Every value of up to 5 bytes over an alphabet with the token's
        // letters in both cases, the list's separators and bytes that are
        // not visible, against a 4-byte token (`has_token`'s shortcut
        // settles values of up to 4 bytes, the walk the longer ones).
        let alphabet = b"cClosS, \t\x7f\x80";
        let token = b"cloS";
        let mut value = Vec::new();
        let mut checked = 0;
        for len in 0..=5u32 {
            for mut i in 0..alphabet.len().pow(len) {
                value.clear();
                for _ in 0..len {
                    value.push(alphabet[i % alphabet.len()]);
                    i /= alphabet.len();
                }
                assert_eq!(
                    has_token(&value, token),
                    walk(&value, token),
                    "{:?}",
                    String::from_utf8_lossy(&value)
                );
                checked += 1;
            }
        }
        assert!(checked > 100_000);
        for (v, t) in [
            (&b"close"[..], &b"close"[..]),
            (b"Close", b"close"),
            (b"clos", b"close"),
            (b" close", b"close"),
            (b"close ", b"close"),
            (b"keep-alive", b"keep-alive"),
            (b"close", b"keep-alive"),
            (b"", b"close"),
            (b",", b"close"),
            (b"upgrade", b"upgrade"),
            (b"Upgrade, keep-alive", b"upgrade"),
        ] {
            assert_eq!(has_token(v, t), walk(v, t), "{v:?} {t:?}");
        }
    }
}
