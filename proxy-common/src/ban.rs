//! The ban table: source to expiry, for bans added at runtime with a time to
//! live. Keys are [`crate::list::V4`] (the address) / [`crate::list::V6`]
//! (the address masked to the configured source prefix, as in
//! [`crate::source`]), so one ban covers every address of an IPv6 source.

use bytemuck::{Pod, Zeroable};

/// `expires_at_ns` value of a ban that never expires.
pub const NEVER: u64 = u64::MAX;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Ban {
    /// CLOCK_MONOTONIC nanoseconds (the clock `bpf_ktime_get_ns` reads) after
    /// which the ban no longer applies; the program deletes it on the next hit.
    pub expires_at_ns: u64,
    /// One of the `list::ORIGIN_*` constants.
    pub origin: u32,
    /// Explicit padding to keep the struct free of holes.
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<Ban>() == 16);

/// Sources per ban-index bucket.
pub const BAN_WAYS: usize = 4;

/// One IPv4 ban-index bucket: sources (native words of the packet bytes;
/// 0 = empty) and, at the same position, their `expires_at_ns`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct BanBucketV4 {
    pub addrs: [u32; BAN_WAYS],
    pub expires: [u64; BAN_WAYS],
}
const _: () = assert!(core::mem::size_of::<BanBucketV4>() == 48);

/// One IPv6 ban-index bucket (source prefixes as two native words; all zero = empty).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct BanBucketV6 {
    pub addrs: [[u64; 2]; BAN_WAYS],
    pub expires: [u64; BAN_WAYS],
}
const _: () = assert!(core::mem::size_of::<BanBucketV6>() == 96);
