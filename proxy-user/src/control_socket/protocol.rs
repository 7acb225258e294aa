//! What the CLI and the daemon say to each other over the control socket:
//! one JSON object per line each way, a [`Request`] and its [`Reply`].

use serde::{Deserialize, Serialize};

use crate::{cidr::Cidr, state_file::ListName};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Re-read and apply the configuration file.
    Reload,
    /// Add a network to a list (a single blocked address becomes a ban).
    ListAdd {
        list: ListName,
        cidr: Cidr,
        ttl_secs: Option<u64>,
        reason: Option<String>,
        /// Kept on this host only: not shared with the fleet.
        #[serde(default)]
        local: bool,
    },
    ListDel {
        list: ListName,
        cidr: Cidr,
    },
    ListShow {
        list: ListName,
    },
    UpstreamList,
    /// `server` is `ADDR` or `GROUP/ADDR`.
    UpstreamDrain {
        server: String,
        drained: bool,
    },
    UpstreamWeight {
        server: String,
        weight: u32,
    },
    /// Send `group`'s traffic to `to`; `None` switches it back.
    UpstreamSwitch {
        group: String,
        to: Option<String>,
    },
    LimitShow,
    /// `name`: `pps`, `syn` or a zone; `rate: None` turns a kernel limit off.
    LimitSet {
        name: String,
        rate: Option<String>,
        burst: Option<u64>,
    },
    LimitReset {
        name: String,
    },
    IpShow {
        addr: std::net::IpAddr,
    },
    /// The log level of the daemon and of its XDP program: `level` sets it,
    /// `reset` returns to RUST_LOG or `[log] level`, neither shows it.
    LogLevel {
        #[serde(default)]
        level: Option<crate::logging::Level>,
        #[serde(default)]
        reset: bool,
    },
    /// The maintenance switch: `on` sets it, `None` shows it.
    Maintenance {
        #[serde(default)]
        on: Option<bool>,
    },
    /// L7 counters: requests by status class per route, upstream servers,
    /// and the userspace gate's decisions when it enforces.
    Stats,
    /// The fleet: this host, Redis's health, lag and every host's last heartbeat.
    FleetStatus,
    /// Start `binary` with the same configuration; once it serves, this
    /// daemon drains and exits.
    Upgrade {
        binary: std::path::PathBuf,
    },
}

/// Longest `--ttl` (and any ban or list entry's lifetime): 365 days.
pub const MAX_TTL_SECS: u64 = crate::config::units::YEAR.as_secs();
/// Largest burst of a kernel limit (`pps`, `syn`), as in `[filter]`.
pub const MAX_KERNEL_BURST: u64 = 1_000_000_000;
/// Largest burst of a `[limit.NAME]` zone, as in the configuration.
pub const MAX_ZONE_BURST: u64 = 1_000_000;

impl Request {
    /// Refuses values out of range before anything acts on them: the CLI
    /// checks them too, but it is not the only possible client of the socket.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Request::ListAdd {
                ttl_secs: Some(t), ..
            } if *t > MAX_TTL_SECS => {
                Err(format!("ttl {t}s: the maximum is {MAX_TTL_SECS}s (365d)"))
            }
            Request::ListAdd {
                ttl_secs: Some(0), ..
            } => Err("ttl 0s: expected at least 1s (or no ttl for a permanent entry)".into()),
            Request::LimitSet { name, burst, .. } => check_burst(name, *burst),
            Request::LogLevel {
                level: Some(_),
                reset: true,
            } => Err("log level: a level or reset, not both".into()),
            _ => Ok(()),
        }
    }
}

/// A burst for limit `name` (`pps`, `syn` or a zone) within its maximum.
pub fn check_burst(name: &str, burst: Option<u64>) -> Result<(), String> {
    let max = if name == "pps" || name == "syn" {
        MAX_KERNEL_BURST
    } else {
        MAX_ZONE_BURST
    };
    match burst {
        Some(b) if b > max => Err(format!("burst {b}: the maximum for {name} is {max}")),
        _ => Ok(()),
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Reply {
    pub fn ok(data: serde_json::Value) -> Reply {
        Reply {
            ok: true,
            error: None,
            data,
        }
    }

    pub fn error(message: impl std::fmt::Display) -> Reply {
        Reply {
            ok: false,
            error: Some(message.to_string()),
            data: serde_json::Value::Null,
        }
    }
}

/// One entry of `block list` / `allow list`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListEntryView {
    pub cidr: Cidr,
    /// "range", "address" (a single address on the list) or "ban".
    pub kind: String,
    /// "config", "cli" or "auto-ban".
    pub origin: String,
    pub reason: Option<String>,
    /// Seconds left; `None` for no expiry.
    pub expires_in: Option<u64>,
    /// The fleet host it came from, when not this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// One server of `upstream list`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerView {
    pub group: String,
    pub addr: String,
    pub weight: u32,
    /// A standby server: used only while no primary of its group is up.
    #[serde(default)]
    pub backup: bool,
    /// "up", "down" (failed or health checks), "drained", or
    /// "unresolved" (a name with no address now).
    pub state: String,
    pub in_flight: usize,
    pub requests: u64,
    pub failures: u64,
    pub idle_connections: usize,
    /// Where this group's traffic goes instead, if switched.
    pub switched_to: Option<String>,
}

/// One limit of `limit show`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LimitView {
    pub name: String,
    /// "kernel" or "l7".
    pub tier: String,
    /// `None`: no limit.
    pub rate: Option<String>,
    pub burst: Option<u64>,
    /// "config" or "cli".
    pub source: String,
}

impl ServerView {
    /// A server written as a name that has no address now.
    pub fn unresolved(
        group: &str,
        addr: String,
        weight: u32,
        backup: bool,
        switched_to: Option<String>,
    ) -> ServerView {
        ServerView {
            group: group.to_string(),
            addr,
            weight,
            backup,
            state: "unresolved".into(),
            in_flight: 0,
            requests: 0,
            failures: 0,
            idle_connections: 0,
            switched_to,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(ttl_secs: Option<u64>) -> Request {
        Request::ListAdd {
            list: ListName::Block,
            cidr: "203.0.113.7".parse().unwrap(),
            ttl_secs,
            reason: None,
            local: false,
        }
    }

    fn set(name: &str, burst: u64) -> Request {
        Request::LimitSet {
            name: name.into(),
            rate: Some("10".into()),
            burst: Some(burst),
        }
    }

    /// Issue 13, item 9: the daemon refuses what the CLI would, whoever asks.
    #[test]
    fn out_of_range_values_are_refused() {
        assert!(add(None).check().is_ok());
        assert!(add(Some(MAX_TTL_SECS)).check().is_ok());
        let e = add(Some(u64::MAX)).check().unwrap_err();
        assert!(e.contains("the maximum is 31536000s"), "{e}");
        assert!(add(Some(MAX_TTL_SECS + 1)).check().is_err());
        assert!(add(Some(0)).check().is_err());
        assert!(set("pps", MAX_KERNEL_BURST).check().is_ok());
        assert!(set("syn", u64::MAX).check().is_err());
        assert!(set("api", MAX_ZONE_BURST).check().is_ok());
        assert!(set("api", MAX_ZONE_BURST + 1).check().is_err());
        // As it arrives on the socket.
        let wire = r#"{"op":"list_add","list":"block","cidr":"203.0.113.7","ttl_secs":18446744073709551615,"reason":null}"#;
        let r: Request = serde_json::from_str(wire).unwrap();
        assert!(r.check().is_err());
    }

    #[test]
    fn log_level_requests_name_a_known_level() {
        let r: Request = serde_json::from_str(r#"{"op":"log_level","level":"warn"}"#).unwrap();
        assert_eq!(
            r,
            Request::LogLevel {
                level: Some(crate::logging::Level::Warn),
                reset: false
            }
        );
        assert!(r.check().is_ok());
        let show: Request = serde_json::from_str(r#"{"op":"log_level"}"#).unwrap();
        assert!(matches!(
            show,
            Request::LogLevel {
                level: None,
                reset: false
            }
        ));
        let e = serde_json::from_str::<Request>(r#"{"op":"log_level","level":"loud"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant `loud`"), "{e}");
        let both = Request::LogLevel {
            level: Some(crate::logging::Level::Off),
            reset: true,
        };
        assert!(both.check().is_err());
    }
}
