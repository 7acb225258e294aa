//! `[filter]`: the XDP program, where it attaches, what it enforces, and
//! the sizes of its maps, validated into [`FilterSettings`].

use std::{path::PathBuf, time::Duration};

use toml::Spanned;

use super::{
    ConfigError,
    error::Locator,
    file::{FileFilter, FileFleetThreshold, FileRate},
    int_in,
    new_sources::{self, NewSources},
    syn_cookies::{self, SynCookies},
    units,
};
use crate::cidr::Cidr;

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
    /// `[filter.new_sources]`: the budget of sources never seen before
    /// admitted per second, and attack mode.
    pub new_sources: NewSources,
    /// `fleet_pps`: a fleet-wide packet threshold per source (needs
    /// `[fleet]`; docs/fleet.md, "Kernel thresholds").
    pub fleet_pps: Option<FleetThreshold>,
    /// `fleet_syn`: the same for TCP SYNs (connection attempts).
    pub fleet_syn: Option<FleetThreshold>,
}

/// `fleet_pps` / `fleet_syn`: more than `count` packets (SYNs) from one
/// source within `within`, counted over the whole fleet from the XDP
/// maps, ban it for `ban` on every host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FleetThreshold {
    pub count: u64,
    pub within: Duration,
    pub ban: Duration,
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

const MAX_MAP_ENTRIES: i64 = 1 << 24;

pub(super) fn filter(loc: &Locator, f: FileFilter) -> Result<FilterSettings, ConfigError> {
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
    let track_sources = f.track_sources.unwrap_or(true);
    let (pps, syn) = (
        f.pps.map(|l| limit(loc, l, "pps")).transpose()?,
        f.syn.map(|l| limit(loc, l, "syn")).transpose()?,
    );
    for (t, what) in [(&f.fleet_pps, "fleet_pps"), (&f.fleet_syn, "fleet_syn")] {
        if let Some(t) = t
            && !track_sources
            && pps.is_none()
            && syn.is_none()
        {
            // Nothing fills the sources maps the threshold is counted from.
            return Err(loc.error(
                t.span(),
                format!("{what}: counted from the per-source maps, which track_sources = false leaves empty without pps or syn limits"),
            ));
        }
    }
    Ok(FilterSettings {
        enabled: f.enabled.unwrap_or(true),
        interfaces,
        mode,
        pin_dir,
        on_exit,
        allow: cidrs(loc, f.allow)?,
        block: cidrs(loc, f.block)?,
        pps,
        syn,
        ipv6_prefix,
        track_sources,
        pass_unparsed,
        maps,
        syn_cookies: syn_cookies::syn_cookies(loc, f.syn_cookies)?,
        new_sources: new_sources::new_sources(loc, f.new_sources, maps.sources)?,
        fleet_pps: f
            .fleet_pps
            .map(|t| fleet_threshold(loc, t, "fleet_pps"))
            .transpose()?,
        fleet_syn: f
            .fleet_syn
            .map(|t| fleet_threshold(loc, t, "fleet_syn"))
            .transpose()?,
    })
}

fn fleet_threshold(
    loc: &Locator,
    t: Spanned<FileFleetThreshold>,
    key: &str,
) -> Result<FleetThreshold, ConfigError> {
    let t = t.into_inner();
    let dur = |v: &Spanned<String>, max, what: &str| {
        let d = units::duration_at_most(v.get_ref(), max)
            .map_err(|e| loc.error(v.span(), format!("{key}.{what}: {}", e.0)))?;
        if d < Duration::from_secs(1) {
            return Err(loc.error(v.span(), format!("{key}.{what}: expected at least 1s")));
        }
        Ok(d)
    };
    Ok(FleetThreshold {
        count: int_in(loc, &t.count, 1, 1_000_000_000_000, &format!("{key}.count"))? as u64,
        within: dur(&t.within, units::DAY, "within")?,
        ban: dur(&t.ban, units::YEAR, "ban")?,
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
