//! Privileged tests need root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN for setns).

/// True if the test may go on. Without root it returns false (skip) on a
/// developer machine, and panics under `CI=true`, where a skip would hide a
/// broken setup.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test} needs root (CAP_BPF, CAP_NET_ADMIN) and CI=true forbids skipping it");
    }
    eprintln!("SKIP {test}: needs root; run `cargo xtask test` as root");
    false
}
