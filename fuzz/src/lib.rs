//! Reference models for rampart's fuzz targets.
//!
//! Each fuzz target (in `fuzz_targets/`) drives real rampart code and checks
//! it against a model written here, independently of the code under test:
//! the models share no code with `proxy-user` or `proxy-ebpf`, only the
//! rules those implement, so a disagreement means one of the two is wrong.
//!
//! # Layout
//!
//! - [`packet`]: what the XDP program reads from a frame (Ethernet, VLAN,
//!   IPv4/IPv6 and their options, TCP flags), or why it cannot.
//! - [`policy`]: the fixed allowlist, blocklist and bans the `xdp` target
//!   installs, and the verdict they give a parsed packet.
//! - [`frame`]: well-formed frames, to seed the `xdp` corpus.
//! - [`bucket`]: nginx's `limit_req` leaky bucket, for the `limit` target.
//! - [`path`]: what a request path means, for the normaliser the
//!   `route_path` target checks.
//! - [`route`]: first-match route selection, for the `route_path` target.
//! - [`static_path`]: which request paths a static route must refuse.
//! - [`h1`]: what rampart's HTTP/1 path did (framing scanner, then hyper,
//!   both replaced by `proxy_user::h1`) with a request or response head
//!   and a chunked body: the reference of the `h1_differential` target.

pub mod bucket;
pub mod frame;
pub mod h1;
pub mod packet;
pub mod path;
pub mod policy;
pub mod route;
pub mod static_path;
