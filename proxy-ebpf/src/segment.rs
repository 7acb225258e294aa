//! Finding the TCP segment in a frame, for the SYN-cookie paths of both
//! programs (XDP and tc see the same bytes from the Ethernet header on).
//! Only the shapes a SYN-ACK can be built for in place are accepted: IPv4
//! without options and not fragmented, IPv6 with TCP as the first next
//! header, at most one VLAN tag (the kernel takes the outer tag off before
//! tc, and its request-socket kfunc wants the IP protocol on the skb).

use aya_ebpf::programs::{TcContext, XdpContext};

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const IPPROTO_TCP: u8 = 6;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;
pub const TCP_ECE: u8 = 0x40;
pub const TCP_CWR: u8 = 0x80;

/// The bytes of one frame, as the program's context gives them.
#[derive(Clone, Copy)]
pub struct Pkt {
    pub start: usize,
    pub end: usize,
}

impl Pkt {
    #[inline(always)]
    pub fn xdp(ctx: &XdpContext) -> Pkt {
        Pkt {
            start: ctx.data(),
            end: ctx.data_end(),
        }
    }

    #[inline(always)]
    pub fn tc(ctx: &TcContext) -> Pkt {
        Pkt {
            start: ctx.data(),
            end: ctx.data_end(),
        }
    }

    #[inline(always)]
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// A pointer to a `T` at `off`, if the frame holds all of it: the check
    /// the verifier needs before any access.
    #[inline(always)]
    pub fn ptr<T>(&self, off: usize) -> Option<*mut T> {
        if self.start + off + core::mem::size_of::<T>() > self.end {
            return None;
        }
        Some((self.start + off) as *mut T)
    }
}

/// Where the headers of a TCP segment are, and the fields both paths use.
/// Filled in by [`locate`]; all offsets from the start of the frame.
#[derive(Clone, Copy)]
pub struct Segment {
    /// The IP header.
    pub l3: usize,
    /// The TCP header.
    pub tcp: usize,
    /// TCP header length with options (`doff * 4`).
    pub tcp_len: usize,
    /// IPv6 (else IPv4).
    pub v6: bool,
    pub flags: u8,
    /// Ports as numbers (host order).
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
}

impl Segment {
    #[inline(always)]
    pub const fn new() -> Segment {
        Segment {
            l3: 0,
            tcp: 0,
            tcp_len: 0,
            v6: false,
            flags: 0,
            sport: 0,
            dport: 0,
            seq: 0,
            ack: 0,
        }
    }
}

/// Fills `seg` for a frame carrying a TCP segment of an accepted shape
/// (see the module comment); false for anything else.
#[inline(always)]
pub fn locate(p: &Pkt, seg: &mut Segment) -> bool {
    let Some(eth) = p.ptr::<[u8; 2]>(12) else {
        return false;
    };
    // SAFETY: `ptr` checked the bytes are in the frame.
    let mut proto = u16::from_be_bytes(unsafe { *eth });
    let mut off = ETH_HLEN;
    if proto == 0x8100 || proto == 0x88A8 || proto == 0x9100 {
        let Some(tag) = p.ptr::<[u8; 4]>(off) else {
            return false;
        };
        // SAFETY: as above.
        let tag = unsafe { *tag };
        proto = u16::from_be_bytes([tag[2], tag[3]]);
        off += 4;
    }
    match proto {
        ETH_P_IP => {
            let Some(h) = p.ptr::<[u8; 20]>(off) else {
                return false;
            };
            // SAFETY: as above.
            let h = unsafe { *h };
            let total = u16::from_be_bytes([h[2], h[3]]) as usize;
            // No options, TCP, not a fragment (offset 0, no more-fragments bit).
            if h[0] != 0x45 || h[9] != IPPROTO_TCP || h[6] & 0x3f != 0 || h[7] != 0 {
                return false;
            }
            if total < 40 || off + total > p.len() {
                return false;
            }
            seg.v6 = false;
            seg.l3 = off;
            seg.tcp = off + 20;
            tcp(p, seg, total - 20)
        }
        ETH_P_IPV6 => {
            let Some(h) = p.ptr::<[u8; 8]>(off) else {
                return false;
            };
            // SAFETY: as above.
            let h = unsafe { *h };
            let payload = u16::from_be_bytes([h[4], h[5]]) as usize;
            if h[0] >> 4 != 6 || h[6] != IPPROTO_TCP || off + 40 + payload > p.len() {
                return false;
            }
            seg.v6 = true;
            seg.l3 = off;
            seg.tcp = off + 40;
            tcp(p, seg, payload)
        }
        _ => false,
    }
}

/// The TCP header at `seg.tcp`, in an IP payload of `payload` bytes.
#[inline(always)]
fn tcp(p: &Pkt, seg: &mut Segment, payload: usize) -> bool {
    let Some(t) = p.ptr::<[u8; 20]>(seg.tcp) else {
        return false;
    };
    // SAFETY: `ptr` checked the bytes are in the frame.
    let t = unsafe { *t };
    let len = ((t[12] >> 4) as usize) * 4;
    if len < 20 || len > payload {
        return false;
    }
    seg.tcp_len = len;
    seg.flags = t[13];
    seg.sport = u16::from_be_bytes([t[0], t[1]]);
    seg.dport = u16::from_be_bytes([t[2], t[3]]);
    seg.seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
    seg.ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
    true
}
