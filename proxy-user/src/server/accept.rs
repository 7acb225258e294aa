//! The accept loop of one listener: a semaphore caps its concurrent
//! connections (more wait in the kernel's backlog), accept errors back off
//! and never stop it, and the gate refuses what the lists, bans and the
//! connection rate refuse before any TLS work. A plain connection goes to
//! the worker's lot ([`super::lot`]) to await its first head; a TLS
//! connection gets its task at once, for the handshake
//! ([`super::tls_conn`]).

use std::{
    os::fd::AsRawFd,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::{
    io::{Interest, unix::AsyncFd},
    net::TcpListener,
    sync::{Semaphore, watch},
};

use super::{
    Served,
    lifecycle::{self, Awaiting, Timeouts},
    listener,
    lot::{self, Lot},
    plain, proxy_protocol, quiet, tls_conn,
};
use crate::http::{ConnInfo, SharedState};

/// Accepts connections on `socket` until `stop`, serving each with what
/// `served` holds at its accept.
pub(super) async fn accept_loop(
    socket: TcpListener,
    served: watch::Receiver<Arc<Served>>,
    state: SharedState,
    lot: Lot,
    draining: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    // Accepted sockets inherit TCP_NODELAY from the listener (no
    // `setsockopt` per connection); should setting it fail, each
    // connection sets it itself.
    let mut per_connection_nodelay = false;
    // Accepted sockets are not registered with the runtime until they have
    // something to serve: a plain connection whose head has not arrived
    // waits in the lot.
    let registered = socket.into_std().and_then(|l| {
        if let Err(e) = listener::nodelay(&l) {
            log::warn!("TCP_NODELAY on a listener: {e}; set per connection instead");
            per_connection_nodelay = true;
        }
        // SAFETY: the listener owns its descriptor, and `AsyncFd` owns the
        // listener: nothing closes or replaces it while it is registered.
        unsafe { AsyncFd::register_with_interest(l, Interest::READABLE) }.map_err(Into::into)
    });
    let socket = match registered {
        Ok(s) => s,
        Err(e) => {
            log::error!("listener {}: {e}", served.borrow().config.bind);
            return;
        }
    };
    // The cap is fixed for the socket's life (a reload that changes it
    // opens a new socket).
    let max_connections = served.borrow().config.max_connections;
    let limit = Arc::new(Semaphore::new(max_connections));
    let metrics = state
        .load()
        .services
        .metrics
        .listener(&served.borrow().config.bind.to_string());
    // Dropped before `socket` (a parameter): the fd is never read closed.
    let _registered = metrics.register(socket.as_raw_fd());
    let server_port = socket.get_ref().local_addr().map_or(0, |a| a.port());
    let mut backoff = Duration::from_millis(5);
    // One wait for the stop, for the listener's life: a `watch` wait made
    // per select took the watch's lock to register and again to leave,
    // twice per connection; this one is an atomic swap per poll until
    // signalled (see `quiet`). Polled first, so a flood of connections
    // cannot keep the stop from being seen.
    let stopped = quiet::Quiet::new(stop.changed());
    tokio::pin!(stopped);
    loop {
        let permit = tokio::select! {
            biased;
            _ = &mut stopped => return,
            p = limit.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let accepted = tokio::select! {
            biased;
            _ = &mut stopped => return,
            a = socket.async_io(Interest::READABLE, listener::accept) => a,
        };
        let (stream, client) = match accepted {
            Ok(a) => {
                backoff = Duration::from_millis(5);
                a
            }
            Err(e) => {
                // EMFILE and friends: wait and try again; never give up the listener.
                log::warn!(
                    "accept on {}: {e}; retrying in {backoff:?}",
                    served.borrow().config.bind
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let bound = served.borrow().clone();
        // Without XDP, the lists, bans and connection rate are enforced
        // here, before any TLS work: a refused connection is just closed.
        let snapshot = state.load();
        // Registered before the gate decides: a ban after the decision
        // finds the connection (see `kick`); one before it, the gate refuses.
        let ticket = lot.registry().register(client.ip());
        if !snapshot.services.gate.admit(client.ip()).admitted() {
            metrics.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let open = metrics.open();
        if per_connection_nodelay {
            let _ = stream.set_nodelay(true);
        }
        let info = ConnInfo {
            client,
            https: bound.tls.is_some(),
            redirect_https: bound
                .config
                .redirect_https
                .then_some(bound.config.redirect_https_port),
            server_port,
            via: None,
            listener: bound.config.id,
            sni_server: None,
        };
        let http2 = bound.config.http2;
        let Some(acceptor) = bound.tls.clone() else {
            // The configuration snapshot this connection serves with, taken
            // once: a reload applies to new connections, and requests do
            // not touch the shared lock (which every worker would contend
            // for).
            let conn = lot::Conn {
                info,
                snapshot,
                metrics: metrics.clone(),
                http2,
                awaiting: Awaiting::first(tokio::time::Instant::now()),
                ticket,
                _permit: permit,
                _open: open,
            };
            if bound.config.proxy_protocol {
                let (lot, draining) = (lot.clone(), draining.clone());
                tokio::spawn(proxy_protocol::then_plain(stream, conn, lot, draining));
                continue;
            }
            if let Some(ready) = lot.arrive(stream, conn) {
                plain::spawn(ready, lot.clone(), draining.clone());
            }
            continue;
        };
        let stream = match tokio::net::TcpStream::from_std(stream) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("{client}: {e}");
                continue;
            }
        };
        let tls = tls_conn::Tls {
            acceptor,
            handshake: lifecycle::tls_handshake(&bound.config),
            room: tls_conn::Room {
                limit: limit.clone(),
                max: max_connections,
            },
            metrics: metrics.clone(),
        };
        let draining = draining.clone();
        // Each phase's future is boxed, so the task keeps only a pointer to
        // the phase it is in.
        let proxy_header = bound
            .config
            .proxy_protocol
            .then(|| Timeouts::of(&snapshot.config.http).proxy_header());
        tokio::spawn(async move {
            let _permit = permit;
            let _open = open;
            let (mut stream, mut info) = (stream, info);
            if let Some(limit) = proxy_header {
                // The PROXY header comes before the ClientHello.
                match proxy_protocol::accepted(&mut stream, info, limit).await {
                    Some(named) => info = named,
                    None => return,
                }
            }
            // Biased: the connection's work first, and no random pick per poll.
            tokio::select! {
                biased;
                _ = Box::pin(tls_conn::serve(stream, tls, info, snapshot, draining)) => {}
                _ = ticket.kicked() => {
                    log::debug!("{client}: closed: its source is refused now");
                }
            }
        });
    }
}
