//! The XDP program's log: its settings in the pinned `log` map (a level and
//! a record budget, written here) and its records, read from aya-log's ring
//! buffer and handed to the process's logger with target `rampart::xdp`.
//!
//! ```text
//! program: event -> level in `log`? -> budget left? -> AYA_LOGS ring buffer
//! daemon:  forward(): ring buffer readable -> aya_log decodes -> log::logger()
//! ```

use std::{panic::AssertUnwindSafe, path::Path};

use aya::maps::{Array, MapData, PerCpuArray};
use aya_log::EbpfLogger;
use proxy_common::{
    log::{LOG_KEY, LogConfig},
    pin,
};
use tokio::io::{Interest, unix::AsyncFd};

use super::{FilterError, maps::open};

/// The program's records, as aya-log reads them, for [`forward`].
pub type Records = EbpfLogger<&'static dyn log::Log>;

/// Handles on the `log` and `log_suppressed` maps, and on the level the
/// loaded program reads.
pub struct XdpLog {
    config: Array<MapData, LogConfig>,
    suppressed: PerCpuArray<MapData, u64>,
    /// The program's `.bss` (its global `RAMPART_LOG_LEVEL`, the level it
    /// checks: one load, where a map costs a lookup); only the process that
    /// loaded the program has it. The `log` map's `level` records the same
    /// value for readers.
    level: Option<Array<MapData, u32>>,
}

/// The global-data map holding `RAMPART_LOG_LEVEL` (`proxy-ebpf/src/log.rs`).
pub(super) const LEVEL_MAP: &str = ".bss";

impl XdpLog {
    /// Opens the maps pinned in `dir`.
    pub fn open(dir: &Path) -> Result<XdpLog, FilterError> {
        Ok(XdpLog {
            config: open(dir, pin::LOG)?,
            suppressed: open(dir, pin::LOG_SUPPRESSED)?,
            level: None,
        })
    }

    /// The maps pinned in `dir`, with the loaded program's level (`map`: its
    /// [`LEVEL_MAP`]).
    pub(super) fn of_program(dir: &Path, map: aya::maps::Map) -> Result<XdpLog, FilterError> {
        let mut log = XdpLog::open(dir)?;
        log.level = Some(Array::try_from(map).map_err(FilterError::map(LEVEL_MAP))?);
        Ok(log)
    }

    pub fn settings(&self) -> Result<LogConfig, FilterError> {
        self.config
            .get(&LOG_KEY, 0)
            .map_err(FilterError::map(pin::LOG))
    }

    /// Records at `level` (`proxy_common::log::OFF`..`TRACE`) and below, at
    /// most `rate` per second; the program sees it on its next event. Only
    /// the process that loaded the program can change its level.
    pub fn set(&mut self, level: u32, rate: u32) -> Result<(), FilterError> {
        let value = self.settings()?.with(level, rate);
        let global = self.level.as_mut().ok_or_else(|| FilterError::NotOwner {
            what: "the XDP program's log level".into(),
        })?;
        // The budget first, so that a raised level never meets an old rate.
        self.config
            .set(LOG_KEY, value, 0)
            .map_err(FilterError::map(pin::LOG))?;
        global
            .set(0, value.level, 0)
            .map_err(FilterError::map(LEVEL_MAP))
    }

    /// Records suppressed and not yet reported, per CPU (each CPU reports
    /// its count in its next record, and starts again from zero).
    pub fn suppressed_per_cpu(&self) -> Result<Vec<u64>, FilterError> {
        let per_cpu = self
            .suppressed
            .get(&LOG_KEY, 0)
            .map_err(FilterError::map(pin::LOG_SUPPRESSED))?;
        Ok(per_cpu.iter().copied().collect())
    }

    /// [`XdpLog::suppressed_per_cpu`], summed.
    pub fn pending_suppressed(&self) -> Result<u64, FilterError> {
        Ok(self.suppressed_per_cpu()?.iter().sum())
    }
}

/// Reads the program's records into the process's logger as they come,
/// until the task is dropped.
pub async fn forward(records: Records) {
    // SAFETY: the logger owns the ring buffer's map fd; it stays open and
    // the same for as long as the AsyncFd owns the logger.
    let mut fd = match unsafe { AsyncFd::register_with_interest(records, Interest::READABLE) } {
        Ok(fd) => fd,
        Err(e) => {
            return log::warn!("the XDP program's log records cannot be read: {e}");
        }
    };
    loop {
        let mut guard = match fd.readable_mut().await {
            Ok(g) => g,
            Err(e) => {
                return log::warn!("the XDP program's log records: {e}; no longer read");
            }
        };
        drain(guard.get_inner_mut());
        guard.clear_ready();
    }
}

/// Most records in a row that may fail to decode before the rest waits for
/// the next wake-up.
const MAX_BAD: usize = 64;

/// Logs every record waiting. aya-log panics on a record it cannot decode
/// (only a program built from other sources could write one); such a record
/// is consumed and reported, and the next ones are still read.
fn drain(records: &mut Records) {
    for _ in 0..MAX_BAD {
        match std::panic::catch_unwind(AssertUnwindSafe(|| records.flush())) {
            Ok(()) => return,
            Err(_) => log::error!(
                target: proxy_common::log::TARGET,
                "a record of the XDP program could not be decoded; dropped"
            ),
        }
    }
}
