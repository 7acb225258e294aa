//! `[upstream.NAME]`: a group of backend servers and how to use them.

use std::time::Duration;

use toml::Spanned;

use super::target::{Target, TargetError};
use super::{
    ConfigError,
    error::Locator,
    file::{FileServer, FileUpstream},
    int_in, units,
};

#[derive(Clone, Debug, PartialEq)]
pub struct Upstream {
    pub name: String,
    pub servers: Vec<Server>,
    pub balance: Balance,
    /// Failures within `fail_timeout` that take a server out for `fail_timeout` (nginx `max_fails`).
    pub max_fails: u32,
    pub fail_timeout: Duration,
    /// Idle keep-alive connections kept per server.
    pub keepalive: usize,
    pub connect_timeout: Duration,
    /// Time allowed from sending the (fully buffered) request to the
    /// response head; 504 after it.
    pub read_timeout: Duration,
    /// A write of the request to the server that makes no progress for
    /// this long fails the attempt (504; nginx `proxy_send_timeout`).
    pub send_timeout: Duration,
    /// Further servers tried after a connect failure (or, for idempotent
    /// requests, a 502/503/504).
    pub retries: u32,
    pub health_check: Option<HealthCheck>,
    /// Names are re-resolved this often instead of on their records' TTL
    /// (nginx `resolver ... valid=`).
    pub resolve_interval: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    pub addr: Address,
    pub weight: u32,
    /// Takes requests only while no primary (non-backup) server of the
    /// group is available (nginx `server ... backup`).
    pub backup: bool,
}

/// How a server is written: an address or socket, or a name resolved
/// through DNS (`/etc/resolv.conf`, `/etc/hosts`) and re-resolved while
/// the daemon runs (see `upstream::resolve`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    Fixed(Target),
    Name { host: String, port: u16 },
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Fixed(t) => t.fmt(f),
            Address::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl Address {
    /// `unix:PATH`, `IP:PORT`, or `HOST:PORT` with a DNS name.
    pub fn parse(s: &str) -> Result<Address, String> {
        match Target::parse(s) {
            Ok(t) => Ok(Address::Fixed(t)),
            Err(TargetError::Invalid(_)) => name(s).ok_or_else(|| {
                format!(
                    "`{s}` is not an address:port, host:port or unix:PATH \
                         (expected e.g. \"127.0.0.1:8001\", \"app:8000\" or \"unix:/run/app.sock\")"
                )
            }),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// `HOST:PORT` with a DNS name: labels of letters, digits, `-` and `_`
/// (as Docker Compose service names have), the last one not all digits
/// (`300.1.2.3` is a bad address, not a name), a port from 1.
fn name(s: &str) -> Option<Address> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    let host = host.strip_suffix('.').unwrap_or(host);
    let labels_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    let last_numeric = host
        .rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
    (labels_ok && !last_numeric).then(|| Address::Name {
        host: host.to_ascii_lowercase(),
        port,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Balance {
    LeastConn,
    RoundRobin,
    RandomTwo,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HealthCheck {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive failures that mark a server down.
    pub fails: u32,
    /// Consecutive successes that mark it up again.
    pub passes: u32,
    /// Expected status; `None` accepts any 2xx or 3xx.
    pub status: Option<u16>,
}

/// `{ addr = "...", weight = N, backup = true }`: address, weight, backup.
fn server_table(t: &toml::Table) -> Result<(String, i64, bool), String> {
    if let Some(k) = t
        .keys()
        .find(|k| !["addr", "weight", "backup"].contains(&k.as_str()))
    {
        return Err(format!(
            "unknown key `{k}` in a server: expected addr, weight or backup"
        ));
    }
    let addr = match t.get("addr") {
        Some(toml::Value::String(a)) => a.clone(),
        Some(_) => return Err("a server's addr is a string, e.g. \"127.0.0.1:8001\"".into()),
        None => return Err("a server written as a table needs addr".into()),
    };
    let weight = match t.get("weight") {
        None => 1,
        Some(toml::Value::Integer(w)) => *w,
        Some(_) => return Err("weight is an integer from 1 to 1000".into()),
    };
    let backup = match t.get("backup") {
        None => false,
        Some(toml::Value::Boolean(b)) => *b,
        Some(_) => return Err("backup is true or false".into()),
    };
    Ok((addr, weight, backup))
}

fn dur(
    loc: &Locator,
    v: &Option<Spanned<String>>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        // Every upstream timeout and interval: at most a day.
        Some(d) => {
            units::duration_at_most(d.get_ref(), units::DAY).map_err(|e| loc.error(d.span(), e.0))
        }
    }
}

pub(super) fn upstream(
    loc: &Locator,
    name: &str,
    u: Spanned<FileUpstream>,
) -> Result<Upstream, ConfigError> {
    let span = u.span();
    let u = u.into_inner();
    if u.servers.is_empty() {
        return Err(loc.error(span, format!("upstream `{name}` has no servers")));
    }
    let mut servers = Vec::new();
    for s in u.servers {
        let sspan = s.span();
        let (addr, weight, backup) = match s.into_inner() {
            FileServer::Addr(a) => (a, 1, false),
            FileServer::Table(t) => server_table(&t).map_err(|e| loc.error(sspan.clone(), e))?,
        };
        let addr = Address::parse(&addr).map_err(|e| loc.error(sspan.clone(), e))?;
        if !(1..=1000).contains(&weight) {
            return Err(loc.error(
                sspan,
                format!("weight must be between 1 and 1000, got {weight}"),
            ));
        }
        servers.push(Server {
            addr,
            weight: weight as u32,
            backup,
        });
    }
    if servers.iter().all(|s| s.backup) {
        return Err(loc.error(
            span,
            format!(
                "every server of upstream `{name}` is a backup: backups only stand in \
                 for primary servers, so at least one must not be (nginx refuses this too)"
            ),
        ));
    }
    let balance = match u.balance.as_ref().map(|b| b.get_ref().as_str()) {
        None | Some("least_conn") => Balance::LeastConn,
        Some("round_robin") => Balance::RoundRobin,
        Some("random_two") => Balance::RandomTwo,
        Some(other) => {
            return Err(loc.error(
                u.balance.as_ref().unwrap().span(),
                format!("unknown balance `{other}`: expected \"least_conn\", \"round_robin\" or \"random_two\""),
            ));
        }
    };
    let health_check = match u.health_check {
        None => None,
        Some(h) => {
            let h = h.into_inner();
            Some(HealthCheck {
                path: h.path.unwrap_or_else(|| "/".into()),
                interval: dur(loc, &h.interval, Duration::from_secs(5))?,
                timeout: dur(loc, &h.timeout, Duration::from_secs(2))?,
                fails: h
                    .fails
                    .map_or(Ok(3), |f| int_in(loc, &f, 1, 100, "health_check.fails"))?
                    as u32,
                passes: h
                    .passes
                    .map_or(Ok(2), |p| int_in(loc, &p, 1, 100, "health_check.passes"))?
                    as u32,
                status: h
                    .status
                    .map(|s| int_in(loc, &s, 100, 599, "health_check.status"))
                    .transpose()?
                    .map(|s| s as u16),
            })
        }
    };
    let n = servers.len() as i64;
    Ok(Upstream {
        name: name.to_string(),
        balance,
        max_fails: u
            .max_fails
            .map_or(Ok(1), |m| int_in(loc, &m, 0, 1000, "max_fails"))? as u32,
        fail_timeout: dur(loc, &u.fail_timeout, Duration::from_secs(10))?,
        keepalive: u
            .keepalive
            .map_or(Ok(32), |k| int_in(loc, &k, 0, 100_000, "keepalive"))?
            as usize,
        connect_timeout: dur(loc, &u.connect_timeout, Duration::from_secs(5))?,
        read_timeout: dur(loc, &u.read_timeout, Duration::from_secs(60))?,
        send_timeout: dur(loc, &u.send_timeout, Duration::from_secs(60))?,
        retries: u
            .retries
            .map_or(Ok(n - 1), |r| int_in(loc, &r, 0, 100, "retries"))? as u32,
        health_check,
        resolve_interval: u
            .resolve_interval
            .as_ref()
            .map(|d| {
                units::duration_at_most(d.get_ref(), units::DAY)
                    .map_err(|e| loc.error(d.span(), e.0))
                    .and_then(|v| {
                        if v < Duration::from_secs(1) {
                            Err(loc.error(d.span(), "resolve_interval must be at least 1s"))
                        } else {
                            Ok(v)
                        }
                    })
            })
            .transpose()?,
        servers,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn servers(list: &str) -> Result<Vec<Server>, String> {
        let text = format!(
            "[[listener]]\nbind = \"127.0.0.1:0\"\n\n[upstream.app]\nservers = {list}\n\n\
             [[route]]\nupstream = \"app\"\n"
        );
        Config::parse(&text, Path::new("rampart.toml"))
            .map(|c| c.upstreams["app"].servers.clone())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn unix_socket_servers_beside_tcp_ones() {
        let s =
            servers(r#"["unix:/run/app.sock", { addr = "127.0.0.1:8001", weight = 2 }]"#).unwrap();
        assert_eq!(s[0].addr.to_string(), "unix:/run/app.sock");
        assert!(matches!(s[0].addr, Address::Fixed(Target::Unix(_))));
        assert_eq!(s[1].addr.to_string(), "127.0.0.1:8001");
        assert_eq!(s[1].weight, 2);
    }

    #[test]
    fn backup_servers_and_a_group_of_only_backups() {
        let s = servers(
            r#"["127.0.0.1:8001", { addr = "127.0.0.1:8002", backup = true }, { addr = "127.0.0.1:8003", weight = 3 }]"#,
        )
        .unwrap();
        assert_eq!(
            s.iter().map(|s| (s.weight, s.backup)).collect::<Vec<_>>(),
            [(1, false), (1, true), (3, false)]
        );
        let e = servers(r#"[{ addr = "127.0.0.1:8002", backup = true }]"#).unwrap_err();
        assert!(
            e.starts_with("rampart.toml:4:1: every server of upstream `app` is a backup"),
            "{e}"
        );
        let e =
            servers(r#"["127.0.0.1:1", { addr = "127.0.0.1:8002", backup = "yes" }]"#).unwrap_err();
        assert_eq!(e, "rampart.toml:5:27: backup is true or false");
        let e = servers(r#"[{ addr = "127.0.0.1:8002", bakup = true }]"#).unwrap_err();
        assert_eq!(
            e,
            "rampart.toml:5:12: unknown key `bakup` in a server: expected addr, weight or backup"
        );
    }

    #[test]
    fn bad_unix_sockets_are_refused_at_their_place() {
        assert_eq!(
            servers(r#"["unix:app.sock"]"#).unwrap_err(),
            "rampart.toml:5:12: `unix:app.sock`: a Unix socket path must be absolute (e.g. \"unix:/run/app.sock\")"
        );
        let long = format!("unix:/{}", "s".repeat(120));
        assert_eq!(
            servers(&format!(r#"["127.0.0.1:1", "{long}"]"#)).unwrap_err(),
            format!("rampart.toml:5:27: `{long}`: a Unix socket path is at most 107 bytes")
        );
    }

    #[test]
    fn names_resolve_later_and_bad_ones_are_refused() {
        let s =
            servers(r#"["app:8000", "db.internal.:5432", "my_svc-1:80", "LocalHost:1"]"#).unwrap();
        let names: Vec<String> = s.iter().map(|s| s.addr.to_string()).collect();
        assert_eq!(
            names,
            ["app:8000", "db.internal:5432", "my_svc-1:80", "localhost:1"]
        );
        assert!(matches!(&s[0].addr, Address::Name { host, port: 8000 } if host == "app"));
        for bad in [
            "app",
            "app:0",
            "app:70000",
            "300.1.2.3:80",
            "-app:80",
            "a b:80",
            "app..x:80",
        ] {
            let e = servers(&format!(r#"["{bad}"]"#)).unwrap_err();
            assert!(
                e.starts_with(&format!(
                    "rampart.toml:5:12: `{bad}` is not an address:port, host:port or unix:PATH"
                )),
                "{bad}: {e}"
            );
        }
    }
}
