//! The configuration file as written: serde structs that mirror the TOML,
//! with spans kept on every value a later check may reject. Nothing outside
//! `config/` sees these types; [`super::Config`] is the validated form.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub instance: Option<Spanned<String>>,
    pub filter: Option<FileFilter>,
    pub http: Option<FileHttp>,
    pub control: Option<FileControl>,
    pub admin: Option<FileAdmin>,
    pub log: Option<FileLog>,
    pub fleet: Option<FileFleet>,
    pub compress: Option<super::compress::FileCompress>,
    #[serde(default)]
    pub error_page: Vec<Spanned<super::error_page::FileErrorPage>>,
    #[serde(default)]
    pub listener: Vec<Spanned<FileListener>>,
    #[serde(default)]
    pub upstream: BTreeMap<String, Spanned<FileUpstream>>,
    #[serde(default)]
    pub limit: BTreeMap<String, Spanned<FileLimitZone>>,
    #[serde(default)]
    pub escalate: BTreeMap<String, Spanned<FileEscalate>>,
    #[serde(default)]
    pub route: Vec<Spanned<FileRoute>>,
    #[serde(default)]
    pub server: Vec<Spanned<FileServerBlock>>,
}

/// `[[server]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileServerBlock {
    pub server_name: Option<Spanned<Vec<Spanned<String>>>>,
    pub listen: Option<Spanned<Vec<Spanned<String>>>>,
    pub default_server: Option<Spanned<bool>>,
    pub tls: Option<Spanned<toml::Value>>,
    /// The server's error pages (nginx `error_page` in a `server`):
    /// replace `[[error_page]]` for its routes and its unrouted requests.
    pub error_page: Option<Vec<Spanned<super::error_page::FileErrorPage>>>,
    #[serde(default)]
    pub route: Vec<Spanned<FileRoute>>,
}

/// `[escalate.NAME]`: L7 abuse that becomes a kernel ban.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEscalate {
    pub statuses: Option<Spanned<Vec<Spanned<i64>>>>,
    pub count: Spanned<i64>,
    pub within: Spanned<String>,
    pub ban: Spanned<String>,
    pub fleet: Option<Spanned<bool>>,
}

/// `[fleet]`: the Redis that hosts of one fleet share entries through.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileFleet {
    pub redis: Spanned<String>,
    pub user: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub name: Spanned<String>,
    pub host: Option<Spanned<String>>,
    pub log_max: Option<Spanned<i64>>,
    pub timeout: Option<Spanned<String>>,
    pub exchange: Option<Spanned<String>>,
    pub exchange_sources: Option<Spanned<i64>>,
    pub tls: Option<Spanned<FileFleetTls>>,
}

/// `[fleet] tls = { ca = "...", cert = "...", key = "..." }` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileFleetTls {
    pub ca: Option<Spanned<String>>,
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
}

/// `[log]`: the daemon's log level and the XDP program's record rate.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLog {
    pub level: Option<Spanned<String>>,
    pub xdp_rate: Option<Spanned<i64>>,
}

/// `[admin]`: the admin listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAdmin {
    pub bind: Option<Spanned<String>>,
    pub allowed_hosts: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[control]`: the CLI's socket and the runtime state file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileControl {
    pub socket: Option<Spanned<String>>,
    pub state_file: Option<Spanned<String>>,
}

/// `[http]`: protections and timeouts that apply to every listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHttp {
    pub header_timeout: Option<Spanned<String>>,
    pub keepalive_timeout: Option<Spanned<String>>,
    pub send_timeout: Option<Spanned<String>>,
    pub body_timeout: Option<Spanned<String>>,
    pub body_memory: Option<Spanned<String>>,
    pub body_memory_per_connection: Option<Spanned<String>>,
    pub max_header_size: Option<Spanned<String>>,
    pub max_header_line: Option<Spanned<String>>,
    pub max_headers: Option<Spanned<i64>>,
    pub max_uri_length: Option<Spanned<String>>,
    pub max_body: Option<Spanned<String>>,
    pub grace_period: Option<Spanned<String>>,
    pub workers: Option<Spanned<i64>>,
    pub response_buffer: Option<Spanned<String>>,
    pub access_log: Option<Spanned<String>>,
    pub access_log_format: Option<Spanned<String>>,
    pub request_headers: Option<Spanned<FileHeaderOps>>,
    pub response_headers: Option<Spanned<FileHeaderOps>>,
    pub hsts: Option<Spanned<String>>,
    pub security_headers: Option<bool>,
    pub trusted_proxies: Option<Spanned<Vec<Spanned<String>>>>,
    pub real_ip_header: Option<Spanned<String>>,
    pub real_ip_recursive: Option<Spanned<bool>>,
    pub http1: Option<Spanned<String>>,
}

/// `[[listener]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileListener {
    pub bind: Spanned<String>,
    pub name: Option<Spanned<String>>,
    /// `{ cert, key }` or a list of them (read as a value: serde's untagged
    /// enums cannot carry toml's spans).
    pub tls: Option<Spanned<toml::Value>>,
    pub http2: Option<bool>,
    pub redirect_https: Option<bool>,
    pub redirect_https_port: Option<Spanned<i64>>,
    pub redirect_https_host: Option<Spanned<String>>,
    pub backlog: Option<Spanned<i64>>,
    pub max_connections: Option<Spanned<i64>>,
    pub tls_min_version: Option<Spanned<String>>,
    pub handshake_timeout: Option<Spanned<String>>,
    pub busy_handshake_timeout: Option<Spanned<String>>,
    pub proxy_protocol: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

/// `[upstream.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpstream {
    pub servers: Vec<Spanned<FileServer>>,
    pub balance: Option<Spanned<String>>,
    pub max_fails: Option<Spanned<i64>>,
    pub fail_timeout: Option<Spanned<String>>,
    pub keepalive: Option<Spanned<i64>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub read_timeout: Option<Spanned<String>>,
    pub send_timeout: Option<Spanned<String>>,
    pub retries: Option<Spanned<i64>>,
    pub health_check: Option<Spanned<FileHealthCheck>>,
    pub resolve_interval: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum FileServer {
    Addr(String),
    /// `{ addr = "...", weight = N, backup = true }`, read by
    /// `upstream.rs` so that a wrong key is named.
    Table(toml::Table),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHealthCheck {
    pub path: Option<String>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub fails: Option<Spanned<i64>>,
    pub passes: Option<Spanned<i64>>,
    pub status: Option<Spanned<i64>>,
}

/// `[limit.NAME]`: an nginx `limit_req_zone` + `limit_req`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimitZone {
    pub rate: Spanned<String>,
    pub burst: Option<Spanned<i64>>,
    pub nodelay: Option<bool>,
    pub delay: Option<Spanned<i64>>,
    pub dry_run: Option<bool>,
    pub status: Option<Spanned<i64>>,
    pub max_clients: Option<Spanned<i64>>,
    pub fleet: Option<Spanned<bool>>,
}

/// `[[route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRoute {
    pub path: Option<Spanned<String>>,
    pub path_exact: Option<Spanned<String>>,
    pub path_regex: Option<Spanned<String>>,
    pub host: Option<Spanned<String>>,
    /// nginx's `if (...)`: `["$VAR"]` or `["$VAR", OP, VALUE]`.
    #[serde(rename = "if")]
    pub condition: Option<Spanned<Vec<Spanned<String>>>>,
    pub respond: Option<Spanned<i64>>,
    pub body: Option<Spanned<String>>,
    #[serde(rename = "static")]
    pub static_dir: Option<Spanned<String>>,
    pub root: Option<Spanned<String>>,
    pub index: Option<String>,
    pub expires: Option<Spanned<String>>,
    pub cache_control: Option<String>,
    pub serve_well_known: Option<Spanned<bool>>,
    pub try_files: Option<Spanned<Vec<Spanned<String>>>>,
    pub upstream: Option<Spanned<String>>,
    pub redirect: Option<Spanned<String>>,
    pub redirect_status: Option<Spanned<i64>>,
    pub limit: Option<Spanned<OneOrMany<String>>>,
    pub escalate: Option<Spanned<OneOrMany<String>>>,
    pub max_body: Option<Spanned<String>>,
    pub idle_timeout: Option<Spanned<String>>,
    pub access_log: Option<bool>,
    pub upstream_path: Option<Spanned<String>>,
    pub rewrite: Option<Spanned<Vec<Spanned<String>>>>,
    pub request_headers: Option<Spanned<FileHeaderOps>>,
    pub response_headers: Option<Spanned<FileHeaderOps>>,
    pub hsts: Option<Spanned<String>>,
    pub security_headers: Option<bool>,
    pub access: Option<Spanned<Vec<Spanned<String>>>>,
    pub allow: Option<Spanned<Vec<Spanned<String>>>>,
    pub deny: Option<Spanned<Vec<Spanned<String>>>>,
    pub auth_basic: Option<Spanned<String>>,
    pub auth_basic_user_file: Option<Spanned<String>>,
    pub auth_request: Option<Spanned<super::auth_request::FileAuthRequest>>,
    /// `false`, `true` or a `[compress]`-shaped table (nginx's `gzip` in a
    /// location).
    pub compress: Option<Spanned<toml::Value>>,
    /// This route's error pages instead of the `[[error_page]]`s (nginx's
    /// `error_page` in a location).
    pub error_page: Option<Vec<Spanned<super::error_page::FileErrorPage>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileFilter {
    pub enabled: Option<bool>,
    #[serde(default)]
    pub interfaces: Vec<Spanned<String>>,
    pub mode: Option<Spanned<String>>,
    pub pin_dir: Option<Spanned<String>>,
    pub on_exit: Option<Spanned<String>>,
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    #[serde(default)]
    pub block: Vec<Spanned<String>>,
    pub pps: Option<Spanned<FileRate>>,
    pub syn: Option<Spanned<FileRate>>,
    pub ipv6_prefix: Option<Spanned<i64>>,
    pub track_sources: Option<bool>,
    pub unparsed: Option<Spanned<String>>,
    pub maps: Option<FileMapSizes>,
    pub syn_cookies: Option<Spanned<FileSynCookies>>,
    pub new_sources: Option<Spanned<FileNewSources>>,
    pub fleet_pps: Option<Spanned<FileFleetThreshold>>,
    pub fleet_syn: Option<Spanned<FileFleetThreshold>>,
}

/// `[filter] fleet_pps` / `fleet_syn` `= { count, within, ban }` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileFleetThreshold {
    pub count: Spanned<i64>,
    pub within: Spanned<String>,
    pub ban: Spanned<String>,
}

/// `[filter.new_sources]` (or `[filter] new_sources = { ... }`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileNewSources {
    pub rate: Option<Spanned<i64>>,
    pub burst: Option<Spanned<i64>>,
    pub hold: Option<Spanned<String>>,
}

/// `[filter.syn_cookies]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSynCookies {
    pub mode: Option<Spanned<String>>,
    pub ports: Option<Spanned<Vec<Spanned<i64>>>>,
    pub threshold: Option<Spanned<i64>>,
    pub on_veth: Option<bool>,
    pub synack_rate: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
/// A kernel-tier per-source rate: packets or SYNs per second.
pub struct FileRate {
    pub rate: Spanned<i64>,
    pub burst: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMapSizes {
    pub sources: Option<Spanned<i64>>,
    pub bans: Option<Spanned<i64>>,
    pub allow: Option<Spanned<i64>>,
    pub block_ranges: Option<Spanned<i64>>,
    pub block_addrs: Option<Spanned<i64>>,
    pub autobans: Option<Spanned<i64>>,
}

/// `request_headers = { ... }` or `response_headers = { ... }` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHeaderOps {
    pub set: Option<BTreeMap<String, Spanned<String>>>,
    pub add: Option<BTreeMap<String, Spanned<String>>>,
    pub remove: Option<Vec<Spanned<String>>>,
    pub always: Option<Spanned<bool>>,
}
