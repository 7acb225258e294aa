//! The kernel tier: loading the XDP program, pinning its maps, attaching it
//! to interfaces, and keeping the maps in step with the configuration.
//!
//! ```text
//! Filter::load(settings)   object -> kernel; maps created (or adopted) at pin_dir
//!   .sync(settings)         allow/block lists reconciled by diff; config map written
//!   .attach(iface, mode)    a pinned link (pin_dir/link_IFACE) adopted: its program
//!                           swapped for ours atomically (bpf_link_update), no gap;
//!                           else native, or generic with a warning when mode = auto,
//!                           and the new link pinned. The SYN-cookie tc program goes
//!                           on first (pin_dir/ack_link_IFACE, syn_cookies.rs)
//!   .records()              the program's log records, for `xdp_log::forward`
//!   .rebuild_known()        the known-source filter read from the LRUs and
//!                           turned on (`load` does it; the daemon after
//!                           `attach`, then `.refresh_known()` every sweep)
//!   .maps.refresh_listed()  the listed-source filter (rebuilt from the bans
//!                           and blocklists when loaded, before the attach)
//!                           rebuilt once enough entries have gone
//! drop(Filter)              the pinned links keep the program attached and enforcing
//!   .detach()               the links unpinned: the program detaches
//! ```
//!
//! Pinned maps and links are what let the filter outlive the daemon: if it
//! exits or crashes, the kernel goes on dropping with the last state, and the
//! next daemon takes over both without a moment unfiltered.
//!
//! Only this module writes kernel maps ([`FilterMaps`] is the one writer).

mod allow_gen;
mod ban_index;
mod bans;
mod bit_filters;
mod clock;
pub use clock::{coarse_tick_ns, monotonic_ns};
mod error;
mod iface;
mod index;
pub mod kfunc;
mod known;
mod layout;
mod lines;
mod listed;
mod lists;
mod maps;
pub mod migrate;
mod new_sources;
pub mod object;
mod pin_dir;
mod settings;
mod signals_held;
pub mod source_scan;
mod syn_cookies;
mod syn_programs;
mod xdp_log;

use std::path::Path;

use aya::{
    Ebpf, EbpfLoader,
    programs::{
        Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        xdp::XdpLink,
    },
};
pub use bans::{BanEntry, NewBan, Replaced};
pub use error::FilterError;
pub use index::{Index, probe_lens};
pub use known::KnownFilter;
pub use listed::{ListedFilter, block_entry as listed_block_entry, hash_of as listed_hash};
pub use lists::{List, origin_name};
use log::{info, warn};
pub use maps::{FilterMaps, SourceEntry};
pub use new_sources::NewSourceMap;
use proxy_common::{
    ban::BAN_WAYS,
    config::FilterConfig,
    index::{WAYS_V4, WAYS_V6, buckets_for},
    pin,
};
pub use settings::{kernel_config, kernel_config_with, rate_of};
pub use syn_cookies::{HostTcp, SynCookieMaps, SynCookieRuntime, host_check, syn_mode_name};
pub use xdp_log::{Records, XdpLog, forward};

use crate::{
    cidr::Cidr,
    config::{AttachMode, FilterSettings},
};

/// BPF_FS_MAGIC from linux/magic.h.
const BPF_FS_MAGIC: i64 = 0xcafe4a11;

/// A loaded filter program with its maps.
pub struct Filter {
    /// Owns the program and its links: dropping it detaches from every interface.
    ebpf: Ebpf,
    /// The pinned maps, opened by path like any other reader would.
    pub maps: FilterMaps,
    /// The program's log settings; `None` for an object without them (an
    /// older build's, which benchmarks compare against).
    pub log: Option<XdpLog>,
    /// Interfaces attached so far, with the mode each one got (`None`:
    /// adopted from a pinned link, in the mode it was attached with).
    attached: Vec<(String, Option<XdpMode>)>,
    /// Links pinned in the pin directory (`link_IFACE`), by interface.
    links: Vec<(String, FdLink)>,
    /// Links that could not be pinned (netlink attachments): they detach
    /// when the filter is dropped.
    unpinned: Vec<XdpLink>,
    /// SYN cookies: whether the host can, and the tc program's links.
    pub syn: SynCookieRuntime,
    /// The known-source filter (`known.rs`); `None` for an object without
    /// one (an older build's, which benchmarks compare against).
    pub known: Option<KnownFilter>,
    /// The IPv6 prefix the adopted maps' bans were keyed by, when the
    /// settings loaded with have another: they are to be keyed again (see
    /// `daemon::rekey`). Taken by [`Filter::take_changed_ipv6_prefix`].
    adopted_ipv6_prefix: Option<u8>,
}

impl Filter {
    /// Loads the program and creates its maps pinned under `settings.pin_dir`,
    /// then writes `settings` into them ([`Filter::sync`]).
    /// Maps already pinned there are adopted with their contents, so bans,
    /// runtime list entries and counters outlive the process that made them.
    pub fn load(settings: &FilterSettings) -> Result<Filter, FilterError> {
        Self::load_object(object::FILTER, settings)
    }

    /// As [`Filter::load`], from an explicit object (tests and benchmarks).
    pub fn load_object(object: &[u8], settings: &FilterSettings) -> Result<Filter, FilterError> {
        let mut filter = Self::open_object(object, settings)?;
        filter.sync(settings)?;
        // Nothing runs this program yet: its LRU entries are all there.
        filter.rebuild_known()?;
        Ok(filter)
    }

    /// As [`Filter::load`], writing nothing into the maps: the daemon's
    /// reconciler writes them, once, with the runtime's limits over the
    /// configuration's (adopted maps may be enforcing this very moment).
    pub fn open(settings: &FilterSettings) -> Result<Filter, FilterError> {
        Self::open_object(object::FILTER, settings)
    }

    fn open_object(object: &[u8], settings: &FilterSettings) -> Result<Filter, FilterError> {
        // Until the programs are in: a pending signal fails BPF_PROG_LOAD.
        let _held = signals_held::SignalsHeld::new();
        ensure_bpffs()?;
        let dir = &settings.pin_dir;
        pin_dir::prepare(dir)?;
        let paths: Vec<(&str, std::path::PathBuf)> =
            pin::ALL_MAPS.iter().map(|n| (*n, dir.join(n))).collect();
        let mut loader = EbpfLoader::new();
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        let m = &settings.maps;
        for (name, size) in [
            (pin::SOURCES_V4, m.sources),
            (pin::SOURCES_V6, m.sources),
            (pin::BANS_V4, m.bans),
            (pin::BANS_V6, m.bans),
            (pin::BAN_INDEX_V4, buckets_for(m.bans, BAN_WAYS)),
            (pin::BAN_INDEX_V6, buckets_for(m.bans, BAN_WAYS)),
            (pin::ALLOW_V4, m.allow),
            (pin::ALLOW_V6, m.allow),
            (pin::BLOCK_V4, m.block_ranges),
            (pin::BLOCK_V6, m.block_ranges),
            (pin::BLOCK_INDEX_V4, buckets_for(m.block_addrs, WAYS_V4)),
            (pin::BLOCK_INDEX_V6, buckets_for(m.block_addrs, WAYS_V6)),
            (pin::RANGE_INDEX_V4, buckets_for(m.block_ranges, WAYS_V4)),
            (pin::RANGE_INDEX_V6, buckets_for(m.block_ranges, WAYS_V6)),
            (pin::BLOCK_ADDR_V4, m.block_addrs),
            (pin::BLOCK_ADDR_V6, m.block_addrs),
            (known::MAP, proxy_common::known::entries_for(m.sources)),
            (
                pin::LISTED,
                proxy_common::listed::entries_for(m.bans, m.block_addrs, m.block_ranges),
            ),
        ] {
            loader.map_max_entries(name, size);
        }
        let incompatible = layout::check_pinned_layout(dir)?;
        let migrating = migrate::set_aside(dir, &incompatible)?;
        // The tc program's kfunc call, resolved against this kernel; without
        // it the object loads as it is and SYN cookies stay off.
        let linked = kfunc::kernel_id().and_then(|id| kfunc::link(object, id));
        let mut ebpf = loader.load(linked.as_ref().map_or(object, |l| l.bytes()))?;
        if migrating {
            // Before the indexes are built: they are rebuilt from the copies.
            migrate::copy_back(dir)?;
        }
        let program: &mut Xdp = program_mut(&mut ebpf)?;
        program.load()?;
        let unavailable = match linked {
            Ok(_) => syn_programs::load(&mut ebpf).err(),
            Err(e) => Some(e.to_string()),
        };
        let mut filter = Filter {
            maps: FilterMaps::open(dir)?,
            // Absent from an object built without logging (benchmarks
            // compare against one).
            log: ebpf
                .take_map(xdp_log::LEVEL_MAP)
                .map(|m| XdpLog::of_program(dir, m))
                .transpose()?,
            ebpf,
            attached: Vec::new(),
            links: Vec::new(),
            unpinned: Vec::new(),
            syn: SynCookieRuntime::new(unavailable),
            adopted_ipv6_prefix: None,
            known: None,
        };
        filter.known = filter
            .ebpf
            .take_map(known::MAP)
            .map(KnownFilter::of_program)
            .transpose()?;
        filter.maps.init_index()?;
        filter.maps.init_ban_index()?;
        // Before the program is attached, and after every copy above: the
        // pinned filter may predate entries a build without it wrote.
        if let Err(e) = filter.maps.rebuild_listed() {
            warn!("listed-source filter left off (every list probed): {e}");
        }
        // Zero in a new config map; else what the adopted bans are keyed by.
        let was = filter.maps.config()?.v6_prefix_len;
        if was != 0 && was != u32::from(settings.ipv6_prefix) {
            filter.adopted_ipv6_prefix = u8::try_from(was).ok();
        }
        Ok(filter)
    }

    /// Brings the maps in line with `settings`: reconciles the configured
    /// allow/block entries by diff, then writes the config map in place.
    pub fn sync(&mut self, settings: &FilterSettings) -> Result<(), FilterError> {
        self.sync_lists(&settings.allow, &settings.block)?;
        self.write_config(kernel_config(settings))?;
        // Absent only from an object built before the budget (benchmarks
        // compare against one); the embedded object always has it.
        if let Ok(mut budget) = NewSourceMap::open(self.maps.dir()) {
            budget.write(&settings.new_sources)?;
        }
        self.syn.write(self.maps.dir(), &settings.syn_cookies)
    }

    /// Writes the `config` map. When it changes what one IPv6 source is,
    /// the limiter state of IPv6 sources keyed by the old prefix is
    /// forgotten: the program would never meet those keys again.
    pub fn write_config(&mut self, config: FilterConfig) -> Result<(), FilterError> {
        let was = self.maps.config()?.v6_prefix_len;
        self.maps.write_config(config)?;
        if was != 0 && was != config.v6_prefix_len {
            let forgotten = self.maps.forget_sources_v6()?;
            info!(
                "ipv6_prefix /{was} -> /{}: {forgotten} IPv6 source(s) start afresh",
                config.v6_prefix_len
            );
        }
        Ok(())
    }

    /// Makes the configuration-owned allow/block entries `allow` and
    /// `block`, by diff; runtime entries stay.
    pub fn sync_lists(&mut self, allow: &[Cidr], block: &[Cidr]) -> Result<(), FilterError> {
        // Lists before the config map, so a new limit never applies to a
        // source the new config allows. While they change, assume the
        // allowlist overlaps the blocklist (blocked sources then also get
        // an allowlist lookup), and settle the hint once both are in place.
        if !allow.is_empty() {
            self.maps
                .set_hint(proxy_common::config::FLAG_ALLOW_OVERLAPS, true)?;
        }
        let (a_add, a_del) = self.maps.reconcile(List::Allow, allow)?;
        let (b_add, b_del) = self.maps.reconcile(List::Block, block)?;
        self.maps.recompute_overlap()?;
        info!("filter maps synced: allow +{a_add}/-{a_del}, block +{b_add}/-{b_del}");
        Ok(())
    }

    /// Attaches to `iface`, adopting the link a previous daemon pinned for
    /// it (the program inside it is replaced atomically). Otherwise `Auto`
    /// tries native mode and falls back to generic mode with a warning;
    /// `Native` and `Skb` fail rather than fall back. The link is pinned so
    /// the program stays attached if the daemon exits.
    pub fn attach(
        &mut self,
        iface: &str,
        mode: AttachMode,
    ) -> Result<Option<XdpMode>, FilterError> {
        // Before XDP can answer a SYN here, the program that takes the ACKs.
        let dir = self.maps.dir().to_path_buf();
        self.syn.attach(&mut self.ebpf, &dir, iface, mode)?;
        let pin_path = self.pin_dir().join(format!("link_{iface}"));
        if pin_path.exists() {
            match self.adopt(iface, &pin_path) {
                Ok(()) => {
                    info!("XDP on {iface}: adopted the pinned link, program replaced atomically");
                    self.attached.push((iface.to_string(), None));
                    return Ok(None);
                }
                Err(e) => {
                    warn!(
                        "{}: stale pinned link ({e}); attaching afresh",
                        pin_path.display()
                    );
                    let _ = std::fs::remove_file(&pin_path);
                }
            }
        }
        let program = program_mut(&mut self.ebpf)?;
        let (got, id) = match mode {
            AttachMode::Native => attach_one(program, iface, XdpMode::Driver)?,
            AttachMode::Skb => attach_one(program, iface, XdpMode::Skb)?,
            AttachMode::Auto => match attach_one(program, iface, XdpMode::Driver) {
                Ok(m) => m,
                Err(e) => {
                    warn!("{e}; falling back to generic (SKB) mode, which is slower");
                    attach_one(program, iface, XdpMode::Skb)?
                }
            },
        };
        let link = program.take_link(id)?;
        match FdLink::try_from(link) {
            Ok(fd_link) => {
                let pinned = fd_link.pin(&pin_path).map_err(|e| FilterError::PinLink {
                    path: pin_path.clone(),
                    reason: e.to_string(),
                })?;
                self.links.push((iface.to_string(), FdLink::from(pinned)));
            }
            Err(e) => {
                warn!(
                    "XDP on {iface}: the link cannot be pinned ({e}); the filter detaches when rampart exits"
                );
            }
        }
        info!("XDP attached to {iface} in {} mode", mode_name(got));
        self.attached.push((iface.to_string(), Some(got)));
        Ok(Some(got))
    }

    /// Takes over a pinned link: our program replaces the one inside it.
    fn adopt(&mut self, iface: &str, pin_path: &Path) -> Result<(), FilterError> {
        let pin_err = |e: &dyn std::fmt::Display| FilterError::PinLink {
            path: pin_path.to_path_buf(),
            reason: e.to_string(),
        };
        let pinned = PinnedLink::from_pin(pin_path).map_err(|e| pin_err(&e))?;
        let link = XdpLink::try_from(FdLink::from(pinned)).map_err(|e| pin_err(&e))?;
        let program = program_mut(&mut self.ebpf)?;
        let id = program.attach_to_link(link)?;
        // The pin still names the link, which now runs our program.
        let fd_link = FdLink::try_from(program.take_link(id)?).map_err(|e| pin_err(&e))?;
        self.links.push((iface.to_string(), fd_link));
        Ok(())
    }

    /// Detaches from every interface: the links are unpinned and closed.
    pub fn detach(mut self) -> Result<(), FilterError> {
        let dir = self.maps.dir().to_path_buf();
        for (iface, fd_link) in self.links.drain(..) {
            let path = self.maps.dir().join(format!("link_{iface}"));
            if let Err(e) = std::fs::remove_file(&path) {
                warn!("unpinning {}: {e}", path.display());
            }
            // Closing the last descriptor of an unpinned link detaches it.
            drop(fd_link);
            info!("XDP detached from {iface}");
        }
        self.unpinned.clear();
        // XDP is gone: no SYN is answered any more, the tc program can go.
        self.syn.detach(&dir);
        Ok(())
    }

    /// The program's log records (aya-log's ring buffer), to hand to
    /// [`forward`]; once: the reader owns the buffer.
    pub fn records(&mut self) -> Result<Records, FilterError> {
        Ok(aya_log::EbpfLogger::init(&mut self.ebpf)?)
    }

    /// The loaded program, for BPF_PROG_TEST_RUN.
    pub fn program(&self) -> Result<&Xdp, FilterError> {
        let p = self
            .ebpf
            .program(pin::PROGRAM)
            .ok_or(FilterError::Program(aya::programs::ProgramError::NotLoaded))?;
        p.try_into().map_err(FilterError::Program)
    }

    /// The IPv6 prefix the adopted maps' bans were keyed by, if it is not
    /// the one the filter was loaded with (once).
    pub fn take_changed_ipv6_prefix(&mut self) -> Option<u8> {
        self.adopted_ipv6_prefix.take()
    }

    pub fn attached(&self) -> &[(String, Option<XdpMode>)] {
        &self.attached
    }

    /// Rebuilds the known-source filter from the LRUs and turns it on
    /// (`known.rs`); the sources read, or `None` when there is nothing to
    /// rebuild (no filter in the object, or no seed yet).
    pub fn rebuild_known(&mut self) -> Result<Option<usize>, FilterError> {
        match &mut self.known {
            Some(k) => k.rebuild(&self.maps),
            None => Ok(None),
        }
    }

    /// Rebuilds the known-source filter when it has filled
    /// ([`KnownFilter::refresh`]), or turns it on if it is still off once
    /// this filter is attached (the first rebuild failed, or found no
    /// seed): the daemon's sweep calls it.
    pub fn refresh_known(&mut self) -> Result<Option<usize>, FilterError> {
        match &mut self.known {
            Some(k) if !k.is_on() && !self.attached.is_empty() => k.rebuild(&self.maps),
            Some(k) => k.refresh(&self.maps, std::time::Instant::now()),
            None => Ok(None),
        }
    }

    pub fn pin_dir(&self) -> &Path {
        self.maps.dir()
    }
}

fn program_mut(ebpf: &mut Ebpf) -> Result<&mut Xdp, FilterError> {
    let p = ebpf
        .program_mut(pin::PROGRAM)
        .ok_or(FilterError::Program(aya::programs::ProgramError::NotLoaded))?;
    p.try_into().map_err(FilterError::Program)
}

fn attach_one(
    program: &mut Xdp,
    iface: &str,
    mode: XdpMode,
) -> Result<(XdpMode, aya::programs::xdp::XdpLinkId), FilterError> {
    program
        .attach(iface, mode)
        .map(|id| (mode, id))
        .map_err(|source| FilterError::Attach {
            iface: iface.to_string(),
            mode: mode_name(mode),
            source,
        })
}

pub fn mode_name(mode: XdpMode) -> &'static str {
    match mode {
        XdpMode::Driver => "native",
        XdpMode::Skb => "skb",
        XdpMode::Hardware => "offload",
        XdpMode::Default => "default",
    }
}

/// Makes sure /sys/fs/bpf is a BPF filesystem, mounting one if nothing is
/// there yet (as systemd does at boot; minimal systems and containers skip it).
fn ensure_bpffs() -> Result<(), FilterError> {
    if is_bpffs() {
        return Ok(());
    }
    // SAFETY: constant C strings; mount has no memory-safety preconditions.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            c"/sys/fs/bpf".as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 || !is_bpffs() {
        return Err(FilterError::NoBpffs);
    }
    info!("mounted a BPF filesystem at /sys/fs/bpf");
    Ok(())
}

fn is_bpffs() -> bool {
    // SAFETY: `statfs` is a C struct of integers: all zeroes is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the path is a valid C string and `st` is ours to fill.
    let rc = unsafe { libc::statfs(c"/sys/fs/bpf".as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
}
