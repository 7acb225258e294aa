//! `[http]`: protections and timeouts for every listener, with defaults an
//! nginx operator would recognise.

use std::{path::PathBuf, sync::Arc, time::Duration};

use super::log_format::{LineFormat, LogFormat};
use super::{ConfigError, error::Locator, file::FileHttp, units};

/// Largest `body_timeout` accepted (a day).
pub const MAX_BODY_TIMEOUT: Duration = Duration::from_secs(86_400);
/// Largest `body_memory` and `body_memory_per_connection` accepted.
pub const MAX_BODY_MEMORY: u64 = 64 << 30;

#[derive(Clone, Debug, PartialEq)]
pub struct HttpSettings {
    /// Time to receive a request's head, counted from its first byte, and
    /// for a new connection from the accept (slowloris protection; nginx
    /// `client_header_timeout`).
    pub header_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request
    /// (nginx `keepalive_timeout`).
    pub keepalive_timeout: Duration,
    /// How long a write to the client may make no progress before the
    /// connection is closed (nginx `send_timeout`): a client that stops
    /// reading cannot hold a connection and its buffers for ever.
    pub send_timeout: Duration,
    /// Longest wait between two successive reads of a request body (nginx
    /// `client_body_timeout`): past it the request gets 408 and its
    /// connection (an HTTP/2 stream: the stream) is closed.
    pub body_timeout: Duration,
    /// Request body bytes held in memory by the whole process: a body that
    /// would go past it gets 503 (no nginx equivalent; nginx bounds each
    /// body by `client_body_buffer_size` and writes the rest to disk).
    pub body_memory: u64,
    /// Request body bytes held in memory by one connection (its HTTP/2
    /// streams together), each body taking its declared length or its
    /// route's `max_body` when it starts; a stream past it gets 503. Never
    /// below the largest `max_body` of any route (raised to it), so one
    /// body always fits.
    pub body_memory_per_connection: u64,
    /// Largest request head accepted (431 above).
    pub max_header_size: usize,
    /// Longest request line (414 above) or header line (431 above), as
    /// nginx's `large_client_header_buffers 4 8k` refuses any line over 8k.
    pub max_header_line: usize,
    /// Most header lines in a request head (431 above).
    pub max_headers: usize,
    /// Longest request target accepted (414 above).
    pub max_uri_length: usize,
    /// Largest request body accepted where a route sets none (413 above).
    pub max_body: u64,
    /// Upstream responses up to this size are read whole before they are
    /// sent on, freeing the upstream connection even for a slow client.
    pub response_buffer: u64,
    /// Worker threads, each with its own event loop, accept sockets
    /// (SO_REUSEPORT) and upstream keep-alive pools, like nginx's worker
    /// processes. Default: one per CPU.
    pub workers: usize,
    /// On SIGTERM, time in-flight requests get to finish.
    pub grace_period: Duration,
    /// Access log file; `None` sends access lines to the daemon's log
    /// (stderr), unless `access_log_off`.
    pub access_log: Option<PathBuf>,
    /// `access_log = "off"`: no access lines anywhere (nginx `access_log off`).
    pub access_log_off: bool,
    /// `combined`, `json` or a custom template (nginx `log_format`).
    pub access_log_format: LineFormat,
    /// Proxies trusted to name the client (`trusted_proxies` and the
    /// `real_ip_*` keys); `None`: the peer is the client.
    pub real_ip: Option<super::RealIp>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(75),
            send_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            body_memory: 256 << 20,
            body_memory_per_connection: 4 << 20,
            max_header_size: 32 << 10,
            max_header_line: 8 << 10,
            max_headers: 100,
            max_uri_length: 8 << 10,
            max_body: 1 << 20,
            response_buffer: 64 << 10,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            grace_period: Duration::from_secs(30),
            access_log: None,
            access_log_off: false,
            access_log_format: LineFormat::Combined,
            real_ip: None,
        }
    }
}

/// Bounds of `max_header_line`: a request line of 1k is short for today's
/// URLs; past 1M a line is no header.
const MIN_HEADER_LINE: u64 = 1 << 10;
const MAX_HEADER_LINE: u64 = 1 << 20;
/// Bound of `max_headers` (HAProxy's `tune.http.maxhdr` stops at 32767;
/// browsers send about 20).
const MAX_HEADERS: i64 = 1000;
/// Most a request head (or its target) may be: 1 MiB.
pub const MAX_HEAD: u64 = 1 << 20;
/// Most `max_body` may be: 64 GiB.
pub const MAX_BODY: u64 = 64 << 30;
/// Most `response_buffer` may be (it is held in memory): 1 GiB.
pub const MAX_RESPONSE_BUFFER: u64 = 1 << 30;

pub(super) fn http(
    loc: &Locator,
    base: &std::path::Path,
    h: Option<FileHttp>,
) -> Result<HttpSettings, ConfigError> {
    let mut out = HttpSettings::default();
    let Some(mut h) = h else { return Ok(out) };
    out.real_ip = super::real_ip::real_ip(
        loc,
        h.trusted_proxies.take(),
        h.real_ip_header.take(),
        h.real_ip_recursive.take(),
    )?;
    // Every timeout here is at most a day; sizes at most `units::MAX_SIZE`
    // unless a key has its own maximum (docs/configuration.md lists them).
    let dur = |v: &toml::Spanned<String>| {
        units::duration_at_most(v.get_ref(), units::DAY).map_err(|e| loc.error(v.span(), e.0))
    };
    let size_at_most = |v: &toml::Spanned<String>, max: u64| {
        units::size_at_most(v.get_ref(), max).map_err(|e| loc.error(v.span(), e.0))
    };
    if let Some(v) = &h.header_timeout {
        out.header_timeout = dur(v)?;
    }
    if let Some(v) = &h.keepalive_timeout {
        out.keepalive_timeout = dur(v)?;
    }
    if let Some(v) = &h.send_timeout {
        out.send_timeout = dur(v)?;
    }
    if let Some(v) = &h.body_timeout {
        out.body_timeout = dur(v)?;
        if out.body_timeout.is_zero() || out.body_timeout > MAX_BODY_TIMEOUT {
            return Err(loc.error(
                v.span(),
                format!("body_timeout must be between 1ms and {MAX_BODY_TIMEOUT:?}"),
            ));
        }
    }
    for (v, out, key) in [
        (&h.body_memory, &mut out.body_memory, "body_memory"),
        (
            &h.body_memory_per_connection,
            &mut out.body_memory_per_connection,
            "body_memory_per_connection",
        ),
    ] {
        if let Some(v) = v {
            *out = size_at_most(v, units::MAX_SIZE)?;
            if *out == 0 || *out > MAX_BODY_MEMORY {
                return Err(loc.error(v.span(), format!("{key} must be between 1 and 64G")));
            }
        }
    }
    if let Some(v) = &h.response_buffer {
        out.response_buffer = size_at_most(v, MAX_RESPONSE_BUFFER)?;
    }
    if let Some(v) = &h.workers {
        out.workers = super::int_in(loc, v, 1, 256, "workers")? as usize;
    }
    if let Some(v) = &h.grace_period {
        out.grace_period = dur(v)?;
    }
    if let Some(v) = &h.max_header_size {
        out.max_header_size = size_at_most(v, MAX_HEAD)? as usize;
    }
    if let Some(v) = &h.max_header_line {
        let n = size_at_most(v, units::MAX_SIZE)?;
        if !(MIN_HEADER_LINE..=MAX_HEADER_LINE).contains(&n) {
            return Err(loc.error(
                v.span(),
                format!(
                    "max_header_line must be between {}k and {}k, got {n} bytes",
                    MIN_HEADER_LINE >> 10,
                    MAX_HEADER_LINE >> 10
                ),
            ));
        }
        out.max_header_line = n as usize;
    }
    if let Some(v) = &h.max_headers {
        out.max_headers = super::int_in(loc, v, 1, MAX_HEADERS, "max_headers")? as usize;
    }
    if let Some(v) = &h.max_uri_length {
        out.max_uri_length = size_at_most(v, MAX_HEAD)? as usize;
    }
    if let Some(v) = &h.max_body {
        out.max_body = size_at_most(v, MAX_BODY)?;
    }
    if let Some(v) = &h.http1 {
        // rampart's own HTTP/1 server is the only one since issue 17;
        // hyper's was removed. "rampart" is accepted, as it was.
        match v.get_ref().as_str() {
            "rampart" => {}
            "hyper" => {
                return Err(loc.error(
                    v.span(),
                    "http1 = \"hyper\" was removed: rampart serves HTTP/1 with its own server only; delete the key",
                ));
            }
            other => {
                return Err(loc.error(
                    v.span(),
                    format!(
                        "http1 `{other}`: the only HTTP/1 server is \"rampart\" (delete the key)"
                    ),
                ));
            }
        }
    }
    if let Some(v) = &h.access_log {
        out.access_log_off = v.get_ref() == "off";
        out.access_log = (!out.access_log_off).then(|| base.join(v.get_ref()));
    }
    if let Some(v) = &h.access_log_format {
        out.access_log_format = match v.get_ref().as_str() {
            "combined" => LineFormat::Combined,
            "json" => LineFormat::Json,
            custom if custom.contains('$') => match LogFormat::parse(custom) {
                Ok(f) => LineFormat::Custom(Arc::new(f)),
                Err(e) => return Err(loc.error(inside(loc, v, e.at()), e.to_string())),
            },
            other => {
                return Err(loc.error(
                    v.span(),
                    format!(
                        "access_log_format `{other}`: expected \"combined\", \"json\" or a template of $variables"
                    ),
                ));
            }
        };
    }
    Ok(out)
}

/// The span of byte `at` of string value `v`, when the source writes the
/// string without escapes (so its bytes sit one quote after the span's
/// start); else the whole value.
fn inside(loc: &Locator, v: &toml::Spanned<String>, at: usize) -> std::ops::Range<usize> {
    let span = v.span();
    let raw = loc.text.get(span.clone()).unwrap_or("");
    match raw.get(1..raw.len().saturating_sub(1)) {
        Some(inner) if inner == v.get_ref() => span.start + 1 + at..span.end,
        _ => span,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn parse(http: &str) -> Result<Config, String> {
        Config::parse(&format!("[http]\n{http}\n"), Path::new("rampart.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn head_line_and_count_limits_are_bounded() {
        let cfg = parse("").unwrap();
        assert_eq!(
            (cfg.http.max_header_line, cfg.http.max_headers),
            (8192, 100)
        );
        let cfg = parse("max_header_line = \"16k\"\nmax_headers = 200").unwrap();
        assert_eq!(
            (cfg.http.max_header_line, cfg.http.max_headers),
            (16384, 200)
        );
        let e = parse("max_header_line = \"100\"").unwrap_err();
        assert!(
            e.starts_with("rampart.toml:2:19: max_header_line must be between 1k and 1024k"),
            "{e}"
        );
        let e = parse("max_header_line = \"18446744073709551615\"").unwrap_err();
        assert!(e.contains("rampart.toml:2:19"), "{e}");
        let e = parse("max_headers = 0").unwrap_err();
        assert!(
            e.starts_with("rampart.toml:2:15: max_headers must be between 1 and 1000"),
            "{e}"
        );
        assert!(parse("max_headers = 1001").is_err());
    }

    /// hyper's HTTP/1 server was removed (issue 17): naming it is an error
    /// that points at the value; naming rampart's own is still accepted.
    #[test]
    fn http1_hyper_is_a_removed_value() {
        assert!(parse("http1 = \"rampart\"").is_ok());
        let e = parse("http1 = \"hyper\"").unwrap_err();
        assert!(
            e.starts_with("rampart.toml:2:9: http1 = \"hyper\" was removed"),
            "{e}"
        );
        let e = parse("http1 = \"h2o\"").unwrap_err();
        assert!(e.starts_with("rampart.toml:2:9: http1 `h2o`"), "{e}");
    }

    #[test]
    fn access_log_format_compiles_at_load_and_points_at_a_bad_variable() {
        let cfg = parse("access_log_format = \"$remote_addr $status\"").unwrap();
        assert_eq!(cfg.http.access_log_format.name(), "$remote_addr $status");
        let e = parse("access_log_format = \"$remote_addr $stauts\"").unwrap_err();
        // Column of the `$` of `$stauts`: the value starts at 21, its `"` at 21.
        assert!(
            e.starts_with("rampart.toml:2:35: unknown access log variable `$stauts`"),
            "{e}"
        );
        let e = parse("access_log_format = 'x ${status'").unwrap_err();
        assert!(e.starts_with("rampart.toml:2:24:"), "{e}");
        let e = parse("access_log_format = \"common\"").unwrap_err();
        assert!(e.starts_with("rampart.toml:2:21:"), "{e}");
    }
}
