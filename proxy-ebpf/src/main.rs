//! rampart's kernel programs. The XDP entry point's decision order is
//!
//! ```text
//! parse (Ethernet, 0-4 VLAN tags, IPv4 with options and fragments, IPv6 with
//!        extension headers)       -> non-IP: pass (non_ip); broken: drop (malformed);
//!                                    deeper VLAN stacks: drop (malformed) or,
//!                                    with `unparsed = "pass"`, pass (non_ip)
//!   allowlist (LPM)               -> pass, never limited (allowlisted);
//!                                    checked after the bans and lists
//!                                    below but winning over them (see
//!                                    decide.rs); not looked up for a
//!                                    source whose LRU entry carries the
//!                                    current allowlist generation
//!   ban table (by source, TTL;
//!     an inlined index, the hash
//!     only after an overflow)      -> drop while unexpired (banned)
//!   blocklist (hash of addresses,
//!              then LPM of ranges) -> drop (blocklisted)
//!   SYN limit, packet limit (GCRA;
//!     a source new to the LRU goes
//!     through the first stage,
//!     admit.rs, and one whose bit
//!     in the known-source filter
//!     is clear is not looked up
//!     there, known.rs; one over a limit
//!     is dropped from a per-CPU
//!     cache, limited.rs)           -> drop (syn_limited / pps_limited)
//!   SYN to a protected port while SYN cookies are on
//!                                 -> answered with a SYN-ACK carrying a
//!                                    cookie, XDP_TX (syn_cookie)
//!   otherwise                     -> pass
//! ```
//!
//! A second entry point, `rampart_ack` (tc ingress), completes the
//! handshakes of cookies that come back (`cookie_ack.rs`).
//!
//! Each verdict is counted in the per-CPU `verdicts` map. Settings come from
//! the `config` map on every packet, so userspace changes them in place.
//! Rare events (a malformed frame, a full source map) become aya-log records,
//! gated by a level the daemon sets and a record budget (`log.rs`).
#![no_std]
#![no_main]
#![feature(asm_experimental_arch)]
// `#[inline(never)]` on the closure that `log::event!` records with.
#![feature(stmt_expr_attributes)]

mod addr;
mod admit;
mod atomic;
mod bans;
mod budget;
mod clock;
mod cookie_ack;
mod decide;
mod kfunc;
mod known;
mod limit;
mod limited;
mod listed;
mod log;
mod maps;
mod new_sources;
mod parse;
mod segment;
mod synack;
mod syncookie;
mod tcpopt;

use aya_ebpf::{
    bindings::xdp_action,
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use proxy_common::stats;

// `inline(always)` reaches the function the macro wraps: without it the
// whole decision is a BPF-to-BPF call (a frame, and the verdict through the
// stack) on every packet.
#[xdp]
#[inline(always)]
pub fn rampart(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    let mut verdict = decide::decide(&ctx).unwrap_or(stats::MALFORMED);
    if verdict == syncookie::ASK {
        // A passed SYN while SYN cookies may be on: `rampart_syn` answers
        // or passes it, and counts it. Here only if it could not be called.
        syncookie::hand_over(&ctx);
        verdict = stats::PASS;
    } else if verdict == stats::MALFORMED {
        log::malformed(&ctx);
    }
    maps::count(verdict, len);
    if stats::is_drop(verdict) {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

/// Tail-called by `rampart` for a SYN it passed: decides whether it gets a
/// SYN cookie (`syncookie.rs`).
#[xdp]
pub fn rampart_syn(ctx: XdpContext) -> u32 {
    syncookie::program(&ctx)
}

/// Tail-called by `rampart_syn`: answers the SYN with a SYN-ACK carrying
/// a cookie, XDP_TX (`synack.rs`).
#[xdp]
pub fn rampart_synack(ctx: XdpContext) -> u32 {
    syncookie::answer(&ctx)
}

/// tc ingress: completes the handshakes of SYN cookies sent by `rampart`.
#[classifier]
pub fn rampart_ack(ctx: TcContext) -> i32 {
    cookie_ack::ack(&ctx)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
