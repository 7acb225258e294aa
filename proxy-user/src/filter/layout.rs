//! The layout check of a pin directory: the key and value sizes this
//! build gives each pinned map, and which pinned maps differ (they are
//! migrated, `migrate.rs`, rather than adopted).

use std::path::Path;

use log::warn;
use proxy_common::pin;

use super::FilterError;

/// Key and value sizes of every map, as this build lays them out.
fn expected_layout(name: &str) -> Option<(u32, u32)> {
    use std::mem::size_of;

    use proxy_common::{
        ban::{Ban, BanBucketV4, BanBucketV6},
        config::FilterConfig,
        index,
        list::ListValue,
        source::SourceState,
        stats::Counter,
        syncookie::{SynCookieConfig, SynState, SynWindow},
    };
    let lpm = |addr: usize| (4 + addr) as u32;
    let v = |n: usize| n as u32;
    Some(match name {
        pin::CONFIG => (4, v(size_of::<FilterConfig>())),
        pin::VERDICTS => (4, v(size_of::<Counter>())),
        pin::ALLOW_V4 | pin::BLOCK_V4 => (lpm(4), v(size_of::<ListValue>())),
        pin::ALLOW_V6 | pin::BLOCK_V6 => (lpm(16), v(size_of::<ListValue>())),
        pin::BLOCK_ADDR_V4 => (4, v(size_of::<ListValue>())),
        pin::BLOCK_ADDR_V6 => (16, v(size_of::<ListValue>())),
        pin::BLOCK_INDEX_V4 | pin::RANGE_INDEX_V4 => (4, v(size_of::<index::BucketV4>())),
        pin::BLOCK_INDEX_V6 | pin::RANGE_INDEX_V6 => (4, v(size_of::<index::BucketV6>())),
        pin::BANS_V4 => (4, v(size_of::<Ban>())),
        pin::BANS_V6 => (16, v(size_of::<Ban>())),
        pin::BAN_INDEX_V4 => (4, v(size_of::<BanBucketV4>())),
        pin::BAN_INDEX_V6 => (4, v(size_of::<BanBucketV6>())),
        pin::SOURCES_V4 => (4, v(size_of::<SourceState>())),
        pin::SOURCES_V6 => (16, v(size_of::<SourceState>())),
        pin::SYN_COOKIE => (4, v(size_of::<SynCookieConfig>())),
        pin::SYN_STATE => (4, v(size_of::<SynState>())),
        pin::SYN_PORTS | pin::SYN_STATS => (4, 8),
        pin::SYN_WINDOW => (4, v(size_of::<SynWindow>())),
        pin::LOG => (4, v(size_of::<proxy_common::log::LogConfig>())),
        pin::LOG_SUPPRESSED => (4, 8),
        pin::NEW_SOURCES => (4, v(size_of::<proxy_common::new_sources::NewSources>())),
        pin::LISTED => (4, v(proxy_common::listed::LINE_WORDS * 8)),
        _ => return None,
    })
}

/// The pinned maps whose layout differs from this build's. They are not
/// adopted (the kernel would reject the program with a verifier error that
/// does not say why, or worse, the maps would be misread): the pin
/// directory is migrated instead (`migrate.rs`).
pub(super) fn check_pinned_layout(dir: &Path) -> Result<Vec<String>, FilterError> {
    let mut incompatible = Vec::new();
    for name in pin::ALL_MAPS {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        let info = aya::maps::MapInfo::from_pin(&path).map_err(FilterError::map(name))?;
        let counters = match name {
            pin::VERDICTS => proxy_common::stats::VERDICTS,
            pin::SYN_STATS => proxy_common::syncookie::STATS,
            _ => 0,
        };
        if info.max_entries() < counters {
            // Made by a build that counted fewer things. The program attached
            // now keeps its own reference; ours gets a new map (counters restart).
            warn!(
                "{}: {} counters, this build counts {counters}: replaced by a new map (counters restart)",
                path.display(),
                info.max_entries(),
            );
            std::fs::remove_file(&path).map_err(|source| FilterError::PinDir {
                path: path.clone(),
                source,
            })?;
            continue;
        }
        let want = expected_layout(name);
        let got = (info.key_size(), info.value_size());
        if want.is_some_and(|w| w != got) {
            let (wk, wv) = want.unwrap_or_default();
            incompatible.push(format!(
                "{name}: key/value {}/{} bytes, this build uses {wk}/{wv}",
                got.0, got.1
            ));
        }
    }
    Ok(incompatible)
}
