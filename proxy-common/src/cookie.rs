//! The SYN cookie itself: what the XDP program puts in the sequence number
//! of the SYN-ACK it sends, and what the tc program checks in the client's
//! ACK before asking the kernel for a socket (docs/kernel-tier.md, "SYN
//! cookies"). Pure arithmetic, shared by both programs and by the tests that
//! check them from userspace.
//!
//! ```text
//!  31                                  9   8   7  6   5     4    3     0
//! +-------------------------------------+---+------+-----+------+-------+
//! | SipHash-2-4(key; flow, period, low) | p | MSS  | ECN | SACK | WScale|
//! |            top 23 bits              |   | index|     |      | (15 = none)
//! +-------------------------------------+---+------+-----+------+-------+
//! ```
//!
//! - `flow` is the client and server addresses and ports and the client's
//!   initial sequence number, so a cookie is good for one handshake only.
//! - `period` is `now >> PERIOD_SHIFT` (about 69 s); `p` is its low bit, so
//!   the checker knows which of the last two periods made the cookie and
//!   hashes once: a cookie is accepted for 69 to 137 s after it was sent.
//! - The low 9 bits (`low`) are hashed too: changing the options a cookie
//!   carries breaks it.
//!
//! 23 bits of hash: a random ACK is accepted with probability 2^-23, as
//! strong as the kernel's own cookies (24 bits, 4 MSS values, 2 periods).

/// `now_ns >> PERIOD_SHIFT` numbers the cookie periods (2^36 ns = 68.7 s).
pub const PERIOD_SHIFT: u32 = 36;
/// How long after the last cookie was sent an ACK may still carry one.
pub const VALID_NS: u64 = 2 << PERIOD_SHIFT;

/// The low 9 bits: period parity and options.
const LOW_BITS: u32 = 9;
const LOW_MASK: u32 = (1 << LOW_BITS) - 1;
const PARITY: u32 = 1 << 8;
const MSS_SHIFT: u32 = 6;
const ECN: u32 = 1 << 5;
const SACK: u32 = 1 << 4;
/// Window scale field value meaning "the SYN carried no window scale".
pub const NO_WSCALE: u32 = 0xf;
/// The largest window scale TCP allows (RFC 7323).
pub const MAX_WSCALE: u32 = 14;

/// MSS values a cookie can carry (the kernel's `msstab`): the client's MSS
/// is rounded down to one of these.
pub const MSS_V4: [u16; 4] = [536, 1300, 1440, 1460];
/// IPv6: 1280 - 60, 1480 - 60, 1500 - 60, 9000 - 60 (the kernel's `msstab` for IPv6).
pub const MSS_V6: [u16; 4] = [1220, 1420, 1440, 8940];

/// The MSS a client that sent no MSS option gets (RFC 9293: 536 for IPv4,
/// RFC 8200: 1220 for IPv6).
pub const fn default_mss(v6: bool) -> u16 {
    if v6 { MSS_V6[0] } else { MSS_V4[0] }
}

/// Index of the largest table MSS not above `mss` (0 if all are above).
#[inline(always)]
pub fn mss_index(v6: bool, mss: u16) -> u32 {
    let t = if v6 { &MSS_V6 } else { &MSS_V4 };
    let mut i = 0;
    if mss >= t[1] {
        i = 1;
    }
    if mss >= t[2] {
        i = 2;
    }
    if mss >= t[3] {
        i = 3;
    }
    i
}

/// The MSS of table entry `index` (0-3): by comparisons, not by indexing
/// (LLVM turns an index into a stack table into pointer arithmetic the BPF
/// verifier refuses).
#[inline(always)]
pub fn mss_value(v6: bool, index: u32) -> u16 {
    let t = if v6 { MSS_V6 } else { MSS_V4 };
    if index == 0 {
        t[0]
    } else if index == 1 {
        t[1]
    } else if index == 2 {
        t[2]
    } else {
        t[3]
    }
}

/// What a handshake negotiated, as carried in the cookie's low 8 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Index into [`MSS_V4`] / [`MSS_V6`].
    pub mss_index: u32,
    /// The client's window scale (0-14), or [`NO_WSCALE`].
    pub wscale: u32,
    pub sack: bool,
    pub ecn: bool,
}

impl Negotiated {
    /// The 8 option bits.
    #[inline(always)]
    pub fn bits(&self) -> u32 {
        let ws = if self.wscale > MAX_WSCALE && self.wscale != NO_WSCALE {
            MAX_WSCALE
        } else {
            self.wscale
        };
        (self.mss_index & 3) << MSS_SHIFT
            | if self.ecn { ECN } else { 0 }
            | if self.sack { SACK } else { 0 }
            | ws
    }

    /// Reads the option bits of a cookie (or of [`Negotiated::bits`]).
    #[inline(always)]
    pub fn from_bits(bits: u32) -> Negotiated {
        Negotiated {
            mss_index: (bits >> MSS_SHIFT) & 3,
            wscale: bits & 0xf,
            sack: bits & SACK != 0,
            ecn: bits & ECN != 0,
        }
    }
}

/// The hashed words that name one handshake, IPv4: addresses, ports and the
/// client's initial sequence number, each as the big-endian number the
/// packet carries.
#[inline(always)]
pub fn flow_v4(
    saddr: [u8; 4],
    daddr: [u8; 4],
    sport: u16,
    dport: u16,
    client_isn: u32,
) -> [u64; 2] {
    [
        (u32::from_be_bytes(saddr) as u64) << 32 | u32::from_be_bytes(daddr) as u64,
        ports_isn(sport, dport, client_isn),
    ]
}

/// As [`flow_v4`], for IPv6.
#[inline(always)]
pub fn flow_v6(
    saddr: [u8; 16],
    daddr: [u8; 16],
    sport: u16,
    dport: u16,
    client_isn: u32,
) -> [u64; 5] {
    let w = |b: &[u8; 16], i: usize| {
        u64::from_be_bytes([
            b[i],
            b[i + 1],
            b[i + 2],
            b[i + 3],
            b[i + 4],
            b[i + 5],
            b[i + 6],
            b[i + 7],
        ])
    };
    [
        w(&saddr, 0),
        w(&saddr, 8),
        w(&daddr, 0),
        w(&daddr, 8),
        ports_isn(sport, dport, client_isn),
    ]
}

#[inline(always)]
fn ports_isn(sport: u16, dport: u16, client_isn: u32) -> u64 {
    (sport as u64) << 48 | (dport as u64) << 32 | client_isn as u64
}

/// The cookie for a handshake `flow` at `now_ns` carrying `options`
/// ([`Negotiated::bits`]), and a timestamp value for the SYN-ACK derived
/// from the same hash (never 0).
#[inline(always)]
pub fn make<const N: usize>(
    key: [u64; 2],
    flow: [u64; N],
    now_ns: u64,
    options: u32,
) -> (u32, u32) {
    let period = now_ns >> PERIOD_SHIFT;
    let low = ((period as u32 & 1) << 8) | (options & 0xff);
    let h = siphash24(key, flow, period << LOW_BITS | low as u64);
    (((h >> 32) as u32 & !LOW_MASK) | low, h as u32 | 1)
}

/// Checks `cookie` (the client's ACK number minus one) for `flow` at
/// `now_ns`: returns its option bits if it was made by [`make`] with this
/// key in the current or the previous period.
#[inline(always)]
pub fn check<const N: usize>(
    key: [u64; 2],
    flow: [u64; N],
    now_ns: u64,
    cookie: u32,
) -> Option<u32> {
    let low = cookie & LOW_MASK;
    let mut period = now_ns >> PERIOD_SHIFT;
    if (period as u32 & 1) != (low & PARITY) >> 8 {
        period = period.wrapping_sub(1);
    }
    let h = siphash24(key, flow, period << LOW_BITS | low as u64);
    if ((h >> 32) as u32 & !LOW_MASK) | low == cookie {
        Some(low & 0xff)
    } else {
        None
    }
}

/// SipHash-2-4 of the little-endian bytes of `words` followed by `last`
/// (`8 * (N + 1)` bytes), with the 128-bit `key`.
#[inline(always)]
pub fn siphash24<const N: usize>(key: [u64; 2], words: [u64; N], last: u64) -> u64 {
    let mut v = [
        key[0] ^ 0x736f_6d65_7073_6575,
        key[1] ^ 0x646f_7261_6e64_6f6d,
        key[0] ^ 0x6c79_6765_6e65_7261,
        key[1] ^ 0x7465_6462_7974_6573,
    ];
    for m in words {
        compress(&mut v, m);
    }
    compress(&mut v, last);
    // Final block: no bytes left over, the length (in bytes, mod 256) on top.
    compress(&mut v, (((N as u64 + 1) * 8) & 0xff) << 56);
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[inline(always)]
fn compress(v: &mut [u64; 4], m: u64) {
    v[3] ^= m;
    round(v);
    round(v);
    v[0] ^= m;
}

#[inline(always)]
fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

#[cfg(test)]
mod tests {
    use std::{hash::Hasher, vec, vec::Vec};

    use super::*;

    const KEY: [u64; 2] = [0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908];

    #[test]
    #[expect(
        deprecated,
        reason = "std's SipHasher is SipHash-2-4, the reference to check against"
    )]
    fn siphash_matches_the_reference() {
        // The paper's test key 00..0f; messages of 16 and 48 bytes.
        for words in [
            vec![0x0706_0504_0302_0100u64, 0x0f0e_0d0c_0b0a_0908],
            (0..6).collect(),
        ] {
            let mut bytes = Vec::new();
            for w in &words {
                bytes.extend_from_slice(&w.to_le_bytes());
            }
            let mut h = std::hash::SipHasher::new_with_keys(KEY[0], KEY[1]);
            h.write(&bytes);
            let want = h.finish();
            let got = match words.len() {
                2 => siphash24(KEY, [words[0]], words[1]),
                _ => siphash24(
                    KEY,
                    [words[0], words[1], words[2], words[3], words[4]],
                    words[5],
                ),
            };
            assert_eq!(got, want, "{} words", words.len());
        }
    }

    fn flow() -> [u64; 2] {
        flow_v4([198, 18, 0, 2], [198, 18, 0, 1], 40000, 443, 0x1234_5678)
    }

    #[test]
    fn a_cookie_checks_in_its_period_and_the_next_only() {
        let n = Negotiated {
            mss_index: 3,
            wscale: 7,
            sack: true,
            ecn: false,
        };
        let t0 = 5u64 << PERIOD_SHIFT;
        let (cookie, tsval) = make(KEY, flow(), t0 + 12345, n.bits());
        assert_ne!(tsval, 0);
        assert_eq!(check(KEY, flow(), t0 + 99, cookie), Some(n.bits()));
        assert_eq!(Negotiated::from_bits(n.bits()), n);
        let next = t0 + (1 << PERIOD_SHIFT) + 7;
        assert_eq!(check(KEY, flow(), next, cookie), Some(n.bits()));
        let later = t0 + (2 << PERIOD_SHIFT) + 7;
        assert_eq!(check(KEY, flow(), later, cookie), None, "two periods on");
    }

    #[test]
    fn any_change_breaks_a_cookie() {
        let now = 77u64 << PERIOD_SHIFT;
        let (cookie, _) = make(KEY, flow(), now, 0x4f);
        assert!(check(KEY, flow(), now, cookie).is_some());
        for bit in 0..32 {
            assert_eq!(
                check(KEY, flow(), now, cookie ^ (1 << bit)),
                None,
                "bit {bit}"
            );
        }
        let other = flow_v4([198, 18, 0, 3], [198, 18, 0, 1], 40000, 443, 0x1234_5678);
        assert_eq!(check(KEY, other, now, cookie), None);
        let isn = flow_v4([198, 18, 0, 2], [198, 18, 0, 1], 40000, 443, 0x1234_5679);
        assert_eq!(check(KEY, isn, now, cookie), None);
        assert_eq!(check([KEY[0], KEY[1] ^ 1], flow(), now, cookie), None);
    }

    #[test]
    fn random_acks_almost_never_pass() {
        let now = 3u64 << PERIOD_SHIFT;
        let mut x: u32 = 0x9e37_79b9;
        let mut passed = 0;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            passed += check(KEY, flow(), now, x).is_some() as u32;
        }
        // Expected 200,000 / 2^23 = 0.02.
        assert!(passed <= 1, "{passed} random cookies passed");
    }

    #[test]
    fn mss_rounds_down_to_the_table() {
        assert_eq!(mss_index(false, 1460), 3);
        assert_eq!(mss_index(false, 9000), 3);
        assert_eq!(mss_index(false, 1452), 2);
        assert_eq!(mss_index(false, 1400), 1);
        assert_eq!(mss_index(false, 100), 0);
        assert_eq!(mss_index(true, 1440), 2);
        assert_eq!(mss_index(true, 8960), 3);
        assert_eq!(default_mss(true), 1220);
        for i in 0..4 {
            assert_eq!(mss_value(false, i), MSS_V4[i as usize]);
            assert_eq!(mss_value(true, i), MSS_V6[i as usize]);
        }
    }

    #[test]
    fn option_bits_round_trip() {
        for ws in [0, 7, 14, NO_WSCALE] {
            for (sack, ecn) in [(false, false), (true, false), (false, true), (true, true)] {
                for mss_index in 0..4 {
                    let n = Negotiated {
                        mss_index,
                        wscale: ws,
                        sack,
                        ecn,
                    };
                    assert_eq!(Negotiated::from_bits(n.bits()), n);
                    assert!(n.bits() <= 0xff);
                }
            }
        }
        let clamped = Negotiated {
            mss_index: 0,
            wscale: 20,
            sack: false,
            ecn: false,
        };
        assert_eq!(Negotiated::from_bits(clamped.bits()).wscale, MAX_WSCALE);
    }
}
