//! Privileged tests of the kernel tier, against the real kernel: the XDP
//! program through BPF_PROG_TEST_RUN, and attached to veth interfaces in
//! network namespaces with real traffic. Run by `cargo xtask test` as root.

mod admit;
mod allow_gen;
mod attach;
mod autobans;
mod ban_index;
mod bench_progs;
mod bpftool;
mod connects;
mod control;
mod daemon;
mod fixtures;
mod fleet;
mod fleet_hosts;
mod fleet_pps;
mod fleet_syn;
mod kick;
mod known;
mod limited;
mod listed;
mod lists;
mod migrate;
mod new_sources;
mod pin_dir;
mod ratelimit;
mod reconcile;
mod source_scan;
mod sources;
mod state_file;
mod syncookie;
mod syncookie_budget;
mod syncookie_daemon;
mod syncookie_known;
mod syncookie_veth;
mod veth;
mod vlan;
mod without_xdp;
mod xdp_log;
