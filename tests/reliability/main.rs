//! The reliability suite: faults under load and abuse, against the real
//! `rampart` binary in network namespaces of its own, with real peers. Each
//! case prints its figure (the lines starting with `figure:`), and
//! RELIABILITY.md records them with their targets. `cargo xtask test` runs
//! the quick versions; `cargo xtask soak` (RAMPART_SOAK=1) the long ones.

mod abuse;
mod control_plane;
mod faults;
mod fleet;
mod fleet_host;
mod fleet_limit;
mod fleet_outage;
mod fleet_outage_load;
mod fleet_tls;
mod http2;
mod support;
