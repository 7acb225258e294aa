//! Allow and block lists: where an entry lives in the kernel, and how the
//! configured lists are reconciled with what is installed.
//!
//! Reconciling computes a diff and applies inserts before removals, so there
//! is never a moment when a list is emptier than both the old and the new
//! configuration. Only entries that came from the configuration are touched;
//! entries added at runtime (CLI, escalation) keep their place.

use std::collections::BTreeSet;

use crate::cidr::Cidr;

/// Which list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum List {
    Allow,
    Block,
}

impl List {
    pub fn name(self) -> &'static str {
        match self {
            List::Allow => "allow",
            List::Block => "block",
        }
    }
}

/// What to insert and what to remove to go from `installed` to `desired`.
pub fn diff(installed: &BTreeSet<Cidr>, desired: &BTreeSet<Cidr>) -> (Vec<Cidr>, Vec<Cidr>) {
    let add = desired.difference(installed).copied().collect();
    let remove = installed.difference(desired).copied().collect();
    (add, remove)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<Cidr> {
        items.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn diff_adds_new_and_removes_stale_only() {
        let installed = set(&["10.0.0.0/8", "192.0.2.1", "2001:db8::/32"]);
        let desired = set(&["10.0.0.0/8", "198.51.100.0/24", "2001:db8::/32"]);
        let (add, remove) = diff(&installed, &desired);
        assert_eq!(add, vec!["198.51.100.0/24".parse().unwrap()]);
        assert_eq!(remove, vec!["192.0.2.1".parse().unwrap()]);
        let (add, remove) = diff(&desired, &desired);
        assert!(add.is_empty() && remove.is_empty());
    }
}
