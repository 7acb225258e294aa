//! The daemon's listeners across its workers: started with the daemon, and
//! changed by a reload without touching the sockets of those that did not
//! change.
//!
//! A reload first prepares everything that can fail (binding new sockets on
//! every worker, reading certificates), so a bad reload changes nothing; then
//! it commits: new sockets are added before replaced ones are removed, and a
//! listener whose only changes are its certificates, HTTP/2 or redirect gets
//! them in place. TLS listeners always re-read their certificate files, so a
//! certificate renewed in place takes effect on reload, as with nginx.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use log::info;
use tokio::sync::mpsc;

use super::bind::BoundStd;
use crate::{
    config::{Config, Listener},
    http::SharedState,
    server::{self, Change, Served},
};

/// One listener in force.
struct Entry {
    id: u64,
    config: Listener,
    /// The address every worker's socket is bound to.
    addr: SocketAddr,
}

pub struct Listeners {
    /// Each worker's change channel.
    workers: Vec<mpsc::UnboundedSender<Change>>,
    entries: Vec<Entry>,
    next_id: u64,
}

/// A reload's listener changes, ready to commit.
pub struct Plan {
    /// Per worker, in order: adds, then updates, then removes.
    changes: Vec<Vec<Change>>,
    entries: Vec<Entry>,
    next_id: u64,
    notes: Vec<String>,
}

pub(super) type Worker = std::thread::JoinHandle<Result<()>>;

/// A worker's event loop, and the clock of the CPU time its thread uses.
pub struct Loop {
    pub runtime: tokio::runtime::Handle,
    pub cpu: crate::worker::CpuClock,
}

impl Listeners {
    /// The listeners bound in `sockets` (every worker's, in the
    /// configuration's order), not serving yet.
    pub fn of(sockets: &[Vec<BoundStd>]) -> Result<Listeners> {
        let entries = match sockets.first() {
            None => Vec::new(),
            Some(set) => set
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    Ok(Entry {
                        id: i as u64,
                        config: b.config.clone(),
                        addr: b.socket.local_addr()?,
                    })
                })
                .collect::<std::io::Result<_>>()?,
        };
        Ok(Listeners {
            workers: Vec::new(),
            next_id: entries.len() as u64,
            entries,
        })
    }

    /// Starts one thread per worker, each with its own event loop serving
    /// its own `sockets` until `stop` holds a grace period (or its sender
    /// is gone). Returns once every event loop runs: the threads, and a
    /// handle on each event loop (for its measures).
    pub fn serve(
        &mut self,
        sockets: Vec<Vec<BoundStd>>,
        shared: &SharedState,
        stop: &tokio::sync::watch::Receiver<Option<Duration>>,
    ) -> Result<(Vec<Worker>, Vec<Loop>)> {
        let workers = sockets.len();
        let mut threads = Vec::new();
        let (running_tx, running) = std::sync::mpsc::channel();
        for (n, mut set) in sockets.into_iter().enumerate() {
            for b in &mut set {
                // The cap is per listener: share it out between the workers.
                b.config.max_connections = b.config.max_connections.div_ceil(workers);
            }
            let (tx, rx) = mpsc::unbounded_channel();
            self.workers.push(tx);
            let (shared, mut stop) = (shared.clone(), stop.clone());
            let running_tx = running_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("rampart-w{n}"))
                .spawn(move || -> Result<()> {
                    crate::worker::set_worker(n);
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    let _ = running_tx.send(Loop {
                        runtime: runtime.handle().clone(),
                        cpu: crate::worker::CpuClock::of_this_thread(),
                    });
                    drop(running_tx);
                    runtime.block_on(async move {
                        let bound = set
                            .into_iter()
                            .enumerate()
                            .map(|(i, b)| b.into_tokio(i as u64))
                            .collect::<std::io::Result<Vec<_>>>()?;
                        let shutdown = async move {
                            stop.wait_for(Option::is_some).await.ok().and_then(|g| *g)
                        };
                        server::serve_changing(bound, shared, shutdown, Some(rx)).await;
                        Ok(())
                    })
                })?;
            threads.push(thread);
        }
        drop(running_tx);
        // A worker that failed to build its event loop sends nothing.
        let loops: Vec<_> = running.iter().collect();
        if loops.len() < workers {
            anyhow::bail!(
                "{} of {workers} workers could not start",
                workers - loops.len()
            );
        }
        Ok((threads, loops))
    }

    /// Where each listener is bound, in the configuration's order.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.entries.iter().map(|e| e.addr).collect()
    }

    /// Prepares the listeners of `next`: binds what is new, reads certificates.
    pub fn prepare(&self, next: &Config) -> Result<Plan> {
        let workers = self.workers.len().max(1);
        let mut plan = Plan {
            changes: (0..workers).map(|_| Vec::new()).collect(),
            entries: Vec::new(),
            next_id: self.next_id,
            notes: Vec::new(),
        };
        let mut removes = Vec::new();
        // Old listeners are matched by `bind`, in order: two on
        // `127.0.0.1:0` stay two, each with its own settings.
        let mut taken = vec![false; self.entries.len()];
        for l in &next.listeners {
            let old = self
                .entries
                .iter()
                .enumerate()
                .find(|(i, e)| !taken[*i] && e.config.bind == l.bind)
                .map(|(i, e)| {
                    taken[i] = true;
                    e
                });
            let keeps_socket = old.is_some_and(|o| {
                o.config.backlog == l.backlog && o.config.max_connections == l.max_connections
            });
            match old {
                Some(o) if keeps_socket => {
                    if o.config != *l || l.tls.is_some() {
                        let served = served(l, workers)?;
                        for w in &mut plan.changes {
                            w.push(Change::Update {
                                id: o.id,
                                served: served.clone(),
                            });
                        }
                        if o.config != *l {
                            plan.notes.push(format!("listener {} updated", l.bind));
                        }
                    }
                    plan.entries.push(Entry {
                        id: o.id,
                        config: l.clone(),
                        addr: o.addr,
                    });
                }
                _ => {
                    let id = plan.next_id;
                    plan.next_id += 1;
                    let mut addr = None;
                    let served = served(l, workers)?;
                    for w in &mut plan.changes {
                        let at = addr.unwrap_or(l.bind);
                        let socket =
                            server::bind(at, l.backlog).with_context(|| format!("binding {at}"))?;
                        addr = Some(socket.local_addr()?);
                        w.push(Change::Add {
                            id,
                            socket,
                            served: served.clone(),
                        });
                    }
                    let addr = addr.unwrap_or(l.bind);
                    if let Some(o) = old {
                        removes.push(o.id);
                        plan.notes.push(format!(
                            "listener {} reopened with its new settings",
                            l.bind
                        ));
                    } else {
                        plan.notes.push(format!("listening on {addr}"));
                    }
                    plan.entries.push(Entry {
                        id,
                        config: l.clone(),
                        addr,
                    });
                }
            }
        }
        for (o, taken) in self.entries.iter().zip(taken) {
            if !taken {
                removes.push(o.id);
                plan.notes.push(format!("stopped listening on {}", o.addr));
            }
        }
        for w in &mut plan.changes {
            w.extend(removes.iter().map(|id| Change::Remove { id: *id }));
        }
        Ok(plan)
    }

    /// Applies a prepared plan; returns what changed, for the reload's report.
    pub fn commit(&mut self, plan: Plan) -> Vec<String> {
        for (tx, changes) in self.workers.iter().zip(plan.changes) {
            for c in changes {
                let _ = tx.send(c);
            }
        }
        self.entries = plan.entries;
        self.next_id = plan.next_id;
        for n in &plan.notes {
            info!("reload: {n}");
        }
        plan.notes
    }
}

/// What a listener serves with, its connection cap shared out between the workers.
fn served(l: &Listener, workers: usize) -> Result<Arc<Served>> {
    let tls = match &l.tls {
        None => None,
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(
            t.server_config(l.http2)
                .with_context(|| format!("listener {}", l.bind))?,
        )),
    };
    let mut config = l.clone();
    config.max_connections = config.max_connections.div_ceil(workers);
    Ok(Arc::new(Served { config, tls }))
}
