//! One listener's measures: connections accepted and open, TLS handshakes
//! and their failures by reason. The accept backlog is read from the kernel
//! at scrape time ([`super::backlog`]).

use std::{
    os::fd::RawFd,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
};

#[derive(Debug, Default)]
pub struct ListenerMetrics {
    pub accepted: AtomicU64,
    active: AtomicI64,
    /// Open connections holding no HTTP state: parked between requests, or
    /// a request head still arriving.
    waiting: AtomicI64,
    pub tls_handshakes: AtomicU64,
    pub tls_failed: AtomicU64,
    pub tls_timed_out: AtomicU64,
    /// Handshakes closed at `busy_handshake_timeout` because more than
    /// half of the listener's `max_connections` were open.
    pub tls_shed: AtomicU64,
    /// Connections the userspace gate closed at accept.
    pub refused: AtomicU64,
    /// The workers' listening sockets, for the backlog; each is removed
    /// (under this lock) before its socket closes.
    sockets: Mutex<Vec<RawFd>>,
}

/// A listening socket registered for backlog readings; drop it before the socket.
pub struct Registered(Arc<ListenerMetrics>, RawFd);

impl Drop for Registered {
    fn drop(&mut self) {
        let mut s = self.0.sockets.lock().unwrap_or_else(|p| p.into_inner());
        s.retain(|fd| *fd != self.1);
    }
}

/// An open connection; dropping it closes the count.
pub struct Open(Arc<ListenerMetrics>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection waiting with no HTTP state; dropping it ends the wait.
pub struct Waiting(Arc<ListenerMetrics>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ListenerMetrics {
    /// Counts an accepted connection as open until the guard drops.
    pub fn open(self: &Arc<Self>) -> Open {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
        Open(self.clone())
    }

    /// Registers a worker's listening socket until the guard drops.
    pub fn register(self: &Arc<Self>, fd: RawFd) -> Registered {
        self.sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(fd);
        Registered(self.clone(), fd)
    }

    /// Accept queue length and capacity, summed over the workers' sockets.
    pub fn backlog(&self) -> (u64, u64) {
        let sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        sockets
            .iter()
            .filter_map(|fd| super::backlog::of_socket(*fd))
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
    }

    pub fn active(&self) -> i64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Counts a connection as waiting (parked) until the guard drops.
    pub fn waiting(self: &Arc<Self>) -> Waiting {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(self.clone())
    }

    pub fn waiting_now(&self) -> i64 {
        self.waiting.load(Ordering::Relaxed)
    }
}
