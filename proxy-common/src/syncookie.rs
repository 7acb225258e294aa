//! SYN cookies in the kernel tier: the settings the XDP and tc programs
//! share, the state they keep, and the counters they leave for userspace
//! (docs/kernel-tier.md, "SYN cookies").
//!
//! ```text
//! SYN to a protected port, passed by lists, bans and limits
//!   mode off, or auto and the SYN rate under the threshold -> the kernel (as before)
//!   no listening socket for it (or a TIME_WAIT one)          -> the kernel
//!   the SYN-ACK budget (`synack_rate`) spent                -> dropped, syn_limited
//!   otherwise: rewritten in place into a SYN-ACK whose sequence
//!              number is a cookie (`cookie`), sent back (XDP_TX)  verdict syn_cookie
//! ACK to a protected port, while cookies are outstanding (tc ingress)
//!   cookie valid and a listener -> the kernel gets a request socket built from
//!                                  the cookie (bpf_sk_assign_tcp_reqsk) and
//!                                  completes the connection as its own
//!   otherwise                    -> untouched
//! ```
//!
//! Maps: `syn_cookie` (one [`SynCookieConfig`], written by userspace),
//! `syn_state` (one [`SynState`], written by the programs), `syn_ports` (a
//! bitmap of protected ports, 1024 words), `syn_window` (per-CPU
//! [`SynWindow`]) and `syn_stats` (per-CPU counters, [`STAT_NAMES`]).

use bytemuck::{Pod, Zeroable};

/// Cookies are never sent.
pub const MODE_OFF: u32 = 0;
/// Cookies while the SYN rate to protected ports is over the threshold
/// (and for `hold_ns` after it last was).
pub const MODE_AUTO: u32 = 1;
/// Every SYN to a protected port is answered with a cookie.
pub const MODE_ON: u32 = 2;

/// The host accepts these TCP options (its `net.ipv4.tcp_*` sysctls); the
/// SYN-ACK offers only what the kernel will accept when it builds the socket.
pub const FLAG_TIMESTAMPS: u32 = 1 << 0;
pub const FLAG_SACK: u32 = 1 << 1;
pub const FLAG_WSCALE: u32 = 1 << 2;
pub const FLAG_ECN: u32 = 1 << 3;

/// Words in the `syn_ports` bitmap: one bit per TCP port.
pub const PORT_WORDS: u32 = 1024;

/// Placeholder helper number of `bpf_sk_assign_tcp_reqsk` in the compiled
/// tc program. The kfunc is called like a helper with this number, and the
/// loader rewrites each such call into a kfunc call with the function's BTF
/// id from the running kernel (aya 0.14 cannot resolve kfuncs itself).
/// Helper numbers stop far below it.
pub const KFUNC_SK_ASSIGN_TCP_REQSK: u32 = 0x5e11_0001;

/// `syn_cookie[0]`: the settings, rewritten in place by userspace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct SynCookieConfig {
    /// SipHash key of the cookies. Made once and kept while the map is
    /// pinned, so cookies outlive daemon restarts.
    pub key: [u64; 2],
    /// In `auto` mode, how long cookies stay on after the SYN rate was last
    /// over the threshold.
    pub hold_ns: u64,
    /// `MODE_*`.
    pub mode: u32,
    /// In `auto` mode, SYNs to protected ports per second on one CPU above
    /// which cookies start (the configured rate divided among the CPUs).
    pub threshold_per_cpu: u32,
    /// `FLAG_*`.
    pub flags: u32,
    /// The MSS the SYN-ACK announces: the smallest MTU of the attached
    /// interfaces minus 40 (IPv4) or 60 (IPv6).
    pub mss_v4: u16,
    pub mss_v6: u16,
    /// The window scale the SYN-ACK announces (the one the kernel would
    /// choose from `tcp_rmem`).
    pub rcv_wscale: u8,
    pub _pad: [u8; 3],
    /// SYN-ACKs per second that cookies may send, all CPUs together (one
    /// budget, a second's worth of burst); past it a SYN that would get a
    /// cookie is dropped (`STAT_OVER_BUDGET`). 0: no cap.
    pub synack_rate: u32,
}
const _: () = assert!(core::mem::size_of::<SynCookieConfig>() == 48);

/// `syn_state[0]`: written by the programs, read by userspace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct SynState {
    /// CLOCK_MONOTONIC ns until which `auto` mode answers with cookies.
    pub attack_until_ns: u64,
    /// When a cookie was last sent (to within a second): the tc program
    /// checks ACKs only until `cookie::VALID_NS` after it.
    pub last_cookie_ns: u64,
}
const _: () = assert!(core::mem::size_of::<SynState>() == 16);

/// `syn_window`, per CPU: SYNs to protected ports in the current second.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct SynWindow {
    pub start_ns: u64,
    pub count: u64,
}
const _: () = assert!(core::mem::size_of::<SynWindow>() == 16);

/// `syn_stats` indices (per-CPU u64 counters).
/// ACKs whose cookie was valid and for which the kernel took a request socket.
pub const STAT_ACCEPTED: u32 = 0;
/// ACKs whose cookie was valid but that the kernel refused (the kfunc failed:
/// a sysctl changed under the cookie, or memory).
pub const STAT_REFUSED: u32 = 1;
/// Times `auto` mode switched cookies on.
pub const STAT_ATTACKS: u32 = 2;
/// SYNs passed to the kernel in cookie mode because no socket was listening
/// for them, or a TIME_WAIT socket held their addresses and ports.
pub const STAT_NOT_LISTENING: u32 = 3;
/// SYNs passed to the kernel in cookie mode because the SYN-ACK could not be
/// built (IPv4 options, IPv6 extension headers, a fragment, no room).
pub const STAT_UNANSWERED: u32 = 4;
/// SYNs dropped in cookie mode because the SYN-ACK budget
/// (`SynCookieConfig::synack_rate`) was spent: the backscatter cap.
pub const STAT_OVER_BUDGET: u32 = 5;
/// Entries in `syn_stats`.
pub const STATS: u32 = 6;
pub const STAT_NAMES: [&str; STATS as usize] = [
    "acks_accepted",
    "acks_refused",
    "attacks",
    "syns_not_listening",
    "syns_unanswered",
    "syns_over_budget",
];

/// Whether `port` is set in a `syn_ports` bitmap word array.
#[inline(always)]
pub const fn port_word(port: u16) -> (u32, u64) {
    ((port >> 6) as u32, 1u64 << (port & 63))
}
