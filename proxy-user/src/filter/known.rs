//! The known-source filter's userspace side (`proxy_common::known`): the
//! program's `known` map mapped into this process, its rebuild from the
//! sources LRUs, and when to rebuild.
//!
//! The program sets a source's bit when it gives the source an LRU entry
//! and nothing clears it, so evicted sources leave their bits behind and
//! the filter fills; a full filter is only as good as no filter (every
//! source is looked up). A rebuild zeroes the inactive filter, ORs in the
//! bit of every source both LRUs hold (one batched read of each), and makes
//! it the active one; `proxy_common::known` says why that misses no entry.
//! The first rebuild turns the filter on: `Filter::load` makes it before
//! any packet, the daemon right after its attach (before it, the replaced
//! program may still be inserting sources it does not mark in this
//! program's map). [`KnownFilter::refresh`] then rebuilds when the active
//! filter holds more than twice the bits its last rebuild left (and at
//! least 1/16 of them), at most every [`MIN_EVERY`]; the daemon calls it
//! from its once-a-second sweep.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use aya::maps::Map;
use proxy_common::{admit, known};

use super::{FilterError, FilterMaps, bit_filters::BitFilters, lines::MappedLines, source_scan};

/// The map's name in the object.
pub const MAP: &str = "known";
/// Rebuilds are at least this far apart.
pub const MIN_EVERY: Duration = Duration::from_secs(5);

/// The `known` map of one loaded program, mapped read-write.
pub struct KnownFilter {
    filters: BitFilters,
    /// The active filter's set bits just after the last rebuild.
    left: u64,
    last: Option<Instant>,
    /// The seed the bits were computed with (the config's `admit_seed`).
    seed: u64,
}

impl KnownFilter {
    /// Maps the program's `known` map (taken from its `Ebpf`).
    pub fn of_program(map: Map) -> Result<KnownFilter, FilterError> {
        let Map::Array(data) = map else {
            return Err(FilterError::Map {
                name: MAP.into(),
                source: aya::maps::MapError::InvalidMapType { map_type: 0 },
            });
        };
        Ok(KnownFilter {
            filters: BitFilters::of(MappedLines::of(data, MAP)?, MAP)?,
            left: 0,
            last: None,
            seed: 0,
        })
    }

    /// The header's state word: [`known::ON`] and the active filter.
    pub fn state(&self) -> u64 {
        self.filters.state()
    }

    /// Whether the program uses the filter.
    pub fn is_on(&self) -> bool {
        self.filters.is_on()
    }

    fn word_of(&self, filter: u64, hash: u64) -> (&AtomicU64, u64) {
        self.filters
            .word(filter, known::bit_of(hash, self.filters.mask()))
    }

    /// Whether `key`'s bit (an IPv4 address or IPv6 prefix as the LRU
    /// keys it) is set in each filter, under the seed `seed`.
    pub fn bits(&self, key: &[u8], seed: u64) -> [bool; 2] {
        let hash = hash_of(key, seed);
        [0, 1].map(|f| {
            let (w, bit) = self.word_of(f, hash);
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

    /// Rebuilds the filter from both LRUs under `maps` and turns it on;
    /// returns the sources read. Does nothing (`None`) while the config
    /// map has no seed yet (the bits depend on it).
    pub fn rebuild(&mut self, maps: &FilterMaps) -> Result<Option<usize>, FilterError> {
        let seed = maps.config()?.admit_seed;
        if seed == 0 {
            return Ok(None);
        }
        // While on, the inactive filter; else either (the program marks both).
        let target = self.filters.zero_target();
        // Every source in the LRUs from here on: read after the zeroing.
        let (v4, v6) = source_scan::all_keys(&maps.dir)?;
        for key in v4
            .iter()
            .map(<[u8; 4]>::as_slice)
            .chain(v6.iter().map(<[u8; 16]>::as_slice))
        {
            let (w, bit) = self.word_of(target, hash_of(key, seed));
            w.fetch_or(bit, Ordering::Relaxed);
        }
        self.filters.switch_to(target);
        self.seed = seed;
        self.left = self.fill();
        self.last = Some(Instant::now());
        Ok(Some(v4.len() + v6.len()))
    }

    /// Rebuilds a filter that is on if its seed moved, or if the active
    /// filter filled past twice what the last rebuild left (and past 1/16
    /// of its bits), at most every [`MIN_EVERY`]; returns what
    /// [`KnownFilter::rebuild`] did. A filter that is off stays off here:
    /// only a rebuild turns it on, made once no other program can be
    /// inserting into the LRUs unmarked (`Filter::load` before any packet,
    /// `Filter::refresh_known` and the daemon after the attach).
    pub fn refresh(
        &mut self,
        maps: &FilterMaps,
        now: Instant,
    ) -> Result<Option<usize>, FilterError> {
        if !self.is_on() {
            return Ok(None);
        }
        if self.seed != maps.config()?.admit_seed {
            return self.rebuild(maps);
        }
        if self.last.is_some_and(|t| now.duration_since(t) < MIN_EVERY) {
            return Ok(None);
        }
        let fill = self.fill();
        if fill > self.size() / 16 && fill > 2 * self.left {
            return self.rebuild(maps);
        }
        Ok(None)
    }
}

/// The first-stage hash of an LRU key: 4 bytes (IPv4) or 16 (an IPv6
/// prefix), as the program reads them (native words of the packet bytes).
fn hash_of(key: &[u8], seed: u64) -> u64 {
    match key.len() {
        4 => admit::hash_v4(u32::from_ne_bytes([key[0], key[1], key[2], key[3]]), seed),
        _ => {
            let mut w = [0u8; 8];
            w.copy_from_slice(&key[0..8]);
            let a = u64::from_ne_bytes(w);
            w.copy_from_slice(&key[8..16]);
            admit::hash_v6([a, u64::from_ne_bytes(w)], seed)
        }
    }
}
