//! The request target (RFC 9112 §3.2): which of the four forms it takes,
//! and, for the origin form, the bytes hyper's `Uri` accepts (so that a
//! target refused today is refused here).

/// A request target, borrowed from the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'b> {
    /// `/path?query`: what a client sends to a server.
    Origin(&'b str),
    /// `http://authority/path?query`: what a client sends to a proxy.
    Absolute {
        authority: &'b str,
        /// `/` when the target has none.
        path_and_query: &'b str,
    },
    /// `host:port`, with `CONNECT` only.
    Authority(&'b str),
    /// `*`, with `OPTIONS` only.
    Asterisk,
}

impl<'b> Target<'b> {
    /// Reads `target` (as httparse delimited it) for `method`; `None` when
    /// it takes no form that method allows.
    pub fn parse(method: &str, target: &'b str) -> Option<Target<'b>> {
        if method == "CONNECT" {
            return authority(target).then_some(Target::Authority(target));
        }
        if target.starts_with('/') {
            return origin(target).then_some(Target::Origin(target));
        }
        if target == "*" {
            return (method == "OPTIONS").then_some(Target::Asterisk);
        }
        let rest = strip_scheme(target)?;
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority_part, path) = rest.split_at(end);
        if !authority(authority_part) {
            return None;
        }
        let path_and_query = match path.as_bytes().first() {
            None => "/",
            Some(b'/') if origin(path) => path,
            _ => return None,
        };
        Some(Target::Absolute {
            authority: authority_part,
            path_and_query,
        })
    }

    /// The path and query to forward (origin form).
    pub fn path_and_query(&self) -> &'b str {
        match *self {
            Target::Origin(p) => p,
            Target::Absolute { path_and_query, .. } => path_and_query,
            Target::Authority(_) | Target::Asterisk => "/",
        }
    }

    /// The authority the target names, if it names one.
    pub fn authority(&self) -> Option<&'b str> {
        match *self {
            Target::Absolute { authority, .. } | Target::Authority(authority) => Some(authority),
            Target::Origin(_) | Target::Asterisk => None,
        }
    }
}

fn strip_scheme(t: &str) -> Option<&str> {
    let b = t.as_bytes();
    let n = if b.len() > 7 && b[..7].eq_ignore_ascii_case(b"http://") {
        7
    } else if b.len() > 8 && b[..8].eq_ignore_ascii_case(b"https://") {
        8
    } else {
        return None;
    };
    t.get(n..)
}

/// `host[:port]`: registered-name characters or a bracketed IPv6 literal.
fn authority(a: &str) -> bool {
    !a.is_empty()
        && a.len() <= 255
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(&b))
}

/// hyper's longest target (`MAX_URI_LEN`).
pub const MAX_TARGET: usize = u16::MAX as usize - 1;

/// Byte classes of the origin form, as the `http` crate's URI scanner has
/// them (after the WHATWG URL path and query states).
const PATH: u8 = 1;
const QUERY: u8 = 2;

const fn classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let path = matches!(b, 0x21 | 0x24..=0x3B | 0x3D | 0x40..=0x5F | 0x61..=0x7A | 0x7C | 0x7E)
            || matches!(b, b'"' | b'{' | b'}')
            || b >= 0x80;
        let query = matches!(b, 0x21 | 0x24..=0x3B | 0x3D | 0x3F..=0x7E) || b >= 0x80;
        t[i] = (if path { PATH } else { 0 }) | (if query { QUERY } else { 0 });
        i += 1;
    }
    t
}

static CLASSES: [u8; 256] = classes();

/// An origin-form target hyper's `Uri` accepts: path bytes up to `?`, query
/// bytes up to `#` (a fragment is not checked), at most [`MAX_TARGET`].
/// The text is UTF-8 already (httparse checks it).
fn origin(t: &str) -> bool {
    if t.len() > MAX_TARGET {
        return false;
    }
    let mut in_query = false;
    for b in t.bytes() {
        match b {
            b'#' => return true,
            b'?' if !in_query => in_query = true,
            _ => {
                let need = if in_query { QUERY } else { PATH };
                if CLASSES[b as usize] & need == 0 {
                    return false;
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_forms() {
        assert_eq!(Target::parse("GET", "/a?b"), Some(Target::Origin("/a?b")));
        assert_eq!(
            Target::parse("GET", "http://example.com:8080/x?y"),
            Some(Target::Absolute {
                authority: "example.com:8080",
                path_and_query: "/x?y"
            })
        );
        let bare = Target::parse("GET", "HTTPS://example.com").unwrap();
        assert_eq!(bare.path_and_query(), "/");
        assert_eq!(bare.authority(), Some("example.com"));
        assert_eq!(
            Target::parse("CONNECT", "a.example:443"),
            Some(Target::Authority("a.example:443"))
        );
        assert_eq!(Target::parse("OPTIONS", "*"), Some(Target::Asterisk));
    }

    #[test]
    fn targets_hyper_refuses_are_refused() {
        for t in [
            "/a<b",
            "/a>b",
            "/a`b",
            "/a?b<",
            "*",
            "a/b",
            "ftp://x/",
            "http:///x",
            "http://x?",
        ] {
            assert_eq!(Target::parse("GET", t), None, "{t}");
        }
        // Accepted by hyper: JSON in a path, a fragment, `?` within a query.
        for t in ["/{\"a\":1}", "/a#<frag>", "/a?b?c", "/é"] {
            assert!(Target::parse("GET", t).is_some(), "{t}");
        }
        // A scheme's length that ends inside a character: no panic.
        for t in ["abcdefé/", "abcdefgé/"] {
            assert_eq!(Target::parse("GET", t), None, "{t}");
        }
        assert!(Target::parse("GET", &format!("/{}", "a".repeat(MAX_TARGET))).is_none());
    }
}
