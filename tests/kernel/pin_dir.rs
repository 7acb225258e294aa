//! The pin directory in a world-writable bpffs (issue 13): the filter
//! creates it 0700 and refuses one that others can write in or that is
//! not its own, naming the path and what is wrong.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use tests::{filter::settings, pins::PinDir, privilege::require_root};

#[test]
fn a_pin_dir_others_can_write_or_do_not_own_is_refused() {
    if !require_root("a_pin_dir_others_can_write_or_do_not_own_is_refused") {
        return;
    }
    let pins = PinDir::new("perm");
    let dir = pins.path();
    let bpffs = std::fs::metadata("/sys/fs/bpf").unwrap().mode() & 0o7777;

    // Created by the filter: 0700.
    drop(proxy_user::filter::Filter::load(&settings(dir)).expect("loads"));
    assert_eq!(std::fs::metadata(dir).unwrap().mode() & 0o7777, 0o700);

    // Made world-writable (as a pre-created directory in a 1777 bpffs could be).
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = proxy_user::filter::Filter::load(&settings(dir))
        .err()
        .expect("a world-writable pin directory is refused")
        .to_string();
    assert!(
        err.contains(&dir.display().to_string()) && err.contains("has mode 0777"),
        "{err}"
    );

    // Owned by someone else.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(dir, Some(65534), None).unwrap();
    let err = proxy_user::filter::Filter::load(&settings(dir))
        .err()
        .expect("a pin directory owned by another user is refused")
        .to_string();
    assert!(err.contains("is owned by uid 65534"), "{err}");
    std::os::unix::fs::chown(dir, Some(0), None).unwrap();
    println!(
        "figure: /sys/fs/bpf mode {bpffs:04o}; pin dir created 0700; 0777 and uid 65534 refused"
    );
}
