//! Rare events as aya-log records, rate-limited in the program.
//!
//! ```text
//! event!(Level, "format ... ({} suppressed on this cpu)", args...)
//!   admit(level)   the level (a global the daemon writes) is below it ->
//!                  skipped: one load and a compare (4 instructions); the
//!                  budget, the clock and the ring buffer are never touched
//!                  the global record budget (GCRA, `rate` per second, burst
//!                  `rate`) is spent -> counted as suppressed on this CPU
//!   record         aya-log writes it to its ring buffer (`AYA_LOGS`), with
//!                  target `rampart::xdp` and, as the last argument, how many
//!                  records this CPU suppressed since its previous one (per
//!                  CPU, so that a flood on every CPU shares no counter)
//! ```
//!
//! The daemon reads the ring buffer and logs each record through its own
//! logger, so `rampart log level` and `[log]` govern both sides (docs/kernel-tier.md).
//!
//! Adding an event is one line at its call site; the format's last `{}` is
//! the suppressed count, appended by the macro:
//!
//! ```ignore
//! crate::event!(Warn, "attack mode entered: {} new sources/s ({} suppressed on this cpu)", rate);
//! crate::event!(Info, "attack mode left after {} s ({} suppressed on this cpu)", secs);
//! ```

use aya_ebpf::{helpers::bpf_ktime_get_coarse_ns, programs::XdpContext};
pub use aya_log_ebpf::macro_support::Level;
use proxy_common::{gcra, log::LOG_KEY};

use crate::{
    atomic,
    maps::{LOG, LOG_SUPPRESSED},
};

/// The level (`proxy_common::log::OFF`..`TRACE`), written by the daemon
/// into this program's own global data. A global's address is a constant,
/// so reading it is one load, where the `log` map costs an inlined lookup
/// (about 12 instructions more on every event).
#[unsafe(no_mangle)]
static mut RAMPART_LOG_LEVEL: u32 = 0;

/// Bytes of a malformed frame copied into its record.
const SAMPLE: usize = 64;

/// Records one rare event at `$level` (`Error`, `Warn`, `Info`, `Debug`,
/// `Trace`) if the level and the record budget allow it. The format's last
/// `{}` receives the count of records this CPU suppressed since its last one.
/// Only the level check is inlined at the call site; the rest is a call, so
/// the caller's hot code is laid out as if the event were not there.
#[macro_export]
macro_rules! event {
    ($level:ident, $fmt:literal $(, $arg:expr)* $(,)?) => {
        if $crate::log::enabled($crate::log::Level::$level) {
            (#[inline(never)]
            || {
                if let Some(suppressed) = $crate::log::admit() {
                    aya_log_ebpf::log!(
                        &(),
                        target: proxy_common::log::TARGET,
                        $crate::log::Level::$level,
                        $fmt,
                        $($arg,)*
                        suppressed
                    );
                }
            })();
        }
    };
}

/// Whether events at `level` are recorded: one load and a compare.
#[inline(always)]
pub fn enabled(level: Level) -> bool {
    // SAFETY: a plain read of a u32 the program never writes; volatile, so
    // LLVM does not fold the initial value in.
    level as u32 <= unsafe { core::ptr::read_volatile(&raw const RAMPART_LOG_LEVEL) }
}

/// Whether an enabled event is recorded now, within the budget. `Some(n)`:
/// yes, and this CPU suppressed `n` records since its previous one (its
/// count restarts).
#[inline(always)]
pub fn admit() -> Option<u64> {
    admit_rate(LOG.get_ptr_mut(LOG_KEY)?)
}

#[inline(always)]
fn admit_rate(cfg: *mut proxy_common::log::LogConfig) -> Option<u64> {
    let suppressed = LOG_SUPPRESSED.get_ptr_mut(LOG_KEY)?;
    // SAFETY: a BPF helper with no preconditions; `cfg` points into the live
    // `log` value, whose TAT is 8-byte aligned and changed only by CAS.
    let admitted = unsafe {
        // The coarse clock (a tick's resolution, a few ms) is plenty for a
        // budget of records per second, and costs a fraction of the precise
        // one, which a flood of events would pay per packet.
        let now = bpf_ktime_get_coarse_ns();
        conform(
            &raw mut (*cfg).tat_ns,
            now,
            (*cfg).interval_ns,
            (*cfg).tolerance_ns,
        )
    };
    // SAFETY: this CPU's slot of a per-CPU array; nothing else on this CPU
    // runs concurrently.
    unsafe {
        if !admitted {
            *suppressed += 1;
            return None;
        }
        let n = *suppressed;
        *suppressed = 0;
        Some(n)
    }
}

/// One GCRA step on the shared TAT; a lost compare-and-exchange means
/// another CPU just took a record, and this one is suppressed.
///
/// # Safety
/// `tat` points to a live, 8-byte aligned u64 inside a map value.
#[inline(always)]
unsafe fn conform(tat: *mut u64, now: u64, interval: u64, tolerance: u64) -> bool {
    if interval == 0 {
        return false;
    }
    // SAFETY: the caller passes an aligned u64 inside a map value.
    let seen = unsafe { core::ptr::read_volatile(tat) };
    match gcra::admit(seen, now, interval, tolerance) {
        None => false,
        Some(next) => unsafe { atomic::cmpxchg(tat, seen, next) == seen },
    }
}

// === events ===

/// A frame that could not be parsed (or carried more VLAN tags than are
/// walked, with `unparsed = "drop"`): its length, where it came in, and its
/// first [`SAMPLE`] bytes (zero-padded), at info level.
#[inline(always)]
pub fn malformed(ctx: &XdpContext) {
    if enabled(Level::Info) {
        malformed_record(ctx);
    }
}

/// [`malformed`] past its level check; the sample is copied only once the
/// record is admitted.
#[inline(never)]
fn malformed_record(ctx: &XdpContext) {
    if let Some(suppressed) = admit() {
        let bytes = sample(ctx);
        aya_log_ebpf::info!(
            &(),
            target: proxy_common::log::TARGET,
            "malformed frame dropped: {} bytes on ifindex {} rx queue {}, first bytes {:x} ({} suppressed on this cpu)",
            ctx.data_end() - ctx.data(),
            ctx.ingress_ifindex(),
            ctx.rx_queue_index(),
            &bytes,
            suppressed
        );
    }
}

/// The per-source LRU map of a family (`bits`: 32 or 128) refused a new
/// source: it passes, unlimited and uncounted, at warn level.
#[inline(always)]
pub fn source_refused(bits: u32) {
    crate::event!(
        Warn,
        "sources_v{} refused a new source (map full?); its packet passes unlimited ({} suppressed on this cpu)",
        if bits == 32 { 4u32 } else { 6u32 }
    );
}

/// The first bytes of the frame, zero-padded to [`SAMPLE`].
#[inline(always)]
fn sample(ctx: &XdpContext) -> [u8; SAMPLE] {
    let mut buf = [0u8; SAMPLE];
    let len = (ctx.data_end() - ctx.data()) as u64;
    // min(len, SAMPLE) in assembly: computed in Rust, LLVM moves the zero
    // check onto `len`, and the verifier then cannot prove the size is not 0.
    let n: u64;
    // SAFETY: register arithmetic only.
    unsafe {
        core::arch::asm!(
            "{n} = {len}",
            "if {n} < {max} goto +1",
            "{n} = {max}",
            n = out(reg) n,
            len = in(reg) len,
            max = const SAMPLE,
            options(pure, nomem, nostack),
        );
    }
    if n != 0 {
        // SAFETY: `buf` holds SAMPLE bytes and 0 < n <= SAMPLE; the helper
        // checks the frame bounds itself.
        unsafe {
            aya_ebpf::helpers::generated::bpf_xdp_load_bytes(
                ctx.ctx,
                0,
                buf.as_mut_ptr().cast(),
                n as u32,
            );
        }
    }
    buf
}
