//! Binding every worker's listening sockets before anything is served.

use std::{net::SocketAddr, sync::Arc};

use anyhow::{Context, Result};

use crate::{
    config::{Config, Listener},
    server::{self, Bound, Served},
};

/// A listening socket bound before anything is served, so that a bind error
/// stops the start; it becomes a [`Bound`] inside the worker that serves it.
pub struct BoundStd {
    pub config: Listener,
    pub socket: std::net::TcpListener,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl BoundStd {
    /// Registers the socket with the current runtime, as listener `id`.
    pub fn into_tokio(self, id: u64) -> std::io::Result<Bound> {
        Ok(Bound {
            id,
            socket: tokio::net::TcpListener::from_std(self.socket)?,
            served: Arc::new(Served {
                config: self.config,
                tls: self.tls,
            }),
        })
    }
}

/// Binds every listener of `config`, at `addrs` if given (further workers
/// bind the very addresses the first one got, ports chosen by the kernel included).
pub fn bind_std(config: &Config, addrs: Option<&[SocketAddr]>) -> Result<Vec<BoundStd>> {
    let mut bound = Vec::new();
    for (i, l) in config.listeners.iter().enumerate() {
        let addr = addrs.map_or(l.bind, |a| a[i]);
        let socket = server::bind(addr, l.backlog).with_context(|| format!("binding {addr}"))?;
        let tls = match &l.tls {
            None => None,
            Some(t) => Some(tokio_rustls::TlsAcceptor::from(t.server_config(l.http2)?)),
        };
        bound.push(BoundStd {
            config: l.clone(),
            socket,
            tls,
        });
    }
    Ok(bound)
}

/// Binds every listener of `config` for serving in the current runtime.
pub fn bind_all(config: &Config) -> Result<Vec<Bound>> {
    Ok(bind_std(config, None)?
        .into_iter()
        .enumerate()
        .map(|(i, b)| b.into_tokio(i as u64))
        .collect::<std::io::Result<_>>()?)
}
