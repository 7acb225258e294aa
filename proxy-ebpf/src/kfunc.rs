//! `bpf_sk_assign_tcp_reqsk`, the kfunc (Linux 6.9, "bpf: tcp: Support
//! arbitrary SYN Cookie") that hands the kernel a request socket built by a
//! tc program from a validated SYN cookie. The kernel then finishes the handshake exactly as
//! for its own cookies (`cookie_v4_check`/`cookie_v6_check`), without
//! requiring that the listener recently overflowed.
//!
//! aya 0.14 cannot link kfuncs, so this is called like a helper numbered
//! [`KFUNC_SK_ASSIGN_TCP_REQSK`]; the loader (`proxy-user/src/filter/kfunc.rs`)
//! rewrites every such call into a kfunc call with the function's BTF id in
//! the running kernel before the program is loaded. Without the rewrite the
//! verifier refuses the program (unknown helper), so a kernel without the
//! kfunc cannot end up running a tc program that fails at run time.

use aya_ebpf::bindings::{__sk_buff, tcp_sock};
use proxy_common::syncookie::KFUNC_SK_ASSIGN_TCP_REQSK;

/// `struct bpf_tcp_req_attrs` (include/net/tcp.h).
#[repr(C)]
pub struct ReqAttrs {
    /// The client's timestamp value (echoed from then on).
    pub rcv_tsval: u32,
    /// Our timestamp value as the client echoed it: the kernel continues
    /// its timestamps from there.
    pub rcv_tsecr: u32,
    pub mss: u16,
    /// The window scale we announced.
    pub rcv_wscale: u8,
    /// The client's window scale.
    pub snd_wscale: u8,
    pub ecn_ok: u8,
    pub wscale_ok: u8,
    pub sack_ok: u8,
    pub tstamp_ok: u8,
    pub usec_ts_ok: u8,
    pub reserved: [u8; 3],
}
const _: () = assert!(core::mem::size_of::<ReqAttrs>() == 20);

/// Attaches a request socket for `sk` (a listener from a socket lookup,
/// still referenced) built from `attrs` to `skb`. 0 or a negative errno.
///
/// # Safety
/// `skb` is the program's context, `sk` a referenced socket the caller
/// releases, `attrs` a live value.
#[inline(always)]
pub unsafe fn sk_assign_tcp_reqsk(
    skb: *mut __sk_buff,
    sk: *mut tcp_sock,
    attrs: &mut ReqAttrs,
) -> i32 {
    // SAFETY: a call to a helper number the loader turns into the kfunc.
    unsafe {
        let f: unsafe extern "C" fn(*mut __sk_buff, *mut tcp_sock, *mut ReqAttrs, i32) -> i32 =
            core::mem::transmute(KFUNC_SK_ASSIGN_TCP_REQSK as usize);
        f(skb, sk, attrs, core::mem::size_of::<ReqAttrs>() as i32)
    }
}
