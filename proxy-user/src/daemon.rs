//! The daemon's lifecycle, in order: the configuration was validated by the
//! caller; bind the listeners; load and attach the XDP filter; serve; wait
//! for a signal (SIGHUP reloads, SIGINT/SIGTERM stop); drain in-flight
//! requests within the grace period; detach the filter (its pinned maps stay).

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, Result, bail};
use log::{error, info, warn};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    config::Config,
    filter::{Filter, mode_name},
    http::{Shared, State},
    server::{self, Bound},
};

/// How often expired bans are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Binds every listener of `config` (nothing is served yet).
pub fn bind_all(config: &Config) -> Result<Vec<Bound>> {
    let mut bound = Vec::new();
    for l in &config.listeners {
        let std_listener =
            server::bind(l.bind, l.backlog).with_context(|| format!("binding {}", l.bind))?;
        let socket = tokio::net::TcpListener::from_std(std_listener)?;
        let tls = match &l.tls {
            None => None,
            Some(t) => Some(tokio_rustls::TlsAcceptor::from(crate::tls::server_config(
                t, l.http2,
            )?)),
        };
        bound.push(Bound {
            config: l.clone(),
            socket,
            tls,
        });
    }
    Ok(bound)
}

pub async fn run(config: Config, source: Option<PathBuf>) -> Result<()> {
    if config.filter.is_none() && config.listeners.is_empty() {
        bail!("the configuration has neither [filter] nor [[listener]]: nothing to run");
    }
    let mut config = Arc::new(config);
    let listeners = bind_all(&config)?;
    for b in &listeners {
        info!(
            "listening on {}{}",
            b.local_addr(),
            if b.tls.is_some() { " (TLS)" } else { "" }
        );
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
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(listeners, shared.clone(), async move {
        let _ = stop_rx.await;
    }));

    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    info!("rampart running");
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
    let _ = stop_tx.send(());
    let _ = server.await;
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
