//! TCP options of a SYN (what the client offers) or of an ACK (its
//! timestamps), read straight from the frame.
//!
//! The walk is a `bpf_loop` callback, one option per call: the verifier
//! checks the callback once, where an inline loop over options of unknown
//! sizes is checked once per path through it (every mix of option kinds and
//! lengths: more than its million-instruction budget).

use core::ffi::c_void;

use aya_ebpf::helpers::bpf_loop;
use proxy_common::cookie::{MAX_WSCALE, NO_WSCALE};

use crate::segment::{Pkt, Segment};

/// Options read per header at most: 40 bytes hold at most 20 two-byte
/// options (real stacks send five to eight, padding NOPs included).
const MAX_OPTIONS: u32 = 20;
/// Frame offsets beyond this are not walked (keeps offsets bounded for
/// the verifier; no frame XDP or tc sees is this long before its TCP options).
const MAX_OFFSET: usize = 0x3fff;

const EOL: u8 = 0;
const NOP: u8 = 1;
const MSS: u8 = 2;
const WSCALE: u8 = 3;
const SACK_PERM: u8 = 4;
const TIMESTAMP: u8 = 8;

/// The options found; absent ones keep the values of [`Options::new`].
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Options {
    /// MSS, 0 if absent.
    pub mss: u32,
    /// Window scale (clamped to 14), or [`NO_WSCALE`].
    pub wscale: u32,
    pub sack: u32,
    pub ts: u32,
    pub tsval: u32,
    pub tsecr: u32,
}

impl Options {
    #[inline(always)]
    pub const fn new() -> Options {
        Options {
            mss: 0,
            wscale: NO_WSCALE,
            sack: 0,
            ts: 0,
            tsval: 0,
            tsecr: 0,
        }
    }
}

/// The state of one walk, on the caller's stack.
#[repr(C)]
struct Walk {
    start: usize,
    end: usize,
    /// Frame offset of the next option.
    at: usize,
    /// Frame offset just past the options.
    stop: usize,
    o: Options,
}

/// Reads the options of the segment `seg` into `o`. Stops at the end of
/// the options, at an end-of-options, or at anything malformed (a length
/// under 2 or past the header): what was read until then stands, as with
/// the kernel's own parser.
#[inline(always)]
pub fn read(p: &Pkt, seg: &Segment, o: &mut Options) {
    let mut w = Walk {
        start: p.start,
        end: p.end,
        at: seg.tcp + 20,
        stop: seg.tcp + seg.tcp_len,
        o: Options::new(),
    };
    // SAFETY: `step` reads and writes only `w`, which outlives the call.
    unsafe {
        bpf_loop(MAX_OPTIONS, step as *mut c_void, (&raw mut w).cast(), 0);
    }
    *o = w.o;
}

/// One option: 0 to go on, 1 to stop.
#[inline(never)]
extern "C" fn step(_index: u32, ctx: *mut c_void) -> i64 {
    // SAFETY: bpf_loop passes back the pointer `read` gave it.
    let w = unsafe { &mut *ctx.cast::<Walk>() };
    let at = w.at;
    if at >= w.stop || at > MAX_OFFSET {
        return 1;
    }
    let p = Pkt {
        start: w.start,
        end: w.end,
    };
    // Two bytes even for a one-byte option: single-byte bounds checks on a
    // variable offset teach the verifier nothing (see parse.rs). A NOP in
    // the frame's very last byte is lost, and carries nothing.
    let Some(kl) = p.ptr::<[u8; 2]>(at) else {
        return 1;
    };
    // SAFETY: `ptr` checked both bytes are in the frame.
    let [kind, size] = unsafe { *kl };
    if kind == EOL {
        return 1;
    }
    if kind == NOP {
        w.at = at + 1;
        return 0;
    }
    let size = size as usize;
    if size < 2 || at + size > w.stop {
        return 1;
    }
    match (kind, size) {
        (MSS, 4) => {
            if let Some(v) = p.ptr::<[u8; 4]>(at) {
                // SAFETY: as above.
                let v = unsafe { *v };
                w.o.mss = u16::from_be_bytes([v[2], v[3]]) as u32;
            }
        }
        (WSCALE, 3) => {
            if let Some(v) = p.ptr::<[u8; 3]>(at) {
                // SAFETY: as above.
                let shift = unsafe { (*v)[2] } as u32;
                w.o.wscale = if shift > MAX_WSCALE {
                    MAX_WSCALE
                } else {
                    shift
                };
            }
        }
        (SACK_PERM, 2) => w.o.sack = 1,
        (TIMESTAMP, 10) => {
            if let Some(v) = p.ptr::<[u8; 10]>(at) {
                // SAFETY: as above.
                let v = unsafe { *v };
                w.o.ts = 1;
                w.o.tsval = u32::from_be_bytes([v[2], v[3], v[4], v[5]]);
                w.o.tsecr = u32::from_be_bytes([v[6], v[7], v[8], v[9]]);
            }
        }
        _ => {}
    }
    w.at = at + size;
    0
}
