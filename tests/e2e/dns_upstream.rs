//! Upstream servers named `host:port`, resolved through the system's
//! resolver configuration: a real DNS server (dnsmasq, its records in a
//! hosts file it reads again on SIGHUP) named by `/etc/resolv.conf`, and a
//! Docker-Compose-style name in `/etc/hosts`, both bind-mounted for the
//! daemon alone (a mount namespace of its own inside the test's network
//! namespace). The records change during the test: the server set follows
//! on the records' TTL, kept servers keep their counters, and a name that
//! does not resolve at start leaves its server down, said once, until it
//! does.

use std::{path::Path, process::Command, time::Duration};

use serde_json::Value;
use tests::{
    backend::named_backend_at,
    daemon::{control_section, rampart_bin},
    netns::NetNs,
    privilege::require_root,
    process::Spawned,
};

/// `rampart ARGS` in `ns`, with `dir`'s resolv.conf and hosts as the
/// system's (for this process only).
fn with_dns(ns: &NetNs, dir: &Path, args: &str) -> Command {
    let mut cmd = ns.command("unshare");
    cmd.args(["--mount", "--", "sh", "-c"]).arg(format!(
        "mount --bind {d}/resolv.conf /etc/resolv.conf && mount --bind {d}/hosts /etc/hosts && exec {} {args}",
        rampart_bin().display(),
        d = dir.display()
    ));
    cmd
}

/// A GET through the edge: (status, body).
fn get(ns: &NetNs, path: &str) -> (u16, String) {
    let out = ns
        .command("curl")
        .args(["-s", "--max-time", "5", "-w", "\n%{http_code}"])
        .arg(format!("http://127.0.0.1:8080{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "000"));
    (status.parse().unwrap_or(0), body.to_string())
}

#[test]
fn names_follow_their_dns_records() {
    if !require_root("names_follow_their_dns_records") {
        return;
    }
    let ns = NetNs::new("h16d-dns");
    let dir = tests::scratch::Scratch::new("h16d-dns");
    let d: &std::path::Path = &dir;
    std::fs::create_dir_all(d).unwrap();
    for (ip, name) in [
        ("127.0.0.2", "two"),
        ("127.0.0.3", "three"),
        ("127.0.0.4", "four"),
    ] {
        named_backend_at(&ns, ip, 9000, name);
    }
    std::fs::write(d.join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
    std::fs::write(
        d.join("hosts"),
        "127.0.0.1 localhost\n127.0.0.4 compose-db\n",
    )
    .unwrap();
    let records = d.join("records");
    std::fs::write(&records, "127.0.0.2 web.test\n").unwrap();
    let mut dns_cmd = ns.command("dnsmasq");
    dns_cmd
        .args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
        ])
        .args([
            "--no-hosts",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
        ])
        .args([
            "--port=53",
            "--local=/test/",
            "--local-ttl=1",
            "--pid-file=",
        ])
        .args(["--user=root", "--log-queries", "--log-facility=-"])
        .arg(format!("--addn-hosts={}", records.display()));
    let mut dns = Spawned::start("dnsmasq", dns_cmd, &d.join("dnsmasq.log"));
    let dig = || {
        ns.command("dig")
            .args(["+short", "+time=1", "@127.0.0.1", "web.test"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let have_dig = Command::new("dig").arg("-v").output().is_ok();
    dns.wait_until(Duration::from_secs(10), || {
        !have_dig || dig().contains("127.0.0.2")
    });
    if !have_dig {
        std::thread::sleep(Duration::from_millis(500));
    }
    let config = d.join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            "[[listener]]\nbind = \"127.0.0.1:8080\"\n\n\
             [upstream.web]\nservers = [\"web.test:9000\"]\n\n\
             [upstream.db]\nservers = [\"compose-db:9000\"]\n\n\
             [upstream.late]\nservers = [\"late.test:9000\"]\n\n\
             [[route]]\npath = \"/db/\"\nupstream = \"db\"\n\n\
             [[route]]\npath = \"/late/\"\nupstream = \"late\"\n\n\
             [[route]]\nupstream = \"web\"\n\n{}",
            control_section(d)
        ),
    )
    .unwrap();

    // `config check` warns about the name that does not resolve, only it.
    let check = with_dns(&ns, d, &format!("config check {}", config.display()))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(check.status.success(), "{said}");
    assert_eq!(said.matches("warning:").count(), 1, "{said}");
    assert!(said.contains("`late.test:9000` does not resolve"), "{said}");

    let mut daemon = Spawned::start(
        "rampart",
        with_dns(&ns, d, &format!("run -c {}", config.display())),
        &d.join("rampart.log"),
    );
    daemon.wait_until(Duration::from_secs(15), || get(&ns, "/").0 == 200);
    assert_eq!(get(&ns, "/").1, "two");
    assert_eq!(get(&ns, "/db/").1, "four", "a name from /etc/hosts");
    assert_eq!(get(&ns, "/late/").0, 502, "an unresolved name is down");
    let ctl = || -> Vec<Value> {
        let out = ns
            .command(rampart_bin().to_str().unwrap())
            .args(["-j", "-c", config.to_str().unwrap(), "upstream", "list"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    let web = || -> Vec<(String, u64)> {
        ctl()
            .into_iter()
            .filter(|s| s["group"] == "web")
            .map(|s| {
                (
                    s["addr"].as_str().unwrap().to_string(),
                    s["requests"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let late: Vec<Value> = ctl().into_iter().filter(|s| s["group"] == "late").collect();
    assert_eq!(late.len(), 1, "{late:?}");
    assert_eq!(late[0]["addr"], "late.test:9000");
    assert_eq!(late[0]["state"], "unresolved");
    for _ in 0..5 {
        assert_eq!(get(&ns, "/").1, "two");
    }
    let before = web();
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0].0, "127.0.0.2:9000");
    let kept_requests = before[0].1;
    assert!(kept_requests >= 7, "{before:?}");

    // web.test gains an address and late.test appears: within a few TTLs
    // the sets follow, and 127.0.0.2 keeps its server (its counter).
    std::fs::write(
        &records,
        "127.0.0.2 web.test\n127.0.0.3 web.test\n127.0.0.3 late.test\n",
    )
    .unwrap();
    hup(&dns);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while web().len() != 2 || get(&ns, "/late/").0 != 200 {
        assert!(std::time::Instant::now() < deadline, "{:?}", web());
        std::thread::sleep(Duration::from_millis(200));
    }
    let both = web();
    let two = both.iter().find(|(a, _)| a == "127.0.0.2:9000").unwrap();
    assert!(
        two.1 >= kept_requests,
        "the kept server's counter: {both:?}"
    );
    let bodies: Vec<String> = (0..10).map(|_| get(&ns, "/").1).collect();
    assert!(
        bodies.contains(&"two".into()) && bodies.contains(&"three".into()),
        "{bodies:?}"
    );
    assert_eq!(get(&ns, "/late/").1, "three");

    // 127.0.0.2 leaves web.test: it takes no more requests.
    std::fs::write(&records, "127.0.0.3 web.test\n127.0.0.3 late.test\n").unwrap();
    hup(&dns);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while web().len() != 1 {
        assert!(std::time::Instant::now() < deadline, "{:?}", web());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(web()[0].0, "127.0.0.3:9000");
    for _ in 0..10 {
        assert_eq!(get(&ns, "/").1, "three");
    }
    daemon.terminate();
    let log = daemon.log_text();
    assert_eq!(
        log.matches("`late.test:9000` does not resolve").count(),
        1,
        "one line while it does not resolve:\n{log}"
    );
    assert!(log.contains("`late.test:9000` resolves again"), "{log}");
    assert!(
        log.contains("`web.test:9000` -> [127.0.0.3:9000] (added [], removed [127.0.0.2:9000])"),
        "{log}"
    );
}

fn hup(p: &Spawned) {
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(p.pid(), libc::SIGHUP) };
}
