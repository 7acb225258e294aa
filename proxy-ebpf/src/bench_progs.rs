//! Programs used only by `cargo xtask bench`: the floor every filter is
//! compared with, and the traffic generators of the veth benchmark.
//!
//! Two generators, because kernels differ in what they allow:
//! - `tx_gen` / `tx_gen_spoof`, run through `BPF_PROG_TEST_RUN` with
//!   `BPF_F_TEST_XDP_LIVE_FRAMES`: every run transmits the test frame.
//!   Some kernels refuse live frames (EPERM on 6.18.44-fc, issue 14).
//! - `bounce`, a devmap-broadcast bouncer attached to one end of a second
//!   veth pair: every frame it sees is sent both to the interface under test
//!   and back into its own pair, so one injected burst keeps circulating.
//!   [`BOUNCE`] bounds it in time: past its deadline the bouncer drops every
//!   frame, so the flood stops by itself even if the benchmark dies.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{BPF_F_BROADCAST, xdp_action},
    helpers::{bpf_get_prandom_u32, bpf_ktime_get_ns, bpf_xdp_adjust_tail},
    macros::{map, xdp},
    maps::{Array, DevMap, ProgramArray},
    programs::XdpContext,
};

/// Where the bouncer sends every frame (with `BPF_F_BROADCAST`, to all of
/// them): the other end of the bouncer's own pair, and the veth whose peer
/// is the interface under test (possibly several times, for several copies).
#[map]
static BOUNCE_PORTS: DevMap = DevMap::with_max_entries(8, 0);

/// The bouncer's control: `[DEADLINE]` is a `bpf_ktime_get_ns` time
/// (CLOCK_MONOTONIC) after which every frame is dropped; `[SPOOF]` is 1 to
/// rewrite each frame's IPv4 source on every pass.
#[map]
static BOUNCE: Array<u64> = Array::with_max_entries(3, 0);

const DEADLINE: u32 = 0;
const SPOOF: u32 = 1;
/// `BOUNCE[TEMPLATE_LEN]`: bytes of [`TEMPLATE`] that `tx_gen_spoof` writes
/// over its frame before each send (a multiple of 4; 0: none).
const TEMPLATE_LEN: u32 = 2;

/// The frame `tx_gen_spoof` sends. With live frames, a receiver that
/// rewrites a frame in place (a SYN answered with a SYN cookie, XDP_TX)
/// rewrites the generator's own page, which the next run would otherwise
/// send as the receiver left it.
#[map]
static TEMPLATE: Array<[u8; 64]> = Array::with_max_entries(1, 0);

/// The program [`spoof_tail`] hands each frame to (slot 0): the filter
/// under test, or `drop_all` for the generator's own cost.
#[map]
static TAIL: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// The one IPv4 source [`pass_one`] passes (slot 0, network byte order as
/// read from the packet).
#[map]
static PASS_SOURCE: Array<u32> = Array::with_max_entries(1, 0);

/// Passes non-IPv4 frames (ARP) and IPv4 from the source in
/// [`PASS_SOURCE`], drops everything else: the least any filter that lets
/// a real client through and drops a spoofed flood must do, so its
/// connection rate during the flood is the ceiling of every XDP row.
#[xdp]
pub fn pass_one(ctx: XdpContext) -> u32 {
    let start = ctx.data();
    if start + 34 > ctx.data_end() {
        return xdp_action::XDP_PASS;
    }
    let p = start as *const u8;
    // SAFETY: offsets 12-33 are under 34, checked against data_end above.
    unsafe {
        if *p.add(12) != 0x08 || *p.add(13) != 0x00 {
            return xdp_action::XDP_PASS;
        }
        let src = core::ptr::read_unaligned(p.add(26) as *const u32);
        if PASS_SOURCE.get(0).is_some_and(|&s| s == src) {
            return xdp_action::XDP_PASS;
        }
    }
    xdp_action::XDP_DROP
}

/// Drops everything: the cheapest possible XDP program on this machine.
#[xdp]
pub fn drop_all(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}

/// Sends every frame back out. Run through BPF_PROG_TEST_RUN with live frames
/// and an ingress ifindex, this transmits the test frame on that interface.
#[xdp]
pub fn tx_gen(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_TX
}

/// `tx_gen` with the IPv4 source of every frame rewritten to a random
/// address in 10.0.0.0/8.
#[xdp]
pub fn tx_gen_spoof(ctx: XdpContext) -> u32 {
    restore(&ctx);
    spoof(&ctx);
    xdp_action::XDP_TX
}

/// Gives the frame the length `BOUNCE[TEMPLATE_LEN]` and writes that many
/// bytes of [`TEMPLATE`] over it.
#[inline(always)]
fn restore(ctx: &XdpContext) {
    let len = BOUNCE.get(TEMPLATE_LEN).copied().unwrap_or(0) as usize;
    let Some(t) = TEMPLATE.get(0) else {
        return;
    };
    if len == 0 {
        return;
    }
    let delta = len as i64 - (ctx.data_end() - ctx.data()) as i64;
    // SAFETY: a helper call on our own context.
    if delta != 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta as i32) } != 0 {
        return;
    }
    let (start, end) = (ctx.data(), ctx.data_end());
    for i in 0..16 {
        // Constant offsets: the verifier keeps each check.
        if 4 * i + 4 <= len && start + 4 * i + 4 <= end {
            // SAFETY: the 4 bytes at 4 * i were just checked to be in the frame.
            unsafe {
                *((start + 4 * i) as *mut [u8; 4]) =
                    [t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]]
            };
        }
    }
}

/// The per-packet cost of a new source through BPF_PROG_TEST_RUN, where
/// every repeat runs the same frame: each run gives the frame a new random
/// source in 10.0.0.0/8 (as `tx_gen_spoof`), then tail-calls [`TAIL`]'s
/// program. The benchmark subtracts the same chain into `drop_all`.
#[xdp]
pub fn spoof_tail(ctx: XdpContext) -> u32 {
    spoof(&ctx);
    // SAFETY: a tail call into an XDP program that userspace put in TAIL;
    // on failure (empty slot) control returns here.
    unsafe { TAIL.tail_call(&ctx, 0) };
    xdp_action::XDP_ABORTED
}

/// The bouncer: until the deadline, each frame goes to every port of
/// [`BOUNCE_PORTS`] (optionally with a new random source first).
#[xdp]
pub fn bounce(ctx: XdpContext) -> u32 {
    let deadline = BOUNCE.get(DEADLINE).copied().unwrap_or(0);
    // SAFETY: a helper without arguments, allowed in XDP programs.
    if unsafe { bpf_ktime_get_ns() } > deadline {
        return xdp_action::XDP_DROP;
    }
    if BOUNCE.get(SPOOF).copied() == Some(1) {
        spoof(&ctx);
    }
    BOUNCE_PORTS
        .redirect(0, u64::from(BPF_F_BROADCAST))
        .unwrap_or(xdp_action::XDP_DROP)
}

/// For the client end of a veth pair facing the filter: drops IPv4 frames
/// to 10.0.0.0/8 (SYN cookies answering the spoofed sources of a flood,
/// which on a real network would leave the host) and passes everything
/// else. A veth takes frames its peer sends with XDP_TX only while it has
/// an XDP program of its own.
#[xdp]
pub fn client_rx(ctx: XdpContext) -> u32 {
    let start = ctx.data();
    if start + 34 > ctx.data_end() {
        return xdp_action::XDP_PASS;
    }
    let p = start as *const u8;
    // SAFETY: offsets 12-30 are under 34, checked against data_end above.
    unsafe {
        if *p.add(12) == 0x08 && *p.add(13) == 0x00 && *p.add(30) == 10 {
            return xdp_action::XDP_DROP;
        }
    }
    xdp_action::XDP_PASS
}

/// Rewrites the IPv4 source of an Ethernet + IPv4 (no options) + UDP or TCP
/// frame to a random address in 10.0.0.0/8, updating the IPv4 and L4
/// checksums incrementally (RFC 1624). Anything else is left as it is.
#[inline(always)]
fn spoof(ctx: &XdpContext) {
    let start = ctx.data();
    let end = ctx.data_end();
    // Ethernet (14) + IPv4 (20) + the TCP header up to its checksum (18).
    if start + 52 > end {
        return;
    }
    let p = start as *mut u8;
    // SAFETY: every offset below is under 52, checked against data_end above;
    // the 16-bit accesses are at even offsets from the frame start.
    unsafe {
        if *p.add(12) != 0x08 || *p.add(13) != 0x00 || *p.add(14) != 0x45 {
            return;
        }
        let proto = *p.add(23);
        if proto != 6 && proto != 17 {
            return;
        }
        let src = p.add(26) as *mut u16;
        let old = [*src, *src.add(1)];
        let addr = (0x0a00_0000 | (bpf_get_prandom_u32() & 0x00ff_ffff)).to_be_bytes();
        let new = [
            u16::from_ne_bytes([addr[0], addr[1]]),
            u16::from_ne_bytes([addr[2], addr[3]]),
        ];
        *src = new[0];
        *src.add(1) = new[1];
        csum_replace(p.add(24) as *mut u16, old, new);
        // Constant offsets only: the verifier forgets a packet pointer's
        // checked range once a variable offset is added to it.
        if proto == 6 {
            csum_replace(p.add(50) as *mut u16, old, new);
        } else if *(p.add(40) as *mut u16) != 0 {
            // A zero UDP checksum means "none" and stays so.
            csum_replace(p.add(40) as *mut u16, old, new);
        }
    }
}

/// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), over two 16-bit words.
///
/// # Safety
/// `csum` must point at two writable bytes inside the packet.
#[inline(always)]
unsafe fn csum_replace(csum: *mut u16, old: [u16; 2], new: [u16; 2]) {
    // SAFETY: the caller's contract.
    let hc = unsafe { *csum };
    let mut s = u32::from(!hc)
        + u32::from(!old[0])
        + u32::from(new[0])
        + u32::from(!old[1])
        + u32::from(new[1]);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    // SAFETY: the caller's contract.
    unsafe { *csum = !(s as u16) };
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
