//! The state file on disk: written so that a crash or a power cut leaves
//! the old file or the new one, readable only by root; read so that what
//! can be restored is, and the rest is reported, never a reason not to start.
//!
//! ```text
//! write: STATE.tmp (0600, new) -> write -> fsync -> rename over STATE -> fsync the directory
//! read:  missing            -> empty state
//!        empty, not JSON    -> moved aside to STATE.corrupt-UNIXTIME, empty state, warning
//!        some values bad    -> the others restored, each bad one named in a warning
//! ```

use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{Entry, LimitOverride, RuntimeState};

/// What reading the file found.
#[derive(Debug)]
pub enum Read {
    /// No file: nothing changed at runtime yet.
    Missing,
    /// The state, and a note for each value that could not be restored.
    Parsed {
        state: RuntimeState,
        skipped: Vec<String>,
    },
    /// Not a state file at all (empty after a power cut, truncated, not JSON).
    Corrupt(String),
}

/// Reads `path` without changing anything.
pub fn read(path: &Path) -> io::Result<Read> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(match parse(&bytes) {
            Ok((state, skipped)) => Read::Parsed { state, skipped },
            Err(why) => Read::Corrupt(why),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Read::Missing),
        Err(e) => Err(e),
    }
}

/// Parses a state file: the whole state when every value is valid, else
/// every valid value and a note for each invalid one. `Err` when the text
/// is not a JSON object at all.
pub fn parse(bytes: &[u8]) -> Result<(RuntimeState, Vec<String>), String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("the file is empty".into());
    }
    if let Ok(state) = serde_json::from_slice::<RuntimeState>(bytes) {
        return Ok((state, Vec::new()));
    }
    let root: Map<String, Value> = match serde_json::from_slice(bytes) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err("not a JSON object".into()),
        Err(e) => return Err(format!("not JSON: {e}")),
    };
    let mut skipped = Vec::new();
    let mut state = RuntimeState::default();
    for (key, value) in root {
        match key.as_str() {
            "entries" => state.entries = list::<Entry>(&key, value, &mut skipped).collect(),
            "drained" => state.drained = list(&key, value, &mut skipped).collect(),
            "weights" => state.weights = map::<u32>(&key, value, &mut skipped),
            "switches" => state.switches = map::<String>(&key, value, &mut skipped),
            "limits" => state.limits = map::<LimitOverride>(&key, value, &mut skipped),
            "maintenance" => match value {
                Value::Bool(on) => state.maintenance = on,
                _ => skipped.push(format!("{key}: not true or false")),
            },
            _ => skipped.push(format!("{key}: not a state file key")),
        }
    }
    Ok((state, skipped))
}

fn list<T: DeserializeOwned>(
    key: &str,
    value: Value,
    skipped: &mut Vec<String>,
) -> impl Iterator<Item = T> {
    let items = match value {
        Value::Array(items) => items,
        _ => {
            skipped.push(format!("{key}: not a list"));
            Vec::new()
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        match serde_json::from_value(item) {
            Ok(v) => out.push(v),
            Err(e) => skipped.push(format!("{key}[{i}]: {e}")),
        }
    }
    out.into_iter()
}

fn map<T: DeserializeOwned>(
    key: &str,
    value: Value,
    skipped: &mut Vec<String>,
) -> BTreeMap<String, T> {
    let Value::Object(items) = value else {
        skipped.push(format!("{key}: not an object"));
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for (name, item) in items {
        match serde_json::from_value(item) {
            Ok(v) => {
                out.insert(name, v);
            }
            Err(e) => skipped.push(format!("{key}.{name}: {e}")),
        }
    }
    out
}

/// Moves an unusable file aside to `PATH.corrupt-UNIXTIME`, for an operator to look at.
pub fn set_aside(path: &Path, now: u64) -> io::Result<PathBuf> {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".corrupt-{now}"));
    let aside = PathBuf::from(name);
    std::fs::rename(path, &aside)?;
    sync_dir(path)?;
    Ok(aside)
}

/// Replaces `path` with `bytes` so that a crash or a power cut leaves the
/// old content or the new, whole: a new temporary file (mode 0600: reasons
/// and addresses are for root), fsynced, renamed over the file, and the
/// directory fsynced so the rename itself is durable.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    let tmp = PathBuf::from(name);
    // A leftover from a crash may have any mode: start from a new file.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    sync_dir(path)
}

fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::state_file::ListName;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rampart-disk-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn written_0600_whole_with_no_temporary_left() {
        let dir = scratch("write");
        let path = dir.join("state.json");
        // A file and a leftover temporary an older release left world-readable.
        std::fs::write(&path, "{}").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(dir.join("state.json.tmp"), "half").unwrap();
        write_atomically(&path, b"{\"drained\":[\"a/127.0.0.1:1\"]}").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!dir.join("state.json.tmp").exists());
        let Read::Parsed { state, skipped } = read(&path).unwrap() else {
            panic!("not parsed")
        };
        assert!(skipped.is_empty());
        assert_eq!(state.drained, ["a/127.0.0.1:1"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_and_truncated_files_are_corrupt_and_set_aside() {
        for text in [
            "",
            "\n",
            "{\"entries\":[{\"list\":\"block\",\"ci",
            "[1,2]",
            "null",
        ] {
            assert!(parse(text.as_bytes()).is_err(), "{text:?}");
        }
        let dir = scratch("aside");
        let path = dir.join("state.json");
        std::fs::write(&path, "").unwrap();
        assert!(matches!(read(&path).unwrap(), Read::Corrupt(_)));
        let aside = set_aside(&path, 1234).unwrap();
        assert_eq!(aside, dir.join("state.json.corrupt-1234"));
        assert!(aside.exists() && !path.exists());
        assert!(matches!(read(&path).unwrap(), Read::Missing));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_values_are_skipped_and_named() {
        let text = r#"{
            "entries": [
                {"list":"block","cidr":"192.0.2.1","origin":"cli","reason":null,"expires_at":null},
                {"list":"block","cidr":"192.0.2.300","origin":"cli","reason":null,"expires_at":null},
                {"list":"allow","cidr":"10.0.0.0/8","origin":"cli","reason":"office","expires_at":18446744073709551615}
            ],
            "weights": {"a/127.0.0.1:1": 3, "a/127.0.0.1:2": -1},
            "colour": "blue"
        }"#;
        let (state, skipped) = parse(text.as_bytes()).unwrap();
        assert_eq!(state.entries.len(), 2);
        assert!(
            state
                .entries
                .get(ListName::Allow, "10.0.0.0/8".parse().unwrap())
                .is_some()
        );
        assert_eq!(state.weights.len(), 1);
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        assert!(skipped[0].starts_with("entries[1]: "), "{skipped:?}");
        assert!(
            skipped
                .iter()
                .any(|s| s.starts_with("weights.a/127.0.0.1:2"))
        );
        assert!(skipped.iter().any(|s| s.starts_with("colour")));
    }
}
