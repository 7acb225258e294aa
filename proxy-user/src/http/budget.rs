//! Memory for request bodies, bounded twice: for the whole process
//! (`body_memory`: a body that would go past it gets 503, the budget never
//! grows) and per connection (`body_memory_per_connection`: an HTTP/2
//! stream whose body does not fit in what its connection's other bodies
//! left gets 503).
//!
//! The process's budget counts what reading bodies keeps resident, so that
//! the process's memory follows it (`tests/reliability/http2.rs`):
//! - each body's buffer, as it is allocated (see `body::grow`), and room
//!   for the next read;
//! - [`REQUEST_STATE`] per body being read, for the request it belongs to;
//! - per HTTP/2 connection, the bytes its client may have sent that no
//!   handler has read yet ([`InFlight`]): its streams' flow-control windows,
//!   within the connection's ([`H2_CONNECTION_WINDOW`]).
//!
//! A connection's share is taken whole when a body starts (its declared
//! length, or the route's `max_body`), and never waited for: a stream
//! waiting for it would leave what its client already sent unread in the
//! connection's flow-control window, which the streams being read need
//! (and streams growing piece by piece waited on each other for ever).
//!
//! A refusal means memory is short: what the refused requests freed is
//! handed back to the kernel soon after ([`Budget::refused`]), rather than
//! at the daemon's next periodic look at the heap.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// HTTP/2 flow-control windows advertised to clients. The stream window
/// is nginx's `http2_body_preread_size` (64k): what a stream may send
/// before its handler reads it. The connection window bounds what a whole
/// connection may have sent and not had read, the only request body
/// memory outside `body_memory` (see this module). The server sets them on
/// every HTTP/2 connection rather than leave hyper's defaults (1 MiB
/// each), and never adaptive (which grows them with the client's
/// bandwidth-delay product, as far as it likes).
pub const H2_STREAM_WINDOW: u32 = 64 << 10;
pub const H2_CONNECTION_WINDOW: u32 = 256 << 10;

/// What a request whose body is being read costs besides its buffer: its
/// handler's task and head, its HTTP/2 stream (5.2 KiB of heap measured per
/// stream waiting for its body, release and debug builds alike), and the
/// first page of an mmapped buffer, which holds the allocator's header.
/// With it, what a body is charged is never less than what it keeps
/// resident.
pub const REQUEST_STATE: u64 = 12 << 10;

/// How soon after a refusal freed memory goes back to the kernel: long
/// enough for the refused requests to have been answered and freed, and
/// for a burst of refusals to share one trim.
const TRIM_AFTER: Duration = Duration::from_millis(50);

/// The process-wide budget; a reload keeps its count and takes the new limit.
#[derive(Debug)]
pub struct Budget {
    used: Arc<AtomicU64>,
    limit: u64,
    /// A trim is due (see [`Budget::refused`]).
    trimming: Arc<AtomicBool>,
}

impl Budget {
    pub fn new(limit: u64, previous: Option<&Budget>) -> Budget {
        Budget {
            used: previous.map_or_else(Default::default, |b| b.used.clone()),
            limit,
            trimming: previous.map_or_else(Default::default, |b| b.trimming.clone()),
        }
    }

    /// A body was refused for want of memory: the requests refused now free
    /// their state (task, head, HTTP/2 stream and frames), which glibc keeps
    /// in its arenas; [`TRIM_AFTER`] later it is handed back to the kernel,
    /// once for a whole burst. Without this, what a burst of refused
    /// streams freed stayed resident until the daemon's periodic look
    /// (`daemon::memory`, every 10 s) while the bodies admitted grew into
    /// the budget they gave back: +16 MiB over a 256 MiB budget in the
    /// HTTP/2 body attack.
    pub fn refused(&self) {
        if self.trimming.swap(true, Ordering::AcqRel) {
            return;
        }
        let trimming = self.trimming.clone();
        tokio::spawn(async move {
            tokio::time::sleep(TRIM_AFTER).await;
            trimming.store(false, Ordering::Release);
            // Off the worker: a trim takes 0.1 to 27 ms (median 1.3 ms)
            // on the loaded 2-CPU machine in the HTTP/2 body attack.
            tokio::task::spawn_blocking(give_freed_memory_back);
        });
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn try_take(&self, n: u64) -> bool {
        let mut now = self.used.load(Ordering::Relaxed);
        loop {
            if now.saturating_add(n) > self.limit {
                return false;
            }
            match self
                .used
                .compare_exchange_weak(now, now + n, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(seen) => now = seen,
            }
        }
    }
}

/// One HTTP/2 connection's share, carried by each of its requests (an
/// extension), and what its bodies may have in flight.
#[derive(Clone, Debug)]
pub struct ConnBudget(Arc<ConnShare>);

#[derive(Debug)]
struct ConnShare {
    share: Arc<Semaphore>,
    flight: Mutex<Flight>,
}

/// What a connection's bodies being read may have in flight: each its
/// stream's window (or less, if that is all it can still send), the
/// whole within the connection's window; charged to the process.
#[derive(Debug, Default)]
struct Flight {
    wanted: u64,
    held: Held,
}

impl ConnBudget {
    pub fn new(bytes: u64) -> ConnBudget {
        let permits = usize::try_from(bytes)
            .map_or(Semaphore::MAX_PERMITS, |b| b.min(Semaphore::MAX_PERMITS));
        ConnBudget(Arc::new(ConnShare {
            share: Arc::new(Semaphore::new(permits)),
            flight: Mutex::new(Flight::default()),
        }))
    }

    /// A body that can still send `most` bytes starts being read on this
    /// connection: what the connection may have received for it and not
    /// handed over (its stream's window, within the connection's) is taken
    /// from the process's budget until the returned [`InFlight`] is dropped.
    pub fn in_flight(&self, most: u64, process: &Budget) -> Result<InFlight, Short> {
        let n = most.min(u64::from(H2_STREAM_WINDOW));
        let mut f = self.0.flight.lock().unwrap_or_else(|e| e.into_inner());
        let need = (f.wanted + n).min(u64::from(H2_CONNECTION_WINDOW));
        let more = need.saturating_sub(f.held.bytes);
        if more > 0 {
            f.held.grow(more, process)?;
        }
        f.wanted += n;
        Ok(InFlight {
            conn: self.0.clone(),
            n,
        })
    }
}

/// A body's part of its connection's bytes in flight ([`ConnBudget::in_flight`]).
#[derive(Debug)]
pub struct InFlight {
    conn: Arc<ConnShare>,
    n: u64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut f = self.conn.flight.lock().unwrap_or_else(|e| e.into_inner());
        f.wanted -= self.n;
        let need = f.wanted.min(u64::from(H2_CONNECTION_WINDOW));
        let over = f.held.bytes.saturating_sub(need);
        f.held.give_back(over);
    }
}

/// Why a body could not have more memory.
#[derive(Debug, PartialEq, Eq)]
pub enum Short {
    /// The process-wide budget is spent: 503.
    Process,
    /// The connection's share is spent: 503.
    Connection,
}

/// The memory one body holds, given back when dropped.
#[derive(Debug, Default)]
pub struct Held {
    process: Option<Arc<AtomicU64>>,
    bytes: u64,
    conn: Option<OwnedSemaphorePermit>,
}

impl Held {
    /// Takes the `n` bytes a body may come to from its connection's share,
    /// at once or not at all (what was taken is given back on failure).
    pub fn reserve(&mut self, n: u64, conn: &ConnBudget) -> Result<(), Short> {
        let mut taken: Option<OwnedSemaphorePermit> = None;
        let mut left = n;
        while left > 0 {
            let chunk = u32::try_from(left).unwrap_or(u32::MAX);
            let p = conn
                .0
                .share
                .clone()
                .try_acquire_many_owned(chunk)
                .map_err(|_| Short::Connection)?;
            match &mut taken {
                Some(t) => t.merge(p),
                t @ None => *t = Some(p),
            }
            left -= u64::from(chunk);
        }
        match (&mut self.conn, taken) {
            (Some(held), Some(t)) => held.merge(t),
            (held @ None, t) => *held = t,
            (Some(_), None) => {}
        }
        Ok(())
    }

    /// Takes `n` more bytes from the process's budget, at once or not at all.
    pub fn grow(&mut self, n: u64, process: &Budget) -> Result<(), Short> {
        if !process.try_take(n) {
            return Err(Short::Process);
        }
        self.process.get_or_insert_with(|| process.used.clone());
        self.bytes += n;
        Ok(())
    }

    /// Gives `n` of the bytes taken from the process's budget back.
    fn give_back(&mut self, n: u64) {
        let n = n.min(self.bytes);
        if let Some(used) = &self.process {
            used.fetch_sub(n, Ordering::AcqRel);
        }
        self.bytes -= n;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(used) = &self.process {
            used.fetch_sub(self.bytes, Ordering::AcqRel);
        }
    }
}

/// Makes freed body buffers go back to the system, so that the process's
/// memory follows what the budget counts.
///
/// glibc serves allocations of 128 KiB and more with mmap, and gives them
/// back when freed, but raises that threshold each time such a block is
/// freed (up to 32 MiB): after a few bodies, large buffers come from the
/// heap, whose freed space is kept. Under churn (an attack whose streams
/// get 503 and are replaced) the resident memory then grew past the budget
/// (RSS +150 to +177 MiB for a 128 MiB budget); fixing the threshold keeps
/// it within.
/// Allocations this large and larger are mmapped (and unmapped when freed).
pub const MMAP_THRESHOLD: u64 = 128 << 10;

pub fn give_freed_bodies_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called at
    // start-up, and glibc serialises it against allocations.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
    }
}

/// Hands the free pages of the allocator's arenas back to the kernel (see
/// [`Budget::refused`]). It walks the arenas' free chunks under their
/// locks: 69 trims in the 50-connection HTTP/2 body attack, 240 ms in all.
fn give_freed_memory_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let started = std::time::Instant::now();
        // SAFETY: malloc_trim takes no pointers and only walks the
        // allocator's own arenas, under their locks.
        unsafe {
            libc::malloc_trim(0);
        }
        log::debug!(
            "body memory refused: heap trimmed in {:?}",
            started.elapsed()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_process_budget_refuses_what_would_go_past_it_and_gets_it_back() {
        let budget = Budget::new(100, None);
        let mut a = Held::default();
        a.grow(60, &budget).unwrap();
        let mut b = Held::default();
        assert_eq!(b.grow(41, &budget), Err(Short::Process));
        b.grow(40, &budget).unwrap();
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        let reloaded = Budget::new(50, Some(&budget));
        drop(b);
        assert_eq!(reloaded.used(), 0, "a reload keeps the count");
    }

    #[test]
    fn a_connection_past_its_share_is_refused_until_it_is_given_back() {
        let conn = ConnBudget::new(100);
        let mut a = Held::default();
        a.reserve(80, &conn).unwrap();
        let mut b = Held::default();
        assert_eq!(b.reserve(30, &conn), Err(Short::Connection));
        assert!(b.conn.is_none(), "nothing kept from a refusal");
        drop(a);
        b.reserve(30, &conn).unwrap();
        assert_eq!(b.conn.as_ref().map(|p| p.num_permits()), Some(30));
    }

    #[test]
    fn a_connections_bytes_in_flight_are_charged_within_its_window() {
        let process = Budget::new(10 << 20, None);
        let conn = ConnBudget::new(64 << 20);
        // A body that can send 1000 bytes more has no more in flight.
        let small = conn.in_flight(1000, &process).unwrap();
        assert_eq!(process.used(), 1000);
        // Larger ones, a stream window each, within the connection's.
        let large: Vec<InFlight> = (0..8)
            .map(|_| conn.in_flight(1 << 20, &process).unwrap())
            .collect();
        assert_eq!(process.used(), u64::from(H2_CONNECTION_WINDOW));
        drop(large);
        assert_eq!(process.used(), 1000);
        drop(small);
        assert_eq!(process.used(), 0);
        // Refused, and nothing kept, when the process has no room for it.
        let tight = Budget::new(1000, None);
        let conn = ConnBudget::new(64 << 20);
        assert_eq!(conn.in_flight(1 << 20, &tight).err(), Some(Short::Process));
        assert_eq!(tight.used(), 0);
        let _fits = conn.in_flight(1000, &tight).unwrap();
        assert_eq!(tight.used(), 1000);
    }

    #[test]
    fn shares_larger_than_a_semaphore_call_are_taken_in_pieces() {
        let conn = ConnBudget::new(10 << 30);
        let mut a = Held::default();
        a.reserve(5 << 30, &conn).unwrap();
        assert_eq!(a.conn.as_ref().map(|p| p.num_permits()), Some(5 << 30));
        let mut b = Held::default();
        assert_eq!(b.reserve(6 << 30, &conn), Err(Short::Connection));
        b.reserve(5 << 30, &conn).unwrap();
    }
}
