//! The packet as the XDP program sees it: a model of `proxy-ebpf/src/parse.rs`.
//!
//! The program reads a frame in this order, and so does [`parse`]:
//!
//! ```text
//! Ethernet (14 bytes; ethertype at 12)
//!   0 to 4 VLAN tags (TPID 0x8100, 0x88a8 or 0x9100, 4 bytes each; the
//!   ethertype follows the tag)            -- a tag cut short: malformed;
//!   a fifth tag: malformed (the xdp target runs the default
//!   `unparsed = "drop"`)
//!   0x0800 IPv4: 20-byte header, version 4, IHL >= 5, total length >= IHL*4
//!          and within the frame; TCP (proto 6) in the first fragment
//!          (offset 0) must hold its 20-byte header
//!   0x86dd IPv6: 40-byte header, version 6, payload within the frame; then
//!          at most 8 headers are looked at: hop-by-hop (0), routing (43),
//!          destination options (60) of (len + 1) * 8 bytes, AH (51) of
//!          (len + 2) * 4 bytes, fragment (44) of 8 bytes (a non-first
//!          fragment ends the walk: no TCP header to read), TCP (6) needing
//!          20 bytes, anything else ends the walk; the 8th header still not
//!          ending it: malformed
//!   anything else: not IP
//! ```
//!
//! "Malformed" means the program refuses the frame: any read past the end of
//! the frame, a wrong version, inconsistent lengths.

use std::net::{Ipv4Addr, Ipv6Addr};

/// What the program learns from a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet {
    /// Not IPv4 or IPv6 (after any VLAN tags).
    NonIp,
    /// Truncated or inconsistent headers.
    Malformed,
    V4 {
        src: Ipv4Addr,
        /// TCP with SYN set and ACK clear.
        syn: bool,
    },
    V6 {
        src: Ipv6Addr,
        syn: bool,
    },
}

const TPID_8021Q: u16 = 0x8100;
const TPID_8021AD: u16 = 0x88a8;
const TPID_QINQ1: u16 = 0x9100;
/// VLAN tags the program walks.
const VLAN_TAGS_WALKED: usize = 4;
/// Extension headers (counting the final one) the program looks at.
const IPV6_HEADERS_WALKED: usize = 8;

/// Reads `frame` as the program does. Frames shorter than an Ethernet header
/// never reach the program (the kernel refuses them), so they are not modelled.
pub fn parse(frame: &[u8]) -> Packet {
    match parse_inner(frame) {
        Some(p) => p,
        None => Packet::Malformed,
    }
}

/// `None`: malformed.
fn parse_inner(frame: &[u8]) -> Option<Packet> {
    let reader = Reader(frame);
    let mut ethertype = reader.be16(12)?;
    let mut at = 14;
    let tag = |t: u16| t == TPID_8021Q || t == TPID_8021AD || t == TPID_QINQ1;
    for _tag in 0..VLAN_TAGS_WALKED {
        if tag(ethertype) {
            ethertype = reader.be16(at + 2)?;
            at += 4;
        }
    }
    if tag(ethertype) {
        return None;
    }
    match ethertype {
        0x0800 => ipv4(reader, at),
        0x86dd => ipv6(reader, at),
        _ => Some(Packet::NonIp),
    }
}

fn ipv4(r: Reader, at: usize) -> Option<Packet> {
    let h = r.bytes(at, 20)?;
    if h[0] >> 4 != 4 {
        return None;
    }
    let header_len = usize::from(h[0] & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if header_len < 20 || total_len < header_len || at + total_len > r.0.len() {
        return None;
    }
    let src = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
    let first_fragment = u16::from_be_bytes([h[6], h[7]]) & 0x1fff == 0;
    let syn = if h[9] == 6 && first_fragment {
        tcp_syn(r, at + header_len)?
    } else {
        false
    };
    Some(Packet::V4 { src, syn })
}

fn ipv6(r: Reader, at: usize) -> Option<Packet> {
    let h = r.bytes(at, 40)?;
    if h[0] >> 4 != 6 {
        return None;
    }
    let payload_len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    if at + 40 + payload_len > r.0.len() {
        return None;
    }
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&h[8..24]);
    let src = Ipv6Addr::from(octets);
    let mut next = h[6];
    let mut cur = at + 40;
    for _header in 0..IPV6_HEADERS_WALKED {
        match next {
            0 | 43 | 60 => {
                let e = r.bytes(cur, 2)?;
                next = e[0];
                cur += (usize::from(e[1]) + 1) * 8;
            }
            51 => {
                let e = r.bytes(cur, 2)?;
                next = e[0];
                cur += (usize::from(e[1]) + 2) * 4;
            }
            44 => {
                let e = r.bytes(cur, 4)?;
                next = e[0];
                if u16::from_be_bytes([e[2], e[3]]) >> 3 != 0 {
                    return Some(Packet::V6 { src, syn: false });
                }
                cur += 8;
            }
            6 => {
                let syn = tcp_syn(r, cur)?;
                return Some(Packet::V6 { src, syn });
            }
            _ => return Some(Packet::V6 { src, syn: false }),
        }
    }
    None
}

/// SYN without ACK, if the 20-byte TCP header at `at` is in the frame.
fn tcp_syn(r: Reader, at: usize) -> Option<bool> {
    let flags = r.bytes(at, 20)?[13];
    Some(flags & 0x02 != 0 && flags & 0x10 == 0)
}

/// Bounds-checked reads of the frame.
#[derive(Clone, Copy)]
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(self, at: usize, n: usize) -> Option<&'a [u8]> {
        self.0.get(at..at.checked_add(n)?)
    }

    fn be16(self, at: usize) -> Option<u16> {
        let b = self.bytes(at, 2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;

    #[test]
    fn well_formed_frames() {
        let syn = Frame::v4([192, 0, 2, 1]).tcp(0x02).build();
        assert_eq!(
            parse(&syn),
            Packet::V4 {
                src: Ipv4Addr::new(192, 0, 2, 1),
                syn: true
            }
        );
        let synack = Frame::v4([192, 0, 2, 1]).tcp(0x12).vlan(0x8100).build();
        assert!(matches!(parse(&synack), Packet::V4 { syn: false, .. }));
        let v6 = Frame::v6("2001:db8::1".parse().unwrap())
            .ext(0)
            .ext(60)
            .tcp(0x02)
            .build();
        assert!(matches!(parse(&v6), Packet::V6 { syn: true, .. }));
        assert_eq!(parse(&Frame::raw(0x0806).build()), Packet::NonIp);
    }

    #[test]
    fn truncation_is_malformed() {
        let syn = Frame::v4([192, 0, 2, 1]).tcp(0x02).build();
        // Cutting the frame breaks the total length first.
        assert_eq!(parse(&syn[..syn.len() - 1]), Packet::Malformed);
        let mut tiny = syn.clone();
        // Total length 20: the TCP header lies past it but in the frame; the
        // program reads it anyway (it bounds reads by the frame).
        tiny[16..18].copy_from_slice(&20u16.to_be_bytes());
        assert!(matches!(parse(&tiny), Packet::V4 { syn: true, .. }));
        let eight: Vec<u8> = {
            let mut f = Frame::v6("2001:db8::1".parse().unwrap());
            for _ in 0..8 {
                f = f.ext(60);
            }
            f.build()
        };
        assert_eq!(parse(&eight), Packet::Malformed);
    }
}
