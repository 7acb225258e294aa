//! Memory for request bodies, bounded twice: for the whole process
//! (`body_memory`: a body that would go past it gets 503, the budget never
//! grows) and per connection (`body_memory_per_connection`: an HTTP/2
//! stream whose body does not fit in what its connection's other bodies
//! left gets 503).
//!
//! The process's budget counts the buffers' capacity, as it is allocated.
//! A connection's share is taken whole when a body starts (its declared
//! length, or the route's `max_body`), and never waited for: a stream
//! waiting for it would leave what its client already sent unread in the
//! connection's flow-control window, which the streams being read need
//! (and streams growing piece by piece waited on each other for ever).
//! Not counted: bytes HTTP/2 has received and not yet handed over, at most
//! the connection's flow-control window (`server::H2_CONNECTION_WINDOW`).

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The process-wide budget; a reload keeps its count and takes the new limit.
#[derive(Debug)]
pub struct Budget {
    used: Arc<AtomicU64>,
    limit: u64,
}

impl Budget {
    pub fn new(limit: u64, previous: Option<&Budget>) -> Budget {
        Budget {
            used: previous.map_or_else(Default::default, |b| b.used.clone()),
            limit,
        }
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

/// One connection's share, carried by each of its requests (an extension).
#[derive(Clone, Debug)]
pub struct ConnBudget(Arc<Semaphore>);

impl ConnBudget {
    pub fn new(bytes: u64) -> ConnBudget {
        let permits = usize::try_from(bytes)
            .map_or(Semaphore::MAX_PERMITS, |b| b.min(Semaphore::MAX_PERMITS));
        ConnBudget(Arc::new(Semaphore::new(permits)))
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
