//! Two daemons on one host with only `-c` differing: each configuration
//! file is an instance (named after the file), whose control socket,
//! state file and admin port derive from the name; the CLI given a file
//! reaches that file's daemon; a third daemon claiming a running
//! instance's name is refused at start, saying why.

use std::{path::PathBuf, time::Duration};

use proxy_user::config::instance;
use serde_json::Value;
use tests::{
    backend::{http_get, named_backend},
    daemon::{cli, rampart_bin},
    netns::NetNs,
    privilege::require_root,
    process::Spawned,
};

/// Removes what the instances left on the host's own paths.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

#[test]
fn two_instances_side_by_side_and_the_cli_finds_each() {
    if !require_root("two_instances_side_by_side_and_the_cli_finds_each") {
        return;
    }
    let ns = NetNs::new("h16d-inst");
    let dir = tests::scratch::Scratch::new("h16d-inst");
    // Names unique to this run (they name paths under /run and /var/lib),
    // with admin ports that differ.
    let pid = std::process::id();
    let mut n = pid;
    let (blue, green) = loop {
        let (b, g) = (format!("blue-{n}"), format!("green-{n}"));
        if instance::admin_port(&b) != instance::admin_port(&g) {
            break (b, g);
        }
        n += 1;
    };
    let mut cleanup = Cleanup(vec![dir.to_path_buf()]);
    for name in [&blue, &green] {
        cleanup
            .0
            .push(instance::socket(name).parent().unwrap().to_path_buf());
        cleanup
            .0
            .push(instance::state_file(name).parent().unwrap().to_path_buf());
    }
    named_backend(&ns, 9001, "blue-app");
    named_backend(&ns, 9002, "green-app");
    // Nothing but listeners, upstreams and routes: no [control], no [admin].
    let write = |name: &str, port: u16, upstream: &str, backend: u16| -> PathBuf {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "[[listener]]\nbind = \"127.0.0.1:{port}\"\n\n\
                 [upstream.{upstream}]\nservers = [\"127.0.0.1:{backend}\"]\n\n\
                 [[route]]\nupstream = \"{upstream}\"\n"
            ),
        )
        .unwrap();
        path
    };
    let blue_cfg = write(&blue, 8081, "b", 9001);
    let green_cfg = write(&green, 8082, "g", 9002);
    let start = |cfg: &PathBuf, probe: &'static str| -> Spawned {
        let mut cmd = ns.command(rampart_bin().to_str().unwrap());
        cmd.args(["run", "-c"]).arg(cfg);
        let mut d = Spawned::start("rampart", cmd, &cfg.with_extension("log"));
        d.wait_until(Duration::from_secs(15), || {
            http_get(&ns, probe, "/").is_ok()
        });
        d
    };
    let mut d_blue = start(&blue_cfg, "127.0.0.1:8081");
    let mut d_green = start(&green_cfg, "127.0.0.1:8082");
    assert_eq!(http_get(&ns, "127.0.0.1:8081", "/").unwrap(), "blue-app");
    assert_eq!(http_get(&ns, "127.0.0.1:8082", "/").unwrap(), "green-app");

    // Each has its own socket, state file and admin listener.
    for (name, log) in [(&blue, d_blue.log_text()), (&green, d_green.log_text())] {
        assert!(instance::socket(name).exists(), "{name}");
        assert!(
            log.contains(&format!("rampart instance `{name}` running")),
            "{log}"
        );
        let admin = format!("127.0.0.1:{}", instance::admin_port(name));
        assert!(
            http_get(&ns, &admin, "/healthz").is_ok(),
            "{name}'s admin on {admin}"
        );
    }

    // The CLI, given a file, talks to that file's daemon.
    let groups = |cfg: &PathBuf| -> Vec<String> {
        let (ok, out, err) = cli(
            &ns,
            &["-j", "-c", cfg.to_str().unwrap(), "upstream", "list"],
        );
        assert!(ok, "{err}");
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["group"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(groups(&blue_cfg), ["b"]);
    assert_eq!(groups(&green_cfg), ["g"]);
    let (ok, _, err) = cli(
        &ns,
        &[
            "-c",
            blue_cfg.to_str().unwrap(),
            "upstream",
            "drain",
            "127.0.0.1:9001",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        std::fs::read_to_string(instance::state_file(&blue))
            .unwrap()
            .contains("b/127.0.0.1:9001"),
        "the drain is in blue's state file"
    );
    assert!(
        !std::fs::read_to_string(instance::state_file(&green))
            .unwrap_or_default()
            .contains("127.0.0.1:9001")
    );

    let (ok, _, err) = cli(
        &ns,
        &[
            "-c",
            blue_cfg.to_str().unwrap(),
            "upstream",
            "undrain",
            "127.0.0.1:9001",
        ],
    );
    assert!(ok, "{err}");

    // A third daemon naming itself blue is refused at start, saying why.
    let clash = dir.join("other.toml");
    std::fs::write(
        &clash,
        format!(
            "instance = \"{blue}\"\n[[listener]]\nbind = \"127.0.0.1:8083\"\n\n\
             [upstream.x]\nservers = [\"127.0.0.1:9001\"]\n\n[[route]]\nupstream = \"x\"\n"
        ),
    )
    .unwrap();
    let out = ns
        .command(rampart_bin().to_str().unwrap())
        .args(["run", "-c"])
        .arg(&clash)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("another rampart daemon is answering on")
            && err.contains(&instance::socket(&blue).display().to_string())
            && err.contains("`instance` name"),
        "{err}"
    );
    // Blue still serves.
    assert_eq!(http_get(&ns, "127.0.0.1:8081", "/").unwrap(), "blue-app");
    assert!(d_blue.terminate().success());
    assert!(d_green.terminate().success());
}
