//! Pinned maps made by a build with another layout (docs/operations.md,
//! "Upgrade without downtime"): instead of refusing the pin directory, its
//! maps are set aside in a subdirectory, the loader creates this build's
//! maps in their place, and the entries of every set-aside map whose key
//! and value are laid out as this build's are copied over: the lists, the
//! bans, the per-source state and the verdict counters (per-source state
//! of the layouts before `allow_gen` and before `syns` is converted). The rest (settings,
//! the indexes, SYN-cookie and log state) is derived: the loader rebuilds
//! the indexes from the copied lists and bans, and the daemon rewrites the
//! settings. The program attached through a pinned link keeps its own maps
//! until the new daemon puts the new program in that link.

use std::path::{Path, PathBuf};

use aya::maps::{HashMap, LpmTrie, Map, MapData, MapError, PerCpuArray};
use log::{info, warn};
use proxy_common::{
    ban::Ban,
    list::{ListValue, V4, V6},
    pin,
    source::{SourceState, SourceStateV1, SourceStateV2},
    stats::Counter,
};

use super::FilterError;

/// The subdirectory of the pin directory where maps of another layout wait
/// while the new ones are filled (bpffs refuses dots in names). Left there
/// by a migration that did not finish, it is finished by the next start.
pub const ASIDE: &str = "old_layout";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FilterError + '_ {
    move |source| FilterError::PinDir {
        path: path.to_path_buf(),
        source,
    }
}

/// When `incompatible` names a pinned map (or an unfinished migration is
/// there), moves every pinned map of `dir` into [`ASIDE`] and returns true:
/// the loader then creates this build's maps and [`copy_back`] fills them.
pub(super) fn set_aside(dir: &Path, incompatible: &[String]) -> Result<bool, FilterError> {
    let aside = dir.join(ASIDE);
    let resuming = aside.is_dir();
    if incompatible.is_empty() && !resuming {
        return Ok(false);
    }
    if resuming {
        warn!(
            "{}: finishing the migration of pinned maps a previous start left",
            aside.display()
        );
    } else {
        warn!(
            "{}: pinned maps of another layout ({}): migrating the compatible ones",
            dir.display(),
            incompatible.join(", ")
        );
        std::fs::create_dir(&aside).map_err(io(&aside))?;
    }
    for name in pin::ALL_MAPS {
        let from = dir.join(name);
        if !from.exists() {
            continue;
        }
        let to = aside.join(name);
        if to.exists() {
            // A map the unfinished migration created: made again below.
            std::fs::remove_file(&from).map_err(io(&from))?;
        } else {
            std::fs::rename(&from, &to).map_err(io(&from))?;
        }
    }
    Ok(true)
}

fn open_at<T: TryFrom<Map, Error = MapError>>(path: &Path) -> Result<T, MapError> {
    T::try_from(Map::from_map_data(MapData::from_pin(path)?)?)
}

fn hash<K: aya::Pod, V: aya::Pod>(old: &Path, new: &Path) -> Result<usize, MapError> {
    let old: HashMap<MapData, K, V> = open_at(old)?;
    let mut new: HashMap<MapData, K, V> = open_at(new)?;
    let mut n = 0;
    for entry in old.iter() {
        let (k, v) = entry?;
        new.insert(k, v, 0)?;
        n += 1;
    }
    Ok(n)
}

/// As [`hash`], converting each value from an older layout `O`.
fn hash_from<K: aya::Pod, O: aya::Pod, V: aya::Pod + From<O>>(
    old: &Path,
    new: &Path,
) -> Result<usize, MapError> {
    let old: HashMap<MapData, K, O> = open_at(old)?;
    let mut new: HashMap<MapData, K, V> = open_at(new)?;
    let mut n = 0;
    for entry in old.iter() {
        let (k, v) = entry?;
        new.insert(k, V::from(v), 0)?;
        n += 1;
    }
    Ok(n)
}

/// The per-source state: this build's layout, the 48-byte one of builds
/// before `allow_gen` (converted; each source then looks the allowlist up
/// once), or the 56-byte one of builds before `syns` (converted; its SYNs
/// are counted from 0).
fn sources<K: aya::Pod>(old: &Path, new: &Path) -> Result<usize, MapError> {
    let value_size = aya::maps::MapInfo::from_pin(old)?.value_size() as usize;
    if value_size == size_of::<SourceStateV1>() {
        hash_from::<K, SourceStateV1, SourceState>(old, new)
    } else if value_size == size_of::<SourceStateV2>() {
        hash_from::<K, SourceStateV2, SourceState>(old, new)
    } else {
        hash::<K, SourceState>(old, new)
    }
}

fn trie<K: aya::Pod, V: aya::Pod>(old: &Path, new: &Path) -> Result<usize, MapError> {
    let old: LpmTrie<MapData, K, V> = open_at(old)?;
    let mut new: LpmTrie<MapData, K, V> = open_at(new)?;
    let mut n = 0;
    for entry in old.iter() {
        let (k, v) = entry?;
        new.insert(&k, v, 0)?;
        n += 1;
    }
    Ok(n)
}

fn per_cpu<V: aya::Pod>(old: &Path, new: &Path) -> Result<usize, MapError> {
    let old: PerCpuArray<MapData, V> = open_at(old)?;
    let mut new: PerCpuArray<MapData, V> = open_at(new)?;
    let n = old.len().min(new.len());
    for i in 0..n {
        new.set(i, old.get(&i, 0)?, 0)?;
    }
    Ok(n as usize)
}

/// Entries of the set-aside map `name` copied into the new one, if its
/// layout is this build's (aya checks the key and value sizes); `None` for
/// a map that is derived and rebuilt instead.
fn copy(name: &str, old: &Path, new: &Path) -> Option<Result<usize, MapError>> {
    Some(match name {
        pin::ALLOW_V4 | pin::BLOCK_V4 => trie::<V4, ListValue>(old, new),
        pin::ALLOW_V6 | pin::BLOCK_V6 => trie::<V6, ListValue>(old, new),
        pin::BLOCK_ADDR_V4 => hash::<V4, ListValue>(old, new),
        pin::BLOCK_ADDR_V6 => hash::<V6, ListValue>(old, new),
        pin::BANS_V4 => hash::<V4, Ban>(old, new),
        pin::BANS_V6 => hash::<V6, Ban>(old, new),
        pin::SOURCES_V4 => sources::<V4>(old, new),
        pin::SOURCES_V6 => sources::<V6>(old, new),
        pin::VERDICTS => per_cpu::<Counter>(old, new),
        _ => return None,
    })
}

/// What a migration did: (map, entries copied) for the maps copied, and
/// the maps that started empty because their layout changed.
#[derive(Debug, Default)]
pub struct Migrated {
    pub copied: Vec<(String, usize)>,
    pub fresh: Vec<String>,
}

/// Copies the set-aside maps of `dir` whose layout is this build's into
/// the maps the loader just created there, then removes them.
pub(super) fn copy_back(dir: &Path) -> Result<Migrated, FilterError> {
    let aside: PathBuf = dir.join(ASIDE);
    let mut done = Migrated::default();
    for name in pin::ALL_MAPS {
        let old = aside.join(name);
        if !old.exists() {
            continue;
        }
        match copy(name, &old, &dir.join(name)) {
            Some(Ok(n)) => done.copied.push((name.to_string(), n)),
            Some(Err(e)) => {
                warn!("{name}: not copied ({e}); it starts empty");
                done.fresh.push(name.to_string());
            }
            None => {}
        }
        std::fs::remove_file(&old).map_err(io(&old))?;
    }
    std::fs::remove_dir(&aside).map_err(io(&aside))?;
    info!(
        "{}: pinned maps migrated: {}{}",
        dir.display(),
        done.copied
            .iter()
            .map(|(m, n)| format!("{m} ({n})"))
            .collect::<Vec<_>>()
            .join(", "),
        if done.fresh.is_empty() {
            String::new()
        } else {
            format!("; started empty: {}", done.fresh.join(", "))
        }
    );
    Ok(done)
}
