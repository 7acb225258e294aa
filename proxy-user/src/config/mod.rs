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
mod basic_auth;
pub mod compress;
pub mod control;
mod error;
pub mod error_page;
mod escalate;
mod file;
pub mod fleet;
mod header_rules;
mod http;
pub mod instance;
mod limit;
mod listener;
mod log;
mod real_ip;
mod rewrite;
mod route;
mod syn_cookies;
mod template;
pub mod units;
mod upstream;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

pub use access::Access;
pub use admin::AdminSettings;
pub use auth_request::AuthRequest;
pub use control::ControlSettings;
pub use error::ConfigError;
use error::Locator;
pub use escalate::EscalateRule;
use file::{FileConfig, FileFilter, FileRate};
pub use fleet::FleetSettings;
pub use header_rules::HeaderDefaults;
pub use http::HttpSettings;
pub use limit::LimitZone;
pub use listener::{CertFiles, Listener, TlsSettings, redirect_host_for};
pub use log::LogSettings;
pub use real_ip::{RealIp, RealIpHeader, unmapped as real_ip_unmapped};
pub use route::{Action, Matcher, PathMatch, Route};
pub use syn_cookies::{SynCookieMode, SynCookies};
use toml::Spanned;
pub use upstream::{Address, Balance, HealthCheck, Server, Upstream};

use crate::cidr::Cidr;

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
    /// ...and routes, matched in file order (the first match wins).
    pub routes: Vec<Route>,
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
}

/// The `[filter]` section: the XDP program, where it attaches, and what it enforces.
#[derive(Clone, Debug, PartialEq)]
pub struct FilterSettings {
    /// Master switch: when false the program stays attached but passes everything.
    pub enabled: bool,
    /// Interfaces the program attaches to.
    pub interfaces: Vec<String>,
    pub mode: AttachMode,
    /// bpffs directory for the pinned maps (the stable names in `proxy_common::pin`).
    pub pin_dir: PathBuf,
    /// Sources that are never filtered or limited.
    pub allow: Vec<Cidr>,
    /// Sources whose packets are dropped.
    pub block: Vec<Cidr>,
    /// Per-source limit on all packets; `None` = unlimited.
    pub pps: Option<RateLimit>,
    /// Per-source limit on new TCP connections (SYN without ACK); `None` = unlimited.
    pub syn: Option<RateLimit>,
    /// IPv6 sources are limited, counted and banned per prefix of this
    /// length (an IPv6 host usually controls a whole /64), in every tier.
    pub ipv6_prefix: u8,
    /// Keep per-source counters for `top`-style views even without limits.
    pub track_sources: bool,
    /// `unparsed = "pass"`: frames with more VLAN tags than the program
    /// parses are passed (`non_ip`) instead of dropped (`malformed`).
    pub pass_unparsed: bool,
    pub maps: MapSizes,
    /// What happens to the attached program when the daemon exits.
    pub on_exit: OnExit,
    /// `[filter.syn_cookies]`: SYNs answered in XDP during SYN floods.
    pub syn_cookies: SynCookies,
}

/// `on_exit`: whether the filter outlives the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnExit {
    /// The program stays attached through its pinned link and keeps
    /// enforcing with its last state until a new daemon adopts it.
    Keep,
    /// The program is detached (the pinned maps still stay).
    Detach,
}

/// How the program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Native (driver) mode, falling back to generic (SKB) mode with a warning.
    Auto,
    /// Native mode only; fail if the driver cannot.
    Native,
    /// Generic mode only (works on every interface, slower).
    Skb,
}

/// A rate in events per second with a burst of back-to-back events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub rate: u64,
    pub burst: u64,
}

impl RateLimit {
    /// `rate` a second with `burst` back-to-back, by default one second's
    /// worth: the one place this default is written (for `[filter]` and
    /// `rampart limit set` alike).
    pub fn new(rate: u64, burst: Option<u64>) -> RateLimit {
        RateLimit {
            rate,
            burst: burst.unwrap_or(rate).max(1),
        }
    }
}

/// Capacities of the kernel maps, fixed when the maps are created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapSizes {
    /// Sources tracked per family (LRU: the least recently seen are evicted).
    pub sources: u32,
    /// Bans per family.
    pub bans: u32,
    /// Allowlist prefixes per family.
    pub allow: u32,
    /// Blocklist ranges (shorter than /32 or /128) per family.
    pub block_ranges: u32,
    /// Blocklisted single addresses per family.
    pub block_addrs: u32,
    /// Of the `bans`, how many escalation may hold (in both families
    /// together); past it the soonest-expiring auto-ban gives way. Always
    /// below `bans`, so an attacker who triggers bans from rotating sources
    /// cannot fill the table the operator's own bans go into.
    pub autobans: u32,
}

impl MapSizes {
    /// `autobans` when the configuration sets none: half the ban table.
    pub const fn default_autobans(bans: u32) -> u32 {
        bans / 2
    }
}

impl Default for MapSizes {
    fn default() -> Self {
        Self {
            sources: 65_536,
            bans: 65_536,
            allow: 16_384,
            block_ranges: 65_536,
            block_addrs: 262_144,
            autobans: MapSizes::default_autobans(65_536),
        }
    }
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
        let mut filter = raw.filter.map(|f| filter(&loc, f)).transpose()?;
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
        let compress = compress::compress(&loc, raw.compress)?;
        let error_pages = error_page::error_pages(&loc, base, raw.error_page)?;
        let listener_spans: Vec<_> = raw.listener.iter().map(|l| l.span()).collect();
        let mut listeners: Vec<Listener> = raw
            .listener
            .into_iter()
            .map(|l| listener::listener(&loc, base, l))
            .collect::<Result<_, _>>()?;
        listener::check_redirect_hosts(&loc, &listeners, &listener_spans)?;
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
            .map(|(name, z)| limit::zone(&loc, &name, z).map(|z| (name, z)))
            .collect::<Result<_, _>>()?;
        let escalate: BTreeMap<String, EscalateRule> = raw
            .escalate
            .into_iter()
            .map(|(name, r)| escalate::rule(&loc, &name, r).map(|r| (name, r)))
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
        let routes = raw
            .route
            .into_iter()
            .map(|r| route::route(&loc, &known, r))
            .collect::<Result<Vec<Route>, _>>()?;
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
        Ok(Config {
            compress_any,
            keep_request_headers,
            instance: name,
            filter,
            listeners,
            http,
            upstreams,
            limits,
            escalate,
            routes,
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

const MAX_MAP_ENTRIES: i64 = 1 << 24;

fn filter(loc: &Locator, f: FileFilter) -> Result<FilterSettings, ConfigError> {
    let mut interfaces = Vec::new();
    for name in f.interfaces {
        let span = name.span();
        let name = name.into_inner();
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
            return Err(loc.error(
                span,
                format!("`{name}` is not an interface name (1-15 characters, no '/')"),
            ));
        }
        interfaces.push(name);
    }
    let mode = match f.mode {
        None => AttachMode::Auto,
        Some(m) => match m.get_ref().as_str() {
            "auto" => AttachMode::Auto,
            "native" => AttachMode::Native,
            "skb" => AttachMode::Skb,
            other => {
                return Err(loc.error(
                    m.span(),
                    format!("unknown mode `{other}`: expected \"auto\", \"native\" or \"skb\""),
                ));
            }
        },
    };
    let pin_dir = match f.pin_dir {
        None => PathBuf::from(proxy_common::pin::PIN_DIR),
        Some(p) => {
            let dir = PathBuf::from(p.get_ref());
            if !dir.is_absolute() || !dir.starts_with("/sys/fs/bpf") {
                return Err(loc.error(
                    p.span(),
                    "pin_dir must be an absolute path under /sys/fs/bpf",
                ));
            }
            dir
        }
    };
    let on_exit = match f.on_exit {
        None => OnExit::Keep,
        Some(m) => match m.get_ref().as_str() {
            "keep" => OnExit::Keep,
            "detach" => OnExit::Detach,
            other => {
                return Err(loc.error(
                    m.span(),
                    format!("on_exit `{other}`: expected \"keep\" or \"detach\""),
                ));
            }
        },
    };
    let pass_unparsed = match f.unparsed {
        None => false,
        Some(u) => match u.get_ref().as_str() {
            "drop" => false,
            "pass" => true,
            other => {
                return Err(loc.error(
                    u.span(),
                    format!("unparsed `{other}`: expected \"drop\" or \"pass\""),
                ));
            }
        },
    };
    let ipv6_prefix = match f.ipv6_prefix {
        None => crate::source::DEFAULT_IPV6_PREFIX,
        Some(p) => int_in(loc, &p, 1, 128, "ipv6_prefix")? as u8,
    };
    let mut maps = MapSizes::default();
    if let Some(m) = f.maps {
        let size =
            |v: Option<Spanned<i64>>, default: u32, what: &str| -> Result<u32, ConfigError> {
                v.map_or(Ok(default), |v| {
                    int_in(loc, &v, 1, MAX_MAP_ENTRIES, what).map(|n| n as u32)
                })
            };
        maps = MapSizes {
            sources: size(m.sources, maps.sources, "maps.sources")?,
            bans: size(m.bans, maps.bans, "maps.bans")?,
            allow: size(m.allow, maps.allow, "maps.allow")?,
            block_ranges: size(m.block_ranges, maps.block_ranges, "maps.block_ranges")?,
            block_addrs: size(m.block_addrs, maps.block_addrs, "maps.block_addrs")?,
            autobans: 0,
        };
        maps.autobans = match m.autobans {
            None => MapSizes::default_autobans(maps.bans),
            // At least one ban is always the operator's.
            Some(v) => int_in(loc, &v, 0, i64::from(maps.bans) - 1, "maps.autobans")? as u32,
        };
    }
    Ok(FilterSettings {
        enabled: f.enabled.unwrap_or(true),
        interfaces,
        mode,
        pin_dir,
        on_exit,
        allow: cidrs(loc, f.allow)?,
        block: cidrs(loc, f.block)?,
        pps: f.pps.map(|l| limit(loc, l, "pps")).transpose()?,
        syn: f.syn.map(|l| limit(loc, l, "syn")).transpose()?,
        ipv6_prefix,
        track_sources: f.track_sources.unwrap_or(true),
        pass_unparsed,
        maps,
        syn_cookies: syn_cookies::syn_cookies(loc, f.syn_cookies)?,
    })
}

fn cidrs(loc: &Locator, list: Vec<Spanned<String>>) -> Result<Vec<Cidr>, ConfigError> {
    list.into_iter()
        .map(|s| {
            s.get_ref()
                .parse::<Cidr>()
                .map_err(|e| loc.error(s.span(), e.to_string()))
        })
        .collect()
}

fn limit(loc: &Locator, l: Spanned<FileRate>, what: &str) -> Result<RateLimit, ConfigError> {
    let l = l.into_inner();
    let rate = int_in(
        loc,
        &l.rate,
        1,
        1_000_000_000,
        &format!("{what}.rate (per second)"),
    )? as u64;
    let burst = l
        .burst
        .map(|b| int_in(loc, &b, 1, 1_000_000_000, &format!("{what}.burst")))
        .transpose()?;
    Ok(RateLimit::new(rate, burst.map(|b| b as u64)))
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
