//! Bounded reads of the per-source LRU maps (`sources_v4/v6`) for the
//! fleet's kernel-tier counts (docs/fleet.md, "Kernel thresholds"): the
//! packets and SYNs each source sent since the last read.
//!
//! The maps are read with `BPF_MAP_LOOKUP_BATCH` (Linux 5.6): one syscall
//! copies up to [`BATCH`] entries, against two per entry (`get_next_key`
//! then `lookup`) for aya's iterator. Each [`SourceScan::read`] reads at
//! most `budget` entries per family and resumes where it stopped at the
//! next call (the kernel's batch token is a hash bucket), so a map of
//! 1M sources costs the caller a bounded slice of work per exchange, and
//! one full pass takes `size / budget` calls.
//!
//! A source's delta is its `packets` (`syns`) counter minus what the
//! previous pass saw; a source new since the previous pass (or evicted and
//! created again, its counter lower than last seen) counts all of them.
//! The first pass only records: counters from before the daemon started
//! are not news. Memory: one [`Seen`] (24 bytes) per tracked source,
//! pruned at the end of every pass to the sources the pass found (at most
//! the maps' capacity).

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsFd, AsRawFd},
    path::Path,
};

use aya::maps::MapData;
use proxy_common::{pin, source::SourceState};

use super::FilterError;

/// Entries copied per syscall.
pub const BATCH: usize = 1024;
/// `BPF_MAP_LOOKUP_BATCH` from include/uapi/linux/bpf.h.
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// `union bpf_attr`'s `batch` member (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// What a source sent since its previous read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    pub packets: u64,
    /// TCP SYNs without ACK (a subset of `packets`).
    pub syns: u64,
}

/// A source's counters as last read, and the pass that read them.
#[derive(Clone, Copy)]
struct Seen {
    packets: u64,
    syns: u64,
    pass: u32,
}

/// `now - before` of a counter, or all of `now` if it went down (the
/// source was evicted and created again since).
fn since(before: Option<u64>, now: u64) -> u64 {
    match before {
        Some(b) if b <= now => now - b,
        _ => now,
    }
}

/// One family's map, its resume token and what its passes saw.
struct Family<const K: usize> {
    map: MapData,
    name: &'static str,
    /// The batch token to resume from (`None`: a pass starts).
    token: Option<u64>,
    /// Counters last seen per source key, with the pass that saw them.
    last: HashMap<[u8; K], Seen>,
    pass: u32,
    /// A pass finished: deltas are news from now on.
    primed: bool,
}

/// Reads the sources maps under `pin_dir` in bounded slices.
pub struct SourceScan {
    v4: Family<4>,
    v6: Family<16>,
    /// Entries copied in all (for the cost figures in docs/fleet.md).
    pub entries_read: u64,
    /// Full passes over both maps: each family read to its end at least
    /// once since the previous one.
    pub passes: u64,
    /// Which families reached their end since the last full pass.
    ended: (bool, bool),
}

/// Where the fleet's kernel thresholds get their counts
/// ([`crate::fleet::kernel::KernelRules`]): the daemon's is a
/// [`SourceScan`] of the XDP maps; `fleet-bench` feeds simulated hosts'
/// counts through the same rules with its own.
pub trait SourceDeltas: Send {
    /// What each source sent since it was last read, reading at most
    /// `budget` entries of each family.
    fn read(&mut self, budget: usize) -> Result<Vec<(IpAddr, Delta)>, FilterError>;
    /// Entries read in all, and full passes over the maps.
    fn progress(&self) -> (u64, u64);
}

impl SourceDeltas for SourceScan {
    fn read(&mut self, budget: usize) -> Result<Vec<(IpAddr, Delta)>, FilterError> {
        SourceScan::read(self, budget)
    }

    fn progress(&self) -> (u64, u64) {
        (self.entries_read, self.passes)
    }
}

impl SourceScan {
    /// Opens the pinned maps (the daemon loaded the filter).
    pub fn open(pin_dir: &Path) -> Result<SourceScan, FilterError> {
        let open = |name: &'static str| {
            let path = pin_dir.join(name);
            if !path.exists() {
                return Err(FilterError::NotPinned {
                    name: name.into(),
                    dir: pin_dir.to_path_buf(),
                });
            }
            MapData::from_pin(&path).map_err(FilterError::map(name))
        };
        Ok(SourceScan {
            v4: Family::new(open(pin::SOURCES_V4)?, pin::SOURCES_V4)?,
            v6: Family::new(open(pin::SOURCES_V6)?, pin::SOURCES_V6)?,
            entries_read: 0,
            passes: 0,
            ended: (false, false),
        })
    }

    /// What each source sent since it was last read, reading at most
    /// `budget` entries of each family (at least one batch). IPv6 sources
    /// are their prefix's network address (the maps' key).
    pub fn read(&mut self, budget: usize) -> Result<Vec<(IpAddr, Delta)>, FilterError> {
        let mut out = Vec::new();
        let (n4, done4) = self
            .v4
            .read(budget, &mut out, |k| IpAddr::V4(Ipv4Addr::from(k)))?;
        let (n6, done6) = self
            .v6
            .read(budget, &mut out, |k| IpAddr::V6(Ipv6Addr::from(k)))?;
        self.entries_read += (n4 + n6) as u64;
        self.ended = (self.ended.0 || done4, self.ended.1 || done6);
        if self.ended == (true, true) {
            self.passes += 1;
            self.ended = (false, false);
        }
        Ok(out)
    }
}

/// The keys of both families' sources maps: IPv4 addresses, IPv6 prefixes.
pub type Keys = (Vec<[u8; 4]>, Vec<[u8; 16]>);

/// Every key of both sources maps under `pin_dir` (IPv4 addresses, IPv6
/// prefixes), read in batches: the known-source filter's rebuild
/// (`known.rs`). A batch resumes at a hash bucket, so entries inserted or
/// evicted meanwhile never restart the read.
pub fn all_keys(pin_dir: &Path) -> Result<Keys, FilterError> {
    let mut scan = SourceScan::open(pin_dir)?;
    Ok((scan.v4.keys()?, scan.v6.keys()?))
}

impl<const K: usize> Family<K> {
    /// Every key of the map, from its start.
    fn keys(&mut self) -> Result<Vec<[u8; K]>, FilterError> {
        let mut keys = vec![[0u8; K]; BATCH];
        let mut values = vec![SourceState::default(); BATCH];
        let mut out = Vec::new();
        self.token = None;
        loop {
            let (n, end) = self.batch(&mut keys, &mut values)?;
            out.extend_from_slice(&keys[..n]);
            if end {
                self.token = None;
                return Ok(out);
            }
        }
    }

    /// The kernel copies `count` entries of the map's own sizes into our
    /// buffers: a map whose sizes differ from ours is refused here.
    fn new(map: MapData, name: &'static str) -> Result<Family<K>, FilterError> {
        let info = map.info().map_err(FilterError::map(name))?;
        let value = std::mem::size_of::<SourceState>();
        if info.key_size() as usize != K || info.value_size() as usize != value {
            return Err(FilterError::Map {
                name: name.into(),
                source: aya::maps::MapError::InvalidKeySize {
                    size: K,
                    expected: info.key_size() as usize,
                },
            });
        }
        Ok(Family {
            map,
            name,
            token: None,
            last: HashMap::new(),
            pass: 0,
            primed: false,
        })
    }

    /// Reads up to `budget` entries from the token on; `(read, pass done)`.
    fn read(
        &mut self,
        budget: usize,
        out: &mut Vec<(IpAddr, Delta)>,
        ip: impl Fn([u8; K]) -> IpAddr,
    ) -> Result<(usize, bool), FilterError> {
        let mut keys = vec![[0u8; K]; BATCH];
        let mut values = vec![SourceState::default(); BATCH];
        let mut read = 0;
        while read < budget.max(1) {
            let (n, end) = self.batch(&mut keys, &mut values)?;
            read += n;
            for (k, v) in keys.iter().zip(&values).take(n) {
                let now = Seen {
                    packets: v.packets,
                    syns: v.syns,
                    pass: self.pass,
                };
                let seen = self.last.insert(*k, now);
                let delta = Delta {
                    packets: since(seen.map(|s| s.packets), v.packets),
                    // Counted with `packets`: both restart with the entry.
                    syns: if seen.is_some_and(|s| s.packets > v.packets) {
                        v.syns
                    } else {
                        since(seen.map(|s| s.syns), v.syns)
                    },
                };
                if self.primed && delta != Delta::default() {
                    out.push((ip(*k), delta));
                }
            }
            if end {
                let pass = self.pass;
                self.last.retain(|_, s| s.pass == pass);
                self.pass = pass.wrapping_add(1);
                self.primed = true;
                self.token = None;
                return Ok((read, true));
            }
        }
        Ok((read, false))
    }

    /// One `BPF_MAP_LOOKUP_BATCH` from the token: `(entries, end of map)`.
    fn batch(
        &mut self,
        keys: &mut [[u8; K]],
        values: &mut [SourceState],
    ) -> Result<(usize, bool), FilterError> {
        let mut token_in = self.token.unwrap_or(0);
        let mut token_out = 0u64;
        let mut attr = BatchAttr {
            in_batch: if self.token.is_some() {
                std::ptr::addr_of_mut!(token_in) as u64
            } else {
                0
            },
            out_batch: std::ptr::addr_of_mut!(token_out) as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: keys.len().min(values.len()) as u32,
            map_fd: self.map.fd().as_fd().as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: `attr` is the kernel's `batch` layout; `keys` and `values`
        // hold `count` entries of the map's key and value sizes (checked by
        // the kernel against the map: a mismatch is EINVAL, not a write past
        // them), and the token buffers are 8 bytes (the kernel writes a u32).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                std::ptr::addr_of_mut!(attr),
                std::mem::size_of::<BatchAttr>() as u32,
            )
        };
        let n = (attr.count as usize).min(keys.len());
        if rc == 0 {
            self.token = Some(token_out);
            return Ok((n, false));
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENOENT) {
            // The end of the map, with the last entries copied.
            return Ok((n, true));
        }
        self.token = None;
        Err(FilterError::Map {
            name: self.name.into(),
            source: aya::maps::MapError::SyscallError(aya::sys::SyscallError {
                call: "bpf_map_lookup_batch",
                io_error: err,
            }),
        })
    }
}
