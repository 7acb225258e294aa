//! Static files: the route's prefix is stripped (nginx `alias`), the rest of
//! the path is decoded and resolved under the root without escaping it (no
//! `..`, no percent-encoded dots or slashes sneaking one in, no NUL, no
//! symlink out of the root). No dotfile is served: a path with a segment
//! starting with `.` (`.env`, `.git/config`, however it was spelled) is a
//! 404, but `.well-known/` at the top when the route opts in. Conditional GET (ETag, Last-Modified), single
//! byte ranges, HEAD, Expires/Cache-Control from the route, and precompressed
//! `.br`/`.gz` siblings when the client accepts them. A directory without
//! its index file is 403, as nginx's (no listings: `autoindex off`).

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use hyper::{
    Method, StatusCode,
    header::{self, HeaderMap, HeaderValue},
};

mod range;
pub mod try_files;

use range::{RangeSpec, parse_range, read_range};

use super::{Body, ProxyError, full};
use crate::config::{Action, PathMatch, Route};

/// What a static route serves.
pub struct StaticRoute<'a> {
    pub root: &'a Path,
    /// The matched prefix to strip from the path.
    pub prefix: &'a str,
    pub index: &'a str,
    pub expires: Option<Duration>,
    pub cache_control: Option<&'a str>,
    /// Serve `.well-known/` at the top of the directory.
    pub well_known: bool,
    /// Checks and a fallback before serving (see [`try_files`]).
    pub try_files: Option<&'a crate::config::try_files::TryFiles>,
}

impl<'a> StaticRoute<'a> {
    /// What `route` serves, if it is a static route: its root, and the
    /// matched prefix to strip when it is an `alias`.
    pub fn of(route: &'a Route) -> Option<StaticRoute<'a>> {
        let Action::Static {
            root,
            alias,
            index,
            expires,
            cache_control,
            well_known,
            try_files,
        } = &route.action
        else {
            return None;
        };
        let prefix = match &route.matcher.path {
            PathMatch::Prefix(p) if *alias => p.as_str(),
            _ => "",
        };
        Some(StaticRoute {
            root,
            prefix,
            index,
            expires: *expires,
            cache_control: cache_control.as_deref(),
            well_known: *well_known,
            try_files: try_files.as_ref(),
        })
    }
}

pub async fn serve(
    route: &StaticRoute<'_>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<hyper::Response<Body>, ProxyError> {
    if method != Method::GET && method != Method::HEAD {
        let mut resp = status_response(StatusCode::METHOD_NOT_ALLOWED);
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(resp);
    }
    let rest = path.strip_prefix(route.prefix).unwrap_or(path);
    let relative = safe_relative(rest, route.well_known)?;
    let mut file = route.root.join(&relative);
    let root = tokio::fs::canonicalize(route.root)
        .await
        .map_err(|e| ProxyError::Internal(format!("static root: {e}")))?;
    let mut meta = tokio::fs::metadata(&file).await.map_err(|_| not_found())?;
    if meta.is_dir() {
        if !path.ends_with('/') {
            // As nginx: a directory is addressed with a trailing slash.
            let mut resp = status_response(StatusCode::MOVED_PERMANENTLY);
            let location = HeaderValue::from_str(&format!("{path}/")).map_err(|_| not_found())?;
            resp.headers_mut().insert(header::LOCATION, location);
            return Ok(resp);
        }
        let dir = file.clone();
        file = file.join(route.index);
        meta = match tokio::fs::metadata(&file).await {
            Ok(meta) => meta,
            // As nginx (`index` + `autoindex off`): a directory inside the
            // root without its index file is 403, not 404. Only then is the
            // directory itself resolved (the index, when there is one, is
            // checked against the root below), so `/` costs no extra walk.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return match tokio::fs::canonicalize(&dir).await {
                    Ok(dir) if dir.starts_with(&root) => Err(no_index()),
                    _ => Err(not_found()),
                };
            }
            Err(_) => return Err(not_found()),
        };
    }
    let canonical = tokio::fs::canonicalize(&file)
        .await
        .map_err(|_| not_found())?;
    if !canonical.starts_with(&root) || !meta.is_file() {
        return Err(not_found());
    }
    let (served, encoding) = precompressed(&canonical, &root, headers).await;
    let served_meta = if encoding.is_some() {
        tokio::fs::metadata(&served)
            .await
            .map_err(|_| not_found())?
    } else {
        meta
    };
    let len = served_meta.len();
    let mtime = served_meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let etag = etag(mtime, len, encoding);

    let mut resp_headers = HeaderMap::new();
    let mime = mime_guess::from_path(&canonical).first_or_octet_stream();
    let content_type = if mime.type_() == mime_guess::mime::TEXT {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    resp_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type).expect("a MIME type is a header value"),
    );
    resp_headers.insert(header::ETAG, etag.clone());
    resp_headers.insert(header::LAST_MODIFIED, http_date(mtime));
    resp_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    resp_headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Some(enc) = encoding {
        resp_headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    if let Some(exp) = route.expires {
        resp_headers.insert(
            header::EXPIRES,
            http_date(crate::later::Later::later(SystemTime::now(), exp)),
        );
    }
    // As nginx's `expires 30d; add_header Cache-Control "public, immutable"`:
    // `expires` gives `max-age`, and `cache_control` is a second
    // Cache-Control line beside it, not a replacement.
    if let Some(exp) = route.expires {
        resp_headers.append(header::CACHE_CONTROL, max_age(exp));
    }
    if let Some(v) = route
        .cache_control
        .and_then(|cc| HeaderValue::from_str(cc).ok())
    {
        resp_headers.append(header::CACHE_CONTROL, v);
    }

    if not_modified(headers, &etag, mtime) {
        let mut resp = status_response(StatusCode::NOT_MODIFIED);
        resp.headers_mut().extend(resp_headers);
        resp.headers_mut().remove(header::CONTENT_TYPE);
        return Ok(resp);
    }
    let (status, range) = match headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|r| parse_range(r, len))
    {
        None | Some(RangeSpec::Ignore) => (StatusCode::OK, 0..len),
        Some(RangeSpec::Satisfiable(r)) => {
            let value = format!("bytes {}-{}/{len}", r.start, r.end - 1);
            resp_headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&value).unwrap(),
            );
            (StatusCode::PARTIAL_CONTENT, r)
        }
        Some(RangeSpec::Unsatisfiable) => {
            let mut resp = status_response(StatusCode::RANGE_NOT_SATISFIABLE);
            resp.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{len}")).unwrap(),
            );
            return Ok(resp);
        }
    };
    resp_headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(range.end - range.start),
    );
    let body = if method == Method::HEAD {
        full(Bytes::new())
    } else {
        read_range(&served, range).await?
    };
    let mut resp = hyper::Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = resp_headers;
    Ok(resp)
}

/// nginx's answer for a directory without its index file and no
/// listing (`autoindex off`, its default).
fn no_index() -> ProxyError {
    ProxyError::downstream(StatusCode::FORBIDDEN, "directory without an index file")
}

fn not_found() -> ProxyError {
    ProxyError::downstream(StatusCode::NOT_FOUND, "no such file")
}

fn status_response(status: StatusCode) -> hyper::Response<Body> {
    let mut r = hyper::Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// Decodes the request path and turns it into a relative path that cannot
/// leave the root nor name a dotfile (but `.well-known` first, when
/// `well_known`): 400 for what cannot be decoded or climbs, 404 for a
/// dotfile, as for a file that is not there.
fn safe_relative(rest: &str, well_known: bool) -> Result<PathBuf, ProxyError> {
    let bad =
        |why: &str| ProxyError::downstream(StatusCode::BAD_REQUEST, format!("static path: {why}"));
    let decoded = percent_decode(rest).ok_or_else(|| bad("invalid percent-encoding or UTF-8"))?;
    if decoded.contains('\0') || decoded.contains('\\') {
        return Err(bad("NUL or backslash"));
    }
    let mut out = PathBuf::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(bad("`..` is not allowed")),
            ".well-known" if well_known && out.as_os_str().is_empty() => out.push(".well-known"),
            s if s.starts_with('.') => return Err(not_found()),
            s => out.push(s),
        }
    }
    Ok(out)
}

/// Percent-decoding that refuses invalid escapes and invalid UTF-8 (which
/// also refuses overlong encodings).
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Two hex digits exactly: `from_str_radix` alone also takes "+f"
            // (the `route_path` fuzz target's oracle caught it).
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A `.br` or `.gz` sibling inside the root, if the client accepts it.
async fn precompressed(
    file: &Path,
    root: &Path,
    headers: &HeaderMap,
) -> (PathBuf, Option<&'static str>) {
    let accepts = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let accepted = |token: &str| {
        accepts
            .split(',')
            .any(|t| t.split(';').next().unwrap_or("").trim() == token)
    };
    for (token, ext) in [("br", "br"), ("gzip", "gz")] {
        if accepted(token) {
            let mut name = file.as_os_str().to_os_string();
            name.push(format!(".{ext}"));
            let candidate = PathBuf::from(name);
            if let Ok(c) = tokio::fs::canonicalize(&candidate).await
                && c.starts_with(root)
                && tokio::fs::metadata(&c).await.is_ok_and(|m| m.is_file())
            {
                return (c, Some(token));
            }
        }
    }
    (file.to_path_buf(), None)
}

fn etag(mtime: SystemTime, len: u64, encoding: Option<&str>) -> HeaderValue {
    let secs = mtime
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let suffix = encoding.map(|e| format!("-{e}")).unwrap_or_default();
    HeaderValue::from_str(&format!("\"{secs:x}-{len:x}{suffix}\"")).expect("hex is a header value")
}

/// `max-age=N` for an `expires` duration.
fn max_age(exp: Duration) -> HeaderValue {
    HeaderValue::from_str(&format!("max-age={}", exp.as_secs())).expect("digits are a header value")
}

fn http_date(t: SystemTime) -> HeaderValue {
    HeaderValue::from_str(&httpdate::fmt_http_date(t)).expect("an HTTP date is a header value")
}

fn not_modified(headers: &HeaderMap, etag: &HeaderValue, mtime: SystemTime) -> bool {
    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        let tag = etag.to_str().unwrap_or("");
        return inm.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == tag
        });
    }
    if let Some(ims) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        && let Ok(since) = httpdate::parse_http_date(ims)
    {
        let secs = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        };
        return secs(mtime) <= secs(since);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_climb_out() {
        assert_eq!(
            safe_relative("css/app.css", false).unwrap(),
            PathBuf::from("css/app.css")
        );
        assert_eq!(
            safe_relative("./a//b", false).unwrap(),
            PathBuf::from("a/b")
        );
        for evil in [
            "../etc/passwd",
            "a/../../b",
            "%2e%2e/x",
            "%2E%2E%2Fetc",
            "a%00b",
            "%c0%ae%c0%ae/x",
            "..\\x",
            "%zz",
            "%+1",
        ] {
            assert!(
                safe_relative(evil, false).is_err(),
                "{evil} must be refused"
            );
        }
    }

    #[test]
    fn dotfiles_are_not_found() {
        for (rest, well_known) in [
            (".env", false),
            ("/.env", true),
            ("a/.git/config", false),
            (".%65nv", false),
            ("%2eenv/", false),
            (".well-known/x", false),
            ("a/.well-known/x", true),
            (".well-known/.secret", true),
            (".well-knownx/y", true),
        ] {
            let e = safe_relative(rest, well_known).expect_err(rest);
            assert_eq!(e.status(), StatusCode::NOT_FOUND, "{rest}");
        }
        assert_eq!(
            safe_relative("/.well-known/acme-challenge/x", true).unwrap(),
            PathBuf::from(".well-known/acme-challenge/x")
        );
        assert_eq!(
            safe_relative("a.b/c..d", false).unwrap(),
            PathBuf::from("a.b/c..d")
        );
    }
}
