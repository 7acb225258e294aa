//! Helpers for rampart's privileged tests and benchmarks.
//!
//! # Layout
//!
//! - [`privilege`]: root checks; under `CI=true` a missing privilege fails the test.
//! - [`pins`]: a private bpffs pin directory per test, removed on drop.
//! - [`packet`]: a frame builder for fixtures (VLAN, IPv4 options and fragments,
//!   IPv6 extension headers, TCP/UDP/ICMP).
//! - [`netns`]: network namespaces and veth pairs as RAII guards, and running
//!   code or commands inside a namespace.
//! - [`filter`]: load the filter with test settings and run packets through it.
//! - [`segment`]: TCP segments with options and checksums (SYN-cookie tests);
//!   [`flood`]: a spoofed SYN flood and the edge's TCP counters.
//! - [`daemon`], [`process`]: the real `rampart` binary and other child processes,
//!   killed on drop; [`traffic`]: UDP senders and a per-source receiver;
//!   [`backend`]: small HTTP backends and a client for end-to-end tests;
//!   [`load`]: steady HTTP/1.1 load that records every outcome and latency;
//!   [`connects`]: new TCP connections from one client address, one after another.
//! - [`in_process`]: the daemon started in this process (`Daemon::start`), its
//!   filter loaded over pins and attached to nothing, driven by commands to
//!   test what it does to the maps.
//! - [`redis`]: a real redis-server on a free port for the fleet tests, killed on drop.
//! - [`scratch`]: a test's directory of files, removed on drop.

pub mod backend;
pub mod certs;
pub mod connects;
pub mod daemon;
pub mod filter;
pub mod flood;
pub mod in_process;
pub mod load;
pub mod netns;
pub mod packet;
pub mod pins;
pub mod privilege;
pub mod process;
pub mod redis;
pub mod scratch;
pub mod segment;
pub mod traffic;

/// Whether this run is a soak (`cargo xtask soak` sets `RAMPART_SOAK=1`):
/// reliability cases then run longer and with more load.
pub fn soak() -> bool {
    std::env::var("RAMPART_SOAK").is_ok_and(|v| v == "1")
}

/// `quick` in a normal run, `long` in a soak.
pub fn scaled<T>(quick: T, long: T) -> T {
    if soak() { long } else { quick }
}
