//! The decision for one packet, per address family.

use aya_ebpf::{
    btf_maps::{HashMap, LpmTrie, LruHashMap, lpm_trie::Key},
    helpers::bpf_ktime_get_ns,
    programs::XdpContext,
};
use proxy_common::{
    ban::Ban,
    config::{self, FilterConfig},
    list::{ListValue, V4, V6},
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

/// The maps and flags of one address family.
struct Family<'a, K: 'static, const N_ALLOW: usize, const N_RANGE: usize> {
    allow: &'a LpmTrie<K, ListValue, N_ALLOW>,
    block_ranges: &'a LpmTrie<K, ListValue, N_RANGE>,
    block_addrs: &'a HashMap<K, ListValue, 262144>,
    bans: &'a HashMap<K, Ban, 65536>,
    sources: &'a LruHashMap<K, SourceState, 65536>,
    has_allow: u32,
    has_block: u32,
    has_block_addr: u32,
    has_bans: u32,
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
                block_addrs: &BLOCK_ADDR_V4,
                bans: &BANS_V4,
                sources: &SOURCES_V4,
                has_allow: config::FLAG_HAS_ALLOW_V4,
                has_block: config::FLAG_HAS_BLOCK_V4,
                has_block_addr: config::FLAG_HAS_BLOCK_ADDR_V4,
                has_bans: config::FLAG_HAS_BANS_V4,
            };
            Ok(fam.decide(cfg, &src, &src, 32, syn, len))
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
                block_addrs: &BLOCK_ADDR_V6,
                bans: &BANS_V6,
                sources: &SOURCES_V6,
                has_allow: config::FLAG_HAS_ALLOW_V6,
                has_block: config::FLAG_HAS_BLOCK_V6,
                has_block_addr: config::FLAG_HAS_BLOCK_ADDR_V6,
                has_bans: config::FLAG_HAS_BANS_V6,
            };
            Ok(fam.decide(cfg, &src, &key, 128, syn, len))
        }
        _ => Ok(stats::NON_IP),
    }
}

impl<K: Copy + 'static, const N_ALLOW: usize, const N_RANGE: usize>
    Family<'_, K, N_ALLOW, N_RANGE>
{
    /// `src` is the full address; `source_key` the limiter key (the address,
    /// or for IPv6 its configured prefix).
    #[inline(always)]
    fn decide(
        &self,
        cfg: &FilterConfig,
        src: &K,
        source_key: &K,
        bits: u32,
        syn: bool,
        len: u64,
    ) -> u32 {
        // The allowlist wins over the blocklist and bans. Checking the
        // blocklist first gives the same decision and is cheaper: a blocked
        // source needs the allowlist lookup only if the loader saw an overlap.
        if cfg.has(self.has_block_addr) && self.block_addrs.get_ptr(src).is_some() {
            return self.unless_allowed(cfg, src, bits, stats::BLOCKLISTED);
        }
        if cfg.has(self.has_block) && self.block_ranges.get(&Key::new(bits, *src)).is_some() {
            return self.unless_allowed(cfg, src, bits, stats::BLOCKLISTED);
        }
        let mut now = 0;
        if cfg.has(self.has_bans) {
            // SAFETY: a BPF helper with no preconditions.
            now = unsafe { bpf_ktime_get_ns() };
            if let Some(ban) = self.bans.get_ptr(src) {
                // SAFETY: the pointer is a live value of the bans map.
                if now < unsafe { (*ban).expires_at_ns } {
                    return self.unless_allowed(cfg, src, bits, stats::BANNED);
                }
                // Expired: clean it up so the next packet skips it.
                let _ = self.bans.remove(src);
            }
        }
        if self.allowed(cfg, src, bits) {
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

    #[inline(always)]
    fn allowed(&self, cfg: &FilterConfig, src: &K, bits: u32) -> bool {
        cfg.has(self.has_allow) && self.allow.get(&Key::new(bits, *src)).is_some()
    }

    /// `verdict` (a drop), unless the source is allowlisted; looked up only
    /// when some block entry or ban overlaps the allowlist.
    #[inline(always)]
    fn unless_allowed(&self, cfg: &FilterConfig, src: &K, bits: u32, verdict: u32) -> u32 {
        if cfg.has(config::FLAG_ALLOW_OVERLAPS) && self.allowed(cfg, src, bits) {
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
