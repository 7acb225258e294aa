//! On-the-fly response compression (`[compress]`): gzip, brotli or zstd,
//! chosen from the request's `Accept-Encoding` and its q-values, for
//! proxied and static responses alike.
//!
//! A response is compressed when its type is listed, it has no
//! `Content-Encoding` and no `Cache-Control: no-transform`, its length is
//! unknown or at least `min_length`, and it is not an answer to HEAD, a
//! 1xx/204/304, or a range (206, `Content-Range`). A compressible response
//! gets `Vary: Accept-Encoding` whether or not this client gets it
//! compressed (nginx `gzip_vary on`), so caches keep both forms apart. A
//! compressed one loses `Content-Length` and `Accept-Ranges` and has its
//! strong `ETag` weakened (`W/"..."`), as nginx's gzip filter does.
//!
//! The body is streamed through async-compression's tokio encoders: a
//! large or slow response is never held whole.

use std::io;

use async_compression::{
    Level,
    tokio::bufread::{BrotliEncoder, GzipEncoder, ZstdEncoder},
};
use futures_util::TryStreamExt;
use http_body_util::{BodyDataStream, BodyExt, StreamBody};
use hyper::{
    Method, Response, StatusCode,
    body::Frame,
    header::{self, HeaderMap, HeaderValue},
};
use tokio_util::io::{ReaderStream, StreamReader};

use super::{Body, BoxError};
use crate::config::compress::{Coding, CompressSettings, already_compressed};

/// Size of each compressed chunk read from an encoder.
const CHUNK: usize = 16 << 10;

/// The coding `accept` (an `Accept-Encoding` value) weighs highest among
/// `offered`; equal weights go to the earlier in `offered`. `None`: the
/// client takes none of them (or sent no header: identity).
pub fn choose(accept: &HeaderValue, offered: &[Coding]) -> Option<Coding> {
    let accept = accept.to_str().ok()?;
    let mut wildcard = None;
    let mut weights: [Option<u16>; 3] = [None; 3];
    let slot = |c: Coding| match c {
        Coding::Zstd => 0,
        Coding::Brotli => 1,
        Coding::Gzip => 2,
    };
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let mut q = 1000;
        for p in parts {
            if let Some((k, v)) = p.split_once('=')
                && k.trim().eq_ignore_ascii_case("q")
            {
                q = qvalue(v.trim()).unwrap_or(0);
            }
        }
        let coding = match name.to_ascii_lowercase().as_str() {
            "zstd" => Coding::Zstd,
            "br" => Coding::Brotli,
            "gzip" | "x-gzip" => Coding::Gzip,
            "*" => {
                wildcard = Some(q);
                continue;
            }
            _ => continue,
        };
        weights[slot(coding)] = Some(q);
    }
    let mut best: Option<(Coding, u16)> = None;
    for &c in offered {
        let q = weights[slot(c)].or(wildcard).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((c, q));
        }
    }
    best.map(|(c, _)| c)
}

/// An RFC 9110 qvalue in thousandths (`1`, `0.5`, `0.125`); `None` if malformed.
fn qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

/// The request's side of the decision, made before the request is
/// consumed (two bytes kept across the request, not its header).
#[derive(Clone, Copy, Debug)]
pub struct Asked {
    /// The coding to use, if the response turns out compressible: `None`
    /// for HEAD or when the client takes none of ours.
    coding: Option<Coding>,
}

impl Asked {
    /// What a request with this method and `Accept-Encoding` takes.
    pub fn of_accept(c: &CompressSettings, method: &Method, accept: Option<&HeaderValue>) -> Asked {
        let coding = match accept {
            Some(a) if method != Method::HEAD => choose(a, &c.encodings),
            _ => None,
        };
        Asked { coding }
    }
}

/// Whether `headers` (with `status`) describe a response worth compressing.
fn compressible(c: &CompressSettings, status: StatusCode, headers: &HeaderMap) -> bool {
    if status.is_informational()
        || matches!(
            status,
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED | StatusCode::PARTIAL_CONTENT
        )
        || headers.contains_key(header::CONTENT_ENCODING)
        || headers.contains_key(header::CONTENT_RANGE)
    {
        return false;
    }
    let no_transform = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("no-transform"));
    if no_transform {
        return false;
    }
    let Some(mime) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    else {
        return false;
    };
    // Server-sent events must reach the client event by event.
    if mime == "text/event-stream" || already_compressed(&mime) {
        return false;
    }
    let listed = c.types.iter().any(|t| match t.strip_suffix("/*") {
        Some(major) => mime.split('/').next() == Some(major),
        None => *t == mime,
    });
    if !listed {
        return false;
    }
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    length.is_none_or(|n| n >= c.min_length)
}

/// Compresses `resp` for the client that `asked`, when `c` allows it.
pub fn response(c: &CompressSettings, asked: Asked, resp: Response<Body>) -> Response<Body> {
    if !compressible(c, resp.status(), resp.headers()) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    add_vary(&mut parts.headers);
    let Some(coding) = asked.coding else {
        return Response::from_parts(parts, body);
    };
    let h = &mut parts.headers;
    h.remove(header::CONTENT_LENGTH);
    h.remove(header::ACCEPT_RANGES);
    h.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(coding.token()),
    );
    if let Some(weak) = h.get(header::ETAG).and_then(weaken) {
        h.insert(header::ETAG, weak);
    }
    Response::from_parts(parts, encode(c, coding, body))
}

/// `Vary: Accept-Encoding`, added to any `Vary` already there.
fn add_vary(h: &mut HeaderMap) {
    let has = h
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim() == "*" || v.trim().eq_ignore_ascii_case("accept-encoding"));
    if !has {
        h.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// `"x"` becomes `W/"x"`; a weak tag stays as it is (`None`).
fn weaken(etag: &HeaderValue) -> Option<HeaderValue> {
    let b = etag.as_bytes();
    if b.starts_with(b"W/") {
        return None;
    }
    let mut weak = Vec::with_capacity(b.len() + 2);
    weak.extend_from_slice(b"W/");
    weak.extend_from_slice(b);
    HeaderValue::from_bytes(&weak).ok()
}

fn encode(c: &CompressSettings, coding: Coding, body: Body) -> Body {
    let input = StreamReader::new(BodyDataStream::new(body).map_err(io::Error::other));
    match coding {
        Coding::Gzip => frames(GzipEncoder::with_quality(
            input,
            Level::Precise(c.gzip_level),
        )),
        Coding::Brotli => frames(BrotliEncoder::with_quality(
            input,
            Level::Precise(c.brotli_level),
        )),
        Coding::Zstd => frames(ZstdEncoder::with_quality(
            input,
            Level::Precise(c.zstd_level),
        )),
    }
}

fn frames(encoder: impl tokio::io::AsyncRead + Send + Sync + 'static) -> Body {
    let chunks = ReaderStream::with_capacity(encoder, CHUNK)
        .map_ok(Frame::data)
        .map_err(|e| -> BoxError { Box::new(e) });
    BodyExt::boxed(StreamBody::new(chunks))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[Coding] = &[Coding::Zstd, Coding::Brotli, Coding::Gzip];

    fn pick(accept: &str) -> Option<Coding> {
        choose(&HeaderValue::from_str(accept).unwrap(), ALL)
    }

    #[test]
    fn accept_encoding_q_values_decide() {
        assert_eq!(pick("gzip"), Some(Coding::Gzip));
        assert_eq!(pick("gzip, deflate, br, zstd"), Some(Coding::Zstd));
        assert_eq!(pick("gzip, br;q=0.9"), Some(Coding::Gzip));
        assert_eq!(pick("gzip;q=0.5, br;q=0.8"), Some(Coding::Brotli));
        assert_eq!(pick("zstd;q=0, gzip;q=0.001"), Some(Coding::Gzip));
        assert_eq!(pick("*"), Some(Coding::Zstd));
        assert_eq!(pick("*;q=0.5, zstd;q=0, br;q=0.4"), Some(Coding::Gzip));
        assert_eq!(pick("identity"), None);
        assert_eq!(pick("gzip;q=0"), None);
        assert_eq!(pick("GZIP;Q=1.000"), Some(Coding::Gzip));
        assert_eq!(pick("x-gzip"), Some(Coding::Gzip));
        assert_eq!(pick("gzip;q=2"), None, "malformed q counts as 0");
        assert_eq!(
            choose(&HeaderValue::from_static("br, gzip"), &[Coding::Gzip]),
            Some(Coding::Gzip)
        );
    }

    #[test]
    fn etags_weaken_once() {
        let w = weaken(&HeaderValue::from_static("\"abc\"")).unwrap();
        assert_eq!(w, "W/\"abc\"");
        assert!(weaken(&w).is_none());
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_listed_uncompressed_full_responses_qualify() {
        let c = CompressSettings::default();
        let ok = |s: u16, h: &[(&'static str, &'static str)]| {
            compressible(&c, StatusCode::from_u16(s).unwrap(), &headers(h))
        };
        let json = ("content-type", "application/json; charset=utf-8");
        assert!(ok(200, &[json]));
        assert!(ok(
            404,
            &[("content-type", "text/html"), ("content-length", "256")]
        ));
        assert!(ok(200, &[("content-type", "image/svg+xml")]));
        assert!(
            !ok(200, &[json, ("content-length", "255")]),
            "under min_length"
        );
        assert!(!ok(200, &[("content-type", "image/png")]));
        assert!(!ok(200, &[("content-type", "application/octet-stream")]));
        assert!(!ok(200, &[("content-type", "text/event-stream")]));
        assert!(!ok(200, &[]), "no type");
        assert!(!ok(200, &[json, ("content-encoding", "gzip")]));
        assert!(!ok(200, &[json, ("cache-control", "public, no-transform")]));
        assert!(!ok(206, &[json]));
        assert!(!ok(200, &[json, ("content-range", "bytes 0-1/2")]));
        assert!(!ok(204, &[json]));
        assert!(!ok(304, &[json]));
    }

    #[test]
    fn vary_is_merged() {
        let mut h = headers(&[("vary", "Origin")]);
        add_vary(&mut h);
        assert_eq!(h.get_all(header::VARY).iter().count(), 2);
        add_vary(&mut h);
        assert_eq!(h.get_all(header::VARY).iter().count(), 2);
    }
}
