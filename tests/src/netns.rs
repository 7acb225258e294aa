//! Network namespaces and veth pairs as RAII guards: each is deleted on drop,
//! even when the test panics. Names carry the process id so parallel runs and
//! leftovers from a killed run never collide.

use std::{
    fs::File,
    os::fd::AsRawFd,
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Runs a command and panics with its output if it fails.
pub fn sh(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct NetNs {
    name: String,
    /// Whether dropping this handle deletes the namespace.
    owned: bool,
}

impl NetNs {
    pub fn new(tag: &str) -> NetNs {
        let name = format!(
            "rt{}-{}-{tag}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        sh("ip", &["netns", "add", &name]);
        let ns = NetNs { name, owned: true };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// A handle on a namespace someone else owns (for another thread): not
    /// deleted when dropped.
    pub fn existing(name: &str) -> NetNs {
        NetNs {
            name: name.to_string(),
            owned: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip ARGS` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        sh("ip", &full)
    }

    /// A command run inside the namespace with `nsenter --net`, which (unlike
    /// `ip netns exec`) keeps /sys and so /sys/fs/bpf.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.name))
            .arg("--")
            .arg(program);
        cmd
    }

    /// Moves the calling thread into this namespace (for sockets and attaching).
    pub fn enter(&self) {
        let f = File::open(format!("/run/netns/{}", self.name)).expect("open netns");
        // SAFETY: setns on a namespace fd we hold; affects only this thread.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }

    /// Runs `f` on the calling thread inside this namespace, then returns the
    /// thread to the namespace it was in (also when `f` panics).
    pub fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        struct Restore(File);
        impl Drop for Restore {
            fn drop(&mut self) {
                // SAFETY: setns back to the namespace fd saved below.
                unsafe { libc::setns(self.0.as_raw_fd(), libc::CLONE_NEWNET) };
            }
        }
        let _restore = Restore(File::open("/proc/thread-self/ns/net").expect("open own netns"));
        self.enter();
        f()
    }

    /// Runs `f` on a new thread inside this namespace and returns its result.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = File::open(&path).expect("open netns");
            // SAFETY: as in `enter`.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Two namespaces joined by a veth pair: `edge` (where XDP attaches, interface
/// `edge_if`) and `client` (interface `client_if`). Dropping it deletes both.
pub struct Link {
    pub client: NetNs,
    pub edge: NetNs,
    pub edge_if: String,
    pub client_if: String,
}

impl Link {
    /// Creates the pair with one queue per CPU so traffic can spread over CPUs.
    pub fn new(tag: &str) -> Link {
        let edge = NetNs::new(&format!("{tag}e"));
        let client = NetNs::new(&format!("{tag}c"));
        let cpus = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .to_string();
        let (edge_if, client_if) = ("rp0".to_string(), "rc0".to_string());
        edge.ip(&[
            "link",
            "add",
            &edge_if,
            "numtxqueues",
            &cpus,
            "numrxqueues",
            &cpus,
            "type",
            "veth",
            "peer",
            "name",
            &client_if,
            "netns",
            client.name(),
            "numtxqueues",
            &cpus,
            "numrxqueues",
            &cpus,
        ]);
        edge.ip(&["link", "set", &edge_if, "up"]);
        client.ip(&["link", "set", &client_if, "up"]);
        Link {
            client,
            edge,
            edge_if,
            client_if,
        }
    }

    /// Adds an address (CIDR notation) on the client side; IPv6 without DAD.
    pub fn client_addr(&self, cidr: &str) {
        add_addr(&self.client, &self.client_if, cidr);
    }

    pub fn edge_addr(&self, cidr: &str) {
        add_addr(&self.edge, &self.edge_if, cidr);
    }
}

fn add_addr(ns: &NetNs, dev: &str, cidr: &str) {
    if cidr.contains(':') {
        ns.ip(&["addr", "add", cidr, "dev", dev, "nodad"]);
    } else {
        ns.ip(&["addr", "add", cidr, "dev", dev]);
    }
}
