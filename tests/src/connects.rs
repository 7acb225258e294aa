//! A real client's connect loop: new TCP connections from one address to
//! one server, one after another, as the XDP benchmark's connections
//! section and its test open them.
//!
//! One client address connecting to one server port has only the
//! ephemeral ports of its namespace (32768-60999 by default, about
//! 28,000), and a connection closed with a FIN keeps its port for 60 s in
//! TIME_WAIT. `connect` takes ports of one parity first; once those are
//! all in TIME_WAIT, every `connect` walks all of them
//! (`__inet_hash_connect`, `__inet_check_established`) before it tries the
//! others, and the rate falls from thousands to tens per second, with no
//! load on the path at all; when every port is taken, `connect` fails
//! (EADDRNOTAVAIL). [`Close::Reset`] closes each connection with a reset
//! (`SO_LINGER` 0) instead, so the client keeps no TIME_WAIT socket and
//! measures the handshakes, not its own port search.

use std::{
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use socket2::SockRef;

/// How the client closes each connection once it is established.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// A reset (`SO_LINGER` 0): no TIME_WAIT, the port is free at once.
    Reset,
    /// A FIN, as a client normally closes: its port stays in TIME_WAIT
    /// for 60 s.
    Fin,
}

/// What a connect loop did.
#[derive(Debug, Default)]
pub struct Connects {
    /// Handshakes completed (`connect` returned a connected socket).
    pub done: u64,
    /// Attempts that failed: refused, no local port left, or no answer
    /// within the timeout (a SYN, SYN-ACK or ACK lost on the way, which
    /// the kernel retransmits only after 1 s).
    pub failed: u64,
    /// How long each completed `connect` took, sorted once
    /// [`Connects::merge`]d or returned by [`connect_loop`].
    pub took: Vec<Duration>,
    /// The loop's wall-clock time, and the part of it its thread ran on a
    /// CPU and waited for one (runnable, on a run queue), from
    /// `/proc/thread-self/schedstat`; the rest it slept (in `connect`,
    /// waiting for a SYN-ACK).
    pub elapsed: Duration,
    pub ran: Duration,
    pub waited: Duration,
}

impl Connects {
    /// The `q` quantile (0 to 1) of the completed connects' durations, in
    /// microseconds; NaN if none completed.
    pub fn micros(&self, q: f64) -> f64 {
        if self.took.is_empty() {
            return f64::NAN;
        }
        let i = ((self.took.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
        self.took[i].as_secs_f64() * 1e6
    }

    /// Adds another loop's figures to these.
    pub fn merge(&mut self, other: Connects) {
        self.done += other.done;
        self.failed += other.failed;
        self.took.extend(other.took);
        self.took.sort_unstable();
        self.elapsed += other.elapsed;
        self.ran += other.ran;
        self.waited += other.waited;
    }

    /// The shares of the loop's time its thread ran and waited for a CPU.
    pub fn cpu_shares(&self) -> (f64, f64) {
        let all = self.elapsed.as_secs_f64();
        (
            self.ran.as_secs_f64() / all,
            self.waited.as_secs_f64() / all,
        )
    }
}

/// Gives the calling thread the highest CPU share a normal thread can
/// have (nice -20; on Linux `setpriority(PRIO_PROCESS, 0)` is per
/// thread), so builds and tests sharing the machine take a few percent of
/// its CPU instead of most of it. Needs root; without it the thread keeps
/// its priority.
pub fn favour_this_thread() {
    // SAFETY: setpriority on the calling thread, no pointers.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -20) };
}

/// The process's autogroup at nice -20 while this lives, then back to
/// what it was (also on panic).
///
/// With `kernel.sched_autogroup_enabled = 1` (the default) the scheduler
/// first shares a CPU between sessions (autogroups), then between the
/// threads of each, so a thread's own nice only counts inside its
/// session: beside five other sessions building, a benchmark thread at
/// nice -20 still got about a sixth of its CPU. At nice -20 the session
/// gets nearly all of it whenever it wants it. Needs root; does nothing
/// without autogroups.
pub struct Favoured {
    /// The autogroup's nice before, to put back.
    before: Option<i32>,
}

impl Favoured {
    pub fn new() -> Favoured {
        // Already at -20 (another benchmark of this session holds it): left
        // to that one to restore, so two at once do not leave it at -20.
        let before = autogroup_nice().filter(|&n| n > -20);
        if before.is_some() {
            let _ = std::fs::write("/proc/self/autogroup", "-20");
        }
        Favoured { before }
    }
}

impl Default for Favoured {
    fn default() -> Favoured {
        Favoured::new()
    }
}

impl Drop for Favoured {
    fn drop(&mut self) {
        if let Some(n) = self.before {
            let _ = std::fs::write("/proc/self/autogroup", n.to_string());
        }
    }
}

/// The nice of this process's autogroup (`/autogroup-N nice M`), if any.
fn autogroup_nice() -> Option<i32> {
    std::fs::read_to_string("/proc/self/autogroup")
        .ok()?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// The calling thread's time on a CPU and waiting for one so far (the
/// first two fields of `/proc/thread-self/schedstat`, in ns); zero if the
/// kernel does not keep them.
fn schedstat() -> (Duration, Duration) {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let mut f = s.split_whitespace().map(|n| n.parse::<u64>().unwrap_or(0));
    (
        Duration::from_nanos(f.next().unwrap_or(0)),
        Duration::from_nanos(f.next().unwrap_or(0)),
    )
}

/// Connects to `server` from the calling thread's namespace, one
/// connection after another, until `end` or `max` attempts, each with a
/// 1 s timeout, closing each as `close` says.
pub fn connect_loop(server: SocketAddr, end: Instant, max: u64, close: Close) -> Connects {
    let mut c = Connects::default();
    let (started, (ran, waited)) = (Instant::now(), schedstat());
    while Instant::now() < end && c.done + c.failed < max {
        let start = Instant::now();
        match TcpStream::connect_timeout(&server, Duration::from_secs(1)) {
            Ok(s) => {
                c.took.push(start.elapsed());
                c.done += 1;
                if close == Close::Reset {
                    // If this fails, this one socket closes with a FIN.
                    let _ = SockRef::from(&s).set_linger(Some(Duration::ZERO));
                }
            }
            Err(_) => c.failed += 1,
        }
    }
    c.took.sort_unstable();
    let (ran_end, waited_end) = schedstat();
    c.elapsed = started.elapsed();
    c.ran = ran_end.saturating_sub(ran);
    c.waited = waited_end.saturating_sub(waited);
    c
}
