//! The runtime list entries and bans, indexed two ways: by list and network
//! (lookups, replacement) and by expiry (the sweep takes what is due without
//! walking the rest). On disk they are a plain JSON list.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Entry, ListName};
use crate::cidr::Cidr;

type Key = (ListName, Cidr);

/// Every runtime entry, at most one per list and network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entries {
    by_key: BTreeMap<Key, Entry>,
    /// `(expires_at, list, cidr)` of the entries that expire.
    by_expiry: BTreeSet<(u64, ListName, Cidr)>,
}

impl Entries {
    pub fn get(&self, list: ListName, cidr: Cidr) -> Option<&Entry> {
        self.by_key.get(&(list, cidr))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.by_key.values()
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Adds or replaces the entry for its list and network; O(log n).
    pub(super) fn put(&mut self, entry: Entry) -> Option<Entry> {
        let old = self.remove(entry.list, entry.cidr);
        if let Some(t) = entry.expires_at {
            self.by_expiry.insert((t, entry.list, entry.cidr));
        }
        self.by_key.insert((entry.list, entry.cidr), entry);
        old
    }

    pub(super) fn remove(&mut self, list: ListName, cidr: Cidr) -> Option<Entry> {
        let old = self.by_key.remove(&(list, cidr))?;
        if let Some(t) = old.expires_at {
            self.by_expiry.remove(&(t, list, cidr));
        }
        Some(old)
    }

    /// Removes and returns the entries expired at `now`: O(k log n) for k of them.
    pub(super) fn take_expired(&mut self, now: u64) -> Vec<Entry> {
        let mut gone = Vec::new();
        while let Some(&(t, list, cidr)) = self.by_expiry.first() {
            if t > now {
                break;
            }
            self.by_expiry.pop_first();
            gone.extend(self.by_key.remove(&(list, cidr)));
        }
        gone
    }
}

impl FromIterator<Entry> for Entries {
    /// A later entry for the same list and network replaces an earlier one.
    fn from_iter<I: IntoIterator<Item = Entry>>(iter: I) -> Self {
        let mut out = Entries::default();
        for e in iter {
            out.put(e);
        }
        out
    }
}

impl Serialize for Entries {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.by_key.values())
    }
}

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<Entry>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cidr: &str, expires_at: Option<u64>) -> Entry {
        Entry {
            list: ListName::Block,
            cidr: cidr.parse().unwrap(),
            origin: "cli".into(),
            reason: None,
            expires_at,
            host: None,
            local: false,
        }
    }

    #[test]
    fn replaces_and_expires_in_order() {
        let mut e: Entries = [
            entry("192.0.2.1", Some(30)),
            entry("192.0.2.2", Some(10)),
            entry("192.0.2.3", None),
            entry("192.0.2.4", Some(u64::MAX)),
        ]
        .into_iter()
        .collect();
        // Replacing moves the expiry.
        e.put(entry("192.0.2.1", Some(5)));
        assert_eq!(e.len(), 4);
        let gone: Vec<String> = e
            .take_expired(10)
            .iter()
            .map(|g| g.cidr.to_string())
            .collect();
        assert_eq!(gone, ["192.0.2.1", "192.0.2.2"]);
        assert!(e.take_expired(1_000_000).is_empty());
        assert_eq!(e.take_expired(u64::MAX).len(), 1, "u64::MAX expires last");
        assert_eq!(e.len(), 1);
        assert!(
            e.remove(ListName::Block, "192.0.2.3".parse().unwrap())
                .is_some()
        );
        assert!(e.is_empty());
        let text = serde_json::to_string(&Entries::from_iter([entry("192.0.2.9", None)])).unwrap();
        assert!(text.starts_with("[{"), "{text}");
    }
}
