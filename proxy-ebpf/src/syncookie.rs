//! SYN cookies, XDP side: which SYNs the program answers itself. Called for
//! every TCP SYN the rest of the program passed (lists, bans and per-source
//! limits come first; allowlisted sources are never answered here), so a
//! spoofed SYN flood on a protected port ends in XDP and never reaches a
//! listening socket, while the handshakes of real clients complete through
//! the tc program in `cookie_ack` (docs/kernel-tier.md, "SYN cookies").
//!
//! In `auto` mode each CPU counts the SYNs to protected ports it sees per
//! second; above its share of the threshold, cookies go on for every CPU
//! (`syn_state.attack_until_ns`) and stay on while any CPU stays above it,
//! plus `hold_ns`. Below it, SYNs reach the kernel as before: the threshold
//! bounds what a flood can put on a listener before cookies start.

use aya_ebpf::{
    EbpfContext,
    bindings::{bpf_sock_tuple, xdp_action},
    helpers::{bpf_ktime_get_ns, bpf_sk_release, bpf_skc_lookup_tcp},
    programs::XdpContext,
};
use proxy_common::{
    stats,
    syncookie::{
        MODE_AUTO, MODE_OFF, STAT_ATTACKS, STAT_NOT_LISTENING, STAT_OVER_BUDGET, STAT_UNANSWERED,
        SynCookieConfig, port_word,
    },
};

use crate::{
    budget,
    maps::{
        self, SYN_BUDGET, SYN_COOKIE, SYN_PORTS, SYN_SCRATCH, SYN_STATE, SYN_STATS, SYN_TAIL,
        SYN_WINDOW,
    },
    segment::{self, Pkt, Segment},
    synack,
};

const SECOND: u64 = 1_000_000_000;
/// `bpf_sock.state` of a listening socket.
const BPF_TCP_LISTEN: u32 = 10;

/// What [`after`] returns for a passed SYN while cookies may be on: not a
/// verdict (never counted) but "hand it to `rampart_syn`" (see [`hand_over`]).
pub const ASK: u32 = 0xff;

/// The verdict for a packet the rest of the program decided as `verdict`:
/// [`ASK`] for a passed SYN while SYN cookies are not off. `known`: the
/// source had its LRU entry; handed to `rampart_syn` in `syn_scratch`.
#[inline(always)]
pub fn after(verdict: u32, syn: bool, known: bool) -> u32 {
    if !syn || verdict != stats::PASS {
        return verdict;
    }
    match SYN_COOKIE.get(0) {
        Some(cfg) if cfg.mode != MODE_OFF => {
            if let Some(scratch) = SYN_SCRATCH.get_ptr_mut(0) {
                // SAFETY: this CPU's slot; the tail call that reads it runs
                // next on this CPU, before any other packet.
                unsafe { (*scratch).known = known as u32 };
            }
            ASK
        }
        _ => verdict,
    }
}

/// Whether `rampart` found the SYN's source in its LRU (see [`after`]).
#[inline(always)]
fn known_source() -> bool {
    // SAFETY: this CPU's slot, written by `after` for this packet.
    SYN_SCRATCH
        .get_ptr(0)
        .is_some_and(|s| unsafe { (*s).known } != 0)
}

/// `syn_tail` slots: the decision and the SYN-ACK builder.
pub const TAIL_DECIDE: u32 = 0;
pub const TAIL_ANSWER: u32 = 1;

/// Tail-calls `rampart_syn`, which decides and counts the SYN itself.
/// Returns only if that program is not there (then the SYN passes).
///
/// Separate programs because the verifier checks each once: inlined into
/// `rampart`, this was checked once per path through the lists and limits,
/// and the SYN-ACK builder once per path through the decision here, past
/// the verifier's budget both times.
#[inline(always)]
pub fn hand_over(ctx: &XdpContext) {
    // SAFETY: a tail call with our own context; on failure it returns.
    unsafe { SYN_TAIL.tail_call(ctx, TAIL_DECIDE) };
}

/// The `rampart_syn` program: decides whether the SYN gets a cookie. If
/// so it tail-calls `rampart_synack` (which counts it); else it passes it,
/// or drops it when the SYN-ACK budget is spent (verdict `syn_limited`).
#[inline(always)]
pub fn program(ctx: &XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    if let Some(cfg) = SYN_COOKIE.get(0)
        && cfg.mode != MODE_OFF
        && !on_syn(ctx, cfg)
    {
        maps::count(stats::SYN_LIMITED, len);
        return xdp_action::XDP_DROP;
    }
    maps::count(stats::PASS, len);
    xdp_action::XDP_PASS
}

/// Tail-calls the SYN-ACK builder for a SYN that gets a cookie; returns
/// true (the SYN passes) for one that does not, false (it is dropped) for
/// one that would but finds the SYN-ACK budget spent.
#[inline(always)]
fn on_syn(ctx: &XdpContext, cfg: &SynCookieConfig) -> bool {
    let p = Pkt::xdp(ctx);
    let mut seg = Segment::new();
    let shaped = segment::locate(&p, &mut seg);
    if shaped && !protected(seg.dport) {
        return true;
    }
    // SAFETY: a helper with no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if cfg.mode == MODE_AUTO && !flooded(cfg, now) {
        return true;
    }
    if !shaped || seg.flags & (segment::TCP_ACK | segment::TCP_FIN | segment::TCP_RST) != 0 {
        count(STAT_UNANSWERED);
        return true;
    }
    if !listening(ctx, &p, &seg) {
        count(STAT_NOT_LISTENING);
        return true;
    }
    // A source with its LRU entry passed its own SYN limit: the SYN-ACKs it
    // can draw are bounded per source, so it does not take from (or wait
    // for) the budget that a spoofed flood of new sources spends
    // (docs/kernel-tier.md, "Known sources skip the SYN-ACK budget").
    if !known_source() && !within_budget(cfg.synack_rate, now) {
        // Passing it would hand the flood to the listener, whose own
        // cookies have no cap: the cap is only a cap if the SYN ends here.
        count(STAT_OVER_BUDGET);
        return false;
    }
    // `rampart_synack` answers and counts it; here only if it is not there.
    // SAFETY: a tail call with our own context; on failure it returns.
    unsafe { SYN_TAIL.tail_call(ctx, TAIL_ANSWER) };
    count(STAT_UNANSWERED);
    true
}

/// Takes one SYN-ACK from the budget of `rate` per second shared by every
/// CPU (a GCRA with a second's worth of burst, `budget.rs`): false once it
/// is spent.
#[inline(always)]
fn within_budget(rate: u32, now: u64) -> bool {
    if rate == 0 {
        return true;
    }
    let Some(tat) = SYN_BUDGET.get_ptr_mut(0) else {
        return true;
    };
    let interval = (SECOND / rate as u64).max(1);
    let tolerance = (rate as u64 - 1) * interval;
    // SAFETY: `tat` is the 8-byte aligned u64 of a live array value, written
    // only by `budget::take`.
    unsafe { budget::take(tat, now, interval, tolerance) }
}

/// The `rampart_synack` program: rewrites the SYN into its SYN-ACK (XDP_TX,
/// verdict `syn_cookie`), or passes it if it cannot.
#[inline(always)]
pub fn answer(ctx: &XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    let Some(cfg) = SYN_COOKIE.get(0) else {
        maps::count(stats::PASS, len);
        return xdp_action::XDP_PASS;
    };
    // SAFETY: a helper with no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let mut seg = Segment::new();
    if !segment::locate(&Pkt::xdp(ctx), &mut seg) || !synack::answer(ctx, cfg, &seg, now) {
        count(STAT_UNANSWERED);
        maps::count(stats::PASS, len);
        return xdp_action::XDP_PASS;
    }
    if let Some(st) = SYN_STATE.get_ptr_mut(0) {
        // SAFETY: a live value of the array; a racy store is fine (it is a
        // time to within a second, written at most once a second).
        unsafe {
            if now > (*st).last_cookie_ns + SECOND {
                (*st).last_cookie_ns = now;
            }
        }
    }
    maps::count(stats::SYN_COOKIE, len);
    xdp_action::XDP_TX
}

/// Whether `port` is in the `syn_ports` bitmap.
#[inline(always)]
fn protected(port: u16) -> bool {
    let (word, bit) = port_word(port);
    SYN_PORTS.get(word).is_some_and(|w| *w & bit != 0)
}

/// `auto` mode: counts this SYN and says whether cookies are on.
#[inline(always)]
fn flooded(cfg: &SynCookieConfig, now: u64) -> bool {
    let (Some(w), Some(st)) = (SYN_WINDOW.get_ptr_mut(0), SYN_STATE.get_ptr_mut(0)) else {
        return false;
    };
    let threshold = cfg.threshold_per_cpu as u64;
    // SAFETY: `w` is this CPU's slot (nothing else runs on it meanwhile);
    // `st` is shared, read freely and written at most once a second per CPU.
    unsafe {
        let mut over = false;
        let age = now.wrapping_sub((*w).start_ns);
        if age >= SECOND {
            // The second that just ended counts only if it is the last one.
            over = (*w).count > threshold && age < 2 * SECOND;
            (*w).start_ns = now;
            (*w).count = 0;
        }
        (*w).count += 1;
        over |= (*w).count > threshold;
        let until = (*st).attack_until_ns;
        if over && until < now + cfg.hold_ns.saturating_sub(SECOND) {
            if until <= now {
                count(STAT_ATTACKS);
            }
            (*st).attack_until_ns = now + cfg.hold_ns;
            return true;
        }
        now < until
    }
}

/// Whether a socket listens for this SYN. The kernel keeps the SYNs it has
/// no listener for (it answers with a reset), and those that hit a
/// TIME_WAIT socket (it may reuse the pair of ports for a new connection,
/// which a cookie would not survive).
#[inline(always)]
fn listening(ctx: &XdpContext, p: &Pkt, seg: &Segment) -> bool {
    // SAFETY: an all-zero tuple is a valid value of this C union.
    let mut tuple: bpf_sock_tuple = unsafe { core::mem::zeroed() };
    let size = if seg.v6 {
        let Some(a) = p.ptr::<[u8; 32]>(seg.l3 + 8) else {
            return false;
        };
        // SAFETY: `ptr` checked the addresses are in the frame; the tuple
        // takes them in packet byte order, as they are.
        unsafe {
            let a = *a;
            let w = |i: usize| u32::from_ne_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
            let t = &mut tuple.__bindgen_anon_1.ipv6;
            t.saddr = [w(0), w(4), w(8), w(12)];
            t.daddr = [w(16), w(20), w(24), w(28)];
            t.sport = seg.sport.to_be();
            t.dport = seg.dport.to_be();
        }
        core::mem::size_of::<aya_ebpf::bindings::bpf_sock_tuple__bindgen_ty_1__bindgen_ty_2>()
    } else {
        let Some(a) = p.ptr::<[u8; 8]>(seg.l3 + 12) else {
            return false;
        };
        // SAFETY: as above.
        unsafe {
            let a = *a;
            let t = &mut tuple.__bindgen_anon_1.ipv4;
            t.saddr = u32::from_ne_bytes([a[0], a[1], a[2], a[3]]);
            t.daddr = u32::from_ne_bytes([a[4], a[5], a[6], a[7]]);
            t.sport = seg.sport.to_be();
            t.dport = seg.dport.to_be();
        }
        core::mem::size_of::<aya_ebpf::bindings::bpf_sock_tuple__bindgen_ty_1__bindgen_ty_1>()
    };
    // SAFETY: the helper reads `size` bytes of the tuple; the socket it
    // returns is released below.
    unsafe {
        let sk = bpf_skc_lookup_tcp(ctx.as_ptr(), &mut tuple, size as u32, u64::MAX, 0);
        if sk.is_null() {
            return false;
        }
        let state = (*sk).state;
        bpf_sk_release(sk.cast());
        state == BPF_TCP_LISTEN
    }
}

/// Adds one to this CPU's `syn_stats[index]`.
#[inline(always)]
pub fn count(index: u32) {
    if let Some(c) = SYN_STATS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot; nothing else on this CPU runs concurrently.
        unsafe { *c += 1 };
    }
}
