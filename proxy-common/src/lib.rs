//! Types shared by the rampart XDP program (`proxy-ebpf`) and its userspace
//! (`proxy-user`): map keys and values, verdict numbers, pin names, and the
//! rate-limit arithmetic both sides must agree on.
//!
//! # Layout
//!
//! - [`config`]: the single-entry settings map the program reads on every
//!   packet and userspace rewrites in place (limits, IPv6 prefix, switches).
//! - [`list`]: allow/block list keys and values (LPM tries for ranges, hashes
//!   for single addresses).
//! - [`admit`]: the first stage a new source goes through before it gets
//!   an entry in the per-source LRU.
//! - [`index`]: the bucketed exact-address index in front of the blocklist hashes.
//! - [`known`]: the known-source filter in front of the per-source LRU.
//! - [`listed`]: the listed-source filter in front of the ban and blocklist indexes.
//! - [`ban`]: the ban table, exact address to expiry.
//! - [`new_sources`]: the budget of new sources per second, and attack mode.
//! - [`log`]: which rare events the program records and how many per second.
//! - [`source`]: per-source limiter state and top-talker counters.
//! - [`stats`]: verdict numbers and the per-CPU counter value.
//! - [`gcra`]: the generic cell rate algorithm as a pure function.
//! - [`syncookie`]: SYN cookie settings, state and counters;
//!   [`cookie`]: the cookie arithmetic (SipHash) both programs share.
//! - [`pin`]: where maps are pinned and what they are called.
//!
//! Every type here is `#[repr(C)]`, has explicit padding, derives
//! `bytemuck::Pod` (which proves there are no hidden holes) and carries a size
//! assertion, because the kernel and userspace read the same bytes.
#![no_std]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod admit;
pub mod ban;
pub mod bit_filter;
pub mod config;
pub mod cookie;
pub mod gcra;
pub mod index;
pub mod known;
pub mod list;
pub mod listed;
pub mod log;
pub mod new_sources;
pub mod pin;
pub mod source;
pub mod stats;
pub mod syncookie;

/// Implements `aya::Pod` for types whose `bytemuck::Pod` derive already proved
/// they are plain bytes with no padding.
#[cfg(feature = "user")]
macro_rules! aya_pod {
    ($($t:ty),+ $(,)?) => {
        $(
            // SAFETY: the type derives bytemuck::Pod, which checks at compile
            // time that it is repr(C), has no padding and holds only Pod fields.
            unsafe impl aya::Pod for $t {}
        )+
    };
}
#[cfg(feature = "user")]
aya_pod!(
    admit::FirstV4,
    admit::FirstV6,
    config::FilterConfig,
    list::ListValue,
    log::LogConfig,
    new_sources::NewSources,
    index::BucketV4,
    index::BucketV6,
    ban::Ban,
    ban::BanBucketV4,
    ban::BanBucketV6,
    source::SourceState,
    source::SourceStateV1,
    source::SourceStateV2,
    stats::Counter,
    syncookie::SynCookieConfig,
    syncookie::SynState,
    syncookie::SynWindow,
);
