//! TCP segments with options and real checksums, for the SYN-cookie tests:
//! a builder for what a client sends, and a parser that checks what the
//! program sends back.

use std::net::IpAddr;

use crate::packet::checksum;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;
pub const ECE: u8 = 0x40;
pub const CWR: u8 = 0x80;

/// The options a Linux client puts in a SYN: MSS, SACK permitted,
/// timestamps (`tsval`, 0), NOP, window scale 7.
pub fn linux_syn_options(mss: u16, tsval: u32) -> Vec<u8> {
    let mut o = vec![2, 4];
    o.extend_from_slice(&mss.to_be_bytes());
    o.extend_from_slice(&[4, 2, 8, 10]);
    o.extend_from_slice(&tsval.to_be_bytes());
    o.extend_from_slice(&[0, 0, 0, 0, 1, 3, 3, 7]);
    o
}

/// The timestamps option of an ACK after NOP NOP.
pub fn ts_options(tsval: u32, tsecr: u32) -> Vec<u8> {
    let mut o = vec![1, 1, 8, 10];
    o.extend_from_slice(&tsval.to_be_bytes());
    o.extend_from_slice(&tsecr.to_be_bytes());
    o
}

/// A TCP segment in an Ethernet frame.
#[derive(Clone, Debug)]
pub struct Segment {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Option bytes, padded with NOPs... by the caller (length a multiple of 4).
    pub options: Vec<u8>,
    pub payload: Vec<u8>,
    /// An 802.1Q tag with this VLAN id.
    pub vlan: Option<u16>,
}

impl Segment {
    pub fn new(src: &str, dst: &str, sport: u16, dport: u16) -> Segment {
        Segment {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            sport,
            dport,
            seq: 0,
            ack: 0,
            flags: SYN,
            window: 64240,
            options: Vec::new(),
            payload: Vec::new(),
            vlan: None,
        }
    }

    pub fn build(&self) -> Vec<u8> {
        assert_eq!(self.options.len() % 4, 0, "options must fill whole words");
        let mut tcp = Vec::new();
        tcp.extend_from_slice(&self.sport.to_be_bytes());
        tcp.extend_from_slice(&self.dport.to_be_bytes());
        tcp.extend_from_slice(&self.seq.to_be_bytes());
        tcp.extend_from_slice(&self.ack.to_be_bytes());
        tcp.push((((20 + self.options.len()) / 4) as u8) << 4);
        tcp.push(self.flags);
        tcp.extend_from_slice(&self.window.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 0]);
        tcp.extend_from_slice(&self.options);
        tcp.extend_from_slice(&self.payload);
        let sum = tcp_checksum(self.src, self.dst, &tcp);
        tcp[16..18].copy_from_slice(&sum.to_be_bytes());

        let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
        if let Some(vid) = self.vlan {
            f.extend_from_slice(&[0x81, 0x00]);
            f.extend_from_slice(&vid.to_be_bytes());
        }
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend_from_slice(&[0x08, 0x00]);
                let mut h = vec![0x45, 0];
                h.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
                h.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, 6, 0, 0]);
                h.extend_from_slice(&s.octets());
                h.extend_from_slice(&d.octets());
                let sum = checksum(&h);
                h[10..12].copy_from_slice(&sum.to_be_bytes());
                f.extend_from_slice(&h);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f.extend_from_slice(&[0x86, 0xdd]);
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
                f.extend_from_slice(&[6, 64]);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
            }
            _ => panic!("mixed address families"),
        }
        f.extend_from_slice(&tcp);
        f
    }
}

/// What a frame carrying a TCP segment says, with its checksums checked.
#[derive(Debug)]
pub struct Parsed {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub vlan: Option<u16>,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL or hop limit.
    pub ttl: u8,
    /// IPv4 only: header checksum verifies, DF set, id 0.
    pub ip_ok: bool,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub options: Vec<u8>,
    pub tcp_checksum_ok: bool,
    /// Bytes after the TCP header.
    pub payload: usize,
}

impl Parsed {
    /// The options as (kind, data) pairs, NOPs left out.
    pub fn option_list(&self) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.options.len() {
            match self.options[i] {
                0 => break,
                1 => i += 1,
                kind => {
                    let len = self.options[i + 1] as usize;
                    out.push((kind, self.options[i + 2..i + len].to_vec()));
                    i += len;
                }
            }
        }
        out
    }

    pub fn option(&self, kind: u8) -> Option<Vec<u8>> {
        self.option_list()
            .into_iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, d)| d)
    }
}

pub fn parse(f: &[u8]) -> Parsed {
    let mut off = 12;
    let mut vlan = None;
    if f[12..14] == [0x81, 0x00] {
        vlan = Some(u16::from_be_bytes([f[14], f[15]]));
        off += 4;
    }
    let ethertype = u16::from_be_bytes([f[off], f[off + 1]]);
    off += 2;
    let (src, dst, ttl, ip_ok, l4) = match ethertype {
        0x0800 => {
            let h = &f[off..off + 20];
            let total = u16::from_be_bytes([h[2], h[3]]) as usize;
            assert_eq!(off + total, f.len(), "IPv4 total length matches the frame");
            let s: [u8; 4] = h[12..16].try_into().unwrap();
            let d: [u8; 4] = h[16..20].try_into().unwrap();
            let ok = checksum(h) == 0 && h[6..8] == [0x40, 0] && h[4..6] == [0, 0] && h[0] == 0x45;
            (IpAddr::from(s), IpAddr::from(d), h[8], ok, off + 20)
        }
        0x86dd => {
            let h = &f[off..off + 40];
            let payload = u16::from_be_bytes([h[4], h[5]]) as usize;
            assert_eq!(
                off + 40 + payload,
                f.len(),
                "IPv6 payload length matches the frame"
            );
            assert_eq!(h[6], 6, "next header TCP");
            let s: [u8; 16] = h[8..24].try_into().unwrap();
            let d: [u8; 16] = h[24..40].try_into().unwrap();
            (IpAddr::from(s), IpAddr::from(d), h[7], true, off + 40)
        }
        other => panic!("ethertype {other:#x}"),
    };
    let t = &f[l4..];
    let doff = (t[12] >> 4) as usize * 4;
    Parsed {
        dst_mac: f[0..6].try_into().unwrap(),
        src_mac: f[6..12].try_into().unwrap(),
        vlan,
        src,
        dst,
        ttl,
        ip_ok,
        sport: u16::from_be_bytes([t[0], t[1]]),
        dport: u16::from_be_bytes([t[2], t[3]]),
        seq: u32::from_be_bytes(t[4..8].try_into().unwrap()),
        ack: u32::from_be_bytes(t[8..12].try_into().unwrap()),
        flags: t[13],
        window: u16::from_be_bytes([t[14], t[15]]),
        options: t[20..doff].to_vec(),
        tcp_checksum_ok: tcp_checksum(src, dst, t) == 0,
        payload: t.len() - doff,
    }
}

/// Writes the right TCP checksum into an Ethernet + IPv4 (no options, no
/// VLAN tag) frame carrying TCP; anything else is left as it is.
/// (`packet::Frame` leaves it zero, which the kernel counts as an error
/// and drops: a SYN flood made of such frames never reaches a listener.)
pub fn fix_tcp_checksum(frame: &mut [u8]) {
    if frame.len() < 54 || frame[12..14] != [0x08, 0x00] || frame[14] != 0x45 || frame[23] != 6 {
        return;
    }
    let total = u16::from_be_bytes([frame[16], frame[17]]) as usize;
    let end = (14 + total).min(frame.len());
    let src: [u8; 4] = frame[26..30].try_into().unwrap();
    let dst: [u8; 4] = frame[30..34].try_into().unwrap();
    frame[50..52].copy_from_slice(&[0, 0]);
    let sum = tcp_checksum(src.into(), dst.into(), &frame[34..end]);
    frame[50..52].copy_from_slice(&sum.to_be_bytes());
}

/// The TCP checksum of `tcp` (checksum field included as it is): 0 over a
/// segment whose checksum is right.
pub fn tcp_checksum(src: IpAddr, dst: IpAddr, tcp: &[u8]) -> u16 {
    let mut pseudo = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, 6]);
            pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&(tcp.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 6]);
        }
        _ => panic!("mixed address families"),
    }
    pseudo.extend_from_slice(tcp);
    checksum(&pseudo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_get_their_tcp_checksum() {
        let mut f = crate::packet::Frame::v4("198.18.9.9", "198.18.0.1")
            .tcp_syn()
            .payload(6)
            .build();
        assert!(!parse(&f).tcp_checksum_ok, "packet::Frame leaves it zero");
        fix_tcp_checksum(&mut f);
        assert!(parse(&f).tcp_checksum_ok);
    }

    #[test]
    fn built_segments_parse_back_with_good_checksums() {
        for (s, d) in [("198.18.0.2", "198.18.0.1"), ("fd72::2", "fd72::1")] {
            let mut seg = Segment::new(s, d, 40000, 443);
            seg.seq = 7;
            seg.options = linux_syn_options(1460, 99);
            seg.vlan = Some(5);
            let f = seg.build();
            let p = parse(&f);
            assert!(p.tcp_checksum_ok);
            if p.src.is_ipv4() {
                assert_eq!(
                    checksum(&f[18..38]),
                    0,
                    "IPv4 header checksum (behind the tag)"
                );
            }
            assert_eq!(
                (p.sport, p.dport, p.seq, p.flags, p.vlan),
                (40000, 443, 7, SYN, Some(5))
            );
            assert_eq!(p.option(2), Some(vec![0x05, 0xb4]));
            assert_eq!(p.option(3), Some(vec![7]));
            assert_eq!(p.option(4), Some(vec![]));
        }
    }
}
