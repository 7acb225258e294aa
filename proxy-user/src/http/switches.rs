//! Blue-green switches (`rampart upstream switch`): a group's traffic sent
//! to another group, shared by every configuration snapshot so that open
//! connections follow a switch too.

use std::{collections::BTreeMap, sync::RwLock};

/// Upstream groups whose traffic goes to another group.
#[derive(Debug, Default)]
pub struct Switches {
    /// Fast path: requests read no lock while nothing is switched.
    any: std::sync::atomic::AtomicBool,
    to: RwLock<BTreeMap<String, String>>,
}

impl Switches {
    /// Sends `group`'s traffic to `to` (`None`: back to `group` itself).
    pub fn set(&self, group: &str, to: Option<&str>) {
        let mut map = self.to.write().unwrap_or_else(|p| p.into_inner());
        match to {
            Some(t) => map.insert(group.to_string(), t.to_string()),
            None => map.remove(group),
        };
        self.any
            .store(!map.is_empty(), std::sync::atomic::Ordering::Release);
    }

    pub fn get(&self, group: &str) -> Option<String> {
        if !self.any.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        let map = self.to.read().unwrap_or_else(|p| p.into_inner());
        map.get(group).cloned()
    }

    pub fn all(&self) -> BTreeMap<String, String> {
        self.to.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
