//! The decision for one packet, per address family.

use aya_ebpf::{
    btf_maps::{Array, HashMap, LpmTrie, LruHashMap, lpm_trie::Key},
    helpers::bpf_ktime_get_ns,
    programs::XdpContext,
};
use proxy_common::{
    ban::Ban,
    config::{self, FilterConfig},
    index::{self, BucketV4, BucketV6},
    list::{ListValue, MAX_RANGE_PROBES, NetV4, NetV6, V4, V6},
    source::SourceState,
    stats,
};

use crate::{
    limit,
    maps::*,
    parse::{self, Malformed},
};

/// `BPF_NOEXIST`: create the source entry only if another CPU did not just do so.
const BPF_NOEXIST: u64 = 1;

/// An address family's address type, and how to cut it to a network key.
pub trait Addr: Copy + 'static {
    type Net: 'static;
    type Bucket: 'static;
    /// Bits in an address.
    const BITS: u32;
    /// The network of `len` bits (1..BITS) containing this address.
    fn net(&self, len: u32) -> Self::Net;
    /// Whether the exact-address index holds this address.
    fn in_index(&self, index: &Array<Self::Bucket, 65536>, mask: u32) -> bool;
}

impl Addr for V4 {
    type Net = NetV4;
    type Bucket = BucketV4;
    const BITS: u32 = 32;

    #[inline(always)]
    fn net(&self, len: u32) -> NetV4 {
        let mask = (u32::MAX << (32 - len)).to_be();
        NetV4 {
            prefix_len: len,
            addr: (u32::from_ne_bytes(*self) & mask).to_ne_bytes(),
        }
    }

    #[inline(always)]
    fn in_index(&self, index: &Array<BucketV4, 65536>, mask: u32) -> bool {
        let word = u32::from_ne_bytes(*self);
        // Zero marks an empty way; 0.0.0.0 itself is looked up in the hash.
        if word == 0 {
            return false;
        }
        for slot in index::slots_v4(word, mask) {
            let Some(bucket) = index.get(slot) else {
                return false;
            };
            for way in bucket.addrs {
                if way == word {
                    return true;
                }
            }
        }
        false
    }
}

impl Addr for V6 {
    type Net = NetV6;
    type Bucket = BucketV6;
    const BITS: u32 = 128;

    #[inline(always)]
    fn net(&self, len: u32) -> NetV6 {
        // SAFETY: [u8; 16] and [u64; 2] have the same size; any bytes are valid.
        let w: [u64; 2] = unsafe { core::mem::transmute(*self) };
        let (m0, m1) = if len >= 64 {
            (
                u64::MAX,
                if len == 64 {
                    0
                } else {
                    (u64::MAX << (128 - len)).to_be()
                },
            )
        } else {
            ((u64::MAX << (64 - len)).to_be(), 0)
        };
        // SAFETY: as above.
        NetV6 {
            prefix_len: len,
            addr: unsafe { core::mem::transmute([w[0] & m0, w[1] & m1]) },
        }
    }

    #[inline(always)]
    fn in_index(&self, index: &Array<BucketV6, 65536>, mask: u32) -> bool {
        // SAFETY: [u8; 16] and [u64; 2] have the same size; any bytes are valid.
        let w: [u64; 2] = unsafe { core::mem::transmute(*self) };
        if w[0] | w[1] == 0 {
            return false;
        }
        for slot in index::slots_v6(w, mask) {
            let Some(bucket) = index.get(slot) else {
                return false;
            };
            for way in bucket.addrs {
                if way[0] == w[0] && way[1] == w[1] {
                    return true;
                }
            }
        }
        false
    }
}

/// The maps and flags of one address family.
struct Family<'a, K: Addr, const N_ALLOW: usize, const N_RANGE: usize> {
    allow: &'a LpmTrie<K, ListValue, N_ALLOW>,
    block_ranges: &'a LpmTrie<K, ListValue, N_RANGE>,
    block_nets: &'a HashMap<K::Net, ListValue, 65536>,
    block_addrs: &'a HashMap<K, ListValue, 262144>,
    block_index: &'a Array<K::Bucket, 65536>,
    bans: &'a HashMap<K, Ban, 65536>,
    sources: &'a LruHashMap<K, SourceState, 65536>,
    has_allow: u32,
    has_block: u32,
    has_block_addr: u32,
    has_bans: u32,
    ranges_hashed: u32,
    range_lens: [u8; MAX_RANGE_PROBES],
    index_on: u32,
    index_overflow: u32,
    index_mask: u32,
}

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
                block_nets: &BLOCK_NETS_V4,
                block_addrs: &BLOCK_ADDR_V4,
                block_index: &BLOCK_INDEX_V4,
                bans: &BANS_V4,
                sources: &SOURCES_V4,
                has_allow: config::FLAG_HAS_ALLOW_V4,
                has_block: config::FLAG_HAS_BLOCK_V4,
                has_block_addr: config::FLAG_HAS_BLOCK_ADDR_V4,
                has_bans: config::FLAG_HAS_BANS_V4,
                ranges_hashed: config::FLAG_RANGES_HASHED_V4,
                range_lens: cfg.range_lens_v4,
                index_on: config::FLAG_INDEX_V4,
                index_overflow: config::FLAG_INDEX_OVERFLOW_V4,
                index_mask: cfg.index_mask_v4,
            };
            Ok(fam.decide(cfg, &src, &src, syn, len))
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
                block_nets: &BLOCK_NETS_V6,
                block_addrs: &BLOCK_ADDR_V6,
                block_index: &BLOCK_INDEX_V6,
                bans: &BANS_V6,
                sources: &SOURCES_V6,
                has_allow: config::FLAG_HAS_ALLOW_V6,
                has_block: config::FLAG_HAS_BLOCK_V6,
                has_block_addr: config::FLAG_HAS_BLOCK_ADDR_V6,
                has_bans: config::FLAG_HAS_BANS_V6,
                ranges_hashed: config::FLAG_RANGES_HASHED_V6,
                range_lens: cfg.range_lens_v6,
                index_on: config::FLAG_INDEX_V6,
                index_overflow: config::FLAG_INDEX_OVERFLOW_V6,
                index_mask: cfg.index_mask_v6,
            };
            Ok(fam.decide(cfg, &src, &key, syn, len))
        }
        _ => Ok(stats::NON_IP),
    }
}

impl<K: Addr, const N_ALLOW: usize, const N_RANGE: usize> Family<'_, K, N_ALLOW, N_RANGE> {
    /// `src` is the full address; `source_key` the limiter key (the address,
    /// or for IPv6 its configured prefix).
    #[inline(always)]
    fn decide(&self, cfg: &FilterConfig, src: &K, source_key: &K, syn: bool, len: u64) -> u32 {
        // The allowlist wins over the blocklist and bans. Checking the
        // blocklist first gives the same decision and is cheaper: a blocked
        // source needs the allowlist lookup only if the loader saw an overlap.
        if cfg.has(self.has_block_addr) && self.blocked_addr(cfg, src) {
            return self.unless_allowed(cfg, src, stats::BLOCKLISTED);
        }
        if cfg.has(self.has_block) && self.in_block_range(cfg, src) {
            return self.unless_allowed(cfg, src, stats::BLOCKLISTED);
        }
        let mut now = 0;
        if cfg.has(self.has_bans) {
            // SAFETY: a BPF helper with no preconditions.
            now = unsafe { bpf_ktime_get_ns() };
            if let Some(ban) = self.bans.get_ptr(src) {
                // SAFETY: the pointer is a live value of the bans map.
                if now < unsafe { (*ban).expires_at_ns } {
                    return self.unless_allowed(cfg, src, stats::BANNED);
                }
                // Expired: clean it up so the next packet skips it.
                let _ = self.bans.remove(src);
            }
        }
        if self.allowed(cfg, src) {
            return stats::ALLOWLISTED;
        }
        let limiting = cfg.pps_interval_ns != 0
            || cfg.syn_interval_ns != 0
            || cfg.has(config::FLAG_TRACK_SOURCES);
        if !limiting {
            return stats::PASS;
        }
        if now == 0 {
            // SAFETY: as above.
            now = unsafe { bpf_ktime_get_ns() };
        }
        match self.source(source_key) {
            Some(state) => limit::apply(cfg, state, now, syn, len),
            // The LRU map refused the entry (it should evict instead); fail open.
            None => stats::PASS,
        }
    }

    /// Whether `src` is a blocklisted single address: the bucket index first,
    /// the hash only when the index is off or some address overflowed it.
    #[inline(always)]
    fn blocked_addr(&self, cfg: &FilterConfig, src: &K) -> bool {
        if cfg.has(self.index_on) {
            if src.in_index(self.block_index, self.index_mask) {
                return true;
            }
            if !cfg.has(self.index_overflow) {
                return false;
            }
        }
        self.block_addrs.get_ptr(src).is_some()
    }

    /// Whether `src` falls in a blocklist range: one hash probe per prefix
    /// length in use when there are few lengths, else the LPM trie.
    #[inline(always)]
    fn in_block_range(&self, cfg: &FilterConfig, src: &K) -> bool {
        if !cfg.has(self.ranges_hashed) {
            return self.block_ranges.get(&Key::new(K::BITS, *src)).is_some();
        }
        for i in 0..MAX_RANGE_PROBES {
            let len = self.range_lens[i] as u32;
            if len == 0 || len >= K::BITS {
                break;
            }
            if self.block_nets.get_ptr(src.net(len)).is_some() {
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

    #[inline(always)]
    fn source(&self, key: &K) -> Option<*mut SourceState> {
        if let Some(state) = self.sources.get_ptr_mut(key) {
            return Some(state);
        }
        let fresh = SourceState {
            pps_tat: 0,
            syn_tat: 0,
            packets: 0,
            bytes: 0,
            drops: 0,
            last_seen_ns: 0,
        };
        let _ = self.sources.insert(key, &fresh, BPF_NOEXIST);
        self.sources.get_ptr_mut(key)
    }
}
