//! The daemon's lifecycle, in order: the configuration was validated by the
//! caller; bind the listeners; load and attach the XDP filter; serve; wait
//! for a signal (SIGHUP reloads, SIGINT/SIGTERM stop); drain in-flight
//! requests within the grace period; detach the filter (its pinned maps stay).

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, Result, bail};
use log::{error, info, warn};
use tokio::signal::unix::{SignalKind, signal};

use std::net::SocketAddr;

use crate::{
    config::{Config, Listener},
    filter::{Filter, mode_name},
    http::{Shared, State},
    server::{self, Bound},
};

/// How often expired bans are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A listening socket bound before anything is served, so that a bind error
/// stops the start; it becomes a [`Bound`] inside the worker that serves it.
pub struct BoundStd {
    pub config: Listener,
    pub socket: std::net::TcpListener,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl BoundStd {
    /// Registers the socket with the current runtime.
    pub fn into_tokio(self) -> std::io::Result<Bound> {
        Ok(Bound {
            config: self.config,
            socket: tokio::net::TcpListener::from_std(self.socket)?,
            tls: self.tls,
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
            Some(t) => Some(tokio_rustls::TlsAcceptor::from(crate::tls::server_config(
                t, l.http2,
            )?)),
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
        .map(BoundStd::into_tokio)
        .collect::<std::io::Result<_>>()?)
}

pub async fn run(config: Config, source: Option<PathBuf>) -> Result<()> {
    if config.filter.is_none() && config.listeners.is_empty() {
        bail!("the configuration has neither [filter] nor [[listener]]: nothing to run");
    }
    let mut config = Arc::new(config);
    let workers = config.http.workers.max(1);
    // Every worker gets its own sockets (SO_REUSEPORT): the kernel spreads
    // connections over them and no connection moves between threads.
    let first = bind_std(&config, None)?;
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
    for _ in 1..workers {
        sets.push(bind_std(&config, Some(&addrs))?);
    }
    let mut filter = match &config.filter {
        None => None,
        Some(settings) => {
            let mut f = Filter::load(settings).context("loading the XDP filter")?;
            for iface in &settings.interfaces {
                f.attach(iface, settings.mode)?;
            }
            let attached: Vec<String> = f
                .attached()
                .iter()
                .map(|(i, m)| format!("{i} ({})", mode_name(*m)))
                .collect();
            info!(
                "XDP on [{}], maps pinned in {}",
                attached.join(", "),
                settings.pin_dir.display()
            );
            Some(f)
        }
    };
    let shared = Shared::new(State::build(config.clone(), None));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut threads = Vec::new();
    for (n, mut set) in sets.into_iter().enumerate() {
        for b in &mut set {
            // The cap is per listener: share it out between the workers.
            b.config.max_connections = b.config.max_connections.div_ceil(workers);
        }
        let (shared, mut stop) = (shared.clone(), stop_rx.clone());
        let thread = std::thread::Builder::new()
            .name(format!("rampart-w{n}"))
            .spawn(move || -> Result<()> {
                crate::upstream::set_worker(n);
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let bound = set
                        .into_iter()
                        .map(BoundStd::into_tokio)
                        .collect::<std::io::Result<Vec<_>>>()?;
                    server::serve(bound, shared, async move {
                        let _ = stop.wait_for(|stopped| *stopped).await;
                    })
                    .await;
                    Ok(())
                })
            })?;
        threads.push(thread);
    }

    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    info!("rampart running with {workers} worker(s)");
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => match reload(source.as_deref(), &config) {
                Ok(next) => {
                    if let (Some(f), Some(settings)) = (filter.as_mut(), next.filter.as_ref()) {
                        f.sync(settings)?;
                    }
                    shared.store(State::build(next.clone(), Some(&shared.load())));
                    config = next;
                    info!("reload: configuration applied");
                }
                Err(e) => error!("reload failed, keeping the running configuration: {e:#}"),
            },
            _ = sweep.tick() => if let Some(f) = filter.as_mut() {
                let swept = f.maps.sweep_bans()?;
                if swept > 0 {
                    info!("{swept} expired ban(s) removed");
                }
            },
        }
    }
    info!(
        "stopping: no new connections; in-flight requests get {:?}",
        config.http.grace_period
    );
    let _ = stop_tx.send(true);
    tokio::task::spawn_blocking(move || {
        for t in threads {
            match t.join() {
                Ok(Err(e)) => error!("worker: {e:#}"),
                Err(_) => error!("a worker panicked"),
                Ok(Ok(())) => {}
            }
        }
    })
    .await?;
    if let Some(f) = filter.take() {
        info!(
            "detaching XDP; pinned maps stay in {}",
            f.pin_dir().display()
        );
    }
    Ok(())
}

/// Reads and validates the new configuration; what cannot change without a
/// restart (listeners, the filter's interfaces and pin directory) is reported.
fn reload(source: Option<&std::path::Path>, current: &Config) -> Result<Arc<Config>> {
    let Some(path) = source else {
        bail!("running the built-in configuration; nothing to re-read")
    };
    let next = Config::load(path)?;
    if next.listeners != current.listeners {
        warn!("reload: listener changes need a restart; the listeners stay as they are");
    }
    if let (Some(a), Some(b)) = (&next.filter, &current.filter)
        && (a.interfaces != b.interfaces || a.pin_dir != b.pin_dir)
    {
        warn!("reload: filter interfaces or pin_dir changed; restart rampart to apply them");
    }
    Ok(Arc::new(next))
}
