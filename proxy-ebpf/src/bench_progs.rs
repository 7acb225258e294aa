//! Programs used only by `cargo xtask bench`: the floor every filter is
//! compared with, and a traffic generator for the veth benchmark.
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

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

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
