//! The decision for one packet, per address family.

use aya_ebpf::{
    btf_maps::{Array, HashMap, LpmTrie, LruHashMap, lpm_trie::Key},
    programs::XdpContext,
};
use proxy_common::{
    ban::{Ban, NEVER},
    config::{self, FilterConfig},
    list::{ListValue, MAX_RANGE_PROBES, V4, V6},
    listed::{ADDR as LISTED_ADDR, BAN as LISTED_BAN, RANGE as LISTED_RANGE},
    source::SourceState,
    stats,
};

use crate::{
    addr::Addr,
    admit::{self, FirstStage},
    bans::{self, BanIndex},
    clock, limit,
    limited::{self, LimitedCache},
    maps::*,
    parse::{self, Malformed},
    syncookie,
};

/// The maps and flags of one address family.
struct Family<'a, K: Addr, const N_ALLOW: usize, const N_RANGE: usize> {
    allow: &'a LpmTrie<K, ListValue, N_ALLOW>,
    block_ranges: &'a LpmTrie<K, ListValue, N_RANGE>,
    range_index: &'a Array<K::Bucket, 65536>,
    block_addrs: &'a HashMap<K, ListValue, 262144>,
    block_index: &'a Array<K::Bucket, 65536>,
    bans: &'a HashMap<K, Ban, 65536>,
    sources: &'a LruHashMap<K, SourceState, 65536>,
    has_allow: u32,
    /// Set when a source's entry cannot vouch for its address (IPv6 only:
    /// `FLAG_ALLOW_FINER_V6`; 0 for IPv4, whose key is the address).
    allow_finer: u32,
    has_block: u32,
    has_block_addr: u32,
    has_bans: u32,
    index_on: u32,
    index_overflow: u32,
    index_mask: u32,
    ranges_indexed: u32,
    range_overflow: u32,
    range_mask: u32,
    probes: &'a [K::Probe; MAX_RANGE_PROBES],
}

/// Inlined into `rampart`: as a BPF-to-BPF call it cost a call frame, and
/// its verdict went back through the stack, on every packet.
#[inline(always)]
pub fn decide(ctx: &XdpContext) -> Result<u32, Malformed> {
    let Some(cfg) = CONFIG.get(config::CONFIG_KEY) else {
        return Ok(stats::PASS);
    };
    if !cfg.has(config::FLAG_ENABLED) {
        return Ok(stats::PASS);
    }
    let len = (ctx.data_end() - ctx.data()) as u64;
    let (proto, off) = parse::ethernet(ctx)?;
    match proto {
        parse::ETH_P_IP => {
            let mut src: V4 = [0; 4];
            let syn = parse::ipv4(ctx, off, &mut src)?;
            let fam = Family {
                allow: &ALLOW_V4,
                block_ranges: &BLOCK_V4,
                range_index: &RANGE_INDEX_V4,
                block_addrs: &BLOCK_ADDR_V4,
                block_index: &BLOCK_INDEX_V4,
                bans: &BANS_V4,
                sources: &SOURCES_V4,
                has_allow: config::FLAG_HAS_ALLOW_V4,
                allow_finer: 0,
                has_block: config::FLAG_HAS_BLOCK_V4,
                has_block_addr: config::FLAG_HAS_BLOCK_ADDR_V4,
                has_bans: config::FLAG_HAS_BANS_V4,
                index_on: config::FLAG_INDEX_V4,
                index_overflow: config::FLAG_INDEX_OVERFLOW_V4,
                index_mask: cfg.index_mask_v4,
                ranges_indexed: config::FLAG_RANGES_INDEXED_V4,
                range_overflow: config::FLAG_RANGE_OVERFLOW_V4,
                range_mask: cfg.range_mask_v4,
                probes: &cfg.probes_v4,
            };
            let mut known = false;
            let verdict = fam.decide(cfg, &src, &src, syn, len, &mut known);
            Ok(syncookie::after(verdict, syn, known))
        }
        parse::ETH_P_IPV6 => {
            let mut words = [0u64; 2];
            let syn = parse::ipv6(ctx, off, &mut words)?;
            let key = [words[0] & cfg.v6_mask[0], words[1] & cfg.v6_mask[1]];
            // SAFETY: [u64; 2] and [u8; 16] have the same size; any bytes are valid.
            let (src, key): (V6, V6) =
                unsafe { (core::mem::transmute(words), core::mem::transmute(key)) };
            let fam = Family {
                allow: &ALLOW_V6,
                block_ranges: &BLOCK_V6,
                range_index: &RANGE_INDEX_V6,
                block_addrs: &BLOCK_ADDR_V6,
                block_index: &BLOCK_INDEX_V6,
                bans: &BANS_V6,
                sources: &SOURCES_V6,
                has_allow: config::FLAG_HAS_ALLOW_V6,
                allow_finer: config::FLAG_ALLOW_FINER_V6,
                has_block: config::FLAG_HAS_BLOCK_V6,
                has_block_addr: config::FLAG_HAS_BLOCK_ADDR_V6,
                has_bans: config::FLAG_HAS_BANS_V6,
                index_on: config::FLAG_INDEX_V6,
                index_overflow: config::FLAG_INDEX_OVERFLOW_V6,
                index_mask: cfg.index_mask_v6,
                ranges_indexed: config::FLAG_RANGES_INDEXED_V6,
                range_overflow: config::FLAG_RANGE_OVERFLOW_V6,
                range_mask: cfg.range_mask_v6,
                probes: &cfg.probes_v6,
            };
            let mut known = false;
            let verdict = fam.decide(cfg, &src, &key, syn, len, &mut known);
            Ok(syncookie::after(verdict, syn, known))
        }
        // More VLAN tags than parsed: the IP traffic behind them cannot be
        // inspected, so it is not passed unless configured (docs/kernel-tier.md).
        p if parse::is_vlan(p) => Ok(if cfg.flags & config::FLAG_PASS_UNPARSED != 0 {
            stats::NON_IP
        } else {
            stats::MALFORMED
        }),
        _ => Ok(stats::NON_IP),
    }
}

impl<K: FirstStage + BanIndex + LimitedCache, const N_ALLOW: usize, const N_RANGE: usize>
    Family<'_, K, N_ALLOW, N_RANGE>
{
    /// `src` is the full address (lists are exact); `source_key` the key of
    /// bans and limits (the address, or for IPv6 its configured prefix).
    /// `known` is set when the packet passed through the source's own LRU
    /// entry (so its per-source limits applied to it).
    #[inline(always)]
    fn decide(
        &self,
        cfg: &FilterConfig,
        src: &K,
        source_key: &K,
        syn: bool,
        len: u64,
        known: &mut bool,
    ) -> u32 {
        // The allowlist wins over the blocklist and bans. Checking them
        // first gives the same decision and is cheaper: a blocked or banned
        // source needs the allowlist lookup only if the loader saw an overlap.
        // Bans come first: they are one index probe, and the sources they
        // drop are the ones already known to be abusive (a source both
        // banned and blocklisted counts as banned).
        let mut now = 0;
        // The listed-source filter first: a source whose bits are clear is
        // on none of the lists, and skips their probes (`listed.rs`).
        let listed = crate::listed::active();
        if cfg.has(self.has_bans)
            && crate::listed::may_hold(listed, || K::listed_hash(source_key.key()), LISTED_BAN)
        {
            // Bans are keyed by source (for IPv6 the configured prefix), so
            // rotating addresses inside a banned /64 stays banned. The clock
            // is read only for a ban that can expire.
            if let Some(expires) = bans::expiry(cfg, self.bans, source_key) {
                if expires == NEVER {
                    return self.unless_allowed(cfg, src, stats::BANNED);
                }
                now = clock::coarse();
                if now < expires {
                    return self.unless_allowed(cfg, src, stats::BANNED);
                }
                // Expired: clean it up (userspace reuses its index way).
                let _ = self.bans.remove(source_key);
            }
        }
        if cfg.has(self.has_block_addr)
            && crate::listed::may_hold(listed, || K::listed_hash(src.key()), LISTED_ADDR)
            && self.blocked_addr(cfg, src)
        {
            return self.unless_allowed(cfg, src, stats::BLOCKLISTED);
        }
        if cfg.has(self.has_block)
            && self.range_may_hold(cfg, listed, src)
            && self.in_block_range(cfg, src)
        {
            return self.unless_allowed(cfg, src, stats::BLOCKLISTED);
        }
        let limiting = cfg.pps_interval_ns != 0
            || cfg.syn_interval_ns != 0
            || cfg.has(config::FLAG_TRACK_SOURCES);
        // A source's LRU entry (and limited-cache slot) vouches that its
        // address is not allowlisted while it records the current allowlist
        // generation: then the allowlist is looked up only for a source new
        // to the LRU, or once after the allowlist changed (docs/kernel-tier.md,
        // "The allowlist and known sources").
        let vouch = limiting && cfg.has(self.has_allow) && !cfg.has(self.allow_finer);
        // Read before any allowlist lookup, once: what a lookup finds is
        // stamped with the generation read before it (the loader moves the
        // generation on only after changing the allowlist), so a stamp is
        // never newer than the allowlist it was checked against.
        let generation = if vouch {
            // SAFETY: a field of the live config value.
            unsafe { core::ptr::read_volatile(&raw const cfg.allow_gen) }
        } else {
            0
        };
        if !vouch && self.allowed(cfg, src) {
            return stats::ALLOWLISTED;
        }
        if !limiting {
            return stats::PASS;
        }
        if now == 0 {
            now = clock::coarse();
        }
        self.limit(
            cfg, src, source_key, vouch, generation, now, syn, len, known,
        )
    }

    /// Whether `src` is a blocklisted single address: the bucket index first,
    /// the hash only when the index is off or some address overflowed it.
    #[inline(always)]
    fn blocked_addr(&self, cfg: &FilterConfig, src: &K) -> bool {
        if cfg.has(self.index_on) {
            if K::indexed(self.block_index, src.key(), self.index_mask) {
                return true;
            }
            if !cfg.has(self.index_overflow) {
                return false;
            }
        }
        self.block_addrs.get_ptr(src).is_some()
    }

    /// Whether `src` falls in a blocklist range: one index probe per prefix
    /// length in use when there are few lengths, else (or on an index miss
    /// after an overflow) the LPM trie.
    #[inline(always)]
    fn in_block_range(&self, cfg: &FilterConfig, src: &K) -> bool {
        if cfg.has(self.ranges_indexed) {
            let key = src.key();
            for probe in self.probes {
                let Some(probe_key) = K::probe(key, probe) else {
                    break;
                };
                if K::indexed(self.range_index, probe_key, self.range_mask) {
                    return true;
                }
            }
            if !cfg.has(self.range_overflow) {
                return false;
            }
        }
        self.block_ranges.get(&Key::new(K::BITS, *src)).is_some()
    }

    /// Whether `src` may fall in a blocklist range, by the listed-source
    /// filter: one bit per probe length. Only while the ranges are indexed
    /// and none overflowed the index: then every range's length is among
    /// the probes (`refresh_ranges`); otherwise the trie is walked as before.
    #[inline(always)]
    fn range_may_hold(
        &self,
        cfg: &FilterConfig,
        listed: Option<crate::listed::Listed>,
        src: &K,
    ) -> bool {
        let Some(listed) = listed else {
            return true;
        };
        if !cfg.has(self.ranges_indexed) || cfg.has(self.range_overflow) {
            return true;
        }
        let key = src.key();
        for probe in self.probes {
            let Some(probe_key) = K::probe(key, probe) else {
                break;
            };
            if listed.holds(K::listed_hash(probe_key), LISTED_RANGE) {
                return true;
            }
        }
        false
    }

    #[inline(always)]
    fn allowed(&self, cfg: &FilterConfig, src: &K) -> bool {
        cfg.has(self.has_allow) && self.allow.get(&Key::new(K::BITS, *src)).is_some()
    }

    /// `verdict` (a drop), unless the source is allowlisted; looked up only
    /// when some block entry or ban overlaps the allowlist.
    #[inline(always)]
    fn unless_allowed(&self, cfg: &FilterConfig, src: &K, verdict: u32) -> u32 {
        if cfg.has(config::FLAG_ALLOW_OVERLAPS) && self.allowed(cfg, src) {
            stats::ALLOWLISTED
        } else {
            verdict
        }
    }

    /// Both limits for the source `key`: a cached drop (`limited.rs`),
    /// else through its LRU entry, or the first stage when it has none.
    /// `now` is the coarse time. `vouch`: the allowlist has not been looked
    /// up for `src`; the cache slot or LRU entry must then carry the
    /// generation `generation`, or `src` is looked up here (0 when not `vouch`).
    /// `known`: set when the source had its LRU entry (not for a source the
    /// first stage promotes with this packet).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn limit(
        &self,
        cfg: &FilterConfig,
        src: &K,
        key: &K,
        vouch: bool,
        generation: u64,
        now: u64,
        syn: bool,
        len: u64,
        known: &mut bool,
    ) -> u32 {
        // Drops of either limit fill the cache (`limit::apply`).
        let probe = if cfg.pps_interval_ns != 0 || cfg.syn_interval_ns != 0 {
            limited::probe(cfg, key)
        } else {
            None
        };
        if let Some((slot, true)) = probe
            && let Some(verdict) = limited::cached(cfg, slot, vouch, generation, now, syn, len)
        {
            if limited::full(slot) {
                limited::flush(self.sources, slot, now);
            }
            return verdict;
        }
        // The known-source filter first: a source whose bit is clear has
        // no LRU entry, and skips the lookup (`known.rs`).
        let hash = K::hash(key.key(), cfg.admit_seed);
        let state = if crate::known::maybe(hash) {
            self.sources.get_ptr_mut(key)
        } else {
            None
        };
        let Some(state) = state else {
            if vouch && self.allowed(cfg, src) {
                return stats::ALLOWLISTED;
            }
            return admit::new_source(cfg, self.sources, key, hash, generation, now, syn, len);
        };
        if vouch && !limit::vouches(state, generation) {
            if self.allowed(cfg, src) {
                return stats::ALLOWLISTED;
            }
            limit::stamp(state, generation);
        }
        *known = true;
        let mut until = 0;
        if let Some((slot, true)) = probe {
            limited::drain(slot, state, now);
        }
        let verdict = limit::apply(cfg, state, now, syn, len, &mut until);
        if until != 0
            && let Some((slot, holds)) = probe
        {
            limited::record(
                cfg,
                self.sources,
                slot,
                holds,
                key,
                generation,
                verdict,
                until,
                now,
            );
        }
        verdict
    }
}
