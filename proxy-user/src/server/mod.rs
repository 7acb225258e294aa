//! Accepting connections and serving HTTP on them.
//!
//! One accept loop per listener: a semaphore caps concurrent connections
//! (more wait in the kernel's backlog), and accept errors back off and never
//! stop the loop. A plain connection waits in the worker's [`lot`] until a
//! whole request head has arrived, and only then gets a task; it goes back
//! there when it idles between requests (see [`park`]). A TLS connection
//! gets its task at once, for the handshake. Every phase has a named
//! timeout: the TLS handshake, the request head (slowloris), and keep-alive
//! idleness. On shutdown the loops stop accepting, waiting connections
//! close, and hyper's graceful shutdown lets in-flight requests finish
//! within the grace period.

mod busy;
mod framing;
pub(crate) mod guard;
mod head_limits;
pub mod kick;
mod listener;
mod lot;
mod lowat;
mod park;
mod preface;
pub mod proxy_protocol;
mod quiet;
mod stall;

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    os::fd::AsRawFd,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use hyper::{Request, StatusCode, body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::conn::auto,
};
pub use listener::bind;
use lot::Lot;
use tokio::{
    io::{Interest, unix::AsyncFd},
    net::TcpListener,
    sync::{Semaphore, mpsc, watch},
};
use tokio_rustls::TlsAcceptor;

use crate::{
    config::Listener,
    http::{self, ConnInfo, Shared, State},
};

/// The answer to a head cut off inside its request line (see `serve_http`).
const URI_TOO_LONG: &[u8] = b"HTTP/1.1 414 URI Too Long\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 17\r\nconnection: close\r\n\r\n414 URI Too Long\n";

/// HTTP/1 response bodies larger than this (or of unknown length) keep
/// their request in progress until they have been sent ([`busy::BusyBody`]).
const STREAMED: u64 = 64 << 10;

/// hyper's own count of headers per HTTP/1 head (its `DEFAULT_MAX_HEADERS`),
/// for which it parses into room it neither allocates nor initialises. Told
/// any count, hyper initialises that many header slots for every head it
/// parses (1.6k instructions per GET under callgrind), so it is told
/// only a larger `max_headers`: up to this one, the framing check refuses
/// a head with more headers before hyper parses it ([`head_limits`], 431).
const HYPER_MAX_HEADERS: usize = 100;

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
    state: Shared,
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
    state: Shared,
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
            let serve = |ready| {
                tokio::spawn(serve_plain(ready, lot.clone(), draining.clone()));
            };
            lot.run(draining.clone(), serve).await
        })
    };
    let trimming = tokio::spawn(trim_upstream_pools(state.clone()));
    let mut running: HashMap<u64, Running> = HashMap::new();
    let start = |bound: Bound, running: &mut HashMap<u64, Running>| {
        let (served_tx, served_rx) = watch::channel(bound.served.clone());
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(
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
async fn trim_upstream_pools(state: Shared) {
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

async fn accept_loop(
    socket: TcpListener,
    served: watch::Receiver<Arc<Served>>,
    state: Shared,
    lot: Lot,
    draining: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    // Accepted sockets are not registered with the runtime until they have
    // something to serve: a plain connection whose head has not arrived
    // waits in the lot.
    let registered = socket.into_std().and_then(|l| {
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
    let limit = Arc::new(Semaphore::new(served.borrow().config.max_connections));
    let metrics = state
        .load()
        .services
        .metrics
        .listener(&served.borrow().config.bind.to_string());
    // Dropped before `socket` (a parameter): the fd is never read closed.
    let _registered = metrics.register(socket.as_raw_fd());
    let server_port = socket.get_ref().local_addr().map_or(0, |a| a.port());
    let mut backoff = Duration::from_millis(5);
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = stop.changed() => return,
        };
        let accepted = tokio::select! {
            a = socket.async_io(Interest::READABLE, listener::accept) => a,
            _ = stop.changed() => return,
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
        let _ = stream.set_nodelay(true);
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
            let now = tokio::time::Instant::now();
            let conn = lot::Conn {
                info,
                snapshot,
                metrics: metrics.clone(),
                http2,
                accepted: now,
                idle_since: now,
                resumed: false,
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
                tokio::spawn(serve_plain(ready, lot.clone(), draining.clone()));
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
        let tls = Tls {
            acceptor,
            handshake: bound
                .config
                .tls
                .as_ref()
                .map_or(Duration::from_secs(10), |t| t.handshake_timeout),
            metrics: metrics.clone(),
        };
        let draining = draining.clone();
        // Each phase's future is boxed, so the task keeps only a pointer to
        // the phase it is in.
        let proxy_header = bound
            .config
            .proxy_protocol
            .then_some(snapshot.config.http.header_timeout);
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
                _ = Box::pin(serve_tls(stream, tls, info, snapshot, draining, http2)) => {}
                _ = ticket.kicked() => {
                    log::debug!("{client}: closed: its source is refused now");
                }
            }
        });
    }
}

/// Serves a plain connection whose head has arrived, until it closes or
/// idles; an idle one goes back to the lot to wait for its next head.
async fn serve_plain(ready: lot::Ready, lot: Lot, mut draining: watch::Receiver<bool>) {
    let lot::Ready {
        socket,
        head,
        mut conn,
    } = ready;
    let stream = match tokio::net::TcpStream::from_std(socket) {
        Ok(s) => s,
        Err(e) => {
            log::warn!("{}: {e}", conn.info.client);
            return;
        }
    };
    let slot = park::Slot::new();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    // Boxed: the HTTP state machine is large, and the task's future is
    // copied several times as it is spawned and ends. Biased: the
    // connection's work first, and no random pick per poll.
    tokio::select! {
        biased;
        _ = Box::pin(serve_http(
            stream,
            head,
            &conn.info,
            &conn.snapshot,
            &mut draining,
            slot.clone(),
            (conn.http2, false),
            (conn.resumed, conn.idle_since),
            Some(fd),
        )) => {}
        _ = conn.ticket.kicked() => {
            // The stream (in the dropped future) closes.
            log::debug!("{}: closed: its source is refused now", conn.info.client);
            return;
        }
    }
    let Some(parked) = slot.take() else { return };
    match parked.stream.into_std() {
        Ok(socket) => {
            conn.idle_since = parked.idle_since;
            conn.resumed = true;
            lot.park(socket, conn);
        }
        Err(e) => log::warn!("{}: {e}", conn.info.client),
    }
}

/// What a TLS connection's handshake needs.
struct Tls {
    acceptor: TlsAcceptor,
    handshake: Duration,
    metrics: Arc<crate::metrics::ListenerMetrics>,
}

/// The TLS handshake (within its timeout), then HTTP on the connection.
async fn serve_tls(
    stream: tokio::net::TcpStream,
    tls: Tls,
    conn: ConnInfo,
    snapshot: Arc<State>,
    draining: watch::Receiver<bool>,
    http2: bool,
) {
    let client = conn.client;
    let accepted = tokio::time::timeout(tls.handshake, tls.acceptor.accept(stream)).await;
    match accepted {
        Ok(Ok(tls_stream)) => {
            tls.metrics.tls_handshakes.fetch_add(1, Ordering::Relaxed);
            let alpn_h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2");
            // The server the SNI name selects: each request's host must select it too.
            let sni = tls_stream.get_ref().1.server_name();
            let conn = ConnInfo {
                sni_server: http::vhost::by_sni(&snapshot.config, conn.listener, sni),
                ..conn
            };
            let metrics = tls.metrics;
            let tls = serve_conn(
                tls_stream, conn, snapshot, draining, metrics, http2, alpn_h2,
            );
            Box::pin(tls).await
        }
        Ok(Err(e)) => {
            tls.metrics.tls_failed.fetch_add(1, Ordering::Relaxed);
            log::debug!("{client}: TLS handshake failed: {e}")
        }
        Err(_) => {
            tls.metrics.tls_timed_out.fetch_add(1, Ordering::Relaxed);
            log::debug!(
                "{client}: TLS handshake timed out after {:?}",
                tls.handshake
            )
        }
    }
}

/// Serves one TLS connection until it closes: HTTP on it while requests
/// come, parked (see [`park`]) while it idles between them and while a
/// request head is arriving. Its task stays (the TLS session is state the
/// lot cannot hold), holding the session and the socket.
async fn serve_conn<S>(
    mut stream: S,
    conn: ConnInfo,
    snapshot: Arc<State>,
    mut draining: watch::Receiver<bool>,
    metrics: Arc<crate::metrics::ListenerMetrics>,
    http2: bool,
    alpn_h2: bool,
) where
    S: park::Readiness + tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let settings = &snapshot.config.http;
    let max_head = settings.max_header_size.max(8192);
    let accepted = tokio::time::Instant::now();
    let mut idle_since = accepted;
    let mut resumed = false;
    loop {
        // HTTP/2 has no heads to wait for; after ALPN `h2` the connection
        // speaks only HTTP/2, and its preface is checked first.
        let head = if alpn_h2 {
            let read = tokio::time::timeout(settings.header_timeout, preface::read(&mut stream));
            tokio::select! {
                r = read => match r {
                    Ok(Ok(bytes)) => bytes,
                    Ok(Err(why)) => {
                        log::debug!("{}: no HTTP/2 preface: {why:?}", conn.client);
                        return;
                    }
                    Err(_) => {
                        log::debug!("{}: no HTTP/2 preface in time", conn.client);
                        return;
                    }
                },
                _ = draining.wait_for(|d| *d) => return,
            }
        } else {
            // The first request's head is due within header_timeout of the
            // accept; a later one's first byte within keepalive_timeout of
            // the last response, and the rest within header_timeout.
            let deadlines = park::HeadDeadlines {
                first_byte: idle_since
                    + if resumed {
                        settings.keepalive_timeout
                    } else {
                        settings.header_timeout
                    },
                whole: (!resumed).then_some(accepted + settings.header_timeout),
                header_timeout: settings.header_timeout,
            };
            let _waiting = metrics.waiting();
            tokio::select! {
                h = park::read_head(&mut stream, deadlines, max_head) => match h {
                    Ok(head) => head,
                    Err(why) => {
                        log::debug!("{}: no request head: {why:?}", conn.client);
                        return;
                    }
                },
                _ = draining.wait_for(|d| *d) => return,
            }
        };
        let slot = park::Slot::new();
        // Boxed: the HTTP state machine is large, and a parked connection's
        // task must not keep room for it.
        Box::pin(serve_http(
            stream,
            head,
            &conn,
            &snapshot,
            &mut draining,
            slot.clone(),
            (http2, alpn_h2),
            (resumed, idle_since),
            None,
        ))
        .await;
        match slot.take() {
            Some(p) => {
                stream = p.stream;
                idle_since = p.idle_since;
                resumed = true;
            }
            None => return,
        }
    }
}

/// Runs a hyper connection until it ends; when the worker drains, in-flight
/// requests finish and idle connections close (hyper's graceful shutdown).
/// Its error, as text for the log.
macro_rules! drive {
    ($connection:expr, $draining:expr) => {{
        let connection = $connection;
        tokio::pin!(connection);
        // Biased: the connection first, and no random pick per poll; the
        // drain is looked at only once it was signalled (see `quiet`).
        let ended = tokio::select! {
            biased;
            r = connection.as_mut() => Some(r),
            _ = quiet::Quiet::new($draining.wait_for(|d| *d)) => None,
        };
        match ended {
            Some(r) => r,
            None => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        }
        .map_err(|e| e.to_string())
    }};
}

/// Runs HTTP on `stream` until the connection ends or is parked into `slot`.
/// `plain_fd` is the socket of a plain connection (`stream` itself), whose
/// request bodies then wake it only once they have arrived ([`lowat`]).
#[allow(clippy::too_many_arguments)]
async fn serve_http<S>(
    stream: S,
    head: Vec<u8>,
    conn: &ConnInfo,
    snapshot: &Arc<State>,
    draining: &mut watch::Receiver<bool>,
    slot: Arc<park::Slot<S>>,
    (http2, alpn_h2): (bool, bool),
    (resumed, idle_since): (bool, tokio::time::Instant),
    plain_fd: Option<std::os::fd::RawFd>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let settings = &snapshot.config.http;
    let max_head = settings.max_header_size.max(8192);
    let limits = head_limits::HeadLimits {
        line: settings.max_header_line,
        headers: settings.max_headers,
    };
    if !alpn_h2 && limits.request_line_overflows(&head, max_head) {
        // The head was cut at max_head inside its request line: 414, as
        // for a request line over the limit within a head (hyper would
        // answer 431 for the head's size).
        let mut stream = stream;
        let refusal = tokio::time::timeout(settings.send_timeout, async {
            use tokio::io::AsyncWriteExt;
            stream.write_all(URI_TOO_LONG).await?;
            stream.shutdown().await
        });
        let _ = refusal.await;
        log::debug!("{}: request line too long: 414", conn.client);
        return;
    }
    let mut guarded = guard::Guarded::new(stream, settings.into(), alpn_h2, Some(max_head))
        .head_limits(limits)
        .idle_since(idle_since)
        .prefixed(head);
    if !alpn_h2 {
        guarded = guarded.parking_into(slot);
    }
    if resumed {
        guarded = guarded.resumed();
    }
    if let Some(fd) = plain_fd {
        guarded = guarded.body_lowat(fd);
    }
    let watch = guarded.watch().clone();
    let max_header_list = settings.max_header_size as u32;
    // The connection's share of request body memory (its HTTP/2 streams
    // together; an HTTP/1 connection has one body at a time).
    let conn_budget = (alpn_h2 || (http2 && !conn.https))
        .then(|| http::budget::ConnBudget::new(settings.body_memory_per_connection));
    let (snapshot, conn) = (snapshot.clone(), *conn);
    // HTTP/2 streams' tasks, each reset once its response stalls for send_timeout.
    let streams = stall::Streams::new(settings.send_timeout);
    let executor = streams.clone();
    let service = service_fn(move |mut req: Request<Incoming>| {
        let snapshot = snapshot.clone();
        let busy = busy::Busy::enter(&watch);
        // HTTP/2 heads are not scanned: their fields are checked here.
        let refused = match req.version() {
            hyper::Version::HTTP_2 => limits.check_fields(req.headers()),
            _ => busy.refused,
        };
        if let Some((status, why)) = refused {
            req.extensions_mut()
                .insert(http::RefusedHead { status, why });
        }
        if let Some(b) = &conn_budget
            && req.version() == hyper::Version::HTTP_2
        {
            req.extensions_mut().insert(b.clone());
        }
        let http1 = req.version() < hyper::Version::HTTP_2;
        let clock = (!http1).then(|| streams.clock());
        async move {
            let resp = http::handle(snapshot, conn, req).await;
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                busy.upgraded();
            }
            // On HTTP/1, a body that is more than one buffer (streamed
            // from an upstream or a file) keeps the request in progress
            // until it has been sent: the connection must not be parked
            // meanwhile. (HTTP/2 connections are not parked; a stream
            // whose client never opens its window is reset after
            // send_timeout, see `stall`.)
            let streamed = http1
                && hyper::body::Body::size_hint(resp.body())
                    .exact()
                    .is_none_or(|n| n > STREAMED);
            let resp = if streamed {
                resp.map(|b| http::Body::new(busy::BusyBody::new(b, busy)))
            } else {
                drop(busy);
                resp
            };
            let resp = match clock {
                Some(clock) => resp.map(|b| http::Body::new(stall::Sending::new(b, clock))),
                None => resp,
            };
            Ok::<_, Infallible>(resp)
        }
    });
    // Timeouts on the client side are the guard's; hyper's own header
    // timer would be registered anew for every request.
    let mut builder = auto::Builder::new(executor);
    builder.http1().max_buf_size(max_head).keep_alive(true);
    if settings.max_headers > HYPER_MAX_HEADERS {
        builder.http1().max_headers(settings.max_headers);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(128)
        .max_header_list_size(max_header_list)
        .adaptive_window(false)
        .initial_stream_window_size(http::budget::H2_STREAM_WINDOW)
        .initial_connection_window_size(http::budget::H2_CONNECTION_WINDOW);
    // After ALPN `h2`, only HTTP/2: a client that sends anything else gets
    // a connection error, not an HTTP/1 answer (RFC 9113 §3.4, h2spec 3.5/2).
    // Over TLS otherwise (ALPN `http/1.1`, or none), and on plain listeners
    // without `http2`, only HTTP/1: HTTP/2 over TLS is negotiated by ALPN
    // (§3.2), never sniffed. hyper-util's `http1_only` does nothing with
    // upgrades (its docs say so), so HTTP/1 alone is hyper's own builder.
    let io = TokioIo::new(guarded);
    let ended = if alpn_h2 {
        let builder = builder.http2_only();
        drive!(builder.serve_connection(io, service), draining)
    } else if http2 && !conn.https {
        drive!(
            builder.serve_connection_with_upgrades(io, service),
            draining
        )
    } else {
        let mut h1 = hyper::server::conn::http1::Builder::new();
        h1.max_buf_size(max_head).keep_alive(true);
        if settings.max_headers > HYPER_MAX_HEADERS {
            h1.max_headers(settings.max_headers);
        }
        drive!(h1.serve_connection(io, service).with_upgrades(), draining)
    };
    if let Err(e) = ended {
        log::debug!("{}: connection ended: {e}", conn.client);
    }
}
