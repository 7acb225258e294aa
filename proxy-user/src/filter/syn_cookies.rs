//! SYN cookies, userspace side: what the host allows (its TCP sysctls and
//! the kfunc), the `syn_*` maps, and the tc program that completes
//! handshakes, attached beside the XDP program through a pinned TCX link
//! (`pin_dir/ack_link_IFACE`) so it too outlives the daemon.
//!
//! ```text
//! Filter::load   kfunc linked into the object (kfunc.rs); rampart_ack loaded
//!   .sync        syn_cookie written: mode (off unless the host can), key (kept
//!                across restarts), threshold per CPU, MSS, options the host takes;
//!                syn_ports rewritten
//!   .attach      rampart_ack on tc ingress first, then XDP; sysctls and MTU re-read
//! ```

use std::path::Path;

use aya::{
    Ebpf,
    maps::{Array, MapData, PerCpuArray},
    programs::{
        SchedClassifier, TcAttachType,
        links::{FdLink, PinnedLink},
        tc::SchedClassifierLink,
    },
};
use log::{info, warn};
use proxy_common::{
    pin,
    syncookie::{
        FLAG_ECN, FLAG_SACK, FLAG_TIMESTAMPS, FLAG_WSCALE, MODE_AUTO, MODE_OFF, MODE_ON,
        PORT_WORDS, STATS, SynCookieConfig, SynState, SynWindow, port_word,
    },
};

use super::{FilterError, iface, maps::open};
use crate::config::{AttachMode, SynCookieMode, SynCookies};

/// How long `auto` keeps cookies on after the SYN rate was last over the threshold.
pub const HOLD_NS: u64 = 10_000_000_000;

/// Handles on the pinned `syn_*` maps.
pub struct SynCookieMaps {
    config: Array<MapData, SynCookieConfig>,
    state: Array<MapData, SynState>,
    ports: Array<MapData, u64>,
    window: PerCpuArray<MapData, SynWindow>,
    stats: PerCpuArray<MapData, u64>,
}

impl SynCookieMaps {
    pub fn open(dir: &Path) -> Result<SynCookieMaps, FilterError> {
        Ok(SynCookieMaps {
            config: open(dir, pin::SYN_COOKIE)?,
            state: open(dir, pin::SYN_STATE)?,
            ports: open(dir, pin::SYN_PORTS)?,
            window: open(dir, pin::SYN_WINDOW)?,
            stats: open(dir, pin::SYN_STATS)?,
        })
    }

    pub fn config(&self) -> Result<SynCookieConfig, FilterError> {
        self.config
            .get(&0, 0)
            .map_err(FilterError::map(pin::SYN_COOKIE))
    }

    pub fn state(&self) -> Result<SynState, FilterError> {
        self.state
            .get(&0, 0)
            .map_err(FilterError::map(pin::SYN_STATE))
    }

    /// `syn_window`: each CPU's SYNs to protected ports in its current second.
    pub fn windows(&self) -> Result<Vec<SynWindow>, FilterError> {
        let per_cpu = self
            .window
            .get(&0, 0)
            .map_err(FilterError::map(pin::SYN_WINDOW))?;
        Ok(per_cpu.iter().copied().collect())
    }

    /// Whether cookies are being sent now: mode `on`, or `auto` during a flood.
    pub fn active(&self, now_ns: u64) -> Result<bool, FilterError> {
        let mode = self.config()?.mode;
        Ok(mode == MODE_ON || (mode == MODE_AUTO && self.state()?.attack_until_ns > now_ns))
    }

    /// `syn_stats`, summed over CPUs (indices `proxy_common::syncookie::STAT_*`).
    pub fn stats(&self) -> Result<[u64; STATS as usize], FilterError> {
        let mut out = [0; STATS as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            let per_cpu = self
                .stats
                .get(&(i as u32), 0)
                .map_err(FilterError::map(pin::SYN_STATS))?;
            *slot = per_cpu.iter().sum();
        }
        Ok(out)
    }

    /// The protected ports in `syn_ports`.
    pub fn ports(&self) -> Result<Vec<u16>, FilterError> {
        let mut out = Vec::new();
        for word in 0..PORT_WORDS {
            let bits = self
                .ports
                .get(&word, 0)
                .map_err(FilterError::map(pin::SYN_PORTS))?;
            for b in 0..64 {
                if bits & (1 << b) != 0 {
                    out.push((word * 64 + b) as u16);
                }
            }
        }
        Ok(out)
    }

    fn write_ports(&mut self, ports: &[u16]) -> Result<(), FilterError> {
        let mut want = vec![0u64; PORT_WORDS as usize];
        for &p in ports {
            let (word, bit) = port_word(p);
            want[word as usize] |= bit;
        }
        for (word, bits) in want.into_iter().enumerate() {
            let word = word as u32;
            let have = self
                .ports
                .get(&word, 0)
                .map_err(FilterError::map(pin::SYN_PORTS))?;
            if have != bits {
                self.ports
                    .set(word, bits, 0)
                    .map_err(FilterError::map(pin::SYN_PORTS))?;
            }
        }
        Ok(())
    }

    fn write_config(&mut self, value: SynCookieConfig) -> Result<(), FilterError> {
        self.config
            .set(0, value, 0)
            .map_err(FilterError::map(pin::SYN_COOKIE))
    }
}

/// The TCP settings of the host (the current network namespace) that
/// decide what a SYN-ACK may offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostTcp {
    /// `net.ipv4.tcp_syncookies`: the kernel builds sockets from cookies only when it is not 0.
    pub syncookies: u32,
    /// `FLAG_*` of the options the host accepts.
    pub flags: u32,
    /// The window scale the kernel would announce (from `tcp_rmem` and `rmem_max`).
    pub rcv_wscale: u8,
}

impl HostTcp {
    pub fn read() -> HostTcp {
        let sysctl = |name: &str| -> Option<String> {
            std::fs::read_to_string(format!("/proc/sys/net/{name}"))
                .ok()
                .map(|s| s.trim().to_string())
        };
        let num = |name: &str, default: u64| {
            sysctl(name)
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(default)
        };
        let mut flags = 0;
        for (name, flag) in [
            ("ipv4/tcp_timestamps", FLAG_TIMESTAMPS),
            ("ipv4/tcp_sack", FLAG_SACK),
            ("ipv4/tcp_window_scaling", FLAG_WSCALE),
            ("ipv4/tcp_ecn", FLAG_ECN),
        ] {
            if num(name, 1) != 0 {
                flags |= flag;
            }
        }
        let rmem_max = sysctl("ipv4/tcp_rmem")
            .and_then(|s| s.split_whitespace().nth(2)?.parse::<u64>().ok())
            .unwrap_or(6 << 20)
            .max(num("core/rmem_max", 212_992));
        HostTcp {
            syncookies: num("ipv4/tcp_syncookies", 1) as u32,
            flags,
            rcv_wscale: window_scale(rmem_max),
        }
    }
}

/// The window scale the kernel picks for a receive space of `space` bytes
/// (`tcp_select_initial_window`: log2 of the space, less 15, within 0-14).
pub fn window_scale(space: u64) -> u8 {
    let log2 = 63 - space.max(1).leading_zeros() as i64;
    (log2 - 15).clamp(0, 14) as u8
}

/// What the daemon knows about SYN cookies on this host, kept by `Filter`.
pub struct SynCookieRuntime {
    /// Why cookies cannot run here, if they cannot (no kfunc, the program
    /// refused, tcp_syncookies 0, the tc attachment failed).
    pub unavailable: Option<String>,
    pub host: HostTcp,
    /// The smallest MTU of the interfaces attached so far.
    mtu: Option<u32>,
    /// tc links pinned in the pin directory (`ack_link_IFACE`).
    links: Vec<(String, FdLink)>,
    /// The settings last written.
    settings: SynCookies,
}

impl SynCookieRuntime {
    pub fn new(unavailable: Option<String>) -> SynCookieRuntime {
        SynCookieRuntime {
            unavailable,
            host: HostTcp::read(),
            mtu: None,
            links: Vec::new(),
            settings: SynCookies::default(),
        }
    }

    /// The `syn_cookie` value for `settings`, keeping `key` (made now if zero).
    fn value(&self, settings: &SynCookies, mut key: [u64; 2]) -> SynCookieConfig {
        if key == [0, 0] {
            key = random_key();
        }
        let mode = match (settings.mode, &self.unavailable) {
            (_, Some(_)) | (SynCookieMode::Off, _) => MODE_OFF,
            _ if self.host.syncookies == 0 || settings.ports.is_empty() => MODE_OFF,
            (SynCookieMode::Auto, None) => MODE_AUTO,
            (SynCookieMode::On, None) => MODE_ON,
        };
        let cpus = online_cpus();
        let mtu = self.mtu.unwrap_or(1500).max(1280);
        SynCookieConfig {
            key,
            hold_ns: HOLD_NS,
            mode,
            threshold_per_cpu: settings.threshold.div_ceil(cpus),
            flags: self.host.flags,
            mss_v4: (mtu - 40).min(65495) as u16,
            mss_v6: (mtu - 60).min(65475) as u16,
            rcv_wscale: self.host.rcv_wscale,
            _pad: [0; 3],
            synack_rate: settings.synack_rate,
        }
    }

    /// Writes `syn_cookie` and `syn_ports` for `settings`.
    pub fn write(&mut self, dir: &Path, settings: &SynCookies) -> Result<(), FilterError> {
        let mut maps = SynCookieMaps::open(dir)?;
        let key = maps.config()?.key;
        let value = self.value(settings, key);
        // Ports first: a new port is never answered under old settings it did not have.
        maps.write_ports(&settings.ports)?;
        maps.write_config(value)?;
        self.settings = settings.clone();
        Ok(())
    }

    /// Puts the tc program on `iface` before XDP starts answering there:
    /// adopts the link a previous daemon pinned, else attaches afresh and
    /// pins the new link. A failure turns cookies off (with a warning) and
    /// leaves the XDP filter to attach as usual. `mode` is how XDP is
    /// attached there.
    pub fn attach(
        &mut self,
        ebpf: &mut Ebpf,
        dir: &Path,
        iface: &str,
        mode: AttachMode,
    ) -> Result<(), FilterError> {
        self.host = HostTcp::read();
        if let Some(m) = iface::mtu(iface) {
            self.mtu = Some(self.mtu.map_or(m, |old| old.min(m)));
        }
        // A veth in native mode hands XDP_TX frames to its peer's NAPI,
        // which exists only while the peer has an XDP program or GRO on:
        // otherwise every SYN-ACK would be lost and no client connect.
        if self.unavailable.is_none()
            && mode != AttachMode::Skb
            && !self.settings.on_veth
            && iface::driver(iface).as_deref() == Some("veth")
        {
            self.unavailable = Some(format!(
                "{iface} is a veth attached in native mode, whose XDP_TX frames reach its peer only \
                 while the peer runs an XDP program or has GRO on (which rampart cannot see): set \
                 [filter.syn_cookies] on_veth = true if it does, or attach with mode = \"skb\""
            ));
        }
        if self.unavailable.is_none() && self.host.syncookies == 0 {
            self.unavailable = Some(
                "net.ipv4.tcp_syncookies is 0, and the kernel builds no socket from a cookie \
                 then (`sysctl -w net.ipv4.tcp_syncookies=1`)"
                    .into(),
            );
        }
        if self.unavailable.is_none() {
            let path = dir.join(format!("ack_link_{iface}"));
            match attach_ack(ebpf, iface, &path) {
                Ok(link) => self.links.push((iface.to_string(), link)),
                Err(e) => {
                    self.unavailable =
                        Some(format!("the tc program could not attach to {iface}: {e}"))
                }
            }
        }
        if let Some(why) = &self.unavailable
            && self.settings.mode != SynCookieMode::Off
        {
            warn!(
                "SYN cookies are off: {why}; SYN floods reach the kernel (its own SYN cookies still apply)"
            );
        }
        let settings = self.settings.clone();
        self.write(dir, &settings)
    }

    /// Unpins and closes the tc links: the program detaches.
    pub fn detach(&mut self, dir: &Path) {
        for (iface, link) in self.links.drain(..) {
            let path = dir.join(format!("ack_link_{iface}"));
            if let Err(e) = std::fs::remove_file(&path) {
                warn!("unpinning {}: {e}", path.display());
            }
            drop(link);
            info!("SYN-cookie tc program detached from {iface}");
        }
    }
}

fn attach_ack(ebpf: &mut Ebpf, iface: &str, pin_path: &Path) -> Result<FdLink, String> {
    let program: &mut SchedClassifier = ebpf
        .program_mut(pin::ACK_PROGRAM)
        .ok_or("no such program in the object")?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| e.to_string())?;
    if pin_path.exists() {
        let adopted = PinnedLink::from_pin(pin_path)
            .map_err(|e| e.to_string())
            .and_then(|p| SchedClassifierLink::try_from(FdLink::from(p)).map_err(|e| e.to_string()))
            .and_then(|l| program.attach_to_link(l).map_err(|e| e.to_string()));
        match adopted {
            Ok(id) => {
                let link = program.take_link(id).map_err(|e| e.to_string())?;
                info!("SYN-cookie tc program on {iface}: adopted the pinned link");
                return FdLink::try_from(link).map_err(|e| e.to_string());
            }
            Err(e) => {
                warn!(
                    "{}: stale pinned link ({e}); attaching afresh",
                    pin_path.display()
                );
                let _ = std::fs::remove_file(pin_path);
            }
        }
    }
    let id = program
        .attach(iface, TcAttachType::Ingress)
        .map_err(|e| e.to_string())?;
    let link = program.take_link(id).map_err(|e| e.to_string())?;
    let fd_link = FdLink::try_from(link).map_err(|e| {
        format!("{e} (tcx links need Linux 6.6; netlink attachments cannot be pinned)")
    })?;
    let pinned = fd_link.pin(pin_path).map_err(|e| e.to_string())?;
    info!("SYN-cookie tc program attached to {iface} (tc ingress)");
    Ok(FdLink::from(pinned))
}

/// Whether SYN cookies can run on this host, as far as can be told without
/// loading anything (for `rampart config check`): the kfunc in the kernel's
/// BTF and `net.ipv4.tcp_syncookies`. The daemon finds out the rest when it
/// loads and attaches the programs, and says so.
pub fn host_check() -> Result<(), String> {
    super::kfunc::kernel_id().map_err(|e| e.to_string())?;
    if HostTcp::read().syncookies == 0 {
        return Err("net.ipv4.tcp_syncookies is 0 (`sysctl -w net.ipv4.tcp_syncookies=1`)".into());
    }
    Ok(())
}

/// The name of a `MODE_*` value.
pub fn syn_mode_name(mode: u32) -> &'static str {
    match mode {
        MODE_AUTO => "auto",
        MODE_ON => "on",
        _ => "off",
    }
}

fn online_cpus() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    n.clamp(1, 4096) as u32
}

/// 128 random bits from the kernel (getrandom), for the cookie key.
fn random_key() -> [u64; 2] {
    let mut key = [0u64; 2];
    // SAFETY: getrandom writes at most 16 bytes into the 16-byte array.
    let n = unsafe { libc::getrandom(key.as_mut_ptr().cast(), 16, 0) };
    if n != 16 || key == [0, 0] {
        // getrandom cannot fail for 16 bytes once the pool is ready; if it
        // did, a key from the clock is still unknown to an attacker who
        // cannot read it.
        let t = super::monotonic_ns();
        key = [
            t ^ 0x9e37_79b9_7f4a_7c15,
            t.rotate_left(29) ^ std::process::id() as u64,
        ];
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_scale_follows_the_kernel() {
        // tcp_rmem[2] = 6 MiB (the default): 7.
        assert_eq!(window_scale(6 << 20), 7);
        assert_eq!(window_scale(4 << 20), 7);
        assert_eq!(window_scale(65535), 0);
        assert_eq!(window_scale(1 << 40), 14);
    }

    fn runtime(unavailable: Option<&str>) -> SynCookieRuntime {
        let mut r = SynCookieRuntime::new(unavailable.map(str::to_string));
        r.host = HostTcp {
            syncookies: 1,
            flags: FLAG_SACK | FLAG_TIMESTAMPS,
            rcv_wscale: 7,
        };
        r
    }

    #[test]
    fn the_mode_is_off_unless_everything_is_there() {
        let on = SynCookies {
            mode: SynCookieMode::On,
            ports: vec![443],
            ports_from_listeners: false,
            threshold: 1000,
            on_veth: false,
            synack_rate: 0,
        };
        assert_eq!(runtime(None).value(&on, [1, 2]).mode, MODE_ON);
        assert_eq!(runtime(Some("no kfunc")).value(&on, [1, 2]).mode, MODE_OFF);
        let no_ports = SynCookies {
            ports: vec![],
            ..on.clone()
        };
        assert_eq!(runtime(None).value(&no_ports, [1, 2]).mode, MODE_OFF);
        let mut r = runtime(None);
        r.host.syncookies = 0;
        assert_eq!(r.value(&on, [1, 2]).mode, MODE_OFF);
        let auto = SynCookies {
            mode: SynCookieMode::Auto,
            ..on
        };
        let v = runtime(None).value(&auto, [1, 2]);
        assert_eq!(v.mode, MODE_AUTO);
        assert_eq!(v.key, [1, 2], "an existing key is kept");
        assert!(v.threshold_per_cpu >= 1000 / online_cpus());
        assert_eq!((v.mss_v4, v.mss_v6), (1460, 1440));
        assert_ne!(
            runtime(None).value(&auto, [0, 0]).key,
            [0, 0],
            "a key is made"
        );
    }
}
