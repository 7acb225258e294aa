//! Attach modes: native where the driver supports it, generic (SKB) as the
//! fallback `auto` takes with a warning, and `native` refusing to fall back.

use aya::programs::XdpMode;
use proxy_user::config::AttachMode;
use tests::{filter::load, filter::settings, netns::NetNs, pins::PinDir, privilege::require_root};

#[test]
fn auto_falls_back_to_generic_mode_and_native_refuses() {
    if !require_root("auto_falls_back_to_generic_mode_and_native_refuses") {
        return;
    }
    // The namespace's loopback has no native XDP support (no ndo_bpf).
    let ns = NetNs::new("att");
    let pins = PinDir::new("attach");
    let mut filter = load(&settings(pins.path()));
    let native = ns.with(|| filter.attach("lo", AttachMode::Native));
    let err = native.expect_err("native XDP on loopback must fail");
    assert!(
        err.to_string().contains("attaching to lo in native mode"),
        "{err}"
    );
    let auto = ns
        .with(|| filter.attach("lo", AttachMode::Auto))
        .expect("auto falls back");
    assert_eq!(auto, Some(XdpMode::Skb));
    let shown = String::from_utf8_lossy(&ns.ip(&["link", "show", "lo"]).stdout).to_string();
    assert!(shown.contains("xdpgeneric"), "{shown}");
    let missing = ns
        .with(|| filter.attach("nope0", AttachMode::Auto))
        .expect_err("unknown interface");
    assert!(missing.to_string().contains("nope0"), "{missing}");
}

#[test]
fn a_new_load_adopts_pinned_maps_with_their_state() {
    if !require_root("a_new_load_adopts_pinned_maps_with_their_state") {
        return;
    }
    use proxy_common::{list::ORIGIN_CLI, stats::BANNED};
    use proxy_user::filter::List;
    use tests::{filter::verdict_of, packet::Frame};
    let pins = PinDir::new("adopt");
    let s = settings(pins.path());
    let mut first = load(&s);
    first
        .maps
        .ban("198.18.4.4".parse().unwrap(), None, ORIGIN_CLI)
        .unwrap();
    first
        .maps
        .insert(List::Block, "198.18.5.0/24".parse().unwrap(), ORIGIN_CLI)
        .unwrap();
    let banned = Frame::v4("198.18.4.4", "198.18.0.1").build();
    assert_eq!(verdict_of(&first, &banned).1, BANNED);
    let counted = first.maps.verdicts().unwrap()[BANNED as usize].packets;
    drop(first);
    // The program is gone; the maps stay pinned. A new load adopts them.
    let second = load(&s);
    assert_eq!(second.maps.bans().unwrap().len(), 1, "ban kept");
    assert_eq!(
        second.maps.entries(List::Block).unwrap().len(),
        1,
        "runtime block kept"
    );
    assert_eq!(
        second.maps.verdicts().unwrap()[BANNED as usize].packets,
        counted,
        "counters kept"
    );
    assert_eq!(verdict_of(&second, &banned).1, BANNED);
}

#[test]
fn pinned_links_outlive_the_filter_and_are_adopted_then_detached() {
    if !require_root("pinned_links_outlive_the_filter_and_are_adopted_then_detached") {
        return;
    }
    let ns = NetNs::new("lnk");
    let pins = PinDir::new("links");
    let xdp_on_lo = || {
        let shown = String::from_utf8_lossy(&ns.ip(&["link", "show", "lo"]).stdout).to_string();
        shown.contains("xdpgeneric")
    };
    let first = load(&settings(pins.path()));
    let mut first = first;
    ns.with(|| first.attach("lo", AttachMode::Skb)).unwrap();
    assert!(pins.path().join("link_lo").exists());
    let first_prog = prog_id_on_lo(&ns);
    drop(first);
    assert!(xdp_on_lo(), "the pinned link keeps the program attached");
    assert_eq!(prog_id_on_lo(&ns), first_prog);

    let mut second = load(&settings(pins.path()));
    let adopted = ns.with(|| second.attach("lo", AttachMode::Skb)).unwrap();
    assert_eq!(adopted, None, "the pinned link is adopted");
    let second_prog = prog_id_on_lo(&ns);
    assert_ne!(second_prog, first_prog, "the link now runs the new program");
    assert!(xdp_on_lo());
    second.detach().unwrap();
    assert!(!xdp_on_lo(), "detach removes the program");
    assert!(!pins.path().join("link_lo").exists());
}

/// The id of the XDP program on the namespace's loopback (from `ip -d link`).
fn prog_id_on_lo(ns: &NetNs) -> Option<u32> {
    let shown = String::from_utf8_lossy(&ns.ip(&["-d", "link", "show", "lo"]).stdout).to_string();
    let at = shown.find("prog/xdp id ")?;
    shown[at + "prog/xdp id ".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
