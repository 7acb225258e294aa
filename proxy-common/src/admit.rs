//! The first stage in front of the per-source LRU (`sources_v4/v6`): a
//! source gets an LRU entry only from its second packet.
//!
//! A spoofed flood is made of sources that send one packet each. Giving each
//! of them an LRU entry costs an insert that evicts under the LRU's locks
//! (4-7 times a normal packet, issue 14) and pushes the real sources' state
//! out of the map. Instead, a source the LRU does not know is written into
//! one slot of a direct-mapped array (`first_v4/v6`, [`SLOTS`] slots, picked
//! by a keyed hash): its address, when, how long, whether it was a SYN. That
//! first packet passes, as it always did (a fresh source has a full burst
//! of both limits, and a burst is at least one). When the same source comes
//! back while it still holds its slot, it is promoted: [`promote`] builds
//! its LRU entry as if the first packet had gone through the limiters, and
//! applies the second packet to it, so the program inserts a complete entry
//! once and looks nothing up again.
//!
//! What this changes, and its bounds:
//! - A source that sends one packet never enters the LRU, so a spoofed flood
//!   no longer evicts real sources (a spoofed address that happens to find
//!   its own slot again is promoted like any source; with random sources in
//!   a /8 that is one packet in 256).
//! - A source whose slot is taken by another before its second packet is new
//!   again: its next packet passes as a first packet. Under a flood of R new
//!   sources per second a slot lasts about `SLOTS / R` (65 ms at 1 Mpps),
//!   so a source sending slower than that passes at most one packet per
//!   slot lifetime without being limited. Before, the LRU (65,536 entries)
//!   turned over just as fast, and each eviction gave a returning source a
//!   whole burst.
//! - The slot is chosen by a hash keyed with a secret seed the loader puts
//!   in the config map, so a sender cannot aim spoofed packets at its own
//!   slot to stay forever "new".
//! - Each slot also has a one-byte tag, 8 other bits of the same hash (0:
//!   the slot holds nothing), kept apart in a 64 KB array
//!   (`first_tags_v4/v6`, [`TAG_LINE`] tags per value). A new source's
//!   packet reads its tag first and the 16- or 32-byte slot only when the
//!   tag is its own: past the new-source budget, a spoofed packet is then
//!   dropped without the slot's cache miss (the slots' 1-2 MB do not stay
//!   in cache under a flood; the tags do). The tag is a hint: a source
//!   whose tag matches is still compared in full (one in 255 others of
//!   its slot would match).

use bytemuck::{Pod, Zeroable};

use crate::{config::FilterConfig, gcra, source::SourceState, stats};

/// Slots per family (a power of two).
pub const SLOTS: u32 = 65_536;

/// `FirstV4::len` bit: the first packet was a TCP SYN without ACK.
pub const FIRST_SYN: u32 = 1 << 31;

/// One IPv4 slot: the last source seen once that hashed here.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct FirstV4 {
    /// The address as the native word of its packet bytes.
    pub addr: u32,
    /// Bytes of the first packet, with [`FIRST_SYN`].
    pub len: u32,
    /// When it arrived (monotonic ns); 0 marks an empty slot.
    pub at_ns: u64,
}
const _: () = assert!(core::mem::size_of::<FirstV4>() == 16);

/// One IPv6 slot (the source prefix as two native words).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct FirstV6 {
    pub addr: [u64; 2],
    /// When it arrived (monotonic ns); 0 marks an empty slot.
    pub at_ns: u64,
    /// Bytes of the first packet, with [`FIRST_SYN`].
    pub len: u32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<FirstV6>() == 32);

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xC2B2_AE3D_27D4_EB4F;

/// Bytes of tags per line of the tag arrays (`first_tags_v4/v6`): one
/// cache line.
pub const TAG_LINE: u32 = 64;
/// Lines of a tag array: one tag per slot.
pub const TAG_LINES: u32 = SLOTS / TAG_LINE;

/// Keyed mix of a 64-bit word: two multiply-xorshift rounds, so every bit
/// depends on every bit of both the key and the seed.
#[inline(always)]
const fn mix(x: u64, seed: u64) -> u64 {
    let mut h = (x ^ seed).wrapping_mul(K1);
    h ^= h >> 29;
    h = h.wrapping_mul(K2);
    h ^= h >> 32;
    h
}

/// A source's slot below [`SLOTS`], and its tag: 8 other bits of the same
/// hash, never 0 (which marks a slot that holds nothing).
#[inline(always)]
const fn slot_tag(h: u64) -> (u32, u8) {
    let tag = (h >> 24) as u8;
    ((h as u32) & (SLOTS - 1), if tag == 0 { 1 } else { tag })
}

#[inline(always)]
const fn word_v6(addr: [u64; 2]) -> u64 {
    addr[0] ^ addr[1].wrapping_mul(K2).rotate_left(31)
}

/// The slot of an IPv4 source.
#[inline(always)]
pub const fn slot_v4(addr: u32, seed: u64) -> u32 {
    slot_tag_v4(addr, seed).0
}

/// The slot of an IPv6 source (prefix words).
#[inline(always)]
pub const fn slot_v6(addr: [u64; 2], seed: u64) -> u32 {
    slot_tag_v6(addr, seed).0
}

/// The keyed hash of an IPv4 source: its slot and tag are bits 0..32
/// ([`slot_tag_of`]), its known-source filter bit bits 32.. (`known`).
#[inline(always)]
pub const fn hash_v4(addr: u32, seed: u64) -> u64 {
    mix(addr as u64, seed)
}

/// The keyed hash of an IPv6 source (prefix words), as [`hash_v4`].
#[inline(always)]
pub const fn hash_v6(addr: [u64; 2], seed: u64) -> u64 {
    mix(word_v6(addr), seed)
}

/// The slot and tag of a source whose hash is `h`.
#[inline(always)]
pub const fn slot_tag_of(h: u64) -> (u32, u8) {
    slot_tag(h)
}

/// The slot and tag of an IPv4 source.
#[inline(always)]
pub const fn slot_tag_v4(addr: u32, seed: u64) -> (u32, u8) {
    slot_tag(hash_v4(addr, seed))
}

/// The slot and tag of an IPv6 source (prefix words).
#[inline(always)]
pub const fn slot_tag_v6(addr: [u64; 2], seed: u64) -> (u32, u8) {
    slot_tag(hash_v6(addr, seed))
}

/// The first packet as a slot records it: bytes and the SYN bit.
#[inline(always)]
pub const fn first_len(len: u64, syn: bool) -> u32 {
    let len = if len > 0xffff { 0xffff } else { len as u32 };
    if syn { len | FIRST_SYN } else { len }
}

/// The LRU entry of a source promoted at its second packet, and that
/// packet's verdict. `first_at`/`first_len` are the slot's record of the
/// first packet; `now`, `len` and `syn` describe the second. The result is
/// what the LRU path would have produced for the two packets.
#[inline(always)]
pub fn promote(
    cfg: &FilterConfig,
    first_at: u64,
    first_len: u32,
    now: u64,
    len: u64,
    syn: bool,
) -> (SourceState, u32) {
    let first_syn = first_len & FIRST_SYN != 0;
    let mut s = SourceState {
        pps_tat: 0,
        syn_tat: 0,
        packets: 1,
        bytes: (first_len & !FIRST_SYN) as u64,
        drops: 0,
        last_seen_ns: first_at,
        allow_gen: 0,
        syns: first_syn as u64,
    };
    // The first packet conformed (a fresh TAT always does).
    if first_syn && cfg.syn_interval_ns != 0 {
        s.syn_tat = first_at.saturating_add(cfg.syn_interval_ns);
    }
    if cfg.pps_interval_ns != 0 {
        s.pps_tat = first_at.saturating_add(cfg.pps_interval_ns);
    }
    let verdict = step(cfg, &mut s, now, syn, len);
    (s, verdict)
}

/// One packet through both limits of a source held in plain memory: the
/// same decision as the program's atomic version (`proxy-ebpf/src/limit.rs`).
#[inline(always)]
pub fn step(cfg: &FilterConfig, s: &mut SourceState, now: u64, syn: bool, len: u64) -> u32 {
    s.packets += 1;
    s.bytes += len;
    s.syns += syn as u64;
    s.last_seen_ns = now;
    if syn && cfg.syn_interval_ns != 0 {
        match gcra::admit(s.syn_tat, now, cfg.syn_interval_ns, cfg.syn_tolerance_ns) {
            Some(tat) => s.syn_tat = tat,
            None => {
                s.drops += 1;
                return stats::SYN_LIMITED;
            }
        }
    }
    if cfg.pps_interval_ns != 0 {
        match gcra::admit(s.pps_tat, now, cfg.pps_interval_ns, cfg.pps_tolerance_ns) {
            Some(tat) => s.pps_tat = tat,
            None => {
                s.drops += 1;
                return stats::PPS_LIMITED;
            }
        }
    }
    stats::PASS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pps: (u64, u64), syn: (u64, u64)) -> FilterConfig {
        let (pps_interval_ns, pps_tolerance_ns) = gcra::params(pps.0, pps.1);
        let (syn_interval_ns, syn_tolerance_ns) = gcra::params(syn.0, syn.1);
        FilterConfig {
            pps_interval_ns,
            pps_tolerance_ns,
            syn_interval_ns,
            syn_tolerance_ns,
            ..Default::default()
        }
    }

    /// The LRU path for a whole sequence: a fresh entry, every packet stepped.
    fn lru_path(c: &FilterConfig, packets: &[(u64, u64, bool)]) -> (SourceState, [u32; 8]) {
        let mut s = SourceState::default();
        let mut verdicts = [u32::MAX; 8];
        for (i, &(now, len, syn)) in packets.iter().enumerate() {
            verdicts[i] = step(c, &mut s, now, syn, len);
        }
        (s, verdicts)
    }

    #[test]
    fn promotion_gives_what_the_lru_path_gives() {
        let seqs: [&[(u64, u64, bool)]; 4] = [
            &[(1_000, 60, true), (1_500, 60, true), (2_000, 1500, false)],
            &[(5_000_000_000, 60, false), (5_000_000_001, 60, true)],
            &[(7, 64, true), (8, 64, true), (9, 64, true), (10, 64, false)],
            &[
                (1, 40, false),
                (2, 40, false),
                (3, 40, false),
                (4, 40, false),
            ],
        ];
        for c in [
            cfg((1, 2), (1, 1)),
            cfg((1000, 1), (0, 0)),
            cfg((0, 0), (5, 2)),
            cfg((1_000_000, 1), (10_000, 1)),
        ] {
            for seq in seqs {
                let (want, want_v) = lru_path(&c, seq);
                let (first_at, first_l, first_syn) = seq[0];
                let (now, len, syn) = seq[1];
                let (mut got, v) =
                    promote(&c, first_at, first_len(first_l, first_syn), now, len, syn);
                let mut got_v = [u32::MAX; 8];
                got_v[0] = stats::PASS;
                got_v[1] = v;
                for (i, &(now, len, syn)) in seq.iter().enumerate().skip(2) {
                    got_v[i] = step(&c, &mut got, now, syn, len);
                }
                assert_eq!((got, got_v), (want, want_v), "{c:?} {seq:?}");
            }
        }
    }

    #[test]
    fn first_len_keeps_the_syn_bit_and_saturates() {
        assert_eq!(first_len(60, true), 60 | FIRST_SYN);
        assert_eq!(first_len(1 << 40, false), 0xffff);
    }

    #[test]
    fn slots_spread_and_depend_on_the_seed() {
        // 10.0.0.0/8 sources (the benchmark's spoofing) over the slots.
        let mut load = std::vec![0u16; SLOTS as usize];
        for i in 0..(SLOTS * 4) {
            let a = u32::from_ne_bytes((0x0a00_0000 | (i * 61)).to_be_bytes());
            load[slot_v4(a, 0x1234_5678_9abc_def0) as usize] += 1;
        }
        let max = *load.iter().max().unwrap();
        assert!(max <= 20, "fullest slot {max} for an average of 4");
        let a = u32::from_ne_bytes([10, 1, 2, 3]);
        let moved = (0..64u64)
            .filter(|s| slot_v4(a, *s) != slot_v4(a, s + 1))
            .count();
        assert!(moved >= 60, "the seed moves the slot ({moved} of 64)");
        let v6 = [0x0123_4567_89ab_cdef, 0];
        assert_ne!(slot_v6(v6, 1), slot_v6([v6[0] ^ 1, 0], 1));
    }

    #[test]
    fn tags_are_never_empty_and_tell_sources_of_one_slot_apart() {
        // Sources of one slot (a spoofed flood's, in 10.0.0.0/8): their
        // tags spread over the 255 non-zero values, independently of the slot.
        let seed = 0x1234_5678_9abc_def0;
        let mut seen = [0u32; 256];
        let (mut in_slot, mut same_tag) = (0u32, 0u32);
        let (slot0, tag0) = slot_tag_v4(u32::from_ne_bytes([10, 1, 2, 3]), seed);
        for i in 0..(1u32 << 24) {
            let a = u32::from_ne_bytes((0x0a00_0000 | i).to_be_bytes());
            let (slot, tag) = slot_tag_v4(a, seed);
            assert_eq!(slot, slot_v4(a, seed));
            seen[tag as usize] += 1;
            if slot == slot0 {
                in_slot += 1;
                same_tag += u32::from(tag == tag0);
            }
        }
        assert_eq!(seen[0], 0, "0 marks an empty slot");
        let (min, max) = (
            seen[1..].iter().min().unwrap(),
            seen[1..].iter().max().unwrap(),
        );
        // Tag 1 also stands for the hash's 0: twice the others' share.
        assert!(*max < min * 3, "tags spread: {min}..{max} sources per tag");
        // About 256 sources share a slot; about one of them its tag too.
        assert!(
            (192..320).contains(&in_slot),
            "{in_slot} sources in the slot"
        );
        assert!(same_tag <= 6, "{same_tag} of them with the same tag");
        assert_ne!(slot_tag_v6([1, 2], seed), slot_tag_v6([1, 3], seed));
    }
}
