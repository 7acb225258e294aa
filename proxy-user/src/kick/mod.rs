//! Kicks: a ban, or a list change that refuses a source, closes that
//! source's open connections too, not only its new ones (issue 13, item 7).
//!
//! Every open connection holds a [`Ticket`]: its place in its worker's
//! [`Registry`], which keeps the worker's connections by client address
//! (an IPv4 address, or an IPv6 address's /64). The daemon publishes each
//! refusal as a [`Kick`] (the networks now refused, minus the allowlist
//! entries that still win) into [`Kicks`], which looks each network up in
//! every registry and marks exactly the connections inside it: a ban of a
//! source costs one lookup per worker plus its matches, and a connection
//! it does not close never hears of it (an escalation storm of thousands
//! of bans a second once woke every connection for every ban: issue 13's
//! review). A network wider than a bucket (a list range, a source under an
//! `ipv6_prefix` shorter than /64) walks the worker's table of buckets.
//!
//! A marked connection closes at once wherever it is: its task waits on
//! [`Ticket::kicked`] beside its work (in-flight requests are dropped, an
//! HTTP/2 connection closes without a GOAWAY: in XDP mode the client's
//! packets are dropped anyway); a connection waiting in the lot (see
//! `server::lot`) is named to the lot's task, which closes its row.
//! Nothing is paid per request: polling [`Ticket::kicked`] is one atomic
//! load until a kick marks something in the registry.
//!
//! What lives where: this file, what a kick is ([`Kick`]) and the set of
//! registries it reaches ([`Kicks`]); `registry`, one worker's
//! connections ([`Registry`]); `book`, the table behind a registry (its
//! buckets of addresses and their chains of slots); `ticket`, a
//! connection's place in a registry ([`Ticket`]) and the wait on it
//! ([`Kicked`]).

mod book;
mod registry;
#[cfg(test)]
mod tests;
mod ticket;

use std::{
    net::IpAddr,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU64, Ordering},
    },
};

pub use registry::Registry;
pub use ticket::{Kicked, Ticket};

use crate::cidr::Cidr;

/// Networks whose open connections close, except addresses in `except`
/// (allowlisted, which wins over bans and the blocklist).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kick {
    pub nets: Vec<Cidr>,
    pub except: Vec<Cidr>,
}

/// Every registry, so that a kick reaches every worker's connections.
#[derive(Debug, Default)]
pub struct Kicks {
    registries: Mutex<Vec<Weak<Registry>>>,
    /// For connections outside a worker's registry (WebSocket tunnels).
    spare: Arc<Registry>,
    /// Connections marked by kicks so far.
    marked: AtomicU64,
}

impl Kicks {
    /// A registry for one worker's connections, reached by every kick from now on.
    pub fn registry(&self) -> Arc<Registry> {
        let registry = Arc::new(Registry::default());
        let mut all = self.registries.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|r| r.strong_count() > 0);
        all.push(Arc::downgrade(&registry));
        registry
    }

    /// Registers a connection from `ip` that has no worker registry at
    /// hand (a WebSocket tunnel, which outlives its request).
    pub fn register(&self, ip: IpAddr) -> Ticket {
        self.spare.register(ip)
    }

    /// Closes the open connections `kick` refuses; how many it marked.
    pub fn kick(&self, kick: Kick) -> usize {
        if kick.nets.is_empty() {
            return 0;
        }
        let registries: Vec<Arc<Registry>> = {
            let all = self.registries.lock().unwrap_or_else(|p| p.into_inner());
            all.iter().filter_map(Weak::upgrade).collect()
        };
        let marked = registries
            .iter()
            .chain(std::iter::once(&self.spare))
            .map(|r| r.kick(&kick))
            .sum();
        self.marked.fetch_add(marked as u64, Ordering::Relaxed);
        marked
    }

    /// Connections marked by kicks so far.
    pub fn marked(&self) -> u64 {
        self.marked.load(Ordering::Relaxed)
    }
}
