//! The listed-source filter's userspace side (`proxy_common::listed`): the
//! pinned `listed` map mapped into this process, the bits every writer of
//! the bans and blocklists sets, and the rebuild from the hashes and tries.
//!
//! **Every entry's bit is set before the entry can matter.** The writers
//! are `FilterMaps` methods (bans from the daemon, escalation, the fleet,
//! `rampart block add` through the daemon, the configuration's lists) and
//! each marks the entry's bit in both filters *before* it writes the hash or
//! trie (so no packet finds the entry without its bit), and again *after*
//! it: a rebuild in another process that zeroed its target between the two
//! and started its read of the hashes before the write would otherwise lose
//! it. Entries copied by a migration (`migrate.rs`) and the indexes built
//! from the hashes (`index.rs`, `ban_index.rs`) are written before the
//! rebuild [`super::Filter`] makes when it loads, which reads them. The CLI
//! writes no map itself: its verbs go through the daemon's control socket.
//!
//! **Cleared only by a rebuild.** A lifted ban or removed entry leaves its
//! bit set (it only costs its probes to the sources that hit it); the
//! daemon's sweep rebuilds once enough entries have gone
//! ([`ListedFilter::refresh`]). A rebuild zeroes the inactive filter, reads
//! every key of the bans, blocklisted addresses and ranges, sets their bits
//! in it and makes it the active one with one store of the header.
//!
//! **Off until the first rebuild**, made by `Filter::open`/`Filter::load`
//! before the program is attached: the map is pinned (shared with the
//! program a restart replaces, which never adds list entries itself), so
//! the rebuild also settles entries an older build without the filter
//! wrote into the pinned hashes. What a filter that is on does not see:
//! entries written behind rampart's back (`bpftool map update` on a pinned
//! hash or trie), until the next rebuild.

use std::{
    net::IpAddr,
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use aya::maps::MapData;
use proxy_common::{
    index,
    listed::{self, ADDR, RANGE},
    pin,
};

use super::{FilterError, bit_filters::BitFilters, lines::MappedLines};
use crate::cidr::Cidr;

/// Rebuilds are at least this far apart (but for the one at load).
pub const MIN_EVERY: Duration = Duration::from_secs(5);
/// How long a filter made inactive by a switch is left alone before a
/// rebuild zeroes it: a packet that read the header before the switch may
/// still read that filter's line (microseconds; XDP runs to completion).
pub const GRACE: Duration = Duration::from_millis(10);
/// Entries removed since the last rebuild before [`ListedFilter::refresh`]
/// rebuilds (or a quarter of the bits it left, if more).
pub const REMOVED_MIN: u64 = 256;

/// The pinned `listed` map, mapped read-write.
pub struct ListedFilter {
    filters: BitFilters,
    /// The active filter's set bits just after the last rebuild.
    left: u64,
    /// The last rebuild (or attempt), for [`MIN_EVERY`].
    last: Option<Instant>,
    /// The last switch of the active filter, for [`GRACE`].
    switched: Option<Instant>,
}

/// The hash of a ban's source key or of a blocklisted address, as the
/// program computes it ([`BAN`], [`ADDR`]).
pub fn hash_of(addr: IpAddr) -> u64 {
    match addr {
        IpAddr::V4(ip) => listed::hash_v4(u32::from_ne_bytes(ip.octets())),
        IpAddr::V6(ip) => listed::hash_v6(words(ip.octets())),
    }
}

fn words(b: [u8; 16]) -> [u64; 2] {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    let a = u64::from_ne_bytes(w);
    w.copy_from_slice(&b[8..]);
    [a, u64::from_ne_bytes(w)]
}

/// The kind and hash of a blocklist entry: an address, or a range by its
/// range-index key.
pub fn block_entry(cidr: Cidr) -> (u32, u64) {
    if cidr.is_host() {
        return (ADDR, hash_of(cidr.addr()));
    }
    let len = u32::from(cidr.prefix_len());
    let hash = match cidr.addr() {
        IpAddr::V4(ip) => listed::hash_v4(index::range_key_v4(
            u32::from_ne_bytes(ip.octets()),
            &index::probe_v4(len),
        )),
        IpAddr::V6(ip) => listed::hash_v6(index::range_key_v6(
            words(ip.octets()),
            &index::probe_v6(len),
        )),
    };
    (RANGE, hash)
}

impl ListedFilter {
    /// Maps the `listed` map pinned in `dir`; `None` when there is none
    /// (a pin directory of a build without the filter, whose program does
    /// not read it).
    pub fn open(dir: &Path) -> Result<Option<ListedFilter>, FilterError> {
        let path = dir.join(pin::LISTED);
        if !path.exists() {
            return Ok(None);
        }
        let data = MapData::from_pin(&path).map_err(|_| FilterError::NotPinned {
            name: pin::LISTED.into(),
            dir: dir.to_path_buf(),
        })?;
        Ok(Some(ListedFilter {
            filters: BitFilters::of(MappedLines::of(data, pin::LISTED)?, pin::LISTED)?,
            left: 0,
            last: None,
            switched: None,
        }))
    }

    /// The header's state word: [`listed::ON`] and the active filter.
    pub fn state(&self) -> u64 {
        self.filters.state()
    }

    /// Whether the program uses the filter.
    pub fn is_on(&self) -> bool {
        self.filters.is_on()
    }

    /// The active filter (0 or 1).
    pub fn active(&self) -> u64 {
        self.filters.active()
    }

    fn word_of(&self, filter: u64, kind: u32, hash: u64) -> (&AtomicU64, u64) {
        self.filters
            .word(filter, listed::bit_of(hash, kind, self.filters.mask()))
    }

    /// Sets the bit of an entry of `kind` whose key hashes to `hash`, in
    /// both filters (the inactive one may be made active by a rebuild that
    /// already read past this entry).
    pub fn mark(&self, kind: u32, hash: u64) {
        for filter in 0..2 {
            let (w, bit) = self.word_of(filter, kind, hash);
            w.fetch_or(bit, Ordering::SeqCst);
        }
    }

    /// Whether the bit of an entry of `kind` whose key hashes to `hash` is
    /// set in each filter.
    pub fn bits(&self, kind: u32, hash: u64) -> [bool; 2] {
        [0, 1].map(|f| {
            let (w, bit) = self.word_of(f, kind, hash);
            w.load(Ordering::SeqCst) & bit != 0
        })
    }

    /// Bits set in the active filter.
    pub fn fill(&self) -> u64 {
        self.filters.fill()
    }

    /// Bits per filter.
    pub fn size(&self) -> u64 {
        self.filters.size()
    }

    /// Turns the filter off: the program probes every list again.
    pub fn turn_off(&self) {
        self.filters.turn_off();
    }

    /// Rebuilds the filter from every ban, blocklisted address and range as
    /// `read` gives them (kind, hash), read after the zeroing, and turns it
    /// on; returns the entries read.
    pub fn rebuild(
        &mut self,
        read: impl FnOnce() -> Result<Vec<(u32, u64)>, FilterError>,
    ) -> Result<usize, FilterError> {
        // The filter about to be zeroed was the active one until this
        // handle's last switch: give packets that read it then time to end.
        if let Some(since) = self.switched.map(|t| t.elapsed())
            && since < GRACE
        {
            std::thread::sleep(GRACE - since);
        }
        // While on, the inactive filter; else either (writers mark both).
        let target = self.filters.zero_target();
        // Every entry from here on: read after the zeroing.
        let entries = read()?;
        for (kind, hash) in &entries {
            let (w, bit) = self.word_of(target, *kind, *hash);
            w.fetch_or(bit, Ordering::Relaxed);
        }
        self.filters.switch_to(target);
        self.switched = Some(Instant::now());
        self.left = self.fill();
        self.last = Some(Instant::now());
        Ok(entries.len())
    }

    /// Rebuilds a filter that is on once `removed` entries have left the
    /// lists since the last rebuild (at least [`REMOVED_MIN`] and a quarter
    /// of the bits that rebuild left), at most every [`MIN_EVERY`]; returns
    /// the entries read, `None` when it did not rebuild.
    pub fn refresh(
        &mut self,
        read: impl FnOnce() -> Result<Vec<(u32, u64)>, FilterError>,
        removed: u64,
        now: Instant,
    ) -> Result<Option<usize>, FilterError> {
        if self.is_on() && removed < REMOVED_MIN.max(self.left / 4) {
            return Ok(None);
        }
        if self.last.is_some_and(|t| now.duration_since(t) < MIN_EVERY) {
            return Ok(None);
        }
        // An attempt counts as one (a failing rebuild is retried at that pace).
        self.last = Some(now);
        self.rebuild(read).map(Some)
    }
}
