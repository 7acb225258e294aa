//! `[http]`: protections and timeouts for every listener, with defaults an
//! nginx operator would recognise.

use std::{path::PathBuf, time::Duration};

use super::{ConfigError, error::Locator, file::FileHttp, units};

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
    pub access_log_json: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(75),
            send_timeout: Duration::from_secs(60),
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
            access_log_json: false,
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

pub(super) fn http(
    loc: &Locator,
    base: &std::path::Path,
    h: Option<FileHttp>,
) -> Result<HttpSettings, ConfigError> {
    let mut out = HttpSettings::default();
    let Some(h) = h else { return Ok(out) };
    let dur = |v: &toml::Spanned<String>| {
        units::duration(v.get_ref()).map_err(|e| loc.error(v.span(), e.0))
    };
    let size =
        |v: &toml::Spanned<String>| units::size(v.get_ref()).map_err(|e| loc.error(v.span(), e.0));
    if let Some(v) = &h.header_timeout {
        out.header_timeout = dur(v)?;
    }
    if let Some(v) = &h.keepalive_timeout {
        out.keepalive_timeout = dur(v)?;
    }
    if let Some(v) = &h.send_timeout {
        out.send_timeout = dur(v)?;
    }
    if let Some(v) = &h.response_buffer {
        out.response_buffer = size(v)?;
    }
    if let Some(v) = &h.workers {
        out.workers = super::int_in(loc, v, 1, 256, "workers")? as usize;
    }
    if let Some(v) = &h.grace_period {
        out.grace_period = dur(v)?;
    }
    if let Some(v) = &h.max_header_size {
        out.max_header_size = size(v)? as usize;
    }
    if let Some(v) = &h.max_header_line {
        let n = size(v)?;
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
        out.max_uri_length = size(v)? as usize;
    }
    if let Some(v) = &h.max_body {
        out.max_body = size(v)?;
    }
    if let Some(v) = &h.access_log {
        out.access_log_off = v.get_ref() == "off";
        out.access_log = (!out.access_log_off).then(|| base.join(v.get_ref()));
    }
    if let Some(v) = &h.access_log_format {
        out.access_log_json = match v.get_ref().as_str() {
            "combined" => false,
            "json" => true,
            other => {
                return Err(loc.error(
                    v.span(),
                    format!("access_log_format `{other}`: expected \"combined\" or \"json\""),
                ));
            }
        };
    }
    Ok(out)
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
}
