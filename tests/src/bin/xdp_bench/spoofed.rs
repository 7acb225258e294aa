//! Spoofed floods on veth: every frame's IPv4 source is a new random address
//! in 10.0.0.0/8 (rewritten by the generator program), as UDP and as TCP
//! SYN. Each path is measured as packets the edge veth processed per second
//! (`rx_queue_*_xdp_packets`), with the share that got past the filter,
//! beside the trivial program fed the same flood in the same run. Every
//! spoofed source is new, so per-source limits start each one with a full
//! budget: the figure of interest is how much a new source costs.

use proxy_user::config::SynCookieMode;
use tests::{filter::limit, netns::Link, packet::Frame};

use crate::{
    Opts, Row, feed,
    generator::Kind,
    table,
    veth::{
        measure, nft_counter, nftables, processed, rampart, rampart_cookies, trivial, xdp_drops,
        xdp_drops_or_answers, xdp_filter,
    },
};

/// rampart's per-source limits in this section: packets and SYNs per second
/// (and burst). nftables gets the same packet limit, per source too.
const PPS: u64 = 1000;
const SYN: u64 = 100;

/// Mpps processed at the edge, and the share of them that passed.
fn flood(
    opts: &Opts,
    kind: Kind,
    frame: &Frame,
    setup: impl FnOnce(&Link) -> Box<dyn std::any::Any>,
    dropped: impl Fn(&Link) -> u64,
) -> (f64, f64) {
    let count = |link: &Link| (processed(link), dropped(link));
    let ((p0, d0), (p1, d1), secs) = measure(opts, kind, frame, true, setup, count);
    let seen = p1.saturating_sub(p0);
    let passed = seen.saturating_sub(d1.saturating_sub(d0));
    (
        seen as f64 / secs / 1e6,
        passed as f64 / (seen.max(1)) as f64,
    )
}

pub fn run(opts: &Opts, kind: Kind) {
    eprintln!(
        "spoofed-source floods on veth ({} s per path)",
        opts.veth_secs
    );
    let big = feed(95_000, 5_000);
    let big_host = big.iter().find(|c| c.is_host()).unwrap().addr().to_string();
    let udp = Frame::v4("198.18.9.9", "198.18.0.1").payload(18);
    let syn = Frame::v4("198.18.9.9", "198.18.0.1").tcp_syn().payload(6);
    let mut rows = Vec::new();
    for (what, frame) in [("UDP", &udp), ("TCP SYN", &syn)] {
        let (floor, _) = flood(opts, kind, frame, trivial, xdp_drops);
        rows.push(Row {
            path: format!("trivial XDP_DROP (floor), spoofed {what} (0.0% passed)"),
            value: floor,
            ratio: 1.0,
            target: "",
            met: None,
        });
        let wanted = |path: &str| opts.rows.as_deref().is_none_or(|r| path.contains(r));
        let mut add = |path: String, figures: &dyn Fn() -> (f64, f64), target: &'static str| {
            if !wanted(&path) {
                return;
            }
            let (mpps, passed) = figures();
            let ratio = mpps / floor;
            rows.push(Row {
                path: format!("{path}, spoofed {what} ({:.1}% passed)", passed * 100.0),
                value: mpps,
                ratio,
                target,
                met: (!target.is_empty()).then_some(ratio >= 0.7),
            });
        };
        add(
            format!("rampart, every check, limits {PPS} pps / {SYN} SYN/s per source"),
            &|| {
                flood(
                    opts,
                    kind,
                    frame,
                    rampart(big.clone(), limit(PPS, PPS), limit(SYN, SYN)),
                    xdp_drops,
                )
            },
            ">= 0.7x",
        );
        if what == "TCP SYN" {
            // The flood's SYNs answered in XDP: "passed" counts what reached the stack.
            add(
                format!("rampart, every check, {SYN} SYN/s per source, SYN cookies (auto)"),
                &|| {
                    flood(
                        opts,
                        kind,
                        frame,
                        rampart_cookies(
                            big.clone(),
                            limit(SYN, SYN),
                            80,
                            SynCookieMode::Auto,
                            true,
                            100_000_000,
                        ),
                        xdp_drops_or_answers,
                    )
                },
                ">= 0.7x",
            );
            add(
                "rampart, lists and bans only (no per-source limits), SYN cookies (auto)".into(),
                &|| {
                    flood(
                        opts,
                        kind,
                        frame,
                        rampart_cookies(
                            big.clone(),
                            None,
                            80,
                            SynCookieMode::Auto,
                            true,
                            100_000_000,
                        ),
                        xdp_drops_or_answers,
                    )
                },
                "",
            );
        }
        add(
            "xdp-filter, one-address list (no per-source state)".into(),
            &|| flood(opts, kind, frame, xdp_filter(big_host.clone()), xdp_drops),
            "",
        );
        add(
            format!("nftables netdev ingress, {PPS} pps per source (dynamic set of 65,536)"),
            &|| {
                flood(
                opts,
                kind,
                frame,
                nftables(
                    "  set flood { type ipv4_addr; size 65536; flags dynamic,timeout; timeout 10s; }"
                        .into(),
                    format!("update @flood {{ ip saddr limit rate over {PPS}/second }} counter drop"),
                ),
                nft_counter,
            )
            },
            "",
        );
    }
    table(
        &format!(
            "### Spoofed sources on veth (Mpps processed, {}; ratio to the trivial program fed the same flood)",
            kind.describe()
        ),
        "Mpps",
        &rows,
    );
}
