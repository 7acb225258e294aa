//! `rampart maintenance on|off` against the real daemon: every request gets
//! 503 with the configured 503 `[[error_page]]` and `Retry-After`, at once
//! and without a reload; a reload keeps the switch; `off` serves again.

use std::time::Duration;

use tests::{
    backend::{http_get, named_backend},
    daemon::{cli, control_section, rampart_bin},
    netns::NetNs,
    privilege::require_root,
    process::Spawned,
};

/// curl in `ns`: (status, Retry-After, body).
fn fetch(ns: &NetNs, url: &str) -> (String, String, String) {
    let out = ns
        .command("curl")
        .args(["-s", "--max-time", "5", "-D", "/dev/stderr", url])
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stderr).to_string();
    let status = head.split(' ').nth(1).unwrap_or("000").to_string();
    let retry = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("retry-after:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    (
        status,
        retry,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn maintenance_switch_answers_503_with_the_page_without_a_reload() {
    if !require_root("maintenance_switch_answers_503_with_the_page_without_a_reload") {
        return;
    }
    let ns = NetNs::new("h16cmnt");
    named_backend(&ns, 9001, "app");
    let dir = tests::scratch::Scratch::new("maint");
    std::fs::write(dir.join("50x.html"), "<h1>Back soon</h1>\n").unwrap();
    let path = dir.join("rampart.toml");
    std::fs::write(
        &path,
        format!(
            "[[listener]]\nbind = \"127.0.0.1:8080\"\n\n[upstream.app]\nservers = [\"127.0.0.1:9001\"]\n\n\
             [[route]]\nupstream = \"app\"\n\n[[error_page]]\nstatus = [502, 503]\nfile = \"50x.html\"\n\n{}",
            control_section(&dir)
        ),
    )
    .unwrap();
    let mut cmd = ns.command(rampart_bin().to_str().unwrap());
    cmd.args(["run", "-c"]).arg(&path);
    let mut daemon = Spawned::start("rampart", cmd, &dir.join("rampart.log"));
    daemon.wait_until(Duration::from_secs(15), || {
        http_get(&ns, "127.0.0.1:8080", "/").is_ok()
    });
    let c = path.to_str().unwrap();
    let url = "http://127.0.0.1:8080/api";
    assert_eq!(fetch(&ns, url).0, "200");

    let (ok, out, err) = cli(&ns, &["-c", c, "maintenance", "on"]);
    assert!(ok && out.contains("maintenance on"), "{out} {err}");
    assert!(out.contains("the 503 [[error_page]]"), "{out}");
    let (status, retry, body) = fetch(&ns, url);
    assert_eq!(
        (status.as_str(), retry.as_str(), body.as_str()),
        ("503", "120", "<h1>Back soon</h1>\n")
    );

    // A reload keeps it; the CLI shows it (JSON too).
    let (ok, _, err) = cli(&ns, &["-c", c, "reload"]);
    assert!(ok, "{err}");
    assert_eq!(fetch(&ns, url).0, "503");
    let (ok, out, _) = cli(&ns, &["-c", c, "-j", "maintenance"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["maintenance"], true);

    let (ok, out, _) = cli(&ns, &["-c", c, "maintenance", "off"]);
    assert!(ok && out.contains("maintenance off"), "{out}");
    assert_eq!(fetch(&ns, url).0, "200");
    daemon.terminate();
    drop(dir);
}
