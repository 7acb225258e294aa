//! The lot: where plain HTTP/1 connections wait for a request head, as a
//! row in a table rather than as a task. A new connection waits here for
//! its first head, a keep-alive connection between requests once it has
//! been idle for [`super::park::PARK_AFTER`].
//!
//! A waiting connection costs about what nginx's does: its socket, in an
//! epoll set of the worker's own rather than the runtime's; the bytes of
//! its head read so far; one [`Row`] (200 bytes); and its place among
//! the worker's connections where a ban finds it (about 80 bytes, see
//! [`crate::kick`]). It has no task, no runtime registration and no timer. One task per worker
//! ([`Lot::run`]) watches the epoll set, reads heads as their bytes
//! arrive, and sweeps out the rows whose deadlines have passed. Once a
//! whole head has arrived, the socket goes back to the runtime and a task
//! serves it ([`super::plain`]).
//!
//! Deadlines are nginx's, as [`super::lifecycle`] computes them: the first
//! head is due `header_timeout` after the accept; a later head's first
//! byte `keepalive_timeout` after the last response, and the rest of it
//! `header_timeout` after that byte. They are enforced within
//! [`SWEEP_EVERY`].

use std::{
    cell::RefCell,
    io::{self, Read},
    mem::MaybeUninit,
    net::TcpStream as StdStream,
    os::fd::OwnedFd,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use rustix::event::{Timespec, epoll};
use slab::Slab;
use tokio::{
    io::unix::AsyncFd,
    sync::{Notify, OwnedSemaphorePermit, watch},
    time::Instant,
};

use super::{
    lifecycle::{Awaiting, MaxHead, Timeouts},
    park::ends_head,
};
use crate::{
    http::{ConnInfo, State},
    kick::{Registry, Ticket},
    metrics::{
        ListenerMetrics,
        listener::{Open, Waiting},
    },
};

/// How often, at most, the rows are swept for passed deadlines: the
/// precision of the timeouts of waiting connections.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// Readiness events handled in one turn of the lot's task, before the
/// worker's other tasks run: a burst of head bytes (a slowloris attack's
/// connections all sending at once) delays a served request by at most one
/// batch, about 100 µs.
const BATCH: usize = 64;

/// A plain connection between requests: what a task needs to serve it again.
pub struct Conn {
    pub info: ConnInfo,
    /// The configuration it was accepted under (a reload applies to new
    /// connections).
    pub snapshot: Arc<State>,
    /// Its listener's measures.
    pub metrics: Arc<ListenerMetrics>,
    /// The listener offers HTTP/2 (h2c with prior knowledge).
    pub http2: bool,
    /// Since when it has awaited a head (the accept, or its last
    /// response), and whether it has been served before: what its
    /// deadline is counted from ([`super::lifecycle`]).
    pub awaiting: Awaiting,
    /// Its place among its worker's connections, where a ban finds it
    /// (see [`crate::kick`]).
    pub ticket: Ticket,
    /// Its place under the listener's `max_connections`.
    pub _permit: OwnedSemaphorePermit,
    /// Counts it as open in the listener's measures.
    pub _open: Open,
}

impl Conn {
    /// The most bytes of a head read before the HTTP/1 server is given
    /// them (to answer 414 or 431 when they are not a whole head).
    pub fn max_head(&self) -> usize {
        MaxHead::of(&self.snapshot.config.http).bytes()
    }

    /// When the connection is closed if no more of its head arrives; its
    /// first byte came at `first_byte`, if it did.
    fn deadline(&self, first_byte: Option<Instant>) -> Instant {
        let timeouts = Timeouts::of(&self.snapshot.config.http);
        self.awaiting.deadline(&timeouts, first_byte)
    }
}

/// A connection waiting for its head.
struct Row {
    socket: StdStream,
    /// The head's bytes read so far (nothing allocated before the first).
    head: Vec<u8>,
    /// When the connection is closed: the deadline of the head's first
    /// byte, then of the whole head.
    deadline: Instant,
    conn: Conn,
    /// Counts it in `rampart_listener_connections_waiting`.
    _waiting: Waiting,
}

/// What reading a waiting connection found.
#[derive(Debug, PartialEq, Eq)]
enum Fill {
    /// No whole head yet; the socket has no more bytes now.
    Waiting,
    /// A whole head (or `max_head` bytes of one).
    Head,
    /// The client closed the connection, or it failed.
    Closed,
}

thread_local! {
    /// The worker's buffer for [`fill`]'s reads: zeroed once per thread,
    /// not 4 KiB per call (a `memset` per new connection).
    static SCRATCH: RefCell<[u8; 4096]> = const { RefCell::new([0; 4096]) };
}

/// Reads what `socket` has into `head`, up to `max_head` bytes.
fn fill(socket: &StdStream, head: &mut Vec<u8>, max_head: usize) -> Fill {
    SCRATCH.with_borrow_mut(|buf| fill_from(socket, head, max_head, buf))
}

fn fill_from(socket: &StdStream, head: &mut Vec<u8>, max_head: usize, buf: &mut [u8]) -> Fill {
    loop {
        let want = max_head.saturating_sub(head.len()).clamp(1, buf.len());
        match (&*socket).read(&mut buf[..want]) {
            Ok(0) => return Fill::Closed,
            Ok(n) => {
                let before = head.len();
                head.extend_from_slice(&buf[..n]);
                if ends_head(head, before) || head.len() >= max_head {
                    return Fill::Head;
                }
                if n < want {
                    // A short read took all there was: bytes that come
                    // later make the socket ready again, so asking once
                    // more (for EAGAIN) would cost a call per byte of a
                    // slow head.
                    return Fill::Waiting;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Fill::Waiting,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Fill::Closed,
        }
    }
}

/// A worker's waiting connections.
#[derive(Clone)]
pub struct Lot(Arc<Inner>);

struct Inner {
    /// The epoll set of the waiting sockets; each is registered with its
    /// row's key. The runtime watches the set itself.
    epoll: AsyncFd<OwnedFd>,
    rows: Mutex<Rows>,
    /// The worker's open connections, waiting here or not: a kick names
    /// the rows it marked.
    registry: Arc<Registry>,
    /// Wakes the lot's task when a row's deadline comes before its next sweep.
    wake: Notify,
}

struct Rows {
    slab: Slab<Row>,
    /// The earliest deadline of a row, as of the last sweep or insert.
    next_deadline: Option<Instant>,
    /// Shut down: connections handed in now are closed.
    closed: bool,
}

/// A waiting connection whose whole head has arrived, to be served.
pub struct Ready {
    pub socket: StdStream,
    pub head: Vec<u8>,
    pub conn: Conn,
}

impl Lot {
    /// An empty lot for the worker whose connections `registry` keeps; within a runtime.
    pub fn new(registry: Arc<Registry>) -> io::Result<Lot> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        Ok(Lot(Arc::new(Inner {
            // SAFETY: the `AsyncFd` owns the epoll descriptor; nothing
            // closes or replaces it while it is registered.
            epoll: unsafe {
                AsyncFd::register_with_interest(epoll, tokio::io::Interest::READABLE)
            }?,
            rows: Mutex::new(Rows {
                slab: Slab::new(),
                next_deadline: None,
                closed: false,
            }),
            registry,
            wake: Notify::new(),
        })))
    }

    /// Where the worker's connections register (see [`crate::kick`]).
    pub fn registry(&self) -> &Arc<Registry> {
        &self.0.registry
    }

    fn rows(&self) -> MutexGuard<'_, Rows> {
        self.0.rows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A newly accepted connection: its head if it has already arrived
    /// whole (the usual case), or else it waits here.
    pub fn arrive(&self, socket: StdStream, conn: Conn) -> Option<Ready> {
        let mut head = Vec::new();
        match fill(&socket, &mut head, conn.max_head()) {
            Fill::Head => Some(Ready { socket, head, conn }),
            Fill::Closed => None,
            Fill::Waiting => {
                self.insert(socket, head, conn);
                None
            }
        }
    }

    /// A connection idle after a response: it waits here for its next head.
    pub fn park(&self, socket: StdStream, conn: Conn) {
        self.insert(socket, Vec::new(), conn);
    }

    fn insert(&self, socket: StdStream, head: Vec<u8>, conn: Conn) {
        // A new connection's head may have begun; its deadline counts from
        // the accept all the same.
        let deadline = conn.deadline((!head.is_empty()).then(Instant::now));
        let mut rows = self.rows();
        if rows.closed {
            return;
        }
        let entry = rows.slab.vacant_entry();
        // Refused by a kick while it was served: it closes here. Under the
        // rows' lock, so a kick after this names the row to `close_kicked`,
        // which finds it inserted.
        if !conn.ticket.park(entry.key()) {
            return;
        }
        let key = epoll::EventData::new_u64(entry.key() as u64);
        let events = epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
        if let Err(e) = epoll::add(self.0.epoll.get_ref(), &socket, key, events) {
            log::warn!("{}: cannot wait for a request: {e}", conn.info.client);
            return;
        }
        let waiting = conn.metrics.waiting();
        entry.insert(Row {
            socket,
            head,
            deadline,
            conn,
            _waiting: waiting,
        });
        if rows.next_deadline.is_none_or(|next| deadline < next) {
            rows.next_deadline = Some(deadline);
            self.0.wake.notify_one();
        }
    }

    /// Watches the waiting connections until `draining`, handing each
    /// whole head to `serve`, and closing those a kick refuses; then closes
    /// those still waiting.
    pub async fn run(&self, mut draining: watch::Receiver<bool>, serve: impl Fn(Ready)) {
        let mut last_sweep = Instant::now();
        loop {
            let next = self.rows().next_deadline;
            let sweep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at.max(last_sweep + SWEEP_EVERY)).await,
                    None => std::future::pending().await,
                }
            };
            let drained = async {
                let _ = draining.wait_for(|d| *d).await;
            };
            tokio::select! {
                _ = drained => break,
                ready = self.0.epoll.readable() => match ready {
                    Ok(mut guard) => {
                        if self.take_events(&serve) {
                            guard.clear_ready();
                        } else {
                            tokio::task::yield_now().await;
                        }
                    }
                    Err(e) => {
                        log::error!("waiting connections: {e}");
                        break;
                    }
                },
                _ = sweep => {
                    self.sweep();
                    last_sweep = Instant::now();
                }
                _ = self.0.registry.rows_kicked() => self.close_kicked(),
                _ = self.0.wake.notified() => {}
            }
        }
        let mut rows = self.rows();
        rows.closed = true;
        rows.slab.clear();
    }

    /// Reads the sockets that have bytes, one batch; `true` if none is left
    /// ready.
    fn take_events(&self, serve: &impl Fn(Ready)) -> bool {
        let mut events = [MaybeUninit::<epoll::Event>::uninit(); BATCH];
        let (events, _) = loop {
            // A zero timeout never blocks.
            match epoll::wait(
                self.0.epoll.get_ref(),
                &mut events,
                Some(&Timespec::default()),
            ) {
                Ok(taken) => break taken,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    log::error!("waiting connections: epoll_wait: {e}");
                    return true;
                }
            }
        };
        for event in events.iter() {
            if let Some(ready) = self.on_readable(event.data.u64() as usize) {
                serve(ready);
            }
        }
        events.len() < BATCH
    }

    /// Reads the row `key`'s socket: its whole head, to be served, or nothing.
    fn on_readable(&self, key: usize) -> Option<Ready> {
        let mut rows = self.rows();
        let row = rows.slab.get_mut(key)?;
        let started = !row.head.is_empty();
        match fill(&row.socket, &mut row.head, row.conn.max_head()) {
            Fill::Waiting => {
                if !started && !row.head.is_empty() {
                    row.deadline = row.conn.deadline(Some(Instant::now()));
                    let deadline = row.deadline;
                    if rows.next_deadline.is_none_or(|next| deadline < next) {
                        rows.next_deadline = Some(deadline);
                    }
                }
                None
            }
            Fill::Closed => {
                // Closing the socket takes it out of the epoll set.
                rows.slab.remove(key);
                None
            }
            Fill::Head => {
                let row = rows.slab.remove(key);
                drop(rows);
                // Out of the set before the runtime watches it: the set is
                // level-triggered and would report its unread bytes.
                if let Err(e) = epoll::delete(self.0.epoll.get_ref(), &row.socket) {
                    log::warn!("{}: {e}", row.conn.info.client);
                    return None;
                }
                Some(Ready {
                    socket: row.socket,
                    head: row.head,
                    conn: row.conn,
                })
            }
        }
    }

    /// Closes the waiting connections kicks have marked: only the rows
    /// they named, never a walk of every row.
    fn close_kicked(&self) {
        let kicked = self.0.registry.take_rows();
        if kicked.is_empty() {
            return;
        }
        let mut rows = self.rows();
        for key in kicked {
            if rows
                .slab
                .get(key)
                .is_some_and(|r| r.conn.ticket.is_kicked())
            {
                // Closing the socket takes it out of the epoll set.
                let row = rows.slab.remove(key);
                log::debug!(
                    "{}: closed while waiting: its source is refused now",
                    row.conn.info.client
                );
            }
        }
    }

    /// Closes the connections whose deadlines have passed.
    fn sweep(&self) {
        let now = Instant::now();
        let mut rows = self.rows();
        let mut next: Option<Instant> = None;
        rows.slab.retain(|_, row| {
            if row.deadline <= now {
                log::debug!(
                    "{}: no request head in time (waited {:?})",
                    row.conn.info.client,
                    now - row.conn.awaiting.since
                );
                return false;
            }
            next = Some(next.map_or(row.deadline, |n| n.min(row.deadline)));
            true
        });
        rows.next_deadline = next;
        // After a burst, give the table's room back.
        if rows.slab.len() * 4 < rows.slab.capacity() {
            rows.slab.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_stays_small() {
        println!("a row is {} bytes", std::mem::size_of::<Row>());
        // The point of the lot: a waiting connection costs its row (200
        // bytes since issue 17 made its deadline's inputs one `Awaiting`,
        // 208 before) and its socket. RELIABILITY.md measures the whole.
        let size = std::mem::size_of::<Row>();
        assert!(size <= 256, "a row is {size} bytes");
    }

    #[test]
    fn fill_reads_a_head_whole_or_up_to_its_limit() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = StdStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let mut head = Vec::new();
        assert_eq!(fill(&server, &mut head, 8192), Fill::Waiting);
        assert!(head.is_empty());
        std::io::Write::write_all(&mut client, b"GET / HTTP/1.1\r\nHo").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(fill(&server, &mut head, 8192), Fill::Waiting);
        std::io::Write::write_all(&mut client, b"st: x\r\n\r\nGET /next").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(fill(&server, &mut head, 8192), Fill::Head);
        assert_eq!(head, b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /next");

        // A head that never ends stops at the limit, for the server to refuse.
        let mut long = Vec::new();
        std::io::Write::write_all(&mut client, &[b'a'; 100]).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(fill(&server, &mut long, 40), Fill::Head);
        assert_eq!(long.len(), 40);

        // A short read takes what there is and stops; the end-of-file that
        // came after it makes the socket ready again.
        drop(client);
        std::thread::sleep(Duration::from_millis(20));
        let mut rest = Vec::new();
        assert_eq!(fill(&server, &mut rest, 8192), Fill::Waiting);
        assert_eq!(rest.len(), 60);
        assert_eq!(fill(&server, &mut rest, 8192), Fill::Closed);
    }
}
