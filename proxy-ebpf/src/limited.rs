//! The limited-drop cache: per CPU, which sources are over a limit, and
//! until which coarse time, so their next packets are dropped by an
//! inlined array probe instead of an LRU lookup (docs/kernel-tier.md,
//! "Limited sources").
//!
//! A coarse-clock limit (`FLAG_*_COARSE`) drops a packet when its TAT is
//! more than the tolerance ahead of the coarse time `c`. Drops do not move
//! the TAT and admissions (on any CPU) only push it further, so every
//! later packet with a coarse time below `TAT - tolerance` would be
//! dropped by the LRU path too: the cache gives the same verdicts. A limit
//! decided on the exact time is cached until `limit::LAG_GUARD_NS` before
//! that: the exact time then is still before it unless the coarse clock
//! lags by more than the guard. An entry holds only while the limit's
//! interval and tolerance are the ones it was made with.
//!
//! The dropped packets still count in the source's `packets`, `bytes`,
//! `syns` and `drops`: they are kept in the slot and added to its LRU entry every
//! [`FLUSH`] packets, when the slot goes to another source, and when the
//! source's next packet takes the LRU path.

use aya_ebpf::btf_maps::LruHashMap;
use proxy_common::{
    config::FilterConfig,
    list::{V4, V6},
    source::SourceState,
    stats,
};

use crate::{
    addr::Addr,
    maps::{LIMITED_BITS, LIMITED_V4, LIMITED_V6, Limited},
};

/// Cached drops kept in a slot before they are added to the LRU entry.
const FLUSH: u64 = 64;

/// The slot of a source's word: one keyed multiply (Fibonacci hashing).
/// A per-CPU cache needs no more: a collision costs the two sources the
/// LRU path, never a wrong verdict.
#[inline(always)]
fn pick(word: u64, seed: u64) -> u32 {
    ((word ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - LIMITED_BITS)) as u32
}

/// A family's cache.
pub trait LimitedCache: Addr {
    fn slot(key: Self::Key, seed: u64) -> Option<*mut Limited>;
    fn word(key: Self::Key) -> [u64; 2];
    /// The source a slot holds.
    fn key_of(word: [u64; 2]) -> Self;
}

impl LimitedCache for V4 {
    #[inline(always)]
    fn slot(key: u32, seed: u64) -> Option<*mut Limited> {
        LIMITED_V4.get_ptr_mut(pick(key as u64, seed))
    }

    #[inline(always)]
    fn word(key: u32) -> [u64; 2] {
        [key as u64 | 1 << 32, 0]
    }

    #[inline(always)]
    fn key_of(word: [u64; 2]) -> V4 {
        (word[0] as u32).to_ne_bytes()
    }
}

impl LimitedCache for V6 {
    #[inline(always)]
    fn slot(key: [u64; 2], seed: u64) -> Option<*mut Limited> {
        LIMITED_V6.get_ptr_mut(pick(key[0] ^ key[1].rotate_left(29), seed))
    }

    #[inline(always)]
    fn word(key: [u64; 2]) -> [u64; 2] {
        key
    }

    #[inline(always)]
    fn key_of(word: [u64; 2]) -> V6 {
        // SAFETY: [u64; 2] and [u8; 16] have the same size; any bytes are valid.
        unsafe { core::mem::transmute(word) }
    }
}

/// This CPU's slot for `key`, and whether it holds `key`.
#[inline(always)]
pub fn probe<K: LimitedCache>(cfg: &FilterConfig, key: &K) -> Option<(*mut Limited, bool)> {
    let word = K::word(key.key());
    let slot = K::slot(key.key(), cfg.admit_seed)?;
    // SAFETY: a live value of this CPU's slot of a per-CPU array.
    let held = unsafe { (*slot).addr };
    Some((slot, held[0] == word[0] && held[1] == word[1]))
}

/// The cached verdict for a packet of the source whose slot is `slot`, if
/// its drop is cached (the packet is then counted in the slot), else None.
/// `vouch`: the allowlist was not looked up for this packet, so the slot
/// must have been made under the current allowlist generation `generation`.
#[inline(always)]
pub fn cached(
    cfg: &FilterConfig,
    slot: *mut Limited,
    vouch: bool,
    generation: u64,
    now: u64,
    syn: bool,
    len: u64,
) -> Option<u32> {
    // SAFETY: this CPU's slot; nothing else on this CPU runs concurrently.
    let s = unsafe { &mut *slot };
    if vouch && s.allow_gen != generation {
        return None;
    }
    let verdict = if syn && cfg.syn_interval_ns != 0 {
        // A SYN is checked against the SYN limit first: a cached SYN-limited
        // drop is its verdict; a cached packet-limited one is not (it would
        // have spent a SYN token before the packet limit dropped it). With
        // no SYN limit a SYN is a packet like any other.
        if now < s.syn_until && s.syn_params == [cfg.syn_interval_ns, cfg.syn_tolerance_ns] {
            stats::SYN_LIMITED
        } else {
            return None;
        }
    } else if now < s.pps_until && s.pps_params == [cfg.pps_interval_ns, cfg.pps_tolerance_ns] {
        stats::PPS_LIMITED
    } else {
        return None;
    };
    s.packets += 1;
    s.bytes += len;
    s.syns += syn as u64;
    Some(verdict)
}

/// Whether a cached slot has enough drops to add to the LRU entry now.
#[inline(always)]
pub fn full(slot: *mut Limited) -> bool {
    // SAFETY: as above.
    unsafe { (*slot).packets >= FLUSH }
}

/// Adds the drops kept in `slot` to `state` and empties the count.
#[inline(always)]
pub fn drain(slot: *mut Limited, state: *mut SourceState, now: u64) {
    // SAFETY: `slot` is this CPU's slot; `state` a live LRU value, updated
    // with plain stores as `limit::apply` does.
    unsafe {
        let s = &mut *slot;
        if s.packets == 0 {
            return;
        }
        let st = &mut *state;
        core::ptr::write_volatile(&raw mut st.packets, st.packets + s.packets);
        core::ptr::write_volatile(&raw mut st.bytes, st.bytes + s.bytes);
        core::ptr::write_volatile(&raw mut st.syns, st.syns + s.syns);
        core::ptr::write_volatile(&raw mut st.drops, st.drops + s.packets);
        core::ptr::write_volatile(&raw mut st.last_seen_ns, now);
        s.packets = 0;
        s.bytes = 0;
        s.syns = 0;
    }
}

/// Adds the drops of the slot's source to its LRU entry, if it still has one.
#[inline(always)]
pub fn flush<K: LimitedCache>(
    sources: &LruHashMap<K, SourceState, 65536>,
    slot: *mut Limited,
    now: u64,
) {
    // SAFETY: this CPU's slot.
    let (word, pending) = unsafe { ((*slot).addr, (*slot).packets) };
    if pending == 0 {
        return;
    }
    let key = K::key_of(word);
    match sources.get_ptr_mut(&key) {
        Some(state) => drain(slot, state, now),
        // The entry is gone (evicted, or removed by userspace): nothing to add to.
        // SAFETY: as above.
        None => unsafe {
            (*slot).packets = 0;
            (*slot).bytes = 0;
            (*slot).syns = 0;
        },
    }
}

/// Records that `key`'s packets are `verdict` (`SYN_LIMITED` or
/// `PPS_LIMITED`) while the coarse time is below `until`, its address
/// being not allowlisted under generation `generation`. A slot held by another
/// source is taken over after its drops are flushed.
#[inline(always)]
pub fn record<K: LimitedCache>(
    cfg: &FilterConfig,
    sources: &LruHashMap<K, SourceState, 65536>,
    slot: *mut Limited,
    holds: bool,
    key: &K,
    generation: u64,
    verdict: u32,
    until: u64,
    now: u64,
) {
    if !holds {
        flush(sources, slot, now);
    }
    // SAFETY: this CPU's slot; nothing else on this CPU runs concurrently.
    let s = unsafe { &mut *slot };
    if !holds || s.allow_gen != generation {
        // A slot made under another allowlist generation keeps nothing.
        s.addr = K::word(key.key());
        s.pps_until = 0;
        s.syn_until = 0;
        s.allow_gen = generation;
    }
    if verdict == stats::SYN_LIMITED {
        s.syn_until = until;
        s.syn_params = [cfg.syn_interval_ns, cfg.syn_tolerance_ns];
    } else {
        s.pps_until = until;
        s.pps_params = [cfg.pps_interval_ns, cfg.pps_tolerance_ns];
    }
}
