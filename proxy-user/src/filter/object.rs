//! The compiled XDP objects, built by `build.rs` and embedded in the binary.

/// The filter program (`proxy-ebpf`'s `rampart-xdp`).
pub static FILTER: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rampart-xdp"));

/// Benchmark baselines: `drop_all` (the floor) and `tx_gen` (traffic generator).
#[cfg(feature = "bench-progs")]
pub static BENCH: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bench-progs"));
