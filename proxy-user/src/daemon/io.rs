//! What a daemon is given to serve with, apart from its configuration:
//! the sockets it listens on (bound before anything else happens, so a
//! bind error stops the start), the file a reload re-reads, and which
//! tier enforces the lists, bans and connection rate.
//!
//! `rampart run` binds everything the configuration names ([`Io::bind`]);
//! a test binds the same (its listeners on `127.0.0.1:0`) and asks for the
//! userspace gate, which needs no privilege ([`Io::in_process`]).

use std::{net::SocketAddr, path::PathBuf};

use anyhow::{Context, Result};
use log::info;

use super::bind::{BoundStd, bind_std};
use crate::{admin, config::Config};

/// Where the lists, bans and per-source connection rate are enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// As the configuration says: the XDP filter when `[filter]` names
    /// interfaces and it loads and attaches, else the userspace gate.
    Kernel,
    /// The userspace gate at accept time, whatever `[filter]` says: no
    /// privilege needed (in-process tests).
    Userspace,
    /// The XDP filter loaded and its maps kept as the daemon keeps them,
    /// attached to no interface whatever `[filter]` says: packets reach the
    /// program only through BPF_PROG_TEST_RUN (privileged tests of what the
    /// daemon writes into the maps). A filter that cannot load is an error.
    Unattached,
}

/// The daemon's sockets and inputs.
pub struct Io {
    /// The file `reload` re-reads; `None` for a configuration that has none
    /// (the built-in one, or a test's).
    pub config_file: Option<PathBuf>,
    /// Every worker's sockets for every listener, in the configuration's order.
    pub listeners: Vec<Vec<BoundStd>>,
    /// The admin listener, when `[admin] bind` asks for one.
    pub admin: Option<std::net::TcpListener>,
    pub tier: Tier,
}

impl Io {
    /// Everything the configuration names, for `rampart run`.
    pub fn bind(config: &Config, config_file: Option<PathBuf>) -> Result<Io> {
        Ok(Io {
            config_file,
            listeners: bind_workers(config)?,
            admin: bind_admin(config)?,
            tier: Tier::Kernel,
        })
    }

    /// The same sockets, with the userspace gate: a daemon inside a test
    /// process, without privilege.
    pub fn in_process(config: &Config, config_file: Option<PathBuf>) -> Result<Io> {
        Ok(Io {
            tier: Tier::Userspace,
            ..Io::bind(config, config_file)?
        })
    }
}

/// Every worker's sockets for every listener (SO_REUSEPORT): the kernel
/// spreads connections over them and no connection moves between threads.
/// Further workers bind the very addresses the first one got, so a port
/// the kernel chose (`:0`) is one listener.
fn bind_workers(config: &Config) -> Result<Vec<Vec<BoundStd>>> {
    let first = bind_std(config, None)?;
    let addrs: Vec<SocketAddr> = first
        .iter()
        .map(|b| b.socket.local_addr())
        .collect::<std::io::Result<_>>()?;
    for (b, addr) in first.iter().zip(&addrs) {
        info!(
            "listening on {addr}{}",
            if b.tls.is_some() { " (TLS)" } else { "" }
        );
    }
    let mut sets = vec![first];
    for _ in 1..config.http.workers.max(1) {
        sets.push(bind_std(config, Some(&addrs))?);
    }
    Ok(sets)
}

fn bind_admin(config: &Config) -> Result<Option<std::net::TcpListener>> {
    config
        .admin
        .bind
        .map(|addr| {
            admin::bind(addr).with_context(|| {
                format!(
                    "binding the admin listener {addr} (instance `{}`): if another rampart \
                     daemon has it, give each its own `instance` name or [admin] bind",
                    config.instance
                )
            })
        })
        .transpose()
}
