//! Runtime changes: what operators (and escalation rules) changed while the
//! daemon ran, as opposed to what the configuration says.
//!
//! The kernel maps are the truth for what is enforced, and they outlive the
//! daemon (they are pinned). This file keeps what the maps cannot: reasons,
//! wall-clock expiries, and the L7-side changes (drained servers, weights,
//! switches), and it survives a reboot, when the pinned maps do not. It is
//! rewritten whole and atomically (a temporary file, then a rename) after
//! every change.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

use crate::cidr::Cidr;

/// Which list an entry is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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
    pub entries: Vec<Entry>,
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
}

/// A limit set from the CLI.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitOverride {
    /// As written (`5000`, `50r/s`); `None` turns a kernel limit off.
    pub rate: Option<String>,
    pub burst: Option<u64>,
}

/// Wall-clock seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The state file and its contents.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    pub state: RuntimeState,
}

impl StateFile {
    /// Reads `path`; a missing file is an empty state, an unreadable one is
    /// an error (the daemon will not overwrite what it cannot read).
    pub fn open(path: &Path) -> anyhow::Result<StateFile> {
        let state = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                anyhow::anyhow!(
                    "state file {}: {e}; move it aside to start with an empty state",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RuntimeState::default(),
            Err(e) => anyhow::bail!("state file {}: {e}", path.display()),
        };
        Ok(StateFile {
            path: path.to_path_buf(),
            state,
        })
    }

    /// Writes the state: to a temporary file beside it, then renamed over
    /// it, so a crash leaves the old file or the new one, never half of one.
    pub fn save(&self) -> anyhow::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(&self.state)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.path)?;
        Ok(())
    }

    /// The runtime entry for `cidr` on `list`.
    pub fn entry(&self, list: ListName, cidr: Cidr) -> Option<&Entry> {
        self.state
            .entries
            .iter()
            .find(|e| e.list == list && e.cidr == cidr)
    }

    /// Adds or replaces the entry for its list and network.
    pub fn put(&mut self, entry: Entry) {
        self.remove(entry.list, entry.cidr);
        self.state.entries.push(entry);
    }

    pub fn remove(&mut self, list: ListName, cidr: Cidr) -> Option<Entry> {
        let at = self
            .state
            .entries
            .iter()
            .position(|e| e.list == list && e.cidr == cidr)?;
        Some(self.state.entries.remove(at))
    }

    /// Removes and returns the entries expired at `now`.
    pub fn take_expired(&mut self, now: u64) -> Vec<Entry> {
        let (gone, kept) = std::mem::take(&mut self.state.entries)
            .into_iter()
            .partition(|e| e.expired(now));
        self.state.entries = kept;
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_atomically_and_reads_back() {
        let dir = std::env::temp_dir().join(format!("rampart-state-{}", std::process::id()));
        let path = dir.join("state.json");
        let mut f = StateFile::open(&path).unwrap();
        assert_eq!(f.state, RuntimeState::default());
        f.put(Entry {
            list: ListName::Block,
            cidr: "192.0.2.0/24".parse().unwrap(),
            origin: "cli".into(),
            reason: Some("scanner".into()),
            expires_at: Some(100),
        });
        f.state.drained.push("app/127.0.0.1:8001".into());
        f.save().unwrap();
        let back = StateFile::open(&path).unwrap();
        assert_eq!(back.state, f.state);
        assert!(!path.with_extension("json.tmp").exists());
        let mut back = back;
        assert_eq!(back.take_expired(99).len(), 0);
        assert_eq!(back.take_expired(100).len(), 1);
        std::fs::write(&path, "{ not json").unwrap();
        let err = StateFile::open(&path).unwrap_err().to_string();
        assert!(err.contains("move it aside"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
