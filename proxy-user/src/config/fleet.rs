//! `[fleet]`: this host's membership of a fleet of rampart hosts that share
//! block/allow entries and bans through Redis (docs/fleet.md). Redis is
//! never on the packet or request path: the fleet task publishes and applies
//! entries beside the main loop, and everything keeps enforcing without it.

use std::{path::PathBuf, time::Duration};

use super::{ConfigError, error::Locator, file::FileFleet, fleet_tls::FleetTls};

/// Redis's default port, when `redis` names none.
pub const DEFAULT_PORT: u16 = 6379;
/// Entries the shared log keeps (`XADD MAXLEN ~`), by default.
pub const DEFAULT_LOG_MAX: u64 = 100_000;
/// How often fleet-wide limits' counts are exchanged, by default.
pub const DEFAULT_EXCHANGE: Duration = Duration::from_millis(200);
/// Sources one exchange reports per limit, by default.
pub const DEFAULT_EXCHANGE_SOURCES: usize = 2_000;
/// Longest fleet name and host id.
pub const MAX_NAME: usize = 64;

#[derive(Clone, PartialEq, Eq)]
pub struct FleetSettings {
    /// Redis's host name or address, and port.
    pub host: String,
    pub port: u16,
    /// ACL user (`AUTH user password`); `None` authenticates as `default`.
    pub user: Option<String>,
    /// Read from `password_file` when the configuration is loaded.
    pub password: Option<Secret>,
    /// Which fleet: every key is under `rampart:{name}:`.
    pub name: String,
    /// This host's id in the fleet (default: the host name).
    pub host_id: String,
    /// How many entries the shared log keeps (approximate trim).
    pub log_max: u64,
    /// A command that takes longer fails (Redis is then "slow" and the
    /// host keeps enforcing what it has).
    pub timeout: Duration,
    /// How often the per-source counts of `fleet = true` limits are
    /// exchanged (docs/fleet.md, fleet-wide limits).
    pub exchange: Duration,
    /// Most sources one exchange reports per limit (the busiest first).
    pub exchange_sources: usize,
    /// `Some`: TLS to Redis (`rediss://`), with these roots.
    pub tls: Option<FleetTls>,
}

impl std::fmt::Debug for FleetSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetSettings")
            .field("redis", &format_args!("{}:{}", self.host, self.port))
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "(set)"))
            .field("name", &self.name)
            .field("host_id", &self.host_id)
            .field("log_max", &self.log_max)
            .field("exchange", &self.exchange)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// A password: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

pub(super) fn fleet(
    loc: &Locator,
    base: &std::path::Path,
    f: FileFleet,
) -> Result<FleetSettings, ConfigError> {
    let redis_err = |m| loc.error(f.redis.span(), format!("redis: {m}"));
    let (rediss, addr) = super::fleet_tls::scheme(f.redis.get_ref()).map_err(redis_err)?;
    let (host, port) = redis_addr(addr).map_err(redis_err)?;
    let tls = super::fleet_tls::fleet_tls(loc, base, rediss, f.tls)?;
    let user = match f.user {
        Some(u) if !is_name(u.get_ref()) => {
            return Err(loc.error(
                u.span(),
                "user: expected an ACL user name (1-64 of A-Z a-z 0-9 . _ -)",
            ));
        }
        u => u.map(|u| u.into_inner()),
    };
    let password = match f.password_file {
        None => None,
        Some(p) => {
            let path: PathBuf = base.join(p.get_ref());
            let text = std::fs::read_to_string(&path).map_err(|e| {
                loc.error(
                    p.span(),
                    format!("password_file: cannot read {}: {e}", path.display()),
                )
            })?;
            let pw = text.trim_end_matches(['\n', '\r']).to_string();
            if pw.is_empty() || pw.contains(['\n', '\r']) {
                return Err(loc.error(
                    p.span(),
                    format!(
                        "password_file: {} must hold one non-empty line",
                        path.display()
                    ),
                ));
            }
            Some(Secret(pw))
        }
    };
    if !is_name(f.name.get_ref()) {
        return Err(loc.error(
            f.name.span(),
            "name: expected a fleet name (1-64 of A-Z a-z 0-9 . _ -)",
        ));
    }
    let host_id = match f.host {
        Some(h) if !is_name(h.get_ref()) => {
            return Err(loc.error(
                h.span(),
                "host: expected a host id (1-64 of A-Z a-z 0-9 . _ -)",
            ));
        }
        Some(h) => h.into_inner(),
        None => hostname().ok_or_else(|| {
            loc.error(
                f.name.span(),
                "host: not set and the host name is not a usable id; set `host = \"...\"`",
            )
        })?,
    };
    let log_max = match f.log_max {
        None => DEFAULT_LOG_MAX,
        Some(v) => match u64::try_from(*v.get_ref()) {
            Ok(n) if (1_000..=10_000_000).contains(&n) => n,
            _ => {
                return Err(loc.error(
                    v.span(),
                    "log_max: expected an entry count from 1000 to 10000000",
                ));
            }
        },
    };
    let timeout = match f.timeout {
        None => Duration::from_secs(2),
        Some(t) => super::units::duration(t.get_ref())
            .ok()
            .filter(|d| (Duration::from_millis(100)..=Duration::from_secs(60)).contains(d))
            .ok_or_else(|| loc.error(t.span(), "timeout: expected a duration from 100ms to 60s"))?,
    };
    let exchange = match f.exchange {
        None => DEFAULT_EXCHANGE,
        Some(t) => super::units::duration(t.get_ref())
            .ok()
            .filter(|d| (Duration::from_millis(50)..=Duration::from_secs(1)).contains(d))
            .ok_or_else(|| loc.error(t.span(), "exchange: expected a duration from 50ms to 1s"))?,
    };
    let exchange_sources = match f.exchange_sources {
        None => DEFAULT_EXCHANGE_SOURCES,
        Some(v) => match usize::try_from(*v.get_ref()) {
            Ok(n) if (16..=100_000).contains(&n) => n,
            _ => {
                return Err(loc.error(
                    v.span(),
                    "exchange_sources: expected a source count from 16 to 100000",
                ));
            }
        },
    };
    Ok(FleetSettings {
        host,
        port,
        user,
        password,
        name: f.name.into_inner(),
        host_id,
        log_max,
        timeout,
        exchange,
        exchange_sources,
        tls,
    })
}

/// `HOST[:PORT]` or `[V6]:PORT`.
fn redis_addr(s: &str) -> Result<(String, u16), String> {
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Ok((sa.ip().to_string(), sa.port()));
    }
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok((ip.to_string(), DEFAULT_PORT));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("`{p}` is not a port"))?,
        ),
        None => (s, DEFAULT_PORT),
    };
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !ok {
        return Err(format!(
            "`{s}` is not HOST[:PORT] (Unix sockets are not supported)"
        ));
    }
    Ok((host.to_string(), port))
}

/// A fleet name, host id or ACL user: it goes into Redis keys and logs.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// This machine's host name, if it is a usable id.
fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..end]).ok()?.to_string();
    is_name(&name).then_some(name)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_fleet_section_is_validated_with_its_position() {
        let c = parse("[fleet]\nredis = \"10.0.0.5\"\nname = \"edge\"\nhost = \"a-1\"\n").unwrap();
        let f = c.fleet.unwrap();
        assert_eq!((f.host.as_str(), f.port), ("10.0.0.5", 6379));
        assert_eq!((f.name.as_str(), f.host_id.as_str()), ("edge", "a-1"));
        let c = parse("[fleet]\nredis = \"redis.example:6380\"\nname = \"edge\"\n").unwrap();
        let f = c.fleet.unwrap();
        assert_eq!((f.host.as_str(), f.port), ("redis.example", 6380));
        assert!(!f.host_id.is_empty(), "the host name by default");
        let e = parse("[fleet]\nredis = \"a:b:c\"\nname = \"edge\"\n").unwrap_err();
        assert!(e.starts_with("t.toml:2:9: redis:"), "{e}");
        let e = parse("[fleet]\nredis = \"r\"\nname = \"no spaces\"\n").unwrap_err();
        assert!(e.starts_with("t.toml:3:8: name:"), "{e}");
        let e =
            parse("[fleet]\nredis = \"r\"\nname = \"e\"\npassword_file = \"/nonexistent/pw\"\n")
                .unwrap_err();
        assert!(
            e.starts_with("t.toml:4:17: password_file: cannot read"),
            "{e}"
        );
        let e = parse("[fleet]\nredis = \"r\"\nname = \"e\"\ntls = true\n").unwrap_err();
        assert!(e.starts_with("t.toml:4:7: invalid type"), "{e}");
        let e = parse("[fleet]\nredis = \"r\"\nname = \"e\"\nlog_max = 5\n").unwrap_err();
        assert!(e.starts_with("t.toml:4:11: log_max"), "{e}");
    }

    #[test]
    fn the_password_is_read_and_never_printed() {
        let dir = std::env::temp_dir().join(format!("rampart-fleet-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pw"), "s3cret\n").unwrap();
        let c = Config::parse(
            "[fleet]\nredis = \"r\"\nname = \"e\"\nuser = \"rampart\"\npassword_file = \"pw\"\n",
            &dir.join("c.toml"),
        )
        .unwrap();
        let f = c.fleet.unwrap();
        assert_eq!(f.password.as_ref().unwrap().expose(), "s3cret");
        assert!(!format!("{f:?}").contains("s3cret"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fleet_wide_limits_need_a_fleet_and_a_sane_exchange() {
        let zone = "[limit.api]\nrate = \"10r/s\"\nfleet = true\n";
        let e = parse(zone).unwrap_err();
        assert!(
            e.starts_with("t.toml:3:9: fleet: a fleet-wide limit needs a [fleet]"),
            "{e}"
        );
        let fleet = "[fleet]\nredis = \"r\"\nname = \"e\"\n";
        let c = parse(&format!("{fleet}{zone}")).unwrap();
        assert!(c.limits["api"].fleet);
        let f = c.fleet.unwrap();
        assert_eq!(f.exchange, super::DEFAULT_EXCHANGE);
        assert_eq!(f.exchange_sources, super::DEFAULT_EXCHANGE_SOURCES);
        let c = parse(&format!(
            "{fleet}exchange = \"100ms\"\nexchange_sources = 64\n"
        ))
        .unwrap();
        let f = c.fleet.unwrap();
        assert_eq!((f.exchange.as_millis(), f.exchange_sources), (100, 64));
        let e = parse(&format!("{fleet}exchange = \"5s\"\n")).unwrap_err();
        assert!(e.starts_with("t.toml:4:12: exchange: expected"), "{e}");
        let e = parse(&format!("{fleet}exchange_sources = 1\n")).unwrap_err();
        assert!(e.starts_with("t.toml:4:20: exchange_sources"), "{e}");
    }

    #[test]
    fn a_fleet_kernel_threshold_needs_a_fleet_and_sane_values() {
        let filter = "[filter]\nfleet_pps = { count = 50000, within = \"10s\", ban = \"10m\" }\n";
        let e = parse(filter).unwrap_err();
        assert!(
            e.starts_with("t.toml:2:13: fleet_pps: a fleet-wide threshold needs a [fleet]"),
            "{e}"
        );
        let fleet = "[fleet]\nredis = \"r\"\nname = \"e\"\n";
        let c = parse(&format!("{fleet}{filter}")).unwrap();
        let t = c.filter.unwrap().fleet_pps.unwrap();
        assert_eq!(
            (t.count, t.within.as_secs(), t.ban.as_secs()),
            (50_000, 10, 600)
        );
        for (bad, want) in [
            (
                "count = 0, within = \"10s\", ban = \"1m\"",
                "fleet_pps.count",
            ),
            (
                "count = 5, within = \"10ms\", ban = \"1m\"",
                "fleet_pps.within: expected at least 1s",
            ),
            (
                "count = 5, within = \"2d\", ban = \"1m\"",
                "fleet_pps.within",
            ),
            ("count = 5, within = \"1s\"", "missing field `ban`"),
        ] {
            let e = parse(&format!("{fleet}[filter]\nfleet_pps = {{ {bad} }}\n")).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
        let e = parse(&format!("{fleet}{filter}track_sources = false\n")).unwrap_err();
        assert!(e.contains("track_sources = false leaves empty"), "{e}");
    }

    #[test]
    fn fleet_syn_is_read_and_checked_as_fleet_pps_is() {
        let filter = "[filter]\nfleet_syn = { count = 900, within = \"5s\", ban = \"1h\" }\n";
        let e = parse(filter).unwrap_err();
        assert!(
            e.starts_with("t.toml:2:13: fleet_syn: a fleet-wide threshold needs a [fleet]"),
            "{e}"
        );
        let fleet = "[fleet]\nredis = \"r\"\nname = \"e\"\n";
        let f = parse(&format!("{fleet}{filter}")).unwrap().filter.unwrap();
        let t = f.fleet_syn.unwrap();
        assert_eq!(
            (t.count, t.within.as_secs(), t.ban.as_secs(), f.fleet_pps),
            (900, 5, 3600, None)
        );
        let e = parse(&format!(
            "{fleet}[filter]\nfleet_syn = {{ count = 5, within = \"10ms\", ban = \"1m\" }}\n"
        ))
        .unwrap_err();
        assert!(e.contains("fleet_syn.within: expected at least 1s"), "{e}");
        let e = parse(&format!("{fleet}{filter}track_sources = false\n")).unwrap_err();
        assert!(
            e.contains("fleet_syn: counted from the per-source maps"),
            "{e}"
        );
    }
}
