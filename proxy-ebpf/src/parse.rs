//! Header parsing: Ethernet, up to four VLAN tags, IPv4 (options, fragments)
//! and IPv6 (extension headers), down to the TCP flags. Every read goes
//! through [`ptr_at`], which proves to the verifier that it is in bounds.

use aya_ebpf::programs::XdpContext;
use proxy_common::list::V4;

const ETH_HLEN: usize = 14;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
/// The pre-802.1ad QinQ TPID, still used by some switches for the outer tag.
const ETH_P_QINQ1: u16 = 0x9100;
/// VLAN tags walked. A deeper stack is "unparsed": the IP header behind it
/// is never seen, so the configured policy decides (drop by default).
pub const MAX_VLAN_TAGS: usize = 4;
const IPPROTO_TCP: u8 = 6;
const IPV6_HLEN: usize = 40;
/// Extension headers walked before giving up; a legitimate packet has far fewer.
const MAX_IPV6_EXT: usize = 8;
const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

/// Why a packet could not be parsed; it is counted as `malformed` and dropped.
pub struct Malformed;

/// Returns a pointer to a `T` at `offset` from the start of the frame, or
/// `Malformed` if the frame is too short to hold it.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Result<*const T, Malformed> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return Err(Malformed);
    }
    Ok((start + offset) as *const T)
}

/// Reads two adjacent bytes. Single-byte reads are avoided on purpose: LLVM
/// turns `p + 1 > end` into `p >= end`, from which the verifier learns no
/// range when `p` has a variable offset.
#[inline(always)]
fn pair_at(ctx: &XdpContext, offset: usize) -> Result<[u8; 2], Malformed> {
    // SAFETY: ptr_at checked both bytes lie within the frame.
    Ok(unsafe { *ptr_at::<[u8; 2]>(ctx, offset)? })
}

/// A big-endian u16 of the frame, read with one load (see [`load16`]).
#[inline(always)]
fn be16_at(ctx: &XdpContext, offset: usize) -> Result<u16, Malformed> {
    // SAFETY: ptr_at checked both bytes lie within the frame.
    Ok(u16::from_be(load16(
        ptr_at::<[u8; 2]>(ctx, offset)? as *const u8
    )))
}

/// Loads a u16 from packet memory with one instruction, as [`load32`]
/// does: a `[u8; 2]` read through Rust is two byte loads, a shift and an or.
#[inline(always)]
fn load16(p: *const u8) -> u16 {
    let v: u64;
    // SAFETY: the caller proved with ptr_at that 2 bytes at `p` are in the frame.
    unsafe {
        core::arch::asm!("{v} = *(u16 *)({p} + 0)", p = in(reg) p, v = out(reg) v, options(nostack, readonly))
    };
    v as u16
}

/// Loads a u32 from packet memory with one instruction. The address may be
/// unaligned (an IPv4 source sits at offset 26), which x86-64 and arm64
/// handle and the verifier allows; a Rust deref would make that UB and
/// `read_unaligned` costs four byte loads.
#[inline(always)]
fn load32(p: *const u8) -> u32 {
    let v: u64;
    // SAFETY: the caller proved with ptr_at that 4 bytes at `p` are in the frame.
    unsafe {
        core::arch::asm!("{v} = *(u32 *)({p} + 0)", p = in(reg) p, v = out(reg) v, options(nostack, readonly))
    };
    v as u32
}

/// As [`load32`], for 8 bytes.
#[inline(always)]
fn load64(p: *const u8) -> u64 {
    let v: u64;
    // SAFETY: the caller proved with ptr_at that 8 bytes at `p` are in the frame.
    unsafe {
        core::arch::asm!("{v} = *(u64 *)({p} + 0)", p = in(reg) p, v = out(reg) v, options(nostack, readonly))
    };
    v
}

/// Whether `proto` is a VLAN tag (802.1Q, 802.1ad, or the older 0x9100).
#[inline(always)]
pub fn is_vlan(proto: u16) -> bool {
    proto == ETH_P_8021Q || proto == ETH_P_8021AD || proto == ETH_P_QINQ1
}

/// Walks the Ethernet header and up to [`MAX_VLAN_TAGS`] VLAN tags. Returns
/// the ethertype and the offset of the header that follows; the ethertype is
/// still a VLAN TPID ([`is_vlan`]) when the stack goes deeper.
///
/// The parsers return small plain values or write through out-parameters
/// rather than return an enum carrying an address: LLVM copies an enum's
/// undefined payload bytes around, and the verifier rejects reading an
/// uninitialised register.
#[inline(always)]
pub fn ethernet(ctx: &XdpContext) -> Result<(u16, usize), Malformed> {
    let mut proto = be16_at(ctx, 12)?;
    let mut off = ETH_HLEN;
    // 802.1ad / 0x9100 outer tags and 802.1Q inner tags, in any order. The
    // walk stops at the first other ethertype: without the `break`, LLVM
    // tested every untagged frame's ethertype against the three TPIDs four
    // times over.
    for _ in 0..MAX_VLAN_TAGS {
        if !is_vlan(proto) {
            break;
        }
        proto = be16_at(ctx, off + 2)?;
        off += 4;
    }
    Ok((proto, off))
}

#[inline(always)]
fn frame_len(ctx: &XdpContext) -> usize {
    ctx.data_end() - ctx.data()
}

/// Parses the IPv4 header at `off`: writes the source address into `src` and
/// returns whether the packet is a TCP SYN without ACK.
#[inline(always)]
pub fn ipv4(ctx: &XdpContext, off: usize, src: &mut V4) -> Result<bool, Malformed> {
    let p = ptr_at::<[u8; 20]>(ctx, off)? as *const u8;
    // SAFETY: ptr_at checked the fixed 20-byte header lies within the frame;
    // every read below is inside it.
    let (vihl, total_len, frag, proto, addr) = unsafe {
        (
            *p,
            u16::from_be(load16(p.add(2))) as usize,
            load16(p.add(6)),
            *p.add(9),
            load32(p.add(12)),
        )
    };
    if vihl >> 4 != 4 {
        return Err(Malformed);
    }
    let hdr_len = ((vihl & 0x0f) as usize) * 4;
    if hdr_len < 20 || total_len < hdr_len || off + total_len > frame_len(ctx) {
        return Err(Malformed);
    }
    *src = addr.to_ne_bytes();
    // Only the first fragment carries the TCP header. A first fragment too
    // short to hold the TCP flags is the RFC 1858 tiny-fragment attack.
    // (The fragment offset's 13 bits, read natively from the big-endian
    // field: `u16::from_be(frag) & 0x1fff`, without the swap.)
    if proto == IPPROTO_TCP && frag & u16::from_be(0x1fff) == 0 {
        return tcp_is_syn(ctx, off + hdr_len);
    }
    Ok(false)
}

/// Parses the IPv6 header at `off` and its extension headers: writes the
/// source address into `src` (as two native-endian words, which is the byte
/// order of the packet) and returns whether the packet is a TCP SYN without ACK.
#[inline(always)]
pub fn ipv6(ctx: &XdpContext, off: usize, src: &mut [u64; 2]) -> Result<bool, Malformed> {
    // SAFETY: ptr_at checked the 40-byte header lies within the frame.
    let h = unsafe { &*ptr_at::<[u8; IPV6_HLEN]>(ctx, off)? };
    if h[0] >> 4 != 6 {
        return Err(Malformed);
    }
    let payload_len = u16::from_be_bytes([h[4], h[5]]) as usize;
    if off + IPV6_HLEN + payload_len > frame_len(ctx) {
        return Err(Malformed);
    }
    let base = h.as_ptr();
    // SAFETY: bytes 8..24 lie within the 40-byte header checked above.
    *src = unsafe { [load64(base.add(8)), load64(base.add(16))] };
    let mut next = h[6];
    let mut cur = off + IPV6_HLEN;
    for _ in 0..MAX_IPV6_EXT {
        match next {
            // Hop-by-hop, routing, destination options: length in 8-octet units, minus one.
            0 | 43 | 60 => {
                let [n, len] = pair_at(ctx, cur)?;
                next = n;
                cur += (len as usize + 1) * 8;
            }
            // Authentication header: length in 4-octet units, minus two.
            51 => {
                let [n, len] = pair_at(ctx, cur)?;
                next = n;
                cur += (len as usize + 2) * 4;
            }
            // Fragment header: a non-first fragment carries no TCP header.
            44 => {
                // SAFETY: ptr_at checked the 4 bytes lie within the frame.
                let h = unsafe { *ptr_at::<[u8; 4]>(ctx, cur)? };
                next = h[0];
                if u16::from_be_bytes([h[2], h[3]]) >> 3 != 0 {
                    return Ok(false);
                }
                cur += 8;
            }
            IPPROTO_TCP => return tcp_is_syn(ctx, cur),
            // UDP, ICMPv6, ESP, no-next-header, ...
            _ => return Ok(false),
        }
    }
    // More extension headers than any legitimate sender uses.
    Err(Malformed)
}

/// Reads the TCP flags of the header at `off`: SYN set and ACK clear.
#[inline(always)]
fn tcp_is_syn(ctx: &XdpContext, off: usize) -> Result<bool, Malformed> {
    // The flags are byte 13; require the whole fixed 20-byte header.
    // SAFETY: ptr_at checked the 20 bytes lie within the frame.
    let tcp = unsafe { *ptr_at::<[u8; 20]>(ctx, off)? };
    let flags = tcp[13];
    Ok(flags & TCP_SYN != 0 && flags & TCP_ACK == 0)
}
