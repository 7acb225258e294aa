//! Well-formed Ethernet frames, to seed the `xdp` corpus (`cargo run
//! --example seeds` in `fuzz/`) and to test the models. The fuzzer mutates
//! them into everything else.

use std::net::Ipv6Addr;

#[derive(Clone, Debug)]
enum L3 {
    V4 {
        src: [u8; 4],
        options: usize,
        fragment: u16,
    },
    V6 {
        src: Ipv6Addr,
        /// Extension header numbers, in order.
        ext: Vec<u8>,
    },
    Raw(u16),
}

/// A frame under construction.
#[derive(Clone, Debug)]
pub struct Frame {
    tags: Vec<u16>,
    l3: L3,
    /// (IP protocol, TCP flags when TCP).
    l4: (u8, u8),
    payload: usize,
}

impl Frame {
    pub fn v4(src: [u8; 4]) -> Frame {
        Frame::with(L3::V4 {
            src,
            options: 0,
            fragment: 0,
        })
    }

    pub fn v6(src: Ipv6Addr) -> Frame {
        Frame::with(L3::V6 { src, ext: vec![] })
    }

    /// A non-IP frame (ARP, LLDP, ...).
    pub fn raw(ethertype: u16) -> Frame {
        Frame::with(L3::Raw(ethertype))
    }

    fn with(l3: L3) -> Frame {
        Frame {
            tags: vec![],
            l3,
            l4: (17, 0),
            payload: 16,
        }
    }

    /// A VLAN tag with this TPID (0x8100 or 0x88a8), outermost first.
    pub fn vlan(mut self, tpid: u16) -> Frame {
        self.tags.push(tpid);
        self
    }

    pub fn tcp(mut self, flags: u8) -> Frame {
        self.l4 = (6, flags);
        self
    }

    pub fn icmp(mut self) -> Frame {
        self.l4 = (
            if matches!(self.l3, L3::V6 { .. }) {
                58
            } else {
                1
            },
            0,
        );
        self
    }

    pub fn payload(mut self, len: usize) -> Frame {
        self.payload = len;
        self
    }

    /// IPv4 options: `words` 4-byte words of no-ops.
    pub fn options(mut self, words: usize) -> Frame {
        if let L3::V4 { options, .. } = &mut self.l3 {
            *options = words;
        }
        self
    }

    /// IPv4 fragment offset (8-octet units), more-fragments set.
    pub fn fragment(mut self, offset: u16) -> Frame {
        if let L3::V4 { fragment, .. } = &mut self.l3 {
            *fragment = 0x2000 | (offset & 0x1fff);
        }
        self
    }

    /// An IPv6 extension header: 0, 43, 60 (16 bytes), 51 (AH, 16 bytes) or
    /// 44 (fragment; offset 0 unless [`Frame::v6_fragment`] is used).
    pub fn ext(mut self, kind: u8) -> Frame {
        if let L3::V6 { ext, .. } = &mut self.l3 {
            ext.push(kind);
        }
        self
    }

    /// A non-first IPv6 fragment (offset 185 units): marked by kind 0xff internally.
    pub fn v6_fragment(self) -> Frame {
        self.ext(0xff)
    }

    pub fn build(&self) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
        for tpid in &self.tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&7u16.to_be_bytes());
        }
        let l4 = self.l4_bytes();
        match &self.l3 {
            L3::Raw(ethertype) => {
                f.extend_from_slice(&ethertype.to_be_bytes());
                f.extend(std::iter::repeat_n(0xab, 28));
            }
            L3::V4 {
                src,
                options,
                fragment,
            } => {
                f.extend_from_slice(&0x0800u16.to_be_bytes());
                let header_len = 20 + options * 4;
                let total = header_len + l4.len();
                let mut h = vec![0u8; header_len];
                h[0] = 0x40 | (header_len / 4) as u8;
                h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
                h[6..8].copy_from_slice(&fragment.to_be_bytes());
                h[8] = 64;
                h[9] = self.l4.0;
                h[12..16].copy_from_slice(src);
                h[16..20].copy_from_slice(&[198, 18, 0, 2]);
                for b in &mut h[20..] {
                    *b = 1; // no-op option
                }
                f.extend_from_slice(&h);
                f.extend_from_slice(&l4);
            }
            L3::V6 { src, ext } => {
                f.extend_from_slice(&0x86ddu16.to_be_bytes());
                let kinds: Vec<u8> = ext
                    .iter()
                    .map(|k| if *k == 0xff { 44 } else { *k })
                    .chain([self.l4.0])
                    .collect();
                let mut exts = Vec::new();
                for (i, k) in ext.iter().enumerate() {
                    let next = kinds[i + 1];
                    match k {
                        44 => exts.extend_from_slice(&[next, 0, 0, 0, 0, 0, 0, 1]),
                        0xff => exts.extend_from_slice(&[next, 0, 0x05, 0xc8, 0, 0, 0, 1]),
                        51 => {
                            exts.extend_from_slice(&[next, 2]);
                            exts.extend(std::iter::repeat_n(0x5a, 14));
                        }
                        _ => {
                            exts.extend_from_slice(&[next, 1, 1, 12]);
                            exts.extend(std::iter::repeat_n(0, 12));
                        }
                    }
                }
                let mut h = vec![0u8; 40];
                h[0] = 0x60;
                h[4..6].copy_from_slice(&((exts.len() + l4.len()) as u16).to_be_bytes());
                h[6] = kinds[0];
                h[7] = 64;
                h[8..24].copy_from_slice(&src.octets());
                h[24..40].copy_from_slice(&Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2).octets());
                f.extend_from_slice(&h);
                f.extend_from_slice(&exts);
                f.extend_from_slice(&l4);
            }
        }
        f
    }

    fn l4_bytes(&self) -> Vec<u8> {
        let mut b = match self.l4 {
            (6, flags) => {
                let mut t = vec![0u8; 20];
                t[0..2].copy_from_slice(&40000u16.to_be_bytes());
                t[2..4].copy_from_slice(&443u16.to_be_bytes());
                t[12] = 5 << 4;
                t[13] = flags;
                t
            }
            (17, _) => {
                let mut u = vec![0u8; 8];
                u[0..2].copy_from_slice(&40000u16.to_be_bytes());
                u[2..4].copy_from_slice(&53u16.to_be_bytes());
                u[4..6].copy_from_slice(&((8 + self.payload) as u16).to_be_bytes());
                u
            }
            (proto, _) => vec![if proto == 58 { 128 } else { 8 }, 0, 0, 0, 0, 1, 0, 1],
        };
        b.extend(std::iter::repeat_n(0x42, self.payload));
        b
    }
}
