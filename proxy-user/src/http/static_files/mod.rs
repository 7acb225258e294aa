//! Static files: the route's prefix is stripped (nginx `alias`), the rest of
//! the path is decoded and resolved under the root without escaping it (no
//! `..`, no percent-encoded dots or slashes sneaking one in, no NUL, no
//! symlink out of the root). No dotfile is served: a path with a segment
//! starting with `.` (`.env`, `.git/config`, however it was spelled) is a
//! 404, but `.well-known/` at the top when the route opts in. Conditional GET (ETag, Last-Modified), single
//! byte ranges, HEAD, Expires/Cache-Control from the route, and precompressed
//! `.br`/`.gz` siblings when the client accepts them.

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use hyper::{
    Method, StatusCode,
    header::{self, HeaderMap, HeaderValue},
};

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
        file = file.join(route.index);
        meta = tokio::fs::metadata(&file).await.map_err(|_| not_found())?;
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

#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    /// No usable single range: serve the whole file.
    Ignore,
    Satisfiable(std::ops::Range<u64>),
    Unsatisfiable,
}

/// A single `bytes=` range; several ranges are answered with the whole file.
fn parse_range(value: &str, len: u64) -> RangeSpec {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignore;
    };
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeSpec::Ignore;
    };
    let (a, b) = (a.trim(), b.trim());
    // Digits only (`u64::from_str` takes a `+`); past u64 the range is
    // ignored. The last byte may be u64::MAX: `end + 1` saturates.
    let number = |s: &str| {
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let range = match (number(a), number(b)) {
        (Some(start), Some(end)) if start <= end => start..end.saturating_add(1).min(len),
        (Some(_), Some(_)) => return RangeSpec::Ignore,
        (Some(start), None) if b.is_empty() => start..len,
        (None, Some(suffix)) if a.is_empty() => len.saturating_sub(suffix)..len,
        _ => return RangeSpec::Ignore,
    };
    if range.start >= len || range.is_empty() {
        RangeSpec::Unsatisfiable
    } else {
        RangeSpec::Satisfiable(range)
    }
}

/// Files up to this size are read into memory at once; larger ones stream.
const READ_WHOLE: u64 = 256 << 10;
/// Chunk size when streaming a file.
const CHUNK: usize = 64 << 10;

/// The bytes of `range` of the file, read at once when small, else streamed.
async fn read_range(path: &Path, range: std::ops::Range<u64>) -> Result<Body, ProxyError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let io = |e: std::io::Error| ProxyError::Internal(format!("{}: {e}", path.display()));
    let mut f = tokio::fs::File::open(path).await.map_err(io)?;
    f.seek(std::io::SeekFrom::Start(range.start))
        .await
        .map_err(io)?;
    let len = range.end - range.start;
    if len <= READ_WHOLE {
        let mut buf = vec![0u8; len as usize];
        f.read_exact(&mut buf).await.map_err(io)?;
        return Ok(full(buf));
    }
    Ok(http_body_util::BodyExt::boxed(FileBody {
        file: f,
        remaining: len,
    }))
}

/// A file streamed in chunks, never more than one chunk in memory.
struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = super::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = (self.remaining as usize).min(CHUNK);
        let mut buf = vec![0u8; want];
        let mut read_buf = tokio::io::ReadBuf::new(&mut buf);
        match tokio::io::AsyncRead::poll_read(std::pin::Pin::new(&mut self.file), cx, &mut read_buf)
        {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(Ok(())) => {
                let n = read_buf.filled().len();
                if n == 0 {
                    let e = std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "file shrank while being sent",
                    );
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
                self.remaining -= n as u64;
                buf.truncate(n);
                Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from(buf)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining)
    }
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

    #[test]
    fn single_ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeSpec::Satisfiable(0..10));
        assert_eq!(
            parse_range("bytes=90-", 100),
            RangeSpec::Satisfiable(90..100)
        );
        assert_eq!(
            parse_range("bytes=-10", 100),
            RangeSpec::Satisfiable(90..100)
        );
        assert_eq!(
            parse_range("bytes=95-200", 100),
            RangeSpec::Satisfiable(95..100)
        );
        assert_eq!(parse_range("bytes=100-", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("items=0-1", 100), RangeSpec::Ignore);
    }

    /// Extreme values neither overflow (a panic in debug builds) nor
    /// serve what was not asked for (issue 13).
    #[test]
    fn extreme_ranges_neither_overflow_nor_misread() {
        let max = u64::MAX;
        for (range, want) in [
            (format!("bytes=0-{max}"), RangeSpec::Satisfiable(0..100)),
            (format!("bytes=99-{max}"), RangeSpec::Satisfiable(99..100)),
            (format!("bytes={max}-{max}"), RangeSpec::Unsatisfiable),
            (format!("bytes={max}-"), RangeSpec::Unsatisfiable),
            (format!("bytes=-{max}"), RangeSpec::Satisfiable(0..100)),
            ("bytes=-0".into(), RangeSpec::Unsatisfiable),
            // Past u64, signs, and several ranges: the whole file.
            ("bytes=0-18446744073709551616".into(), RangeSpec::Ignore),
            ("bytes=-99999999999999999999999".into(), RangeSpec::Ignore),
            ("bytes=+1-2".into(), RangeSpec::Ignore),
            ("bytes=1-+2".into(), RangeSpec::Ignore),
            (format!("bytes=0-{max},-{max}"), RangeSpec::Ignore),
            (format!("bytes={max}-0"), RangeSpec::Ignore),
        ] {
            assert_eq!(parse_range(&range, 100), want, "{range}");
        }
        // An empty file: nothing is satisfiable.
        assert_eq!(
            parse_range(&format!("bytes=0-{max}"), 0),
            RangeSpec::Unsatisfiable
        );
        assert_eq!(
            parse_range(&format!("bytes=-{max}"), 0),
            RangeSpec::Unsatisfiable
        );
    }
}
