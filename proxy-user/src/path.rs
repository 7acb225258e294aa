//! The normalised path: the one spelling of a request's path that routes,
//! limits, escalation and static files all see, computed once per request
//! by `http::dispatch` and sent to the upstream in place of the raw one
//! (with the original query), so the upstream and the route that matched
//! agree on what was asked for.
//!
//! ```text
//! raw path --per byte, per segment-->  canonical segments
//!   %XX of an unreserved char, a sub-delim other than `;`, `:` or `@`  -> the char
//!   %XX of anything else                    -> %XX, hex in upper case
//!   a raw byte that is not a pchar (`"`, `{`, non-ASCII, ...) -> %XX
//!   %2F, %5C, `\`                           -> 400 (an encoded separator)
//!   %00-%1F, %7F                            -> 400 (NUL, control characters)
//!   `%` without two hex digits              -> 400
//! segments --merge `//`, drop `.`, `..` removes the one before (400 above
//!            the root), a trailing `/` kept--> normalised path
//! ```
//!
//! The rule it keeps: one resource has one spelling, so no two spellings of
//! it can match different routes. Decoding more than the unreserved set
//! (RFC 3986 §6.2.2.2) is deliberate: the frameworks behind rampart
//! (Starlette, Django, Rails, Express) decode every escape before routing,
//! so `%40` and `@` are the same resource to them; `;` stays as sent (some
//! servers split path parameters on a raw `;` only). An encoded slash is
//! refused rather than kept: a framework that decodes it would see a
//! different path than the route did. Hand-written rather than the
//! `percent-encoding` crate: that crate decodes everything or nothing, and
//! the rules here are per character and must refuse what it would pass.
//!
//! Paths that do not start with `/` (`OPTIONS *`, authority-form targets)
//! are returned as they are: no prefix route can match them.

use std::borrow::Cow;

use thiserror::Error;

/// Why a path has no normalised form; the request is answered 400.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    #[error("`%` not followed by two hex digits")]
    BadEscape,
    #[error("an encoded slash (%2F) or a backslash")]
    Separator,
    #[error("NUL or a control character")]
    Control,
    #[error("`..` climbs above the root")]
    AboveRoot,
}

/// The normalised form of `path` (the path of a request target, without
/// its query); borrowed when `path` is already normal, which is the common
/// case and costs one scan.
pub fn normalise(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') || is_normal(path) {
        return Ok(Cow::Borrowed(path));
    }
    canonical(path).map(Cow::Owned)
}

/// The normalised form of `path` (which starts with `/`), built segment
/// by segment.
fn canonical(path: &str) -> Result<String, PathError> {
    let mut kept: Vec<String> = Vec::new();
    let mut trailing = false;
    let raw: Vec<&str> = path[1..].split('/').collect();
    for (i, segment) in raw.iter().enumerate() {
        let last = i + 1 == raw.len();
        let mut s = String::with_capacity(segment.len());
        canonical_segment(segment, &mut s)?;
        match s.as_str() {
            "" | "." => trailing = last,
            ".." => {
                kept.pop().ok_or(PathError::AboveRoot)?;
                trailing = last;
            }
            _ => {
                kept.push(s);
                trailing = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &kept {
        out.push('/');
        out.push_str(s);
    }
    if kept.is_empty() || trailing {
        out.push('/');
    }
    Ok(out)
}

/// Already normal: only bytes kept raw and escapes that stay (upper-case
/// hex), no empty segment but a trailing one, no `.` or `..` segment. One
/// look at each byte; `path` starts with `/`.
fn is_normal(path: &str) -> bool {
    let bytes = path.as_bytes();
    // Where the segment being scanned starts (after its `/`).
    let mut segment = 1;
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'/' => {
                if matches!(&bytes[segment..i], b"" | b"." | b"..") {
                    return false;
                }
                segment = i + 1;
                i += 1;
            }
            b'%' => {
                let hex = |j: usize| {
                    bytes
                        .get(j)
                        .filter(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h))
                        .and_then(|h| char::from(*h).to_digit(16))
                };
                let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                    return false;
                };
                let d = (hi * 16 + lo) as u8;
                if check(d).is_err() || decoded(d) {
                    return false;
                }
                i += 3;
            }
            b if raw_ok(b) => i += 1,
            _ => return false,
        }
    }
    // The last segment may be empty (a trailing `/`).
    !matches!(&bytes[segment.min(bytes.len())..], b"." | b"..")
}

/// Writes the canonical spelling of one segment (between slashes) to `out`.
fn canonical_segment(segment: &str, out: &mut String) -> Result<(), PathError> {
    let bytes = segment.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = |j: usize| bytes.get(j).and_then(|h| char::from(*h).to_digit(16));
            let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                return Err(PathError::BadEscape);
            };
            let d = (hi * 16 + lo) as u8;
            check(d)?;
            if decoded(d) {
                out.push(char::from(d));
            } else {
                encode(d, out);
            }
            i += 3;
        } else {
            check(b)?;
            if raw_ok(b) {
                out.push(char::from(b));
            } else {
                encode(b, out);
            }
            i += 1;
        }
    }
    Ok(())
}

/// Refuses separators other than a raw `/` and control characters.
fn check(b: u8) -> Result<(), PathError> {
    match b {
        b'/' | b'\\' => Err(PathError::Separator),
        0..=0x1F | 0x7F => Err(PathError::Control),
        _ => Ok(()),
    }
}

/// Characters an escape is decoded to: unreserved, sub-delims but `;`,
/// `:` and `@` (RFC 3986 pchar, less `;` and the escape itself).
fn decoded(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b'='
                | b':'
                | b'@'
        )
}

/// Bytes kept as they are when sent raw: the decoded set and `;`.
fn raw_ok(b: u8) -> bool {
    decoded(b) || b == b';'
}

fn encode(b: u8, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0xF)]));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<String, PathError> {
        normalise(p).map(Cow::into_owned)
    }

    #[test]
    fn normal_paths_are_borrowed() {
        for p in [
            "/",
            "/api/items",
            "/a/b/",
            "/x;y=1",
            "/u/a@b:c",
            "/.env",
            "/a.b/c..d",
            "/caf%C3%A9%20x",
        ] {
            assert!(matches!(normalise(p), Ok(Cow::Borrowed(_))), "{p}");
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded() {
        assert_eq!(n("/%61dmin").unwrap(), "/admin");
        assert_eq!(n("/%61PI/%69tems").unwrap(), "/aPI/items");
        assert_eq!(n("/%7e%2D%5f%2e%41%7A%30").unwrap(), "/~-_.Az0");
        assert_eq!(n("/u/a%40b%3Ac%2B").unwrap(), "/u/a@b:c+");
    }

    #[test]
    fn other_escapes_stay_encoded_in_upper_case() {
        assert_eq!(n("/a%20b").unwrap(), "/a%20b");
        assert_eq!(n("/a%3fb%23c%25").unwrap(), "/a%3Fb%23c%25");
        assert_eq!(n("/caf%c3%a9").unwrap(), "/caf%C3%A9");
        assert_eq!(n("/café").unwrap(), "/caf%C3%A9", "raw UTF-8 is encoded");
        assert_eq!(n("/a%3Bb;c").unwrap(), "/a%3Bb;c", "`;` is kept as sent");
        assert_eq!(n("/{\"x\"}|").unwrap(), "/%7B%22x%22%7D%7C");
        assert_eq!(n("/%252e%252e/").unwrap(), "/%252e%252e/", "decoded once");
        assert_eq!(n("/%ff%fe").unwrap(), "/%FF%FE", "not UTF-8: kept");
    }

    #[test]
    fn dot_segments_and_slashes() {
        for (raw, want) in [
            ("//admin", "/admin"),
            ("/x/../admin", "/admin"),
            ("/x/%2e%2E/admin", "/admin"),
            ("/x/.%2e/admin", "/admin"),
            ("/./admin/.", "/admin/"),
            ("/a//b///c//", "/a/b/c/"),
            ("/a/b/..", "/a/"),
            ("/a/..", "/"),
            ("/.", "/"),
            ("//", "/"),
            ("/a/%2e", "/a/"),
            ("/...", "/..."),
            ("/.%2e.", "/..."),
        ] {
            assert_eq!(n(raw).unwrap(), want, "{raw}");
        }
    }

    #[test]
    fn refused_spellings() {
        for (raw, why) in [
            ("/..", PathError::AboveRoot),
            ("/%2e%2e/admin", PathError::AboveRoot),
            ("/a/../../b", PathError::AboveRoot),
            ("/a%2Fb", PathError::Separator),
            ("/a%2fb", PathError::Separator),
            ("/a%5Cb", PathError::Separator),
            ("/a\\b", PathError::Separator),
            ("/a%00b", PathError::Control),
            ("/a%0a", PathError::Control),
            ("/a%7F", PathError::Control),
            ("/%zz", PathError::BadEscape),
            ("/%4", PathError::BadEscape),
            ("/%", PathError::BadEscape),
            ("/%+1", PathError::BadEscape),
        ] {
            assert_eq!(n(raw), Err(why), "{raw}");
        }
    }

    #[test]
    fn other_targets_are_left_alone() {
        assert_eq!(n("*").unwrap(), "*");
        assert_eq!(n("").unwrap(), "");
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for p in [
            "/%61/b/../c//d/%2e/",
            "/caf%c3%a9;x=%3b",
            "/a%20b/%7e",
            "/x/.%2e",
            "/{}",
        ] {
            let once = n(p).unwrap();
            assert_eq!(n(&once).unwrap(), once, "{p}");
            assert!(matches!(normalise(&once), Ok(Cow::Borrowed(_))), "{once}");
        }
    }

    /// The one scan that leaves a path as it is agrees with normalising it
    /// in full: it never leaves a path that normalising would change (a
    /// route could be sidestepped), and it leaves every path already
    /// normal (no copy for those).
    #[test]
    fn the_scan_for_normal_paths_agrees_with_normalising() {
        let pieces = [
            "/", ".", "a", "%2e", "%2E", "%41", "%7E", "%7e", "%2F", "%20", ";", "%", "%z", "~",
        ];
        let mut paths = vec![String::from("/")];
        let mut from = 0;
        for _ in 0..4 {
            let to = paths.len();
            for i in from..to {
                for p in pieces {
                    paths.push(format!("{}{p}", paths[i]));
                }
            }
            from = to;
        }
        for p in &paths {
            let full = canonical(p);
            assert_eq!(
                is_normal(p),
                full.as_deref() == Ok(p.as_str()),
                "{p}: normalised {full:?}"
            );
        }
        assert!(paths.len() > 30_000);
    }
}
