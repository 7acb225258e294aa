//! The per-packet cost of a new source through BPF_PROG_TEST_RUN.
//!
//! BPF_PROG_TEST_RUN repeats one frame, so one program alone cannot give
//! each packet a new source. `spoof_tail` (proxy-ebpf's bench programs)
//! rewrites the frame's IPv4 source to a random address in 10.0.0.0/8 and
//! tail-calls the program in its `TAIL` array. The chain is measured twice,
//! into rampart and into `drop_all`; the difference plus the floor is what
//! rampart costs for a new source, as if it ran alone.

use aya::{Ebpf, maps::ProgramArray, programs::ProgramFd};
use proxy_user::config::{MapSizes, NewSources};
use tests::{
    filter::{dispatch, dispatch_program, limit, load},
    packet::Frame,
    pins::PinDir,
};

use crate::{Opts, Row, feed, full_settings, per_packet::ns_per_packet, xdp};

/// Puts the program `fd` in `spoof_tail`'s slot.
fn chain(bench: &mut Ebpf, fd: &ProgramFd) {
    let mut tail = ProgramArray::try_from(bench.map_mut("TAIL").expect("TAIL map")).unwrap();
    tail.set(0, fd, 0).expect("TAIL slot");
}

/// Rows for new sources, beside the one-source pass path `pass_ns`
/// (target: at most 1.5 times it). `floor` is the trivial program's cost.
pub fn rows(opts: &Opts, bench: &mut Ebpf, floor: f64, pass_ns: f64) -> Vec<Row> {
    let _held = dispatch_program(xdp(bench, "spoof_tail"));
    let drop_all = xdp(bench, "drop_all").fd().unwrap().try_clone().unwrap();
    let mut rows = Vec::new();
    let udp = Frame::v4("198.18.9.9", "198.18.0.1").payload(18).build();
    let syn = Frame::v4("198.18.9.9", "198.18.0.1").tcp_syn().build();
    // Admitted: a new-source budget never spent (each packet still takes
    // from it); dropped: the default budget, spent within the run's first
    // 2 x 65,536 packets (attack mode).
    let unspent = NewSources {
        rate: 100_000_000,
        burst: 100_000_000,
        ..NewSources::off()
    };
    let default = NewSources::for_sources(MapSizes::default().sources);
    for (what, frame, budget, admitted) in [
        ("UDP", &udp, unspent, "admitted"),
        ("TCP SYN", &syn, unspent, "admitted"),
        ("UDP", &udp, default, "over the default new-source budget"),
    ] {
        chain(bench, &drop_all);
        let generator = ns_per_packet(xdp(bench, "spoof_tail"), frame, opts.repeat);
        // As in the veth spoofed rows: every check, 1000 pps and 100 SYN/s per source.
        let pins = PinDir::new("c14new");
        let mut s = full_settings(&pins, feed(95_000, 5_000));
        s.pps = limit(1000, 1000);
        s.syn = limit(100, 100);
        s.new_sources = budget;
        let mut filter = load(&s);
        let _dispatched = dispatch(&mut filter);
        chain(bench, filter.program().unwrap().fd().unwrap());
        let total = ns_per_packet(xdp(bench, "spoof_tail"), frame, opts.repeat);
        let ns = total - generator + floor;
        let ratio = ns / floor;
        rows.push(Row {
            path: format!(
                "new source every packet, {admitted}, spoofed {what} (every check, 100,000-entry blocklist, limits 1000 pps / 100 SYN/s); {:.2}x the one-source pass path",
                ns / pass_ns
            ),
            value: ns,
            ratio,
            target: "<= 1.5x pass path",
            met: Some(ns <= 1.5 * pass_ns),
        });
        eprintln!(
            "  new source, {admitted}, {what}: chain {total:.1} ns, generator {generator:.1} ns, rampart {ns:.1} ns, sources tracked {}",
            filter.maps.sources().map_or(0, |s| s.len())
        );
    }
    rows
}
