//! Static file resolution, for the `route_path` target: what a static route
//! must answer for a request path (docs/configuration.md, `static`/`root`).
//!
//! ```text
//! path --strip the route prefix (alias)--> rest
//!      --percent-decode: `%` + two hex digits, else 400; the bytes must be
//!        UTF-8, else 400--> decoded
//!      --a NUL or a backslash: 400; a `..` segment: 400--> segments
//!      --drop empty and `.` segments, join under the root--> file
//! a segment starting with `.` (a dotfile) -> 404
//! file missing                         -> 404
//! file is a directory, no trailing /   -> 301 to path + "/"
//! file is a directory                  -> its index file; 403 when it has
//!                                         none (nginx, `autoindex off`); 404
//!                                         when it resolves outside the root
//! file (symlinks followed) outside the root, or not a regular file -> 404
//! otherwise                            -> 200 with the file's bytes, or a
//!                                         `.gz`/`.br` sibling's (inside the
//!                                         root) when the client accepts it
//! ```
//!
//! The decoder and the resolution here use only std, not rampart's helpers.

use std::path::{Path, PathBuf};

/// What a static route must do with a request path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// 400: the path cannot be decoded or tries to climb out.
    BadRequest,
    /// 404.
    NotFound,
    /// 403: a directory inside the root without its index file (nginx's
    /// `index` with `autoindex off`).
    Forbidden,
    /// 301 to the path with a trailing slash.
    Redirect,
    /// 200 with the bytes of this file (canonical, inside the root).
    File(PathBuf),
}

/// The relative path a decoded request path names, or `None` for a 400.
pub fn relative(rest: &str) -> Option<PathBuf> {
    let decoded = decode(rest)?;
    if decoded.contains(['\0', '\\']) {
        return None;
    }
    let mut out = PathBuf::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return None,
            s => out.push(s),
        }
    }
    Some(out)
}

/// Strict percent-decoding (RFC 3986: `%` HEXDIG HEXDIG), then UTF-8.
pub fn decode(s: &str) -> Option<String> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = hex(bytes.next()?)?;
            let lo = hex(bytes.next()?)?;
            out.push((hi * 16 + lo) as u8);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// Whether the decoded path has a `..` segment (the escape every static
/// route must refuse, however it is encoded).
pub fn climbs(rest: &str) -> bool {
    decode(rest).is_some_and(|d| d.split('/').any(|s| s == ".."))
}

/// The expected answer for `path` on a static route at `root` (canonical)
/// stripping `prefix`, with `index` as the directory index file.
pub fn expect(root: &Path, prefix: &str, index: &str, path: &str) -> Expect {
    let rest = path.strip_prefix(prefix).unwrap_or(path);
    let Some(rel) = relative(rest) else {
        return Expect::BadRequest;
    };
    if rel
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
    {
        return Expect::NotFound;
    }
    let mut file = root.join(rel);
    let Ok(mut meta) = std::fs::metadata(&file) else {
        return Expect::NotFound;
    };
    if meta.is_dir() {
        if !path.ends_with('/') {
            return Expect::Redirect;
        }
        match std::fs::canonicalize(&file) {
            Ok(dir) if dir.starts_with(root) => {}
            _ => return Expect::NotFound,
        }
        file = file.join(index);
        match std::fs::metadata(&file) {
            Ok(m) => meta = m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Expect::Forbidden,
            Err(_) => return Expect::NotFound,
        }
    }
    match std::fs::canonicalize(&file) {
        Ok(c) if c.starts_with(root) && meta.is_file() => Expect::File(c),
        _ => Expect::NotFound,
    }
}

/// The precompressed sibling (`FILE.br`, then `FILE.gz`) served instead of
/// `file` for this `Accept-Encoding`, if it exists as a regular file inside
/// the root (symlinks followed).
pub fn sibling(root: &Path, file: &Path, accept_encoding: &str) -> Option<PathBuf> {
    let accepted = |token: &str| {
        accept_encoding
            .split(',')
            .any(|t| t.split(';').next().unwrap_or("").trim() == token)
    };
    [("br", "br"), ("gzip", "gz")]
        .into_iter()
        .filter(|(token, _)| accepted(token))
        .find_map(|(_, ext)| {
            let mut name = file.as_os_str().to_os_string();
            name.push(format!(".{ext}"));
            let c = std::fs::canonicalize(PathBuf::from(name)).ok()?;
            (c.starts_with(root) && std::fs::metadata(&c).is_ok_and(|m| m.is_file())).then_some(c)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_decoding() {
        assert_eq!(decode("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(decode("%+f"), None);
        assert_eq!(decode("%f"), None);
        assert_eq!(decode("%c0%ae"), None, "overlong UTF-8");
        assert!(climbs("x/%2e%2E/y"));
        assert!(!climbs("x/...y"));
        assert_eq!(relative("./a//b/"), Some(PathBuf::from("a/b")));
        assert_eq!(relative("a\\b"), None);
    }
}
