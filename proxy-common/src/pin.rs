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
pub const LOG: &str = "log";
pub const LOG_SUPPRESSED: &str = "log_suppressed";

/// Every map, in the order `map list` shows them.
pub const ALL_MAPS: [&str; 20] = [
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
    LOG,
    LOG_SUPPRESSED,
];

/// Name of the XDP program in the object file.
pub const PROGRAM: &str = "rampart";
