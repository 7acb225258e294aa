//! Rare events as aya-log records, rate-limited in the program.
//!
//! ```text
//! event!(Level, "format ... ({} suppressed on this cpu)", args...)
//!   admit(level)   the `log` map's level is below it -> skipped: an inlined
//!                  array lookup and a compare (15 instructions, no helper
//!                  call), the clock and the ring buffer are never touched
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

/// Bytes of a malformed frame copied into its record.
const SAMPLE: usize = 64;

/// Records one rare event at `$level` (`Error`, `Warn`, `Info`, `Debug`,
/// `Trace`) if the level and the record budget allow it. The format's last
/// `{}` receives the count of records this CPU suppressed since its last one.
#[macro_export]
macro_rules! event {
    ($level:ident, $fmt:literal $(, $arg:expr)* $(,)?) => {
        if let Some(suppressed) = $crate::log::admit($crate::log::Level::$level) {
            aya_log_ebpf::log!(
                &(),
                target: proxy_common::log::TARGET,
                $crate::log::Level::$level,
                $fmt,
                $($arg,)*
                suppressed
            );
        }
    };
}

/// Whether an event at `level` is recorded now. `Some(n)`: yes, and this
/// CPU suppressed `n` records since its previous one (its count restarts).
#[inline(always)]
pub fn admit(level: Level) -> Option<u64> {
    let cfg = LOG.get_ptr_mut(LOG_KEY)?;
    // SAFETY: a live value of the `log` array; `level` is only read.
    if level as u32 > unsafe { (*cfg).level } {
        return None;
    }
    admit_rate(cfg)
}

/// The budget part of [`admit`], kept out of line: only events that pass
/// the level check pay for it.
#[inline(never)]
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
    // As `event!`, with the sample copied only once the record is admitted.
    if let Some(suppressed) = admit(Level::Info) {
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
