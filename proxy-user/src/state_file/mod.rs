//! Runtime changes: what operators (and escalation rules) changed while the
//! daemon ran, as opposed to what the configuration says.
//!
//! The kernel maps are the truth for what is enforced, and they outlive the
//! daemon (they are pinned). This file keeps what the maps cannot: reasons,
//! wall-clock expiries, and the L7-side changes (drained servers, weights,
//! switches), and it survives a reboot, when the pinned maps do not. It is
//! rewritten whole and crash-safely ([`disk`]): at once after an operator's
//! change, and at most once per [`COALESCE`] for automatic ones (auto-bans,
//! expiries), with a last write at shutdown.

mod disk;
mod entries;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

pub use disk::parse;
pub use entries::Entries;
use log::warn;
use serde::{Deserialize, Serialize};

use crate::cidr::Cidr;

/// Which list an entry is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListName {
    Allow,
    Block,
}

/// One list entry or ban added at runtime.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub list: ListName,
    pub cidr: Cidr,
    /// "cli" or "auto-ban".
    pub origin: String,
    pub reason: Option<String>,
    /// Seconds since the Unix epoch after which the entry is removed.
    pub expires_at: Option<u64>,
    /// The fleet host it came from, when not this one (docs/fleet.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Kept on this host only (`block add --local`): never shared with the fleet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local: bool,
}

impl Entry {
    pub fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    /// Time left at `now`, if the entry expires.
    pub fn remaining(&self, now: u64) -> Option<Duration> {
        self.expires_at
            .map(|t| Duration::from_secs(t.saturating_sub(now)))
    }
}

/// Everything changed at runtime.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeState {
    #[serde(default)]
    pub entries: Entries,
    /// Servers (`group/address`) that take no new requests.
    #[serde(default)]
    pub drained: Vec<String>,
    /// Weights set from the CLI, by `group/address`.
    #[serde(default)]
    pub weights: BTreeMap<String, u32>,
    /// Upstream groups whose traffic goes to another group (blue-green).
    #[serde(default)]
    pub switches: BTreeMap<String, String>,
    /// Limits set from the CLI, by name (`pps`, `syn`, or a zone).
    #[serde(default)]
    pub limits: BTreeMap<String, LimitOverride>,
    /// How far this host has applied the fleet's shared log, written with
    /// the entries it applied (docs/fleet.md); absent without a fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetCursor>,
    /// `rampart maintenance on`: every request 503, across restarts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maintenance: bool,
}

/// A position in the fleet's shared log: valid while Redis keeps the same
/// keys (`epoch`), and then exact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetCursor {
    pub epoch: String,
    /// The last applied stream id, `MS-SEQ`.
    pub id: String,
}

/// A limit set from the CLI.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitOverride {
    /// As written (`5000`, `50r/s`); `None` turns a kernel limit off.
    pub rate: Option<String>,
    pub burst: Option<u64>,
}

/// Automatic changes (auto-bans, expiries) are written at most this often:
/// at 65,536 entries one write is several MiB of JSON and an fsync.
pub const COALESCE: Duration = Duration::from_secs(5);

/// Wall-clock seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl RuntimeState {
    /// The state in `path`, read-only (for views): `None` when it is
    /// missing or unusable; values that cannot be read are left out.
    pub fn read(path: &Path) -> Option<RuntimeState> {
        match disk::read(path).ok()? {
            disk::Read::Parsed { state, .. } => Some(state),
            _ => None,
        }
    }
}

/// The state file and its contents.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    pub state: RuntimeState,
    /// Changed since the last write.
    dirty: bool,
    /// When the file was last written.
    written: Option<std::time::Instant>,
}

impl StateFile {
    /// Reads `path` at start-up: a missing file is an empty state; an empty,
    /// truncated or otherwise unusable one is moved aside (`PATH.corrupt-UNIXTIME`)
    /// with a warning and the start goes on with an empty state; values that
    /// cannot be restored are left out, each named in a warning. Only a file
    /// that can be neither read nor moved aside is an error.
    pub fn open(path: &Path) -> anyhow::Result<StateFile> {
        let io = |e: std::io::Error| anyhow::anyhow!("state file {}: {e}", path.display());
        let state = match disk::read(path).map_err(io)? {
            disk::Read::Missing => RuntimeState::default(),
            disk::Read::Parsed { state, skipped } => {
                if !skipped.is_empty() {
                    warn!(
                        "state file {}: {} value(s) could not be restored and are dropped: {}",
                        path.display(),
                        skipped.len(),
                        skipped.join("; ")
                    );
                }
                state
            }
            disk::Read::Corrupt(why) => {
                let aside = disk::set_aside(path, unix_now()).map_err(|e| {
                    anyhow::anyhow!(
                        "state file {}: {why}, and it cannot be moved aside: {e}",
                        path.display()
                    )
                })?;
                warn!(
                    "state file {}: {why}; kept as {} and starting with an empty runtime state",
                    path.display(),
                    aside.display()
                );
                RuntimeState::default()
            }
        };
        Ok(StateFile {
            path: path.to_path_buf(),
            state,
            dirty: false,
            written: None,
        })
    }

    /// Writes the state now (crash-safe, mode 0600).
    pub fn save(&mut self) -> anyhow::Result<()> {
        let text = serde_json::to_vec(&self.state)?;
        disk::write_atomically(&self.path, &text)?;
        self.dirty = false;
        self.written = Some(std::time::Instant::now());
        Ok(())
    }

    /// Notes a change to be written by the next [`StateFile::flush`]: many
    /// automatic changes make one write.
    pub fn save_later(&mut self) {
        self.dirty = true;
    }

    /// Writes the state if it changed and the last write is at least
    /// [`COALESCE`] old (`now`: the caller's clock).
    pub fn flush(&mut self, now: std::time::Instant) -> anyhow::Result<()> {
        let due = self
            .written
            .is_none_or(|t| now.saturating_duration_since(t) >= COALESCE);
        if self.dirty && due {
            self.save()
        } else {
            Ok(())
        }
    }

    /// Writes the state if it changed at all (at shutdown).
    pub fn flush_all(&mut self) -> anyhow::Result<()> {
        if self.dirty { self.save() } else { Ok(()) }
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The runtime entry for `cidr` on `list`.
    pub fn entry(&self, list: ListName, cidr: Cidr) -> Option<&Entry> {
        self.state.entries.get(list, cidr)
    }

    /// Adds or replaces the entry for its list and network.
    pub fn put(&mut self, entry: Entry) {
        self.state.entries.put(entry);
    }

    pub fn remove(&mut self, list: ListName, cidr: Cidr) -> Option<Entry> {
        self.state.entries.remove(list, cidr)
    }

    /// Removes and returns the entries expired at `now` (only those: the
    /// others are not looked at).
    pub fn take_expired(&mut self, now: u64) -> Vec<Entry> {
        self.state.entries.take_expired(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rampart-state-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn saves_and_reads_back() {
        let dir = scratch("back");
        let path = dir.join("state.json");
        let mut f = StateFile::open(&path).unwrap();
        assert_eq!(f.state, RuntimeState::default());
        f.put(Entry {
            list: ListName::Block,
            cidr: "192.0.2.0/24".parse().unwrap(),
            origin: "cli".into(),
            reason: Some("scanner".into()),
            expires_at: Some(100),
            host: None,
            local: false,
        });
        f.state.drained.push("app/127.0.0.1:8001".into());
        f.save().unwrap();
        let back = StateFile::open(&path).unwrap();
        assert_eq!(back.state, f.state);
        assert!(!path.with_extension("json.tmp").exists());
        let mut back = back;
        assert_eq!(back.take_expired(99).len(), 0);
        assert_eq!(back.take_expired(100).len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Issue 13: an empty file (a power cut between create and write, with
    /// the old release's missing fsync) or a truncated one stopped the start.
    #[test]
    fn an_empty_or_truncated_file_is_set_aside_and_the_start_goes_on() {
        let dir = scratch("corrupt");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        for text in ["", "{ \"entries\": [ {\"list\": \"blo"] {
            std::fs::write(&path, text).unwrap();
            let f = StateFile::open(&path).unwrap();
            assert_eq!(f.state, RuntimeState::default());
            assert!(!path.exists(), "moved aside");
            let aside: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.starts_with("state.json.corrupt-"))
                .collect();
            assert_eq!(aside.len(), 1, "{aside:?}");
            assert_eq!(std::fs::read_to_string(dir.join(&aside[0])).unwrap(), text);
            std::fs::remove_file(dir.join(&aside[0])).unwrap();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn automatic_changes_are_written_by_the_next_flush() {
        let dir = scratch("flush");
        let path = dir.join("state.json");
        let mut f = StateFile::open(&path).unwrap();
        f.state.drained.push("a/127.0.0.1:1".into());
        f.save_later();
        assert!(f.is_dirty() && !path.exists());
        let now = std::time::Instant::now();
        f.flush(now).unwrap();
        assert!(
            !f.is_dirty() && path.exists(),
            "the first write is due at once"
        );
        f.state.drained.push("a/127.0.0.1:2".into());
        f.save_later();
        f.flush(now + Duration::from_secs(1)).unwrap();
        assert!(f.is_dirty(), "the next waits for COALESCE");
        f.flush(now + COALESCE + Duration::from_secs(1)).unwrap();
        assert!(!f.is_dirty());
        f.state.drained.push("a/127.0.0.1:3".into());
        f.save_later();
        f.flush_all().unwrap();
        assert!(!f.is_dirty(), "shutdown writes whatever is pending");
        assert_eq!(StateFile::open(&path).unwrap().state.drained.len(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
