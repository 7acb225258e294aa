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
    assert_eq!(auto, XdpMode::Skb);
    let shown = String::from_utf8_lossy(&ns.ip(&["link", "show", "lo"]).stdout).to_string();
    assert!(shown.contains("xdpgeneric"), "{shown}");
    let missing = ns
        .with(|| filter.attach("nope0", AttachMode::Auto))
        .expect_err("unknown interface");
    assert!(missing.to_string().contains("nope0"), "{missing}");
}
