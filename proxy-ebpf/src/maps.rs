//! Every map of the program, in one place. Names are the pinned names in
//! `proxy_common::pin`; sizes of the LRU and list maps are overridden by the
//! loader from config before the maps are created.

use aya_ebpf::{
    btf_maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, ProgramArray},
    macros::btf_map,
};
use proxy_common::{
    admit::{FirstV4, FirstV6, SLOTS, TAG_LINE, TAG_LINES},
    ban::{Ban, BanBucketV4, BanBucketV6},
    config::FilterConfig,
    index::{BucketV4, BucketV6},
    known,
    list::{ListValue, V4, V6},
    listed,
    log::LogConfig,
    new_sources::NewSources,
    source::SourceState,
    stats::{Counter, VERDICTS as N_VERDICTS},
    syncookie::{PORT_WORDS, STATS as N_SYN_STATS, SynCookieConfig, SynState, SynWindow},
};

#[btf_map(name = "config")]
pub static CONFIG: Array<FilterConfig, 1> = Array::new();

#[btf_map(name = "verdicts")]
pub static VERDICTS: PerCpuArray<Counter, { N_VERDICTS as usize }> = PerCpuArray::new();

#[btf_map(name = "allow_v4")]
pub static ALLOW_V4: LpmTrie<V4, ListValue, 16384> = LpmTrie::new();
#[btf_map(name = "allow_v6")]
pub static ALLOW_V6: LpmTrie<V6, ListValue, 16384> = LpmTrie::new();

#[btf_map(name = "block_v4")]
pub static BLOCK_V4: LpmTrie<V4, ListValue, 65536> = LpmTrie::new();
#[btf_map(name = "block_v6")]
pub static BLOCK_V6: LpmTrie<V6, ListValue, 65536> = LpmTrie::new();
#[btf_map(name = "block_addr_v4")]
pub static BLOCK_ADDR_V4: HashMap<V4, ListValue, 262144> = HashMap::new();
#[btf_map(name = "block_addr_v6")]
pub static BLOCK_ADDR_V6: HashMap<V6, ListValue, 262144> = HashMap::new();

#[btf_map(name = "block_index_v4")]
pub static BLOCK_INDEX_V4: Array<BucketV4, 65536> = Array::new();
#[btf_map(name = "block_index_v6")]
pub static BLOCK_INDEX_V6: Array<BucketV6, 65536> = Array::new();

#[btf_map(name = "range_index_v4")]
pub static RANGE_INDEX_V4: Array<BucketV4, 65536> = Array::new();
#[btf_map(name = "range_index_v6")]
pub static RANGE_INDEX_V6: Array<BucketV6, 65536> = Array::new();

#[btf_map(name = "bans_v4")]
pub static BANS_V4: HashMap<V4, Ban, 65536> = HashMap::new();
#[btf_map(name = "bans_v6")]
pub static BANS_V6: HashMap<V6, Ban, 65536> = HashMap::new();

#[btf_map(name = "ban_index_v4")]
pub static BAN_INDEX_V4: Array<BanBucketV4, 32768> = Array::new();
#[btf_map(name = "ban_index_v6")]
pub static BAN_INDEX_V6: Array<BanBucketV6, 32768> = Array::new();

#[btf_map(name = "sources_v4")]
pub static SOURCES_V4: LruHashMap<V4, SourceState, 65536> = LruHashMap::new();
#[btf_map(name = "sources_v6")]
pub static SOURCES_V6: LruHashMap<V6, SourceState, 65536> = LruHashMap::new();

// SYN cookies (`syncookie.rs`, `cookie_ack.rs`; proxy_common::syncookie).
#[btf_map(name = "syn_cookie")]
pub static SYN_COOKIE: Array<SynCookieConfig, 1> = Array::new();
#[btf_map(name = "syn_state")]
pub static SYN_STATE: Array<SynState, 1> = Array::new();
#[btf_map(name = "syn_ports")]
pub static SYN_PORTS: Array<u64, { PORT_WORDS as usize }> = Array::new();
#[btf_map(name = "syn_window")]
pub static SYN_WINDOW: PerCpuArray<SynWindow, 1> = PerCpuArray::new();
#[btf_map(name = "syn_stats")]
pub static SYN_STATS: PerCpuArray<u64, { N_SYN_STATS as usize }> = PerCpuArray::new();
/// `[0]`: `rampart_syn`, tail-called for passed SYNs; `[1]`: `rampart_synack`,
/// tail-called by it. Not pinned: each loaded `rampart` gets its own,
/// filled by the loader.
#[btf_map(name = "syn_tail")]
pub static SYN_TAIL: ProgramArray<2> = ProgramArray::new();
/// The SYN-ACK budget's theoretical arrival time (GCRA, shared by every
/// CPU; `syncookie::within_budget`). Not pinned: a restart starts it afresh.
#[btf_map(name = "syn_budget")]
pub static SYN_BUDGET: Array<u64, 1> = Array::new();
/// Per CPU, what a SYN offered, on its way into the SYN-ACK (`synack.rs`
/// says why through a map). Not pinned.
#[btf_map(name = "syn_scratch")]
pub static SYN_SCRATCH: PerCpuArray<SynScratch, 1> = PerCpuArray::new();

#[repr(C)]
pub struct SynScratch {
    /// The cookie's option bits.
    pub bits: u32,
    /// The SYN-ACK carries timestamps.
    pub ts: u32,
    /// The client's timestamp, echoed.
    pub tsecr: u32,
    /// Written by `rampart` before it hands a SYN over: 1 when the source
    /// had its LRU entry (its own SYN limit applied), so the SYN does not
    /// take from the SYN-ACK budget (`syncookie::on_syn`).
    pub known: u32,
}
/// The record budget of the program's log, and its level for readers
/// (the program reads its own global; see `log.rs`).
#[btf_map(name = "log")]
pub static LOG: Array<LogConfig, 1> = Array::new();
/// Records each CPU suppressed since its last one (reported in the next).
#[btf_map(name = "log_suppressed")]
pub static LOG_SUPPRESSED: PerCpuArray<u64, 1> = PerCpuArray::new();

/// The new-source budget and attack mode (`new_sources.rs`): settings from
/// userspace, the budget's TAT and attack mode from the program. Pinned.
#[btf_map(name = "new_sources")]
pub static NEW_SOURCES: Array<NewSources, 1> = Array::new();

/// The first stage in front of `sources_*` (`proxy_common::admit`): not
/// pinned, since it only remembers sources seen once.
#[btf_map(name = "first_v4")]
pub static FIRST_V4: Array<FirstV4, { SLOTS as usize }> = Array::new();
#[btf_map(name = "first_v6")]
pub static FIRST_V6: Array<FirstV6, { SLOTS as usize }> = Array::new();
/// One byte per first-stage slot, the tag of the source it holds (0: none),
/// a line of 64 slots per value: 64 KB that stay in cache where the slots'
/// 1-2 MB do not, so a new source's packet past the new-source budget
/// learns that its slot does not hold it without reading the slot
/// (`admit.rs`). Not pinned, as the slots.
#[btf_map(name = "first_tags_v4")]
pub static FIRST_TAGS_V4: Array<[u8; TAG_LINE as usize], { TAG_LINES as usize }> = Array::new();
#[btf_map(name = "first_tags_v6")]
pub static FIRST_TAGS_V6: Array<[u8; TAG_LINE as usize], { TAG_LINES as usize }> = Array::new();

/// `BPF_F_MMAPABLE`: userspace rebuilds the known-source filter through
/// an mmap of it, with atomic ORs (`proxy_common::known`).
const BPF_F_MMAPABLE: usize = 1 << 10;

/// The known-source filter (`known.rs`, `proxy_common::known`): the header
/// line and two filters of 64-byte lines. Not pinned (each program's
/// starts off); sized by the loader from `[filter.maps] sources`.
#[btf_map(name = "known")]
pub static KNOWN: Array<
    [u64; known::LINE_WORDS],
    { known::entries_for(65_536) as usize },
    BPF_F_MMAPABLE,
> = Array::new();

/// The listed-source filter (`listed.rs`, `proxy_common::listed`): the
/// header line and two filters of 64-byte lines. Pinned, so that every
/// writer of the lists and bans (any process through `FilterMaps`) sets its
/// entries' bits; sized by the loader from `[filter.maps]`.
#[btf_map(name = "listed")]
pub static LISTED: Array<
    [u64; listed::LINE_WORDS],
    { listed::entries_for(65_536, 262_144, 65_536) as usize },
    BPF_F_MMAPABLE,
> = Array::new();

/// One slot of the limited-drop cache (`limited.rs`). `addr` is the source (IPv4: its word, with bit 32 set so
/// that 0.0.0.0 is not an empty slot; IPv6: the prefix's two words);
/// `*_until` coarse times (0: nothing cached); `*_params` the limit's
/// interval and tolerance when the entry was made; `allow_gen` the
/// allowlist generation its source was found not allowlisted under
/// (`SourceState::allow_gen`).
#[repr(C)]
pub struct Limited {
    pub addr: [u64; 2],
    pub pps_until: u64,
    pub syn_until: u64,
    pub pps_params: [u64; 2],
    pub syn_params: [u64; 2],
    /// Drops not yet added to the LRU entry, their bytes and SYNs.
    pub packets: u64,
    pub bytes: u64,
    pub allow_gen: u64,
    pub syns: u64,
}

/// The limited-drop cache (`limited.rs`): per CPU, not pinned.
pub const LIMITED_BITS: u32 = 10;
pub const LIMITED_SLOTS: u32 = 1 << LIMITED_BITS;
#[btf_map(name = "limited_v4")]
pub static LIMITED_V4: PerCpuArray<Limited, { LIMITED_SLOTS as usize }> = PerCpuArray::new();
#[btf_map(name = "limited_v6")]
pub static LIMITED_V6: PerCpuArray<Limited, { LIMITED_SLOTS as usize }> = PerCpuArray::new();

/// Counts one packet of `len` bytes under `verdict` on this CPU.
#[inline(always)]
pub fn count(verdict: u32, len: u64) {
    if let Some(c) = VERDICTS.get_ptr_mut(verdict) {
        // SAFETY: per-CPU slot; nothing else on this CPU runs concurrently.
        unsafe {
            (*c).packets += 1;
            (*c).bytes += len;
        }
    }
}
