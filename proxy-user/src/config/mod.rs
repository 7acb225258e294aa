//! Configuration: the TOML file ([`file::FileConfig`], parsed by serde with
//! unknown keys refused) is converted into [`Config`], whose values are typed
//! and checked. Everything is validated before anything binds or attaches.
//!
//! ```text
//! text --toml/serde--> FileConfig --validate--> Config
//!        (syntax, unknown keys)      (ranges, CIDRs, modes; file:line:col)
//! ```

mod access;
mod admin;
mod auth_request;
pub mod basic_auth;
pub mod compress;
pub mod condition;
pub mod control;
mod error;
pub mod error_page;
mod escalate;
mod file;
mod filter;
pub mod fleet;
pub mod fleet_tls;
pub mod header_rules;
mod http;
pub mod instance;
mod limit;
mod listener;
mod log;
pub mod log_format;
mod new_sources;
mod path_match;
mod real_ip;
pub mod rewrite;
mod route;
mod server;
mod server_name;
mod syn_cookies;
pub mod target;
mod template;
pub mod try_files;
pub mod units;
mod upstream;

use std::{collections::BTreeMap, path::Path};

pub use access::Access;
pub use admin::AdminSettings;
pub use auth_request::AuthRequest;
pub use control::ControlSettings;
pub use error::ConfigError;
use error::Locator;
pub use escalate::EscalateRule;
use file::FileConfig;
pub use filter::{AttachMode, FilterSettings, FleetThreshold, MapSizes, OnExit, RateLimit};
pub use fleet::FleetSettings;
pub use header_rules::HeaderDefaults;
pub use http::HttpSettings;
pub use limit::LimitZone;
pub use listener::{BUSY_HANDSHAKE_TIMEOUT, CertFiles, HANDSHAKE_TIMEOUT, Listener, TlsSettings};
pub use log::LogSettings;
pub use new_sources::NewSources;
pub use path_match::PathMatch;
pub use real_ip::{RealIp, RealIpHeader, unmapped as real_ip_unmapped};
pub use route::{Action, Matcher, Route};
pub use server::{ServerBlock, Servers};
pub use server_name::{ServerName, normal_host};
pub use syn_cookies::{SynCookieMode, SynCookies};
use toml::Spanned;
pub use upstream::{Address, Balance, HealthCheck, Server, Upstream};

/// The configuration `cargo xtask demo` and `rampart run` without `-c` use.
pub const DEFAULT_TOML: &str = include_str!("default.toml");
/// Where `rampart` looks for its configuration when `-c` is not given.
pub const DEFAULT_PATH: &str = "/etc/rampart/rampart.toml";

/// A validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Which daemon of the host this is (`instance`, else from the file name):
    /// the default control socket, state file, pin directory and admin port.
    pub instance: String,
    /// The kernel tier; `None` when the file has no `[filter]` section.
    pub filter: Option<FilterSettings>,
    /// The L7 tier: where to accept connections...
    pub listeners: Vec<Listener>,
    /// ...protections and timeouts...
    pub http: HttpSettings,
    /// ...backend groups by name...
    pub upstreams: BTreeMap<String, Upstream>,
    /// ...request-rate zones by name...
    pub limits: BTreeMap<String, LimitZone>,
    /// ...rules that turn L7 abuse into kernel bans, by name...
    pub escalate: BTreeMap<String, EscalateRule>,
    /// ...and routes, matched in file order (the first match wins): the
    /// top-level ones, then each `[[server]]`'s...
    pub routes: Vec<Route>,
    /// ...which a request's listener and host choose among ([`Servers`]).
    pub servers: Servers,
    /// `[http]` header rules: every route's start, and what a response
    /// without a route gets.
    pub headers: HeaderDefaults,
    /// The CLI's control socket and the runtime state file.
    pub control: ControlSettings,
    /// The admin listener: metrics, health, status page.
    pub admin: AdminSettings,
    /// The log level, and the XDP program's record rate.
    pub log: LogSettings,
    /// The fleet this host shares entries with; `None`: alone.
    pub fleet: Option<FleetSettings>,
    /// On-the-fly response compression; `None` (no `[compress]`): off.
    pub compress: Option<compress::CompressSettings>,
    /// Pages answered instead of error responses, by status.
    pub error_pages: error_page::ErrorPages,
    /// A response header rule or the access log reads the request's
    /// headers (`$http_*`, `$cookie_*`): a request keeps a copy of them
    /// until its response. False (no copy) otherwise.
    pub keep_request_headers: bool,
    /// `[compress]` or a route's `compress` is on: requests keep their
    /// `Accept-Encoding` until the response.
    pub compress_any: bool,
    /// Something reads an HTTP/1 request's header map before its route is
    /// known, or after its response (a route condition, a rewrite, `real_ip`,
    /// `keep_request_headers`): the map is built for every request. False:
    /// only for a route that reads it (`http::request_map`).
    pub request_map_early: bool,
}

impl Config {
    /// The IPv6 prefix length that is one source for every tier: `[filter]
    /// ipv6_prefix`, also without XDP (the gate, L7 limits, escalation).
    pub fn ipv6_prefix(&self) -> u8 {
        self.filter
            .as_ref()
            .map_or(crate::source::DEFAULT_IPV6_PREFIX, |f| f.ipv6_prefix)
    }

    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Only the `[control]` section of a file, for the CLI to find the
    /// daemon's socket: the file must be valid TOML with known keys, but a
    /// broken certificate or an invalid value elsewhere (which the daemon
    /// will report on reload) does not stop the CLI from reaching it.
    pub fn control_of(path: &Path) -> Result<ControlSettings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::control_of_text(&text, path)
    }

    /// [`Config::control_of`] for text read from `path`.
    pub fn control_of_text(text: &str, path: &Path) -> Result<ControlSettings, ConfigError> {
        let loc = Locator { path, text };
        let raw: FileConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            loc.error(span, e.message().trim_end().to_string())
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = instance::name(&loc, raw.instance.as_ref(), path)?;
        let unset = instance::Unset::of(&raw);
        let mut control = control::control(&loc, base, raw.control)?;
        unset.fill_control(&name, &mut control);
        Ok(control)
    }

    /// Validates configuration text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let loc = Locator { path, text };
        let raw: FileConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            loc.error(span, e.message().trim_end().to_string())
        })?;
        let name = instance::name(&loc, raw.instance.as_ref(), path)?;
        let unset = instance::Unset::of(&raw);
        let fleet_threshold_at = raw.filter.as_ref().and_then(|f| {
            [(&f.fleet_pps, "fleet_pps"), (&f.fleet_syn, "fleet_syn")]
                .into_iter()
                .find_map(|(t, what)| t.as_ref().map(|t| (t.span(), what)))
        });
        let mut filter = raw.filter.map(|f| filter::filter(&loc, f)).transpose()?;
        // Relative paths (certificates, static roots, logs) are relative to the file.
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut raw_http = raw.http;
        let headers = header_rules::defaults(
            &loc,
            raw_http
                .as_mut()
                .map(file::FileHttp::header_keys)
                .unwrap_or_default(),
        )?;
        let mut http = http::http(&loc, base, raw_http)?;
        let mut control = control::control(&loc, base, raw.control)?;
        let mut admin = admin::admin(&loc, raw.admin)?;
        unset.fill(&name, &mut control, &mut admin, filter.as_mut());
        let log = log::log(&loc, raw.log)?;
        let fleet = raw.fleet.map(|f| fleet::fleet(&loc, base, f)).transpose()?;
        if let Some((span, what)) = fleet_threshold_at
            && fleet.is_none()
        {
            return Err(loc.error(
                span,
                format!("{what}: a fleet-wide threshold needs a [fleet] section (the Redis it is counted through)"),
            ));
        }
        let compress = compress::compress(&loc, raw.compress)?;
        let error_pages = error_page::error_pages(&loc, base, raw.error_page)?;
        let listener_spans: Vec<_> = raw.listener.iter().map(|l| l.span()).collect();
        let mut listeners: Vec<Listener> = raw
            .listener
            .into_iter()
            .map(|l| listener::listener(&loc, base, l))
            .collect::<Result<_, _>>()?;
        for (id, l) in listeners.iter_mut().enumerate() {
            l.id = id;
        }
        listener::resolve_redirect_ports(&mut listeners);
        if let Some(f) = filter.as_mut() {
            f.syn_cookies.resolve_ports(&listeners);
        }
        let upstreams: BTreeMap<String, Upstream> = raw
            .upstream
            .into_iter()
            .map(|(name, u)| upstream::upstream(&loc, &name, u).map(|u| (name, u)))
            .collect::<Result<_, _>>()?;
        let limits: BTreeMap<String, LimitZone> = raw
            .limit
            .into_iter()
            .map(|(name, z)| {
                let span = z.get_ref().fleet.as_ref().map(|f| f.span());
                let zone = limit::zone(&loc, &name, z)?;
                match span {
                    Some(span) if zone.fleet && fleet.is_none() => Err(loc.error(
                        span,
                        "fleet: a fleet-wide limit needs a [fleet] section (the Redis it is counted through)",
                    )),
                    _ => Ok((name, zone)),
                }
            })
            .collect::<Result<_, _>>()?;
        let escalate: BTreeMap<String, EscalateRule> = raw
            .escalate
            .into_iter()
            .map(|(name, r)| {
                let span = r.get_ref().fleet.as_ref().map(|f| f.span());
                let rule = escalate::rule(&loc, &name, r)?;
                match span {
                    Some(span) if rule.fleet && fleet.is_none() => Err(loc.error(
                        span,
                        "fleet: a fleet-wide escalation rule needs a [fleet] section",
                    )),
                    _ => Ok((name, rule)),
                }
            })
            .collect::<Result<_, _>>()?;
        let known = route::Known {
            upstreams: &upstreams,
            limits: &limits,
            escalate: &escalate,
            max_body: http.max_body,
            base,
            headers: &headers,
            compress: compress.as_ref(),
            error_pages: &error_pages,
        };
        let mut routes = raw
            .route
            .into_iter()
            .map(|r| route::route(&loc, &known, r))
            .collect::<Result<Vec<Route>, _>>()?;
        let servers = server::servers(&loc, &known, &mut listeners, raw.server, &mut routes)?;
        server::check_tls(&loc, &listeners, &listener_spans)?;
        // One body of any route always fits on a connection.
        http.body_memory_per_connection = routes
            .iter()
            .map(|r| r.max_body)
            .fold(http.body_memory_per_connection.max(http.max_body), u64::max);
        let keep_request_headers = routes
            .iter()
            .filter_map(|r| r.headers.as_deref())
            .chain(headers.unrouted.as_deref())
            .any(|h| h.response_needs_headers())
            || http.access_log_format.needs_headers();
        let compress_any = compress.is_some() || routes.iter().any(|r| r.compress.is_some());
        let request_map_early = keep_request_headers
            || http.real_ip.is_some()
            || routes
                .iter()
                .any(|r| r.matcher.condition.is_some() || r.rewrite.is_some());
        Ok(Config {
            compress_any,
            request_map_early,
            keep_request_headers,
            instance: name,
            filter,
            listeners,
            http,
            upstreams,
            limits,
            escalate,
            routes,
            servers,
            headers,
            control,
            admin,
            log,
            fleet,
            compress,
            error_pages,
        })
    }
}

pub(crate) fn int_in(
    loc: &Locator,
    v: &Spanned<i64>,
    min: i64,
    max: i64,
    what: &str,
) -> Result<i64, ConfigError> {
    let n = *v.get_ref();
    if n < min || n > max {
        return Err(loc.error(
            v.span(),
            format!("{what} must be between {min} and {max}, got {n}"),
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("rampart.toml"))
    }

    #[test]
    fn default_config_is_valid() {
        let cfg = parse(DEFAULT_TOML).unwrap();
        assert!(cfg.filter.is_some());
    }

    #[test]
    fn full_filter_section() {
        let cfg = parse(
            r#"
[filter]
interfaces = ["eth0", "eth1"]
mode = "native"
allow = ["10.0.0.0/8", "2001:db8::/32"]
block = ["198.51.100.0/24", "203.0.113.7"]
pps = { rate = 1000, burst = 2000 }
syn = { rate = 50 }
ipv6_prefix = 56
maps = { sources = 1024 }
"#,
        )
        .unwrap();
        let f = cfg.filter.unwrap();
        assert_eq!(f.mode, AttachMode::Native);
        assert_eq!(f.interfaces, ["eth0", "eth1"]);
        assert_eq!(
            f.pps,
            Some(RateLimit {
                rate: 1000,
                burst: 2000
            })
        );
        assert_eq!(
            f.syn,
            Some(RateLimit {
                rate: 50,
                burst: 50
            })
        );
        assert_eq!(f.ipv6_prefix, 56);
        assert_eq!(f.maps.sources, 1024);
        assert_eq!(f.maps.bans, MapSizes::default().bans);
        assert!(f.block[1].is_host());
        assert!(
            f.allow
                .iter()
                .any(|c| c.contains("10.9.8.7".parse().unwrap()))
        );
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn autobans_leave_room_for_the_operator() {
        let f = |t: &str| parse(t).unwrap().filter.unwrap().maps;
        assert_eq!(f("[filter]\n").autobans, 32_768);
        assert_eq!(f("[filter.maps]\nbans = 100\n").autobans, 50);
        assert_eq!(f("[filter.maps]\nbans = 100\nautobans = 99\n").autobans, 99);
        assert_eq!(f("[filter.maps]\nautobans = 0\n").autobans, 0);
        let e = err("[filter.maps]\nbans = 100\nautobans = 100\n");
        assert!(
            e.contains("rampart.toml:3:12") && e.contains("maps.autobans must be between 0 and 99"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_file_line_column_and_expectation() {
        assert_eq!(
            err("[filter]\nblock = [\"10.0.0.0/8\", \"10.1.2.3/8\"]\n"),
            "rampart.toml:2:24: `10.1.2.3/8` has host bits set past /8; did you mean 10.0.0.0/8?"
        );
        assert_eq!(
            err("[filter]\nmode = \"fast\"\n"),
            "rampart.toml:2:8: unknown mode `fast`: expected \"auto\", \"native\" or \"skb\""
        );
        assert_eq!(
            err("[filter]\npps = { rate = 0 }\n"),
            "rampart.toml:2:16: pps.rate (per second) must be between 1 and 1000000000, got 0"
        );
        let unknown = err("[filter]\nblocklist = []\n");
        assert!(
            unknown.starts_with("rampart.toml:2:1: unknown field `blocklist`"),
            "{unknown}"
        );
        let syntax = err("[filter\n");
        assert!(syntax.starts_with("rampart.toml:1:"), "{syntax}");
    }

    /// Issue 13, item 9: a value past its key's maximum is refused with
    /// file:line:col, where it used to pass and panic a worker later.
    #[test]
    fn every_duration_and_size_has_a_maximum() {
        let huge = "18446744073709551615";
        assert_eq!(
            err(&format!("[http]\nheader_timeout = \"{huge}\"\n")),
            format!("rampart.toml:2:18: `{huge}` is too long: the maximum is 365d")
        );
        for (text, expected) in [
            (
                "[http]\nkeepalive_timeout = \"25h\"\n",
                "rampart.toml:2:21: `25h` is too long: the maximum is 1d",
            ),
            (
                "[http]\nmax_header_size = \"2M\"\n",
                "rampart.toml:2:19: `2M` is too large: the maximum is 1M",
            ),
            (
                "[http]\nmax_body = \"65G\"\n",
                "rampart.toml:2:12: `65G` is too large: the maximum is 64G",
            ),
            (
                "[http]\nresponse_buffer = \"2G\"\n",
                "rampart.toml:2:19: `2G` is too large: the maximum is 1G",
            ),
            (
                "[upstream.a]\nservers = [\"127.0.0.1:1\"]\nread_timeout = \"2d\"\n",
                "rampart.toml:3:16: `2d` is too long: the maximum is 1d",
            ),
            (
                "[escalate.e]\ncount = 1\nwithin = \"1m\"\nban = \"400d\"\n",
                "rampart.toml:4:7: `400d` is too long: the maximum is 365d",
            ),
            (
                "[escalate.e]\ncount = 1\nwithin = \"2d\"\nban = \"1h\"\n",
                "rampart.toml:3:10: `2d` is too long: the maximum is 1d",
            ),
            (
                "[limit.l]\nrate = \"2000000r/s\"\n",
                "rampart.toml:2:8: `2000000r/s` is too fast: the maximum is 1000000r/s",
            ),
        ] {
            assert_eq!(err(text), expected, "{text}");
        }
        // The maxima themselves are accepted.
        let cfg = parse(
            "[http]\nheader_timeout = \"1d\"\nmax_header_size = \"1M\"\nmax_body = \"64G\"\n\
             [escalate.e]\ncount = 1\nwithin = \"1d\"\nban = \"365d\"\n",
        )
        .unwrap();
        assert_eq!(cfg.http.header_timeout, units::DAY);
        assert_eq!(cfg.escalate["e"].ban, units::YEAR);
    }

    #[test]
    fn unparsed_vlan_policy() {
        let f = |t: &str| parse(t).unwrap().filter.unwrap().pass_unparsed;
        assert!(!f("[filter]\n"), "drop by default");
        assert!(!f("[filter]\nunparsed = \"drop\"\n"));
        assert!(f("[filter]\nunparsed = \"pass\"\n"));
        assert_eq!(
            err("[filter]\nunparsed = \"count\"\n"),
            "rampart.toml:2:12: unparsed `count`: expected \"drop\" or \"pass\""
        );
    }
}
