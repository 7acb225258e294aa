//! The first stage a source goes through before it gets an LRU entry
//! (`proxy_common::admit` explains the design and its bounds).

use aya_ebpf::btf_maps::LruHashMap;
use proxy_common::{
    admit::{self, FirstV4, FirstV6, TAG_LINE},
    config::FilterConfig,
    list::{V4, V6},
    source::SourceState,
    stats,
};

use crate::{
    addr::Addr,
    clock, limit,
    maps::{FIRST_TAGS_V4, FIRST_TAGS_V6, FIRST_V4, FIRST_V6},
};

/// `BPF_NOEXIST`: create the source entry only if another CPU did not just do so.
const BPF_NOEXIST: u64 = 1;

/// A family's first-stage slot type and maps.
pub trait FirstStage: Addr {
    type Slot: 'static;
    /// `key`'s keyed hash (`proxy_common::admit::hash_v4`): its slot and
    /// tag, and its bit in the known-source filter.
    fn hash(key: Self::Key, seed: u64) -> u64;
    /// The slot at `index`, if the map has it (it always does).
    fn slot_at(index: u32) -> Option<*mut Self::Slot>;
    /// The line of tags holding slot `index`'s.
    fn tags(index: u32) -> Option<*mut [u8; TAG_LINE as usize]>;
    /// The first packet recorded in `slot` if it is `key`'s: (when, length).
    fn holds(slot: &Self::Slot, key: Self::Key) -> Option<(u64, u32)>;
    fn record(slot: &mut Self::Slot, key: Self::Key, now: u64, len: u32);
    fn clear(slot: &mut Self::Slot);
}

impl FirstStage for V4 {
    type Slot = FirstV4;

    #[inline(always)]
    fn hash(key: u32, seed: u64) -> u64 {
        admit::hash_v4(key, seed)
    }

    #[inline(always)]
    fn slot_at(index: u32) -> Option<*mut FirstV4> {
        FIRST_V4.get_ptr_mut(index)
    }

    #[inline(always)]
    fn tags(index: u32) -> Option<*mut [u8; TAG_LINE as usize]> {
        FIRST_TAGS_V4.get_ptr_mut(index / TAG_LINE)
    }

    #[inline(always)]
    fn holds(slot: &FirstV4, key: u32) -> Option<(u64, u32)> {
        (slot.at_ns != 0 && slot.addr == key).then_some((slot.at_ns, slot.len))
    }

    #[inline(always)]
    fn record(slot: &mut FirstV4, key: u32, now: u64, len: u32) {
        slot.addr = key;
        slot.len = len;
        slot.at_ns = now;
    }

    #[inline(always)]
    fn clear(slot: &mut FirstV4) {
        slot.at_ns = 0;
    }
}

impl FirstStage for V6 {
    type Slot = FirstV6;

    #[inline(always)]
    fn hash(key: [u64; 2], seed: u64) -> u64 {
        admit::hash_v6(key, seed)
    }

    #[inline(always)]
    fn slot_at(index: u32) -> Option<*mut FirstV6> {
        FIRST_V6.get_ptr_mut(index)
    }

    #[inline(always)]
    fn tags(index: u32) -> Option<*mut [u8; TAG_LINE as usize]> {
        FIRST_TAGS_V6.get_ptr_mut(index / TAG_LINE)
    }

    #[inline(always)]
    fn holds(slot: &FirstV6, key: [u64; 2]) -> Option<(u64, u32)> {
        (slot.at_ns != 0 && slot.addr[0] == key[0] && slot.addr[1] == key[1])
            .then_some((slot.at_ns, slot.len))
    }

    #[inline(always)]
    fn record(slot: &mut FirstV6, key: [u64; 2], now: u64, len: u32) {
        slot.addr = key;
        slot.len = len;
        slot.at_ns = now;
    }

    #[inline(always)]
    fn clear(slot: &mut FirstV6) {
        slot.at_ns = 0;
    }
}

/// The verdict for a packet of a source the LRU does not hold (and whose
/// address is not allowlisted under generation `generation`, or 0): its first
/// packet takes one from the new-source budget (`new_sources.rs`; dropped as
/// `new_limited` when it is spent), is recorded in its slot (at the coarse
/// time `now`) and passes;
/// its second, while it still holds the slot, promotes it into `sources`
/// with one insert, and marks it in the known-source filter (`known.rs`).
/// `hash` is `K::hash` of the source.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn new_source<K: FirstStage>(
    cfg: &FilterConfig,
    sources: &LruHashMap<K, SourceState, 65536>,
    source_key: &K,
    hash: u64,
    generation: u64,
    now: u64,
    syn: bool,
    len: u64,
) -> u32 {
    let key = source_key.key();
    let (index, tag) = admit::slot_tag_of(hash);
    let Some(tags) = K::tags(index) else {
        return stats::PASS;
    };
    // SAFETY: `index % TAG_LINE` is inside the line, a live value of the
    // tag array; racy one-byte accesses, like the slot's below.
    let tag_at = unsafe { (tags as *mut u8).add((index % TAG_LINE) as usize) };
    // The tag differs: the slot does not hold this source, and past the
    // budget the packet is dropped without reading the slot (a cache miss
    // in 1-2 MB, where the tags' 64 KB stay cached).
    // SAFETY: as above.
    let tagged = unsafe { core::ptr::read_volatile(tag_at) } == tag;
    let Some(slot) = K::slot_at(index) else {
        return stats::PASS;
    };
    // SAFETY: a live value of the first-stage array. Other CPUs may write the
    // same slot at once; a torn read costs at most one packet's accounting.
    let slot = unsafe { &mut *slot };
    let held = if tagged { K::holds(slot, key) } else { None };
    let Some((first_at, first_len)) = held else {
        // A source never seen (or whose slot another took): it takes one
        // from the new-source budget, or is dropped before any write.
        if !crate::new_sources::admit(now) {
            return stats::NEW_LIMITED;
        }
        K::record(slot, key, now, admit::first_len(len, syn));
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(tag_at, tag) };
        return stats::PASS;
    };
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(tag_at, 0) };
    K::clear(slot);
    // The second packet is decided on the exact time, as the LRU path
    // does; the first was recorded at the coarse time, which may run ahead
    // of the exact one (clock.rs), never past the second packet.
    let exact = clock::exact();
    let first_at = if first_at < exact { first_at } else { exact };
    let (mut state, verdict) = admit::promote(cfg, first_at, first_len, exact, len, syn);
    state.allow_gen = generation;
    if sources.insert(source_key, &state, BPF_NOEXIST).is_ok() {
        // After the insert: a rebuild that zeroed its filter before this
        // mark keeps it; one that zeroed it after reads the entry.
        crate::known::mark(hash);
        return verdict;
    }
    // Another CPU promoted it first (or the map refused): this packet goes
    // through that entry, or passes if there is none (fail open).
    match sources.get_ptr_mut(source_key) {
        Some(state) => limit::apply(cfg, state, exact, syn, len, &mut 0),
        None => {
            crate::log::source_refused(K::BITS);
            stats::PASS
        }
    }
}
