//! Frame builder for fixtures and the traffic generator.
//!
//! ```
//! use tests::packet::Frame;
//! let syn = Frame::v4("198.18.0.1", "198.18.0.2").vlan(0x8100, 7).tcp_syn().build();
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

pub const TCP_SYN: u8 = 0x02;
pub const TCP_ACK: u8 = 0x10;

#[derive(Clone, Debug)]
enum L3 {
    V4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        options: Vec<u8>,
        frag_offset: u16,
        more_fragments: bool,
    },
    V6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        ext: Vec<Ext>,
    },
    Raw {
        ethertype: u16,
        body: Vec<u8>,
    },
}

/// IPv6 extension headers.
#[derive(Clone, Copy, Debug)]
pub enum Ext {
    HopByHop,
    Routing,
    DestOpts,
    /// Fragment header with this offset (in 8-octet units).
    Fragment(u16),
    Auth,
}

#[derive(Clone, Copy, Debug)]
enum L4 {
    Tcp(u8),
    Udp,
    Icmp,
}

#[derive(Clone, Debug)]
pub struct Frame {
    vlans: Vec<(u16, u16)>,
    l3: L3,
    l4: L4,
    payload: usize,
}

impl Frame {
    pub fn v4(src: &str, dst: &str) -> Frame {
        Frame {
            vlans: vec![],
            l3: L3::V4 {
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                options: vec![],
                frag_offset: 0,
                more_fragments: false,
            },
            l4: L4::Udp,
            payload: 18,
        }
    }

    pub fn v6(src: &str, dst: &str) -> Frame {
        Frame {
            vlans: vec![],
            l3: L3::V6 {
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                ext: vec![],
            },
            l4: L4::Udp,
            payload: 18,
        }
    }

    /// A non-IP frame (ARP, LLDP, ...) with `len` bytes of body.
    pub fn raw(ethertype: u16, len: usize) -> Frame {
        Frame {
            vlans: vec![],
            l3: L3::Raw {
                ethertype,
                body: vec![0xab; len],
            },
            l4: L4::Udp,
            payload: 0,
        }
    }

    pub fn vlan(mut self, tpid: u16, vid: u16) -> Frame {
        self.vlans.push((tpid, vid));
        self
    }

    pub fn tcp(mut self, flags: u8) -> Frame {
        self.l4 = L4::Tcp(flags);
        self
    }

    pub fn tcp_syn(self) -> Frame {
        self.tcp(TCP_SYN)
    }

    pub fn udp(mut self) -> Frame {
        self.l4 = L4::Udp;
        self
    }

    pub fn icmp(mut self) -> Frame {
        self.l4 = L4::Icmp;
        self
    }

    pub fn payload(mut self, len: usize) -> Frame {
        self.payload = len;
        self
    }

    /// IPv4 options (padded to a multiple of 4 with end-of-options).
    pub fn ipv4_options(mut self, opts: &[u8]) -> Frame {
        if let L3::V4 { options, .. } = &mut self.l3 {
            *options = opts.to_vec();
            while options.len() % 4 != 0 {
                options.push(0);
            }
        }
        self
    }

    /// IPv4 fragment: `offset` in 8-octet units, and the more-fragments bit.
    pub fn fragment(mut self, offset: u16, more: bool) -> Frame {
        if let L3::V4 {
            frag_offset,
            more_fragments,
            ..
        } = &mut self.l3
        {
            *frag_offset = offset;
            *more_fragments = more;
        }
        self
    }

    pub fn ext(mut self, e: Ext) -> Frame {
        if let L3::V6 { ext, .. } = &mut self.l3 {
            ext.push(e);
        }
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let mut f = Vec::with_capacity(128);
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]); // dst MAC (locally administered)
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]); // src MAC
        let ethertype = match &self.l3 {
            L3::V4 { .. } => 0x0800,
            L3::V6 { .. } => 0x86DD,
            L3::Raw { ethertype, .. } => *ethertype,
        };
        for (tpid, vid) in &self.vlans {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&vid.to_be_bytes());
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        let (proto, l4) = self.l4_bytes();
        match &self.l3 {
            L3::Raw { body, .. } => f.extend_from_slice(body),
            L3::V4 {
                src,
                dst,
                options,
                frag_offset,
                more_fragments,
            } => {
                let hdr_len = 20 + options.len();
                let total = hdr_len + l4.len();
                let mut h = vec![0u8; 20];
                h[0] = 0x40 | (hdr_len / 4) as u8;
                h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
                h[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
                let frag = (*frag_offset & 0x1fff) | if *more_fragments { 0x2000 } else { 0 };
                h[6..8].copy_from_slice(&frag.to_be_bytes());
                h[8] = 64;
                h[9] = proto;
                h[12..16].copy_from_slice(&src.octets());
                h[16..20].copy_from_slice(&dst.octets());
                h.extend_from_slice(options);
                let sum = checksum(&h);
                h[10..12].copy_from_slice(&sum.to_be_bytes());
                f.extend_from_slice(&h);
                f.extend_from_slice(&l4);
            }
            L3::V6 { src, dst, ext } => {
                let mut exts = Vec::new();
                let mut kinds: Vec<u8> = ext.iter().map(ext_number).collect();
                kinds.push(proto);
                for (i, e) in ext.iter().enumerate() {
                    let next = kinds[i + 1];
                    match e {
                        Ext::HopByHop | Ext::Routing | Ext::DestOpts => {
                            // 16 bytes: hdr ext len = 1 (units of 8 octets, minus one), PadN filler.
                            let mut b = vec![next, 1, 1, 12];
                            b.resize(16, 0);
                            exts.extend_from_slice(&b);
                        }
                        Ext::Fragment(offset) => {
                            let mut b = vec![next, 0];
                            b.extend_from_slice(&(offset << 3).to_be_bytes());
                            b.extend_from_slice(&0xdeadbeefu32.to_be_bytes());
                            exts.extend_from_slice(&b);
                        }
                        Ext::Auth => {
                            // 16 bytes: payload len = 16/4 - 2 = 2.
                            let mut b = vec![next, 2, 0, 0];
                            b.resize(16, 0x5a);
                            exts.extend_from_slice(&b);
                        }
                    }
                }
                let payload_len = exts.len() + l4.len();
                let mut h = vec![0u8; 40];
                h[0] = 0x60;
                h[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
                h[6] = kinds[0];
                h[7] = 64;
                h[8..24].copy_from_slice(&src.octets());
                h[24..40].copy_from_slice(&dst.octets());
                f.extend_from_slice(&h);
                f.extend_from_slice(&exts);
                f.extend_from_slice(&l4);
            }
        }
        f
    }

    fn l4_bytes(&self) -> (u8, Vec<u8>) {
        let v6 = matches!(self.l3, L3::V6 { .. });
        let mut b = match self.l4 {
            L4::Tcp(flags) => {
                let mut t = vec![0u8; 20];
                t[0..2].copy_from_slice(&40000u16.to_be_bytes());
                t[2..4].copy_from_slice(&80u16.to_be_bytes());
                t[12] = 5 << 4;
                t[13] = flags;
                t[14..16].copy_from_slice(&65535u16.to_be_bytes());
                t
            }
            L4::Udp => {
                let mut u = vec![0u8; 8];
                u[0..2].copy_from_slice(&40000u16.to_be_bytes());
                u[2..4].copy_from_slice(&9u16.to_be_bytes());
                u[4..6].copy_from_slice(&((8 + self.payload) as u16).to_be_bytes());
                u
            }
            L4::Icmp => vec![if v6 { 128 } else { 8 }, 0, 0, 0, 0, 1, 0, 1],
        };
        b.resize(b.len() + self.payload, 0x42);
        let proto = match self.l4 {
            L4::Tcp(_) => 6,
            L4::Udp => 17,
            L4::Icmp if v6 => 58,
            L4::Icmp => 1,
        };
        (proto, b)
    }
}

fn ext_number(e: &Ext) -> u8 {
    match e {
        Ext::HopByHop => 0,
        Ext::Routing => 43,
        Ext::DestOpts => 60,
        Ext::Fragment(_) => 44,
        Ext::Auth => 51,
    }
}

/// The Internet checksum (RFC 1071).
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum = 0u32;
    for chunk in bytes.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += word as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_checksums_to_zero() {
        let f = Frame::v4("198.18.0.1", "198.18.0.2")
            .ipv4_options(&[1, 1, 1])
            .build();
        assert_eq!(checksum(&f[14..14 + 24]), 0);
        assert_eq!(f[14] & 0x0f, 6);
    }

    #[test]
    fn vlan_tags_sit_before_the_ethertype() {
        let f = Frame::v6("fd00::1", "fd00::2")
            .vlan(0x88a8, 1)
            .vlan(0x8100, 2)
            .build();
        assert_eq!(&f[12..14], &[0x88, 0xa8]);
        assert_eq!(&f[16..18], &[0x81, 0x00]);
        assert_eq!(&f[20..22], &[0x86, 0xdd]);
    }
}
