//! Values at the edge of their range (issue 13, item 9): a `--ttl` of
//! u64::MAX seconds, the same sent straight to the control socket (the CLI
//! is not its only client), a state file whose entry expires at u64::MAX,
//! and a `header_timeout` of u64::MAX seconds. Each used to crash the daemon
//! or a worker; each must now be refused with an error, or, for what the
//! daemon wrote itself, simply work.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
};

use serde_json::Value;
use tests::{
    daemon::{Daemon, cli, control_section},
    netns::NetNs,
    privilege::require_root,
};

const HUGE: &str = "18446744073709551615";

#[test]
fn huge_values_are_refused_and_a_state_file_expiring_at_u64_max_starts_up() {
    if !require_root("huge_values_are_refused_and_a_state_file_expiring_at_u64_max_starts_up") {
        return;
    }
    let ns = NetNs::new("val");
    let dir = tests::scratch::Scratch::new("values");

    // `config check` refuses the huge timeout, naming file:line:col.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, format!("[http]\nheader_timeout = \"{HUGE}\"\n")).unwrap();
    let out = ns
        .command(tests::daemon::rampart_bin().to_str().unwrap())
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "config check: {err}");
    assert!(
        err.contains(&format!("{}:2:18: `{HUGE}` is too long", bad.display())),
        "{err}"
    );

    // A state file the daemon (or an operator) left with an expiry at u64::MAX.
    std::fs::write(
        dir.join("state.json"),
        format!(
            r#"{{"entries":[{{"list":"block","cidr":"203.0.113.9","origin":"cli","reason":"forever","expires_at":{HUGE}}}]}}"#
        ),
    )
    .unwrap();
    let config = dir.join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            "[filter]\ninterfaces = []\n\n[[listener]]\nbind = \"127.0.0.1:8080\"\n\n\
             [[route]]\nrespond = 200\n\n{}",
            control_section(&dir)
        ),
    )
    .unwrap();
    let daemon = Daemon::serving(&ns, &config, "127.0.0.1:8080");
    let ctl = |args: &[&str]| {
        let mut all = vec!["-c", config.to_str().unwrap()];
        all.extend_from_slice(args);
        cli(&ns, &all)
    };
    let (ok, out, err) = ctl(&["-j", "block", "list"]);
    assert!(ok, "block list: {err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|e| e["cidr"] == "203.0.113.9" && e["kind"] == "ban"),
        "the u64::MAX entry was restored: {out}"
    );

    // The CLI refuses the ttl...
    let (ok, _, err) = ctl(&["block", "add", "203.0.113.7", "--ttl", HUGE]);
    assert!(!ok);
    assert!(err.contains("the maximum is 365d"), "{err}");
    let (ok, _, err) = ctl(&["limit", "set", "syn", "--rate", "10", "--burst", HUGE]);
    assert!(!ok, "limit set with a huge burst: {err}");

    // ...and so does the daemon, asked directly.
    for (request, expected) in [
        (
            format!(
                r#"{{"op":"list_add","list":"block","cidr":"203.0.113.7","ttl_secs":{HUGE},"reason":null}}"#
            ),
            "the maximum is 31536000s",
        ),
        (
            format!(r#"{{"op":"limit_set","name":"syn","rate":"10","burst":{HUGE}}}"#),
            "the maximum for syn is 1000000000",
        ),
    ] {
        let mut s = UnixStream::connect(dir.join("control.sock")).unwrap();
        s.write_all(format!("{request}\n").as_bytes()).unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        let reply: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(reply["ok"], false, "{line}");
        assert!(
            reply["error"].as_str().unwrap().contains(expected),
            "{line}"
        );
    }

    // Still there, still answering, and the refused ban was not added.
    let (ok, out, err) = ctl(&["-j", "block", "list"]);
    assert!(ok, "the daemon answers after the refusals: {err}");
    assert!(!out.contains("203.0.113.7"), "{out}");
    let (ok, _, err) = ctl(&["block", "add", "203.0.113.7", "--ttl", "365d"]);
    assert!(ok, "the largest ttl is accepted: {err}");
    println!(
        "figure: --ttl {HUGE} refused by the CLI and the daemon; state file with expires_at {HUGE} restored"
    );
    daemon.stop();
    drop(dir);
}
