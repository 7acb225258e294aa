//! What the CLI and the daemon say to each other over the control socket:
//! one JSON object per line each way, a [`Request`] and its [`Reply`].

use serde::{Deserialize, Serialize};

use crate::{cidr::Cidr, runtime::ListName};

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
    /// L7 counters: requests by status class per route, upstream servers,
    /// and the userspace gate's decisions when it enforces.
    Stats,
    /// Start `binary` with the same configuration; once it serves, this
    /// daemon drains and exits.
    Upgrade {
        binary: std::path::PathBuf,
    },
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
}

/// One server of `upstream list`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerView {
    pub group: String,
    pub addr: String,
    pub weight: u32,
    /// "up", "down" (failed or health checks) or "drained".
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
    /// The view of server `b` of `group` at `now`.
    pub fn of(
        group: &str,
        b: &crate::upstream::Backend,
        switched_to: Option<String>,
        now: tokio::time::Instant,
    ) -> ServerView {
        use std::sync::atomic::Ordering::Relaxed;
        ServerView {
            group: group.to_string(),
            addr: b.addr.to_string(),
            weight: b.weight(),
            state: b.state(now).into(),
            in_flight: b.active(),
            requests: b.requests.load(Relaxed),
            failures: b.failures.load(Relaxed),
            idle_connections: b.pool.idle(),
            switched_to,
        }
    }
}
