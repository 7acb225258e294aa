//! The veth benchmark's generator programs (`bench-progs` in proxy-ebpf),
//! through BPF_PROG_TEST_RUN without live frames: the spoofing generator
//! gives each frame a new source in 10.0.0.0/8 and keeps its checksums
//! valid, the bouncer stops by itself at its deadline, and `spoof_tail`
//! (the per-packet benchmark's new-source chain) hands each frame with a
//! new source to the program in its slot; `pass_one` (the connections
//! section's ceiling) passes one source and ARP and drops the rest.

use std::collections::HashSet;

use aya::{
    Ebpf,
    maps::{Array, ProgramArray},
    programs::{TestRun, TestRunOptions, Xdp},
};
use tests::{
    packet::{Frame, checksum},
    privilege::require_root,
};

/// XDP actions (uapi linux/bpf.h).
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const XDP_REDIRECT: u32 = 4;

fn programs() -> Ebpf {
    let mut ebpf = Ebpf::load(proxy_user::filter::object::BENCH).expect("load bench programs");
    for name in [
        "tx_gen_spoof",
        "bounce",
        "spoof_tail",
        "drop_all",
        "pass_one",
    ] {
        program(&mut ebpf, name).load().expect("load bench program");
    }
    ebpf
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> &'a mut Xdp {
    ebpf.program_mut(name).unwrap().try_into().unwrap()
}

/// Runs `frame` once through `prog`; returns the action and the frame after.
fn run(prog: &Xdp, frame: &[u8]) -> (u32, Vec<u8>) {
    let mut out = vec![0u8; frame.len() + 256];
    let opts = TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        repeat: 1,
        ..Default::default()
    };
    let res = prog.test_run(opts).expect("BPF_PROG_TEST_RUN");
    out.truncate(res.data_size_out as usize);
    (res.return_value, out)
}

/// Sum over the IPv4 pseudo-header and the L4 segment of an Ethernet +
/// IPv4 (no options) frame: 0 when its L4 checksum is right.
fn l4_check(frame: &[u8]) -> u16 {
    let l4 = &frame[34..];
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&frame[26..34]);
    bytes.extend_from_slice(&[0, frame[23]]);
    bytes.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    bytes.extend_from_slice(l4);
    checksum(&bytes)
}

/// A frame from `Frame` with its L4 checksum filled in (the builder leaves
/// it zero), so the test can see the generator keep it right.
fn with_l4_checksum(frame: Frame) -> Vec<u8> {
    let mut f = frame.build();
    let at = if f[23] == 6 { 50 } else { 40 };
    let sum = l4_check(&f);
    f[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(l4_check(&f), 0);
    f
}

#[test]
fn spoofing_generator_gives_each_frame_a_new_source_in_10_8_with_valid_checksums() {
    if !require_root(
        "spoofing_generator_gives_each_frame_a_new_source_in_10_8_with_valid_checksums",
    ) {
        return;
    }
    let mut ebpf = programs();
    let prog = program(&mut ebpf, "tx_gen_spoof");
    let udp = with_l4_checksum(Frame::v4("198.18.9.9", "198.18.0.1").payload(18));
    let syn = with_l4_checksum(Frame::v4("198.18.9.9", "198.18.0.1").tcp_syn().payload(6));
    for (what, frame) in [("UDP", &udp), ("TCP SYN", &syn)] {
        let mut sources = HashSet::new();
        for _ in 0..64 {
            let (action, out) = run(prog, frame);
            assert_eq!(action, XDP_TX, "{what}");
            assert_eq!(out.len(), frame.len(), "{what}");
            assert_eq!(
                out[26],
                10,
                "{what}: source {:?} not in 10.0.0.0/8",
                &out[26..30]
            );
            assert_eq!(checksum(&out[14..34]), 0, "{what}: IPv4 header checksum");
            assert_eq!(l4_check(&out), 0, "{what}: L4 checksum");
            // Nothing but the source and the two checksums changed.
            for (i, (a, b)) in frame.iter().zip(&out).enumerate() {
                let rewritten = (26..30).contains(&i)
                    || (24..26).contains(&i)
                    || (34..frame.len()).contains(&i) && l4_csum_at(frame, i);
                assert!(rewritten || a == b, "{what}: byte {i} changed");
            }
            sources.insert(out[26..30].to_vec());
        }
        // 64 draws from 2^24 addresses: a repeat is a 1-in-8,000 event, so
        // allow one.
        assert!(
            sources.len() >= 63,
            "{what}: only {} distinct sources",
            sources.len()
        );
    }
    // A zero UDP checksum means "none" and must stay zero.
    let plain = Frame::v4("198.18.9.9", "198.18.0.1").payload(18).build();
    let (_, out) = run(prog, &plain);
    assert_eq!(out[40..42], [0, 0], "zero UDP checksum rewritten");
}

/// Whether byte `i` of `frame` is part of its L4 checksum field.
fn l4_csum_at(frame: &[u8], i: usize) -> bool {
    let at = if frame[23] == 6 { 50 } else { 40 };
    (at..at + 2).contains(&i)
}

#[test]
fn bouncer_redirects_until_its_deadline_then_drops() {
    if !require_root("bouncer_redirects_until_its_deadline_then_drops") {
        return;
    }
    let mut ebpf = programs();
    let frame = Frame::v4("198.18.9.9", "198.18.0.1").payload(18).build();
    // Deadline 0 (the map's initial value): the flood is over before it starts.
    let (action, _) = run(program(&mut ebpf, "bounce"), &frame);
    assert_eq!(action, XDP_DROP, "no deadline set");
    let mut ctl: Array<_, u64> = Array::try_from(ebpf.map_mut("BOUNCE").unwrap()).unwrap();
    ctl.set(0, u64::MAX, 0).unwrap();
    let (action, out) = run(program(&mut ebpf, "bounce"), &frame);
    assert_eq!(action, XDP_REDIRECT, "before the deadline");
    assert_eq!(out, frame, "spoofing off: frame unchanged");
    let mut ctl: Array<_, u64> = Array::try_from(ebpf.map_mut("BOUNCE").unwrap()).unwrap();
    ctl.set(1, 1, 0).unwrap();
    let (action, out) = run(program(&mut ebpf, "bounce"), &frame);
    assert_eq!(action, XDP_REDIRECT, "spoofing on");
    assert_eq!(out[26], 10, "spoofing on: source {:?}", &out[26..30]);
    // A deadline in the past (1 ns after boot) stops it.
    let mut ctl: Array<_, u64> = Array::try_from(ebpf.map_mut("BOUNCE").unwrap()).unwrap();
    ctl.set(0, 1, 0).unwrap();
    let (action, _) = run(program(&mut ebpf, "bounce"), &frame);
    assert_eq!(action, XDP_DROP, "past the deadline");
}

#[test]
fn spoofing_generator_writes_its_template_back_first() {
    if !require_root("spoofing_generator_writes_its_template_back_first") {
        return;
    }
    // With live frames a receiver that answers in place (a SYN cookie)
    // rewrites the generator's page: a SYN-ACK of another length comes back
    // as the next frame. With a template set, a SYN goes out again.
    let mut ebpf = programs();
    let syn = with_l4_checksum(Frame::v4("198.18.9.9", "198.18.0.1").tcp_syn().payload(6));
    let mut t = [0u8; 64];
    t[..syn.len()].copy_from_slice(&syn);
    Array::<_, [u8; 64]>::try_from(ebpf.map_mut("TEMPLATE").unwrap())
        .unwrap()
        .set(0, t, 0)
        .unwrap();
    Array::<_, u64>::try_from(ebpf.map_mut("BOUNCE").unwrap())
        .unwrap()
        .set(2, syn.len() as u64, 0)
        .unwrap();
    let mut answered = syn.clone();
    answered[47] = 0x12; // SYN|ACK
    answered.extend_from_slice(&[0; 4]); // another length
    let (action, out) = run(program(&mut ebpf, "tx_gen_spoof"), &answered);
    assert_eq!(action, XDP_TX);
    assert_eq!(out.len(), syn.len(), "the template's length");
    assert_eq!(out[47], 0x02, "a SYN again");
    assert_eq!(out[26], 10, "spoofed as before");
    assert_eq!(l4_check(&out), 0, "L4 checksum");
    for (i, (a, b)) in syn.iter().zip(&out).enumerate() {
        let rewritten = (24..30).contains(&i) || l4_csum_at(&syn, i);
        assert!(rewritten || a == b, "byte {i} differs from the template");
    }
}

#[test]
fn spoof_tail_gives_a_new_source_then_runs_the_program_in_its_slot() {
    if !require_root("spoof_tail_gives_a_new_source_then_runs_the_program_in_its_slot") {
        return;
    }
    let mut ebpf = programs();
    let frame = Frame::v4("198.18.9.9", "198.18.0.1").payload(18).build();
    // An empty slot: the tail call fails and the chain aborts.
    let (action, _) = run(program(&mut ebpf, "spoof_tail"), &frame);
    assert_eq!(action, 0, "XDP_ABORTED without a program in the slot");
    let drop_all = program(&mut ebpf, "drop_all")
        .fd()
        .unwrap()
        .try_clone()
        .unwrap();
    ProgramArray::try_from(ebpf.map_mut("TAIL").unwrap())
        .unwrap()
        .set(0, &drop_all, 0)
        .unwrap();
    let mut sources = HashSet::new();
    for _ in 0..50 {
        let (action, out) = run(program(&mut ebpf, "spoof_tail"), &frame);
        assert_eq!(action, XDP_DROP, "drop_all's verdict");
        assert_eq!(out[26], 10, "source in 10.0.0.0/8: {:?}", &out[26..30]);
        sources.insert(out[26..30].to_vec());
    }
    assert!(
        sources.len() >= 49,
        "a new source per run: {}",
        sources.len()
    );
}

#[test]
fn pass_one_passes_its_source_and_arp_and_drops_the_rest() {
    if !require_root("pass_one_passes_its_source_and_arp_and_drops_the_rest") {
        return;
    }
    let mut ebpf = programs();
    let client = Frame::v4("198.18.0.2", "198.18.0.1").tcp_syn().build();
    let spoofed = Frame::v4("10.1.2.3", "198.18.0.1").tcp_syn().build();
    // No source set yet (0.0.0.0): the client is dropped like any other.
    let (action, _) = run(program(&mut ebpf, "pass_one"), &client);
    assert_eq!(action, XDP_DROP, "no source set");
    Array::<_, u32>::try_from(ebpf.map_mut("PASS_SOURCE").unwrap())
        .unwrap()
        .set(0, u32::from_ne_bytes([198, 18, 0, 2]), 0)
        .unwrap();
    let (action, _) = run(program(&mut ebpf, "pass_one"), &client);
    assert_eq!(action, XDP_PASS, "the client's address");
    let (action, _) = run(program(&mut ebpf, "pass_one"), &spoofed);
    assert_eq!(action, XDP_DROP, "a spoofed source");
    // ARP: EtherType 0x0806, the rest of a 42-byte request.
    let mut arp = client[..42].to_vec();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    let (action, _) = run(program(&mut ebpf, "pass_one"), &arp);
    assert_eq!(action, XDP_PASS, "ARP");
}
