//! Memory for request bodies, bounded twice: for the whole process
//! (`body_memory`: a body that would go past it gets 503, the budget never
//! grows) and per connection (`body_memory_per_connection`: an HTTP/2
//! stream past it waits, unread, so flow control holds the client back).
//!
//! What is counted is the buffers' capacity, as it is allocated. What is
//! not: bytes HTTP/2 has received and not yet handed over, at most the
//! connection's flow-control window (`server::H2_CONNECTION_WINDOW`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
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
    /// The connection's share stayed spent for the whole wait: 408.
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
    /// Takes `n` more bytes: from the connection's share first (waiting up
    /// to `wait` for other streams to give some back), then from the
    /// process's (at once, or not at all).
    pub async fn grow(
        &mut self,
        n: u64,
        process: &Budget,
        conn: Option<&ConnBudget>,
        wait: Duration,
    ) -> Result<(), Short> {
        let mut permit = None;
        if let Some(c) = conn {
            let n = u32::try_from(n).map_err(|_| Short::Connection)?;
            let got = tokio::time::timeout(wait, c.0.clone().acquire_many_owned(n)).await;
            match got {
                Ok(Ok(p)) => permit = Some(p),
                _ => return Err(Short::Connection),
            }
        }
        if !process.try_take(n) {
            return Err(Short::Process);
        }
        self.process.get_or_insert_with(|| process.used.clone());
        self.bytes += n;
        match (&mut self.conn, permit) {
            (Some(held), Some(p)) => held.merge(p),
            (held @ None, p) => *held = p,
            (Some(_), None) => {}
        }
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
pub fn give_freed_bodies_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called at
    // start-up, and glibc serialises it against allocations.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_process_budget_refuses_what_would_go_past_it_and_gets_it_back() {
        let budget = Budget::new(100, None);
        let mut a = Held::default();
        a.grow(60, &budget, None, Duration::ZERO).await.unwrap();
        let mut b = Held::default();
        assert_eq!(
            b.grow(41, &budget, None, Duration::ZERO).await,
            Err(Short::Process)
        );
        b.grow(40, &budget, None, Duration::ZERO).await.unwrap();
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        let reloaded = Budget::new(50, Some(&budget));
        drop(b);
        assert_eq!(reloaded.used(), 0, "a reload keeps the count");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_past_its_share_waits_for_it() {
        let budget = Budget::new(1000, None);
        let conn = ConnBudget::new(100);
        let mut a = Held::default();
        a.grow(80, &budget, Some(&conn), Duration::ZERO)
            .await
            .unwrap();
        let mut b = Held::default();
        let wait = Duration::from_secs(1);
        assert_eq!(
            b.grow(30, &budget, Some(&conn), wait).await,
            Err(Short::Connection),
            "nothing given back within the wait"
        );
        let waiting = tokio::spawn(async move {
            let mut b = Held::default();
            b.grow(30, &budget, Some(&conn), wait).await.map(|()| b)
        });
        tokio::time::advance(Duration::from_millis(500)).await;
        drop(a);
        let b = waiting.await.unwrap().unwrap();
        assert_eq!(b.bytes, 30);
    }
}
