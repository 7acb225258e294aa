//! VLAN stacks through BPF_PROG_TEST_RUN (issue 13): the program parses up
//! to four tags, with TPID 0x8100, 0x88a8 or 0x9100 in any order, and
//! applies the lists to the IP packet behind them. A deeper stack cannot be
//! inspected: it is dropped as `malformed`, or passed as `non_ip` with
//! `[filter] unparsed = "pass"` (docs/kernel-tier.md). Before, three tags
//! or a 0x9100 outer tag were passed as `non_ip`, lists and bans unchecked.

use proxy_common::stats::*;
use tests::{
    filter::{cidrs, load, settings, verdict_of},
    packet::Frame,
    pins::PinDir,
    privilege::require_root,
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const DST4: &str = "198.18.0.1";
const BLOCKED: &str = "198.18.2.7";

fn tagged(mut f: Frame, tpids: &[u16]) -> Frame {
    for (i, t) in tpids.iter().enumerate() {
        f = f.vlan(*t, 10 + i as u16);
    }
    f
}

fn check(pass_unparsed: bool, cases: &[(&str, Frame, u32)]) {
    let pins = PinDir::new(if pass_unparsed { "vlanp" } else { "vland" });
    let mut s = settings(pins.path());
    s.block = cidrs(&["198.18.2.0/24", "fd72:2::/32"]);
    s.pass_unparsed = pass_unparsed;
    let filter = load(&s);
    let mut failures = Vec::new();
    for (what, frame, expected) in cases {
        let (action, verdict) = verdict_of(&filter, &frame.build());
        let want_action = if is_drop(*expected) {
            XDP_DROP
        } else {
            XDP_PASS
        };
        if verdict != *expected || action != want_action {
            failures.push(format!(
                "{what}: expected {}, got {} (action {action})",
                VERDICT_NAMES[*expected as usize], VERDICT_NAMES[verdict as usize]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn vlan_stacks_are_parsed_to_four_tags_and_deeper_ones_follow_the_policy() {
    if !require_root("vlan_stacks_are_parsed_to_four_tags_and_deeper_ones_follow_the_policy") {
        return;
    }
    let blocked = || Frame::v4(BLOCKED, DST4);
    check(
        false,
        &[
            (
                "0x9100 outer + 802.1Q, blocked",
                tagged(blocked(), &[0x9100, 0x8100]),
                BLOCKLISTED,
            ),
            (
                "three tags, blocked",
                tagged(blocked(), &[0x88a8, 0x8100, 0x8100]),
                BLOCKLISTED,
            ),
            (
                "four tags, blocked",
                tagged(blocked(), &[0x9100, 0x88a8, 0x8100, 0x8100]),
                BLOCKLISTED,
            ),
            (
                "four tags, IPv6 blocked",
                tagged(
                    Frame::v6("fd72:2::9", "fd72::1"),
                    &[0x88a8, 0x88a8, 0x8100, 0x8100],
                ),
                BLOCKLISTED,
            ),
            (
                "three tags, allowed source",
                tagged(
                    Frame::v4("198.18.0.9", DST4).tcp_syn(),
                    &[0x88a8, 0x8100, 0x8100],
                ),
                PASS,
            ),
            (
                "three tags, ARP",
                tagged(Frame::raw(0x0806, 28), &[0x9100, 0x8100, 0x8100]),
                NON_IP,
            ),
            (
                "five tags: cannot be inspected, dropped",
                tagged(blocked(), &[0x88a8, 0x8100, 0x8100, 0x8100, 0x8100]),
                MALFORMED,
            ),
            (
                "five tags of a passable source: dropped all the same",
                tagged(Frame::v4("198.18.0.9", DST4), &[0x9100; 5]),
                MALFORMED,
            ),
        ],
    );
    check(
        true,
        &[
            (
                "five tags with unparsed = \"pass\"",
                tagged(blocked(), &[0x88a8, 0x8100, 0x8100, 0x8100, 0x8100]),
                NON_IP,
            ),
            (
                "three tags, blocked, whatever the policy",
                tagged(blocked(), &[0x9100, 0x8100, 0x8100]),
                BLOCKLISTED,
            ),
        ],
    );
    println!(
        "figure: 0x9100 and 2-4 tags: lists applied (blocklisted); 5 tags: malformed (drop), non_ip with unparsed = \"pass\""
    );
}
