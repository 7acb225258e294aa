//! Instructions per request: rampart, nginx and HAProxy proxying the same
//! backend, each run under callgrind, which counts the instructions a
//! process executes in user space. The count does not move with the other
//! load on a shared 2-CPU machine, as CPU time does, so it shows a change
//! of a few percent that timing cannot. The kernel's share (sockets,
//! TCP, wakeups) is not counted: the table says so.
//!
//! Each proxy runs in one process with one worker thread, gets warm-up
//! requests, has its counters zeroed, serves the measured requests from
//! one client at a time, and has its counters dumped. Two shapes: GETs
//! over one keep-alive connection, and a new connection per GET.
//!
//! Prints a markdown table on stdout (the xtask writes it into
//! BENCHMARKS.md); progress on stderr.
//!
//! For an A/B of two rampart binaries: `--only rampart` runs rampart
//! alone (nginx's and HAProxy's counts do not change between them), and
//! `--keep DIR` keeps each measured profile in DIR (`rampart-keep-alive`,
//! `rampart-new-connection`, ...) for `callgrind_annotate`.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use tests::process::Spawned;

const BODY: &[u8] = b"hello world\n\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Rampart,
    Nginx,
    Haproxy,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .map(|i| args.get(i + 1).expect("a value after the flag").clone())
    };
    let only = value("--only").map(|o| o.to_ascii_lowercase());
    let keep = value("--keep").map(PathBuf::from);
    let (kept, fresh) = if quick { (500, 200) } else { (3000, 1000) };
    let dir = std::env::temp_dir().join(format!("rampart-instr-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let backend = backend();
    let mut rows = Vec::new();
    let kinds = [Kind::Rampart, Kind::Nginx, Kind::Haproxy];
    for kind in kinds.into_iter().filter(|k| {
        only.as_ref()
            .is_none_or(|o| format!("{k:?}").to_ascii_lowercase() == *o)
    }) {
        eprintln!("== {kind:?} under callgrind");
        let proxy = Proxied::start(kind, &dir, backend);
        let kept_as = |shape: &str| {
            keep.as_ref()
                .map(|d| d.join(format!("{kind:?}-{shape}").to_ascii_lowercase()))
        };
        let a = proxy.count(
            || requests(proxy.addr, 100, true),
            || requests(proxy.addr, kept, true),
            kept_as("keep-alive"),
        );
        let b = proxy.count(
            || requests(proxy.addr, 50, false),
            || requests(proxy.addr, fresh, false),
            kept_as("new-connection"),
        );
        rows.push((kind, a / kept as f64, b / fresh as f64));
    }
    assert!(
        !rows.is_empty(),
        "--only {}: no such proxy (rampart, nginx or haproxy)",
        only.unwrap_or_default()
    );
    let _ = std::fs::remove_dir_all(&dir);
    report(&rows, kept, fresh);
}

fn report(rows: &[(Kind, f64, f64)], kept: usize, fresh: usize) {
    // Ratios are to nginx when it ran (`--only` may leave it out).
    let nginx = rows
        .iter()
        .find(|r| r.0 == Kind::Nginx)
        .map_or((f64::NAN, f64::NAN), |r| (r.1, r.2));
    println!(
        "User-space instructions per proxied GET, counted by callgrind \
         (one worker thread each; {kept} requests on one keep-alive connection, \
         {fresh} on a new connection each; the kernel's work is not counted).\n"
    );
    println!("| proxy | keep-alive GET | / nginx | new connection + GET | / nginx |");
    println!("|---|---|---|---|---|");
    let ratio = |n: f64, to: f64| {
        if to.is_nan() {
            "-".to_string()
        } else {
            format!("{:.2}x", n / to)
        }
    };
    for (kind, a, b) in rows {
        println!(
            "| {kind:?} | {:.1}k | {} | {:.1}k | {} |",
            a / 1e3,
            ratio(*a, nginx.0),
            b / 1e3,
            ratio(*b, nginx.1)
        );
    }
    println!();
}

/// A proxy serving under callgrind.
struct Proxied {
    proc: Spawned,
    addr: SocketAddr,
    /// Where callgrind writes its dumps.
    out: PathBuf,
}

impl Proxied {
    fn start(kind: Kind, dir: &Path, backend: SocketAddr) -> Proxied {
        let port = free_port();
        let d = dir.display();
        let out = dir.join(format!("{kind:?}.callgrind"));
        let mut cmd = Command::new("valgrind");
        cmd.args(["--tool=callgrind", "--collect-atstart=yes"])
            .arg(format!("--callgrind-out-file={}", out.display()));
        match kind {
            Kind::Rampart => {
                let cfg = format!(
                    "[[listener]]\nbind = \"127.0.0.1:{port}\"\nhttp2 = false\n\n\
                     [http]\nworkers = 1\n\n\
                     [admin]\nbind = \"off\"\n\n\
                     [control]\nsocket = \"{d}/control.sock\"\nstate_file = \"{d}/state.json\"\n\n\
                     [upstream.app]\nservers = [\"{backend}\"]\nkeepalive = 64\n\n\
                     [[route]]\nupstream = \"app\"\naccess_log = false\n"
                );
                std::fs::write(dir.join("rampart.toml"), cfg).unwrap();
                cmd.arg(tests::daemon::rampart_bin())
                    .args(["run", "-c"])
                    .arg(dir.join("rampart.toml"))
                    .env("RUST_LOG", "warn");
            }
            Kind::Nginx => {
                let cfg = format!(
                    "master_process off;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log warn;\n\
                     events {{ worker_connections 1024; }}\n\
                     http {{\n access_log off;\n keepalive_requests 1000000;\n upstream app {{ server {backend}; keepalive 64; }}\n\
                     server {{\n  listen 127.0.0.1:{port};\n\
                       location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n }}\n}}\n"
                );
                std::fs::write(dir.join("nginx.conf"), cfg).unwrap();
                cmd.args(["nginx", "-c"])
                    .arg(dir.join("nginx.conf"))
                    .args(["-e", &format!("{d}/nginx-error.log")]);
            }
            Kind::Haproxy => {
                let cfg = format!(
                    "global\n nbthread 1\n maxconn 1000\n\ndefaults\n mode http\n timeout connect 5s\n \
                     timeout client 30s\n timeout server 30s\n http-reuse always\n\n\
                     frontend plain\n bind 127.0.0.1:{port}\n default_backend app\n\n\
                     backend app\n server s1 {backend}\n"
                );
                std::fs::write(dir.join("haproxy.cfg"), cfg).unwrap();
                cmd.args(["haproxy", "-db", "-f"])
                    .arg(dir.join("haproxy.cfg"));
            }
        }
        cmd.process_group(0);
        let mut proc = Spawned::start(
            &format!("{kind:?}"),
            cmd,
            &dir.join(format!("{kind:?}.log")),
        );
        proc.wait_until(Duration::from_secs(120), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Proxied {
            proc,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            out,
        }
    }

    /// Instructions executed during `measured`, after `warm_up`; the
    /// profile is moved to `keep` if given.
    fn count(&self, warm_up: impl FnOnce(), measured: impl FnOnce(), keep: Option<PathBuf>) -> f64 {
        warm_up();
        self.control("-z");
        measured();
        self.control("-d");
        // The dump is the numbered file written last.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(n) = self.latest_dump(keep.as_deref()) {
                return n;
            }
            assert!(
                Instant::now() < deadline,
                "no callgrind dump in {}",
                self.out.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn control(&self, what: &str) {
        let ok = Command::new("callgrind_control")
            .arg(what)
            .arg(self.proc.pid().to_string())
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "callgrind_control {what} failed");
    }

    /// The instruction total of the newest dump, removed (or moved to
    /// `keep`) once read.
    fn latest_dump(&self, keep: Option<&Path>) -> Option<f64> {
        let stem = self.out.file_name()?.to_str()?.to_string();
        let dir = self.out.parent()?;
        let newest = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(&stem) && n != stem)
            })
            .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())?;
        let text = std::fs::read_to_string(newest.path()).ok()?;
        let total = text
            .lines()
            .find_map(|l| l.strip_prefix("summary:"))?
            .trim()
            .parse()
            .ok()?;
        match keep {
            Some(to) => {
                // Copied: DIR may be on another file system than the dumps.
                std::fs::create_dir_all(to.parent()?).ok()?;
                std::fs::copy(newest.path(), to).ok()?;
                std::fs::remove_file(newest.path()).ok()?
            }
            None => std::fs::remove_file(newest.path()).ok()?,
        }
        Some(total)
    }
}

impl Drop for Proxied {
    fn drop(&mut self) {
        // SAFETY: signalling the process group this bench started.
        unsafe { libc::kill(-self.proc.pid(), libc::SIGKILL) };
    }
}

/// `n` GETs, one at a time: over one connection, or a new one each.
fn requests(addr: SocketAddr, n: usize, keep_alive: bool) {
    let connect = || {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.set_nodelay(true).unwrap();
        s
    };
    let mut conn = keep_alive.then(connect);
    let mut buf = vec![0u8; 4096];
    for _ in 0..n {
        let mut s = conn.take().unwrap_or_else(connect);
        let head: &[u8] = if keep_alive {
            b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
        } else {
            b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
        };
        s.write_all(head).unwrap();
        let mut got = Vec::new();
        while !got.ends_with(BODY) {
            let k = s.read(&mut buf).unwrap();
            assert!(
                k > 0,
                "connection closed: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..k]);
        }
        assert!(
            got.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&got)
        );
        if keep_alive {
            conn = Some(s);
        }
    }
}

/// A fixed-response HTTP/1.1 backend, a thread per connection.
fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream));
        }
    });
    addr
}

fn serve(mut s: TcpStream) {
    let _ = s.set_nodelay(true);
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
        BODY.len()
    );
    let mut buf = vec![0u8; 8192];
    let mut pending = Vec::new();
    loop {
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            pending.drain(..end + 4);
            if s.write_all(response.as_bytes())
                .and_then(|()| s.write_all(BODY))
                .is_err()
            {
                return;
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(k) => pending.extend_from_slice(&buf[..k]),
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
