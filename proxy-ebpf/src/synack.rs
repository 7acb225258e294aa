//! Turning a SYN into the SYN-ACK that answers it, in place: addresses and
//! ports swapped, the cookie as our initial sequence number, the client's
//! options answered (only those the host's sysctls accept), checksums
//! computed, and the frame cut or grown to the new length. The caller then
//! returns XDP_TX.
//!
//! ```text
//! SYN-ACK options: MSS [NOP WS] [SACK_PERM TS | NOP NOP TS] | [NOP NOP SACK_PERM]
//!                  4 +   4    +          12               or        4   <= 24 bytes
//! ```

use aya_ebpf::{helpers::bpf_xdp_adjust_tail, programs::XdpContext};
use proxy_common::{
    cookie::{self, NO_WSCALE, Negotiated},
    syncookie::{FLAG_ECN, FLAG_SACK, FLAG_TIMESTAMPS, FLAG_WSCALE, SynCookieConfig},
};

use crate::{
    maps::SYN_SCRATCH,
    segment::{Pkt, Segment, TCP_ACK, TCP_CWR, TCP_ECE, TCP_SYN},
    tcpopt::{self, Options},
};

/// TTL / hop limit of the SYN-ACK (the kernel's default).
const TTL: u32 = 64;
/// TCP header words of the longest SYN-ACK: 5 fixed and 6 of options.
const TCP_WORDS: usize = 11;

/// Rewrites the SYN described by `seg` into its SYN-ACK. False (and the
/// frame possibly changed in size only) when it cannot be answered.
///
/// What the client offered goes through the per-CPU `syn_scratch` map on
/// its way to the header: loaded back from a map, the verifier knows
/// nothing of it, so it checks the long hash once per address family
/// rather than once per mix of options (which was past its budget).
#[inline(always)]
pub fn answer(ctx: &XdpContext, cfg: &SynCookieConfig, seg: &Segment, now: u64) -> bool {
    let p = Pkt::xdp(ctx);
    let Some(scratch) = SYN_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    let mut o = Options::new();
    tcpopt::read(&p, seg, &mut o);
    let v6 = seg.v6;
    let client_mss = if o.mss == 0 {
        cookie::default_mss(v6)
    } else {
        o.mss as u16
    };
    let n = Negotiated {
        mss_index: cookie::mss_index(v6, client_mss),
        wscale: if o.wscale != NO_WSCALE && cfg.flags & FLAG_WSCALE != 0 {
            o.wscale
        } else {
            NO_WSCALE
        },
        sack: o.sack != 0 && cfg.flags & FLAG_SACK != 0,
        ecn: seg.flags & (TCP_ECE | TCP_CWR) == TCP_ECE | TCP_CWR && cfg.flags & FLAG_ECN != 0,
    };
    // SAFETY: this CPU's slot of a per-CPU array; nothing else runs on it meanwhile.
    unsafe {
        (*scratch).bits = n.bits();
        (*scratch).ts = (o.ts != 0 && cfg.flags & FLAG_TIMESTAMPS != 0) as u32;
        (*scratch).tsecr = o.tsval;
    }

    // The addresses, as 32-bit words (4 for IPv6), before anything moves.
    let mut client = [0u32; 4];
    let mut server = [0u32; 4];
    if !addresses(&p, seg, &mut client, &mut server) {
        return false;
    }
    // SAFETY: as above.
    let bits = unsafe { core::ptr::read_volatile(&raw const (*scratch).bits) };
    let (isn, tsval) = if v6 {
        let w = |a: &[u32; 4]| {
            [
                (a[0] as u64) << 32 | a[1] as u64,
                (a[2] as u64) << 32 | a[3] as u64,
            ]
        };
        let (c, s) = (w(&client), w(&server));
        let ports = (seg.sport as u64) << 48 | (seg.dport as u64) << 32 | seg.seq as u64;
        cookie::make(cfg.key, [c[0], c[1], s[0], s[1], ports], now, bits)
    } else {
        let flow = [
            (client[0] as u64) << 32 | server[0] as u64,
            (seg.sport as u64) << 48 | (seg.dport as u64) << 32 | seg.seq as u64,
        ];
        cookie::make(cfg.key, flow, now, bits)
    };
    // SAFETY: as above; read back, the verifier knows nothing of these.
    let (n, ts, client_tsval) = unsafe {
        let bits = core::ptr::read_volatile(&raw const (*scratch).bits);
        let ts = core::ptr::read_volatile(&raw const (*scratch).ts);
        let tsecr = core::ptr::read_volatile(&raw const (*scratch).tsecr);
        (Negotiated::from_bits(bits), ts != 0, tsecr)
    };
    let wscale_ok = n.wscale != NO_WSCALE;
    let (sack, ecn) = (n.sack, n.ecn);

    // The TCP header, as host-order words.
    let mss = if v6 { cfg.mss_v6 } else { cfg.mss_v4 } as u32;
    let mut t = [0u32; TCP_WORDS];
    t[0] = (seg.dport as u32) << 16 | seg.sport as u32;
    t[1] = isn;
    t[2] = seg.seq.wrapping_add(1);
    t[5] = 2 << 24 | 4 << 16 | mss;
    let mut words = 6;
    if wscale_ok {
        t[6] = 1 << 24 | 3 << 16 | 3 << 8 | cfg.rcv_wscale as u32;
        words = 7;
    }
    if ts {
        let lead = if sack {
            4 << 24 | 2 << 16
        } else {
            1 << 24 | 1 << 16
        };
        put(&mut t, words, lead | 8 << 8 | 10);
        put(&mut t, words + 1, tsval);
        put(&mut t, words + 2, client_tsval);
        words += 3;
    } else if sack {
        put(&mut t, words, 1 << 24 | 1 << 16 | 4 << 8 | 2);
        words += 1;
    }
    let flags = (TCP_SYN | TCP_ACK | if ecn { TCP_ECE } else { 0 }) as u32;
    // The window of a SYN is never scaled: ten segments, the client's
    // initial window anyway and never more than the kernel will take.
    let window = if mss * 10 > 65535 { 65535 } else { mss * 10 };
    t[3] = (words as u32) << 28 | flags << 16 | window;
    let tcp_len = (words * 4) as u32;

    // Checksum: pseudo-header (server -> client), then the header.
    let mut sum: u64 = 6 + tcp_len as u64;
    let addr_words = if v6 { 4 } else { 1 };
    for i in 0..4 {
        if i < addr_words {
            sum += halves(server[i]) + halves(client[i]);
        }
    }
    for w in t {
        sum += halves(w);
    }
    t[4] = (fold(sum) as u32) << 16;

    // Resize: the IP header keeps its size; the TCP header is what we built.
    let new_len = seg.tcp + words * 4;
    let delta = new_len as i64 - p.len() as i64;
    if delta != 0 {
        // SAFETY: a helper call on our own context.
        if unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta as i32) } != 0 {
            return false;
        }
    }
    let p = Pkt::xdp(ctx);
    if !swap_macs(&p) {
        return false;
    }
    let ip_ok = if v6 {
        let mut h = [0u32; 10];
        h[0] = 0x6000_0000;
        h[1] = tcp_len << 16 | 6 << 8 | TTL;
        for i in 0..4 {
            h[2 + i] = server[i];
            h[6 + i] = client[i];
        }
        write(&p, seg.l3, &h, 10)
    } else {
        let mut h = [
            0x4500_0000 | (20 + tcp_len),
            0x0000_4000,
            TTL << 24 | 6 << 16,
            server[0],
            client[0],
        ];
        let mut s = 0;
        for w in h {
            s += halves(w);
        }
        h[2] |= fold(s) as u32;
        write(&p, seg.l3, &h, 5)
    };
    ip_ok && write(&p, seg.tcp, &t, words)
}

#[inline(always)]
fn put(t: &mut [u32; TCP_WORDS], i: usize, w: u32) {
    if i < TCP_WORDS {
        t[i] = w;
    }
}

/// Both 16-bit halves of a word, added (for the Internet checksum).
#[inline(always)]
fn halves(w: u32) -> u64 {
    (w >> 16) as u64 + (w & 0xffff) as u64
}

/// The one's-complement checksum of a sum of 16-bit words.
#[inline(always)]
fn fold(mut s: u64) -> u16 {
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    !(s as u16)
}

/// The client's (source) and server's (destination) addresses as words.
#[inline(always)]
fn addresses(p: &Pkt, seg: &Segment, client: &mut [u32; 4], server: &mut [u32; 4]) -> bool {
    let be = |b: &[u8], i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    if seg.v6 {
        let Some(h) = p.ptr::<[u8; 32]>(seg.l3 + 8) else {
            return false;
        };
        // SAFETY: `ptr` checked the bytes are in the frame.
        let h = unsafe { *h };
        for i in 0..4 {
            client[i] = be(&h, 4 * i);
            server[i] = be(&h, 16 + 4 * i);
        }
    } else {
        let Some(h) = p.ptr::<[u8; 8]>(seg.l3 + 12) else {
            return false;
        };
        // SAFETY: as above.
        let h = unsafe { *h };
        client[0] = be(&h, 0);
        server[0] = be(&h, 4);
    }
    true
}

#[inline(always)]
fn swap_macs(p: &Pkt) -> bool {
    let Some(m) = p.ptr::<[u8; 12]>(0) else {
        return false;
    };
    // SAFETY: `ptr` checked the 12 bytes are in the frame.
    unsafe {
        let old = *m;
        let mut new = [0u8; 12];
        for i in 0..6 {
            new[i] = old[6 + i];
            new[6 + i] = old[i];
        }
        *m = new;
    }
    true
}

/// Writes the first `n` of `words` (host order) big-endian at `off`.
#[inline(always)]
fn write<const N: usize>(p: &Pkt, off: usize, words: &[u32; N], n: usize) -> bool {
    for i in 0..N {
        if i < n {
            let Some(d) = p.ptr::<[u8; 4]>(off + 4 * i) else {
                return false;
            };
            // SAFETY: `ptr` checked the 4 bytes are in the frame.
            unsafe { *d = words[i].to_be_bytes() };
        }
    }
    true
}
