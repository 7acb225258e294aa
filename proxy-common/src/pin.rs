//! Where the maps are pinned, and their names. These names are a stable
//! interface: the CLI and `bpftool map dump pinned /sys/fs/bpf/rampart/NAME` use them.

/// Directory under bpffs holding every pinned rampart object.
pub const PIN_DIR: &str = "/sys/fs/bpf/rampart";

pub const CONFIG: &str = "config";
pub const VERDICTS: &str = "verdicts";
pub const ALLOW_V4: &str = "allow_v4";
pub const ALLOW_V6: &str = "allow_v6";
pub const BLOCK_V4: &str = "block_v4";
pub const BLOCK_V6: &str = "block_v6";
pub const BLOCK_ADDR_V4: &str = "block_addr_v4";
pub const BLOCK_ADDR_V6: &str = "block_addr_v6";
pub const BLOCK_INDEX_V4: &str = "block_index_v4";
pub const BLOCK_INDEX_V6: &str = "block_index_v6";
pub const RANGE_INDEX_V4: &str = "range_index_v4";
pub const RANGE_INDEX_V6: &str = "range_index_v6";
pub const BANS_V4: &str = "bans_v4";
pub const BANS_V6: &str = "bans_v6";
pub const BAN_INDEX_V4: &str = "ban_index_v4";
pub const BAN_INDEX_V6: &str = "ban_index_v6";
pub const SOURCES_V4: &str = "sources_v4";
pub const SOURCES_V6: &str = "sources_v6";
pub const SYN_COOKIE: &str = "syn_cookie";
pub const SYN_STATE: &str = "syn_state";
pub const SYN_PORTS: &str = "syn_ports";
pub const SYN_WINDOW: &str = "syn_window";
pub const SYN_STATS: &str = "syn_stats";
pub const LOG: &str = "log";
pub const LOG_SUPPRESSED: &str = "log_suppressed";
pub const NEW_SOURCES: &str = "new_sources";
/// The listed-source filter (`crate::listed`).
pub const LISTED: &str = "listed";

/// Every map, in the order `map list` shows them.
pub const ALL_MAPS: [&str; 27] = [
    CONFIG,
    VERDICTS,
    ALLOW_V4,
    ALLOW_V6,
    BLOCK_V4,
    BLOCK_V6,
    BLOCK_ADDR_V4,
    BLOCK_ADDR_V6,
    BLOCK_INDEX_V4,
    BLOCK_INDEX_V6,
    RANGE_INDEX_V4,
    RANGE_INDEX_V6,
    BANS_V4,
    BANS_V6,
    BAN_INDEX_V4,
    BAN_INDEX_V6,
    SOURCES_V4,
    SOURCES_V6,
    SYN_COOKIE,
    SYN_STATE,
    SYN_PORTS,
    SYN_WINDOW,
    SYN_STATS,
    LOG,
    LOG_SUPPRESSED,
    NEW_SOURCES,
    LISTED,
];

/// Name of the XDP program in the object file.
pub const PROGRAM: &str = "rampart";
/// Name of the XDP program `rampart` tail-calls for the SYNs it passes
/// (it answers them with SYN cookies), and of the map holding it.
pub const SYN_PROGRAM: &str = "rampart_syn";
/// Name of the XDP program `rampart_syn` tail-calls to build the SYN-ACK.
pub const SYNACK_PROGRAM: &str = "rampart_synack";
pub const SYN_TAIL: &str = "syn_tail";
/// Name of the tc (ingress) program that completes SYN-cookie handshakes.
pub const ACK_PROGRAM: &str = "rampart_ack";
