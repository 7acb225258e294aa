//! rampart's XDP program. One entry point; the decision order is
//!
//! ```text
//! parse (Ethernet, 0-4 VLAN tags, IPv4 with options and fragments, IPv6 with
//!        extension headers)       -> non-IP: pass (non_ip); broken: drop (malformed);
//!                                    deeper VLAN stacks: drop (malformed) or,
//!                                    with `unparsed = "pass"`, pass (non_ip)
//!   allowlist (LPM)               -> pass, never limited (allowlisted);
//!                                    checked after the lists below but
//!                                    winning over them (see decide.rs)
//!   blocklist (hash of addresses,
//!              then LPM of ranges) -> drop (blocklisted)
//!   ban table (by source, TTL;
//!     an inlined index, the hash
//!     only after an overflow)      -> drop while unexpired (banned)
//!   SYN limit, packet limit (GCRA;
//!     a source new to the LRU goes
//!     through the first stage,
//!     admit.rs)                    -> drop (syn_limited / pps_limited)
//!   otherwise                     -> pass
//! ```
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
mod clock;
mod decide;
mod limit;
mod log;
mod maps;
mod parse;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use proxy_common::stats;

#[xdp]
pub fn rampart(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    let verdict = decide::decide(&ctx).unwrap_or(stats::MALFORMED);
    if verdict == stats::MALFORMED {
        log::malformed(&ctx);
    }
    maps::count(verdict, len);
    if stats::is_drop(verdict) {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
