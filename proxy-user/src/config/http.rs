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
    /// Access log file; `None` writes no access log.
    pub access_log: Option<PathBuf>,
    pub access_log_json: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(75),
            send_timeout: Duration::from_secs(60),
            max_header_size: 32 << 10,
            max_uri_length: 8 << 10,
            max_body: 1 << 20,
            response_buffer: 64 << 10,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            grace_period: Duration::from_secs(30),
            access_log: None,
            access_log_json: false,
        }
    }
}

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
    let Some(h) = h else { return Ok(out) };
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
    if let Some(v) = &h.max_uri_length {
        out.max_uri_length = size_at_most(v, MAX_HEAD)? as usize;
    }
    if let Some(v) = &h.max_body {
        out.max_body = size_at_most(v, MAX_BODY)?;
    }
    if let Some(v) = &h.access_log {
        out.access_log = (v.get_ref() != "off").then(|| base.join(v.get_ref()));
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
