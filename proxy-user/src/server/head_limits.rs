//! Limits on a request head's lines and fields, nginx's
//! `large_client_header_buffers` (`max_header_line`) with a count of
//! headers (`max_headers`): the framing scanner applies them to each whole
//! HTTP/1 head, the connection's service to HTTP/2 fields, and
//! `Downstream::serve` to a head cut off at `max_header_size` inside its request
//! line.

/// A head refused for its size: the status (414 for the request line,
/// 431 for headers) and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLarge {
    pub status: u16,
    pub why: &'static str,
}

/// Limits on the lines of a head, checked once it is whole (a head larger
/// than hyper's buffer gets hyper's own 431).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLimits {
    /// Longest request line or header line, without its line end (nginx
    /// `large_client_header_buffers`' size).
    pub line: usize,
    /// Most header lines.
    pub headers: usize,
}

impl HeadLimits {
    /// No limit beyond the head's size.
    pub const NONE: HeadLimits = HeadLimits {
        line: usize::MAX,
        headers: usize::MAX,
    };

    /// The limits for HTTP/2's header fields, as nginx applies
    /// `large_client_header_buffers` to them: a field (`name: value`, as an
    /// HTTP/1 line) over `line`, or more than `headers` fields, is 431.
    /// Cookie crumbs (RFC 9113 §8.2.3 lets a client split the cookie into
    /// one field per pair) are not counted.
    pub fn check_fields(&self, fields: &hyper::HeaderMap) -> Option<(u16, &'static str)> {
        let mut count = 0;
        for (name, value) in fields {
            if name.as_str().len() + 2 + value.len() > self.line {
                return Some((431, "header field too long"));
            }
            if name != hyper::header::COOKIE {
                count += 1;
            }
        }
        (count > self.headers).then_some((431, "too many header fields"))
    }

    /// Whether `read`, the first bytes of a connection's head, cut off at
    /// `max_head` without its end, holds a request line already over the
    /// line limit: hyper would answer 431 for the size of the head, nginx
    /// 414 for the line.
    pub fn request_line_overflows(&self, read: &[u8], max_head: usize) -> bool {
        if read.len() < max_head {
            return false;
        }
        let start = read
            .iter()
            .position(|b| *b != b'\r' && *b != b'\n')
            .unwrap_or(read.len());
        let line = read[start..]
            .iter()
            .position(|b| *b == b'\n')
            .unwrap_or(read.len() - start);
        line > self.line
    }

    /// The first limit `head` breaks, if any. Empty lines before the
    /// request line have been skipped; the head ends with its empty line.
    pub(super) fn check(&self, head: &[u8]) -> Option<TooLarge> {
        let mut lines = head
            .split(|b| *b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        if lines.next().is_some_and(|l| l.len() > self.line) {
            return Some(TooLarge {
                status: 414,
                why: "request line too long",
            });
        }
        let mut count = 0;
        for line in lines.take_while(|l| !l.is_empty()) {
            if line.len() > self.line {
                return Some(TooLarge {
                    status: 431,
                    why: "header line too long",
                });
            }
            count += 1;
            if count > self.headers {
                return Some(TooLarge {
                    status: 431,
                    why: "too many header lines",
                });
            }
        }
        None
    }

    /// As [`HeadLimits::check`], for a head httparse parsed whole into
    /// `headers` (it has a line per header, which starts with the header's
    /// name): each line's length is the distance between two line starts,
    /// without a second look at every byte. A head laid out otherwise is
    /// looked at line by line.
    pub(super) fn check_parsed(
        &self,
        head: &[u8],
        headers: &[httparse::Header<'_>],
    ) -> Option<TooLarge> {
        if headers.len() > self.headers {
            return self.check(head);
        }
        let base = head.as_ptr() as usize;
        // Where the empty line that ends the head starts.
        let empty = head.len() - if head.ends_with(b"\r\n") { 2 } else { 1 };
        let starts = headers
            .iter()
            .map(|h| (h.name.as_ptr() as usize).wrapping_sub(base))
            .chain(std::iter::once(empty));
        let mut start = 0;
        for next in starts {
            if next <= start || next > head.len() || head[next - 1] != b'\n' {
                return self.check(head);
            }
            let crlf = next >= start + 2 && head[next - 2] == b'\r';
            let len = next - 1 - usize::from(crlf) - start;
            if len > self.line {
                return Some(if start == 0 {
                    TooLarge {
                        status: 414,
                        why: "request line too long",
                    }
                } else {
                    TooLarge {
                        status: 431,
                        why: "header line too long",
                    }
                });
            }
            start = next;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_cut_inside_its_request_line_is_told_apart() {
        let limits = HeadLimits {
            line: 100,
            headers: 10,
        };
        let long = format!("\r\nGET /{} HTTP/1.1", "a".repeat(200));
        // Cut at max_head (150) inside the request line.
        assert!(limits.request_line_overflows(&long.as_bytes()[..150], 150));
        // Not cut: the scanner judges the whole head.
        assert!(!limits.request_line_overflows(&long.as_bytes()[..120], 150));
        // Cut among the headers, after a short request line.
        let mut headers = b"GET / HTTP/1.1\r\n".to_vec();
        headers.extend(std::iter::repeat_n(b'x', 200));
        assert!(!limits.request_line_overflows(&headers[..150], 150));
    }

    /// Judged from where httparse's headers start or line by line, every
    /// head gets the same verdict: around the line limit, over the count,
    /// with either line end, and with trailing blanks httparse drops from
    /// values but that count in a line.
    #[test]
    fn parsed_heads_get_the_verdicts_of_the_line_by_line_check() {
        let limits = HeadLimits {
            line: 24,
            headers: 3,
        };
        let targets = [
            "/",
            &format!("/{}", "a".repeat(9)),
            &format!("/{}", "a".repeat(10)),
        ];
        let values = [
            "v",
            &"v".repeat(21),
            &"v".repeat(22),
            "v \t",
            &format!("{} ", "v".repeat(21)),
        ];
        let (mut judged, mut refused) = (0, 0);
        for eol in ["\r\n", "\n"] {
            for target in targets {
                for count in 0..=4 {
                    for value in values {
                        for at in 0..count.max(1) {
                            let mut head = format!("GET {target} HTTP/1.1{eol}");
                            for i in 0..count {
                                let v = if i == at { value } else { "v" };
                                head.push_str(&format!("X: {v}{eol}"));
                            }
                            head.push_str(eol);
                            let mut headers = [httparse::EMPTY_HEADER; 8];
                            let mut req = httparse::Request::new(&mut headers);
                            let Ok(httparse::Status::Complete(_)) = req.parse(head.as_bytes())
                            else {
                                panic!("{head:?} does not parse");
                            };
                            let line_by_line = limits.check(head.as_bytes());
                            assert_eq!(
                                limits.check_parsed(head.as_bytes(), req.headers),
                                line_by_line,
                                "{head:?}"
                            );
                            judged += 1;
                            refused += usize::from(line_by_line.is_some());
                        }
                    }
                }
            }
        }
        assert!(judged > 200 && refused > 100 && judged - refused > 50);
    }
}
