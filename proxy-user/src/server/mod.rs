//! Accepting connections and serving HTTP on them.
//!
//! One accept loop per listener ([`accept`]): a semaphore caps concurrent
//! connections (more wait in the kernel's backlog), and accept errors back
//! off and never stop the loop. A plain connection waits in the worker's
//! [`lot`] until a whole request head has arrived, and only then gets a
//! task ([`plain`]); it goes back there when it idles between requests
//! (see [`park`]). A TLS connection gets its task at once, for the
//! handshake ([`tls_conn`]). Either way HTTP is served by
//! [`downstream::Downstream`]: HTTP/1 by rampart's own server
//! ([`h1_conn`]), HTTP/2 by hyper's, through the connection guard
//! ([`guard`]).
//! Every phase of a connection has a named timeout, and one module says
//! when each is due ([`lifecycle`]). On shutdown the loops stop
//! accepting, waiting connections close, and in-flight requests finish
//! within the grace period (an idle HTTP/1 connection closes, a busy one
//! says `connection: close` on its response; hyper's graceful shutdown
//! on HTTP/2).

mod accept;
mod buffer;
mod busy;
mod downstream;
pub(crate) mod guard;
mod h1_conn;
mod h1_feed;
mod h1_response;
mod in_place;
pub mod lifecycle;
mod listener;
mod lot;
mod lowat;
mod park;
mod plain;
mod preface;
pub mod proxy_protocol;
mod quiet;
mod stall;
#[cfg(test)]
mod tests;
mod tls_conn;

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

pub use listener::bind;
use lot::Lot;
use tokio::{
    net::TcpListener,
    sync::{mpsc, watch},
};
use tokio_rustls::TlsAcceptor;

use crate::{config::Listener, http::SharedState};

/// At shutdown, how long connections accepted last get to send their request.
const FIRST_REQUEST_SETTLE: Duration = Duration::from_millis(300);

/// What a listener serves with: its settings and TLS acceptor. A reload
/// that changes only these (certificates, HTTP/2, the redirect) replaces
/// them in place and the socket stays.
pub struct Served {
    pub config: Listener,
    pub tls: Option<TlsAcceptor>,
}

/// A listener ready to serve: its socket and what it serves with.
pub struct Bound {
    /// Names the listener in [`Change`]s.
    pub id: u64,
    pub socket: TcpListener,
    pub served: Arc<Served>,
}

impl Bound {
    pub fn local_addr(&self) -> SocketAddr {
        self.socket
            .local_addr()
            .expect("a bound socket has an address")
    }
}

/// A change to a worker's listeners, from a reload.
pub enum Change {
    /// A new listening socket (this worker's own), already bound.
    Add {
        id: u64,
        socket: std::net::TcpListener,
        served: Arc<Served>,
    },
    /// New settings for a listener; its socket and connections stay.
    Update { id: u64, served: Arc<Served> },
    /// Stop accepting on a listener (its socket closes); its connections go on.
    Remove { id: u64 },
}

struct Running {
    served: watch::Sender<Arc<Served>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Serves every listener until `shutdown` resolves, then lets in-flight
/// requests finish for at most the grace period.
pub async fn serve(
    listeners: Vec<Bound>,
    state: SharedState,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let shutdown = async move {
        shutdown.await;
        None
    };
    serve_changing(listeners, state, shutdown, None).await
}

/// As [`serve`], with listeners added, updated and removed by `changes`;
/// `shutdown` may name a grace period other than the configuration's.
pub async fn serve_changing(
    listeners: Vec<Bound>,
    state: SharedState,
    shutdown: impl std::future::Future<Output = Option<Duration>>,
    mut changes: Option<mpsc::UnboundedReceiver<Change>>,
) {
    // Every connection task holds a receiver: at shutdown the sender says
    // "drain", and waits until they have all been dropped.
    let (drain, draining) = watch::channel(false);
    let lot = match Lot::new(state.load().services.kicks.registry()) {
        Ok(lot) => lot,
        Err(e) => {
            log::error!("cannot serve: no epoll set for waiting connections: {e}");
            return;
        }
    };
    let waiting = {
        let (lot, draining) = (lot.clone(), draining.clone());
        tokio::spawn(async move {
            let serve = |ready| plain::spawn(ready, lot.clone(), draining.clone());
            lot.run(draining.clone(), serve).await
        })
    };
    let trimming = tokio::spawn(trim_upstream_pools(state.clone()));
    let mut running: HashMap<u64, Running> = HashMap::new();
    let start = |bound: Bound, running: &mut HashMap<u64, Running>| {
        let (served_tx, served_rx) = watch::channel(bound.served.clone());
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept::accept_loop(
            bound.socket,
            served_rx,
            state.clone(),
            lot.clone(),
            draining.clone(),
            stop_rx,
        ));
        running.insert(
            bound.id,
            Running {
                served: served_tx,
                stop: stop_tx,
                task,
            },
        );
    };
    for bound in listeners {
        start(bound, &mut running);
    }
    tokio::pin!(shutdown);
    let grace = loop {
        let change = tokio::select! {
            grace = &mut shutdown => break grace,
            c = next_change(&mut changes) => c,
        };
        match change {
            None => changes = None,
            Some(Change::Add { id, socket, served }) => match TcpListener::from_std(socket) {
                Ok(socket) => start(Bound { id, socket, served }, &mut running),
                Err(e) => log::error!("listener {}: {e}", served.config.bind),
            },
            Some(Change::Update { id, served }) => {
                if let Some(r) = running.get(&id) {
                    let _ = r.served.send(served);
                }
            }
            Some(Change::Remove { id }) => {
                if let Some(r) = running.remove(&id) {
                    let _ = r.stop.send(true);
                    let _ = r.task.await;
                }
            }
        }
    };
    for r in running.values() {
        let _ = r.stop.send(true);
    }
    for (_, r) in running {
        let _ = r.task.await;
    }
    drop(draining);
    trimming.abort();
    let snapshot = state.load();
    let grace = grace.unwrap_or(snapshot.config.http.grace_period);
    let deadline = crate::later::Later::later(tokio::time::Instant::now(), grace);
    // A connection accepted just before the listeners closed may not have
    // sent its request yet, and a graceful shutdown closes a connection
    // with no request at once: give such connections a moment to send it
    // (then it is served, with `Connection: close`).
    tokio::time::sleep(FIRST_REQUEST_SETTLE.min(grace)).await;
    let _ = drain.send(true);
    let _ = waiting.await;
    if tokio::time::timeout_at(deadline, drain.closed())
        .await
        .is_err()
    {
        log::warn!("grace period of {grace:?} over; closing the remaining connections");
    }
    // WebSockets get the rest of the grace period, then a close frame
    // with code 1001 (going away).
    let tunnels = &snapshot.services.going_away;
    while tunnels.open() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if tunnels.open() > 0 {
        tunnels.signal();
        let closing = tokio::time::Instant::now() + Duration::from_secs(2);
        while tunnels.open() > 0 && tokio::time::Instant::now() < closing {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Closes this worker's surplus idle upstream connections once they have
/// been idle long enough, also when no request comes to do it (see
/// [`crate::upstream::SURPLUS_IDLE`]).
async fn trim_upstream_pools(state: SharedState) {
    let mut tick = tokio::time::interval(crate::upstream::SURPLUS_IDLE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for group in state.load().groups.values() {
            for backend in group.backends().iter() {
                backend.pool.trim();
            }
        }
    }
}

async fn next_change(changes: &mut Option<mpsc::UnboundedReceiver<Change>>) -> Option<Change> {
    match changes {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
