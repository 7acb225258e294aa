//! The decision for one packet, per address family.

use aya_ebpf::{
    btf_maps::{HashMap, LpmTrie, LruHashMap, lpm_trie::Key},
    helpers::bpf_ktime_get_ns,
    programs::XdpContext,
};
use proxy_common::{
    ban::Ban,
    config::{self, FilterConfig},
    list::ListValue,
    source::SourceState,
    stats,
};

use crate::{
    limit,
    maps::*,
    parse::{self, Malformed, Packet},
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
    let mut pkt = Packet::new();
    parse::parse(ctx, &mut pkt)?;
    let syn = pkt.syn;
    match pkt.family {
        parse::IPV4 => {
            let src = pkt.src_v4();
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
        parse::IPV6 => {
            let src = pkt.src;
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
            let key = masked_v6(&src, &cfg.v6_mask);
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
        if cfg.has(self.has_allow) && self.allow.get(&Key::new(bits, *src)).is_some() {
            return stats::ALLOWLISTED;
        }
        if cfg.has(self.has_block_addr) && self.block_addrs.get_ptr(src).is_some() {
            return stats::BLOCKLISTED;
        }
        if cfg.has(self.has_block) && self.block_ranges.get(&Key::new(bits, *src)).is_some() {
            return stats::BLOCKLISTED;
        }
        let limiting = cfg.pps_interval_ns != 0
            || cfg.syn_interval_ns != 0
            || cfg.has(config::FLAG_TRACK_SOURCES);
        if !limiting && !cfg.has(self.has_bans) {
            return stats::PASS;
        }
        // SAFETY: a BPF helper with no preconditions.
        let now = unsafe { bpf_ktime_get_ns() };
        if cfg.has(self.has_bans) {
            if let Some(ban) = self.bans.get_ptr(src) {
                // SAFETY: the pointer is a live value of the bans map.
                if now < unsafe { (*ban).expires_at_ns } {
                    return stats::BANNED;
                }
                // Expired: clean it up so the next packet skips it.
                let _ = self.bans.remove(src);
            }
        }
        if !limiting {
            return stats::PASS;
        }
        match self.source(source_key) {
            Some(state) => limit::apply(cfg, state, now, syn, len),
            // The LRU map refused the entry (it should evict instead); fail open.
            None => stats::PASS,
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

#[inline(always)]
fn masked_v6(src: &[u8; 16], mask: &[u32; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 4 {
        let w = u32::from_ne_bytes([src[4 * i], src[4 * i + 1], src[4 * i + 2], src[4 * i + 3]])
            & mask[i];
        out[4 * i..4 * i + 4].copy_from_slice(&w.to_ne_bytes());
        i += 1;
    }
    out
}
