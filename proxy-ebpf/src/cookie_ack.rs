//! SYN cookies, tc side (the `rampart_ack` program on ingress): an ACK to
//! a protected port whose acknowledgement number is a cookie we sent gets
//! a request socket from the kernel (`kfunc::sk_assign_tcp_reqsk`), built
//! with the options the cookie carries, and the kernel completes the
//! connection into the listener's accept queue as if it had answered the
//! SYN itself. Everything else goes on untouched.
//!
//! It costs a clock read and two array lookups per packet while no cookie
//! was sent in the last two periods, and a SipHash for each ACK to a
//! protected port while some may be outstanding. XDP cannot do this part:
//! request sockets can only be attached to an skb, at tc ingress.

use aya_ebpf::{
    EbpfContext,
    bindings::{TC_ACT_OK, bpf_sock_tuple},
    helpers::{bpf_ktime_get_ns, bpf_sk_release, bpf_skc_lookup_tcp, bpf_skc_to_tcp_sock},
    programs::TcContext,
};
use proxy_common::{
    cookie::{self, NO_WSCALE, Negotiated},
    syncookie::{MODE_OFF, STAT_ACCEPTED, STAT_REFUSED, port_word},
};

use crate::{
    kfunc::{self, ReqAttrs},
    maps::{SYN_COOKIE, SYN_PORTS, SYN_STATE},
    segment::{self, Pkt, Segment, TCP_ACK, TCP_RST, TCP_SYN},
    syncookie::count,
    tcpopt::{self, Options},
};

/// `TCX_NEXT` / `TC_ACT_UNSPEC`: not ours, on to the next program.
const NEXT: i32 = -1;
/// `bpf_sock.state` of a listening socket.
const BPF_TCP_LISTEN: u32 = 10;
/// Bytes to make linear when the headers are not: Ethernet, a VLAN tag,
/// IPv6 and the longest TCP header.
const HEADERS: u32 = 14 + 4 + 40 + 60;

#[inline(always)]
pub fn ack(ctx: &TcContext) -> i32 {
    let (Some(cfg), Some(st)) = (SYN_COOKIE.get(0), SYN_STATE.get(0)) else {
        return NEXT;
    };
    if cfg.mode == MODE_OFF || st.last_cookie_ns == 0 {
        return NEXT;
    }
    // SAFETY: a helper with no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if now > st.last_cookie_ns + cookie::VALID_NS {
        return NEXT;
    }
    let mut seg = Segment::new();
    if !segment::locate(&Pkt::tc(ctx), &mut seg) {
        // Headers outside the linear part of the skb: pull them in once.
        if ctx.len() as usize <= Pkt::tc(ctx).len()
            || ctx.pull_data(HEADERS.min(ctx.len())).is_err()
        {
            return NEXT;
        }
        if !segment::locate(&Pkt::tc(ctx), &mut seg) {
            return NEXT;
        }
    }
    if seg.flags & (TCP_ACK | TCP_SYN | TCP_RST) != TCP_ACK {
        return NEXT;
    }
    let (word, bit) = port_word(seg.dport);
    if SYN_PORTS.get(word).is_none_or(|w| *w & bit == 0) {
        return NEXT;
    }
    let p = Pkt::tc(ctx);
    let mut tuple = Tuple::new();
    let Some(bits) = validate(cfg.key, &p, &seg, now, &mut tuple) else {
        return NEXT;
    };
    let n = Negotiated::from_bits(bits);
    let mut o = Options::new();
    tcpopt::read(&p, &seg, &mut o);
    let mut attrs = ReqAttrs {
        rcv_tsval: 0,
        rcv_tsecr: 0,
        mss: cookie::mss_value(seg.v6, n.mss_index),
        rcv_wscale: 0,
        snd_wscale: 0,
        ecn_ok: n.ecn as u8,
        wscale_ok: 0,
        sack_ok: n.sack as u8,
        tstamp_ok: 0,
        usec_ts_ok: 0,
        reserved: [0; 3],
    };
    if n.wscale != NO_WSCALE {
        attrs.wscale_ok = 1;
        attrs.snd_wscale = n.wscale as u8;
        attrs.rcv_wscale = cfg.rcv_wscale;
    }
    if o.ts != 0 {
        attrs.tstamp_ok = 1;
        attrs.rcv_tsval = o.tsval;
        attrs.rcv_tsecr = o.tsecr;
    }
    // SAFETY: the tuple is initialised for `tuple.size` bytes; the socket
    // the lookup returns is released on every path below.
    unsafe {
        let skc = bpf_skc_lookup_tcp(ctx.as_ptr(), &mut tuple.t, tuple.size, u64::MAX, 0);
        if skc.is_null() {
            return NEXT;
        }
        let mut verdict = NEXT;
        if (*skc).state == BPF_TCP_LISTEN {
            let sk = bpf_skc_to_tcp_sock(skc.cast());
            if !sk.is_null() {
                if kfunc::sk_assign_tcp_reqsk(ctx.skb.skb, sk, &mut attrs) == 0 {
                    count(STAT_ACCEPTED);
                    verdict = TC_ACT_OK as i32;
                } else {
                    count(STAT_REFUSED);
                }
            }
        }
        bpf_sk_release(skc.cast());
        verdict
    }
}

/// A socket lookup key and its size (IPv4 or IPv6 part of the union).
struct Tuple {
    t: bpf_sock_tuple,
    size: u32,
}

impl Tuple {
    #[inline(always)]
    fn new() -> Tuple {
        Tuple {
            // SAFETY: an all-zero tuple is a valid value of this C union.
            t: unsafe { core::mem::zeroed() },
            size: 0,
        }
    }
}

/// The option bits of the cookie this ACK carries, if it is one we made;
/// fills in `tuple` for the socket lookup on the way.
#[inline(always)]
fn validate(key: [u64; 2], p: &Pkt, seg: &Segment, now: u64, tuple: &mut Tuple) -> Option<u32> {
    let cookie = seg.ack.wrapping_sub(1);
    let isn = seg.seq.wrapping_sub(1);
    if seg.v6 {
        let a = p.ptr::<[u8; 32]>(seg.l3 + 8)?;
        // SAFETY: `ptr` checked the addresses are in the frame.
        let a = unsafe { *a };
        let mut s = [0u8; 16];
        let mut d = [0u8; 16];
        s.copy_from_slice(&a[..16]);
        d.copy_from_slice(&a[16..]);
        let flow = cookie::flow_v6(s, d, seg.sport, seg.dport, isn);
        let bits = cookie::check(key, flow, now, cookie)?;
        let w = |b: &[u8; 16], i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        // SAFETY: writing the IPv6 part of the union.
        unsafe {
            let t = &mut tuple.t.__bindgen_anon_1.ipv6;
            t.saddr = [w(&s, 0), w(&s, 4), w(&s, 8), w(&s, 12)];
            t.daddr = [w(&d, 0), w(&d, 4), w(&d, 8), w(&d, 12)];
            t.sport = seg.sport.to_be();
            t.dport = seg.dport.to_be();
        }
        tuple.size = 36;
        Some(bits)
    } else {
        let a = p.ptr::<[u8; 8]>(seg.l3 + 12)?;
        // SAFETY: as above.
        let a = unsafe { *a };
        let (s, d) = ([a[0], a[1], a[2], a[3]], [a[4], a[5], a[6], a[7]]);
        let flow = cookie::flow_v4(s, d, seg.sport, seg.dport, isn);
        let bits = cookie::check(key, flow, now, cookie)?;
        // SAFETY: writing the IPv4 part of the union.
        unsafe {
            let t = &mut tuple.t.__bindgen_anon_1.ipv4;
            t.saddr = u32::from_ne_bytes(s);
            t.daddr = u32::from_ne_bytes(d);
            t.sport = seg.sport.to_be();
            t.dport = seg.dport.to_be();
        }
        tuple.size = 12;
        Some(bits)
    }
}
