//! The compression benchmark (BENCHMARKS.md "Compression"): server CPU per
//! request and compressed size for one 100 KB JSON file, served as a static
//! file by rampart (`[compress]`) and by nginx (`gzip on; gzip_comp_level
//! N`), each with 2 workers and no access log. A fixed number of requests
//! (h2load, HTTP/1.1 keep-alive, 4 connections) per variant; the server's
//! CPU (user + system of its whole process group, from /proc) is read
//! before and after. The identity variant (no Accept-Encoding) is the cost
//! of serving the file; the difference is the cost of compressing it, given
//! per MB of input. Rounds alternate the order; the median is printed.
//!
//! Run: `cargo build --release -p proxy-user -p tests --bins &&
//! sudo RAMPART_BIN=target/release/rampart target/release/compress-bench`
//! (`--quick`: fewer requests and rounds).

use std::{
    os::unix::process::CommandExt,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use tests::process::Spawned;

const FILE_BYTES: usize = 100_000;

/// A JSON list of small records, the same every run (as an API answers).
fn sample_json(bytes: usize) -> String {
    let mut out = String::from("[");
    let mut i = 0u64;
    while out.len() < bytes {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            r#"{{"id":{i},"name":"item {i}","price":{}.{:02},"tags":["t{}","t{}"],"in_stock":{}}}"#,
            (i * 7919) % 1000,
            i % 100,
            i % 13,
            i % 7,
            i.is_multiple_of(3)
        ));
        i += 1;
    }
    out.push(']');
    out
}

#[derive(Clone, Copy, Debug)]
enum Server {
    Rampart,
    Nginx,
}

#[derive(Clone, Copy, Debug)]
struct Variant {
    server: Server,
    /// `None`: identity (the request sends no Accept-Encoding).
    coding: Option<&'static str>,
    level: i32,
}

impl Variant {
    fn name(&self) -> String {
        let s = match self.server {
            Server::Rampart => "rampart",
            Server::Nginx => "nginx",
        };
        match self.coding {
            None => format!("{s} identity"),
            Some(c) => format!("{s} {c} {}", self.level),
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(v: Variant, dir: &Path, www: &Path) -> (Spawned, u16) {
    let port = free_port();
    let d = dir.display();
    let w = www.display();
    let mut cmd = match v.server {
        Server::Rampart => {
            let compress = match v.coding {
                None => String::new(),
                Some(c) => {
                    let key = if c == "br" { "brotli" } else { c };
                    format!(
                        "[compress]\nencodings = [\"{c}\"]\n{key}_level = {}\n",
                        v.level
                    )
                }
            };
            let cfg = format!(
                "[http]\naccess_log = \"off\"\nworkers = 2\n\n{compress}\n\
                 [[listener]]\nbind = \"127.0.0.1:{port}\"\nhttp2 = false\n\n\
                 [admin]\nbind = \"off\"\n\n\
                 [[route]]\nroot = \"{w}\"\n"
            );
            std::fs::write(dir.join("rampart.toml"), cfg).unwrap();
            let mut c = Command::new(tests::daemon::rampart_bin());
            c.args(["run", "-c"])
                .arg(dir.join("rampart.toml"))
                .env("RUST_LOG", "warn");
            c
        }
        Server::Nginx => {
            let gzip = match v.coding {
                None => String::new(),
                Some(_) => format!(
                    "gzip on; gzip_comp_level {}; gzip_types application/json; gzip_min_length 256;",
                    v.level
                ),
            };
            let cfg = format!(
                "worker_processes 2;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log warn;\n\
                 events {{ worker_connections 1024; }}\n\
                 http {{\n access_log off;\n types {{ application/json json; }}\n keepalive_requests 1000000;\n\
                 server {{\n  listen 127.0.0.1:{port};\n  root {w};\n  {gzip}\n }}\n}}\n"
            );
            std::fs::write(dir.join("nginx.conf"), cfg).unwrap();
            let mut c = Command::new("nginx");
            c.args(["-c"])
                .arg(dir.join("nginx.conf"))
                .args(["-e", &format!("{d}/nginx-error.log")]);
            c
        }
    };
    cmd.process_group(0);
    let mut p = Spawned::start(&v.name(), cmd, &dir.join("server.log"));
    p.wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (p, port)
}

/// User + system CPU seconds of every process in process group `pgid`.
fn group_cpu(pgid: i32) -> f64 {
    // SAFETY: sysconf reads a constant of the system; no pointers involved.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let f: Vec<&str> = s[s.rfind(')')? + 2..].split_whitespace().collect();
            (f.get(2)?.parse::<i32>().ok()? == pgid).then(|| {
                (f[11].parse::<f64>().unwrap_or(0.0) + f[12].parse::<f64>().unwrap_or(0.0)) / tick
            })
        })
        .sum()
}

/// Body bytes of one response (curl's size_download), and its Content-Encoding.
fn one(port: u16, coding: Option<&str>) -> (usize, String) {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{size_download} %header{content-encoding}",
    ]);
    if let Some(coding) = coding {
        c.args(["-H", &format!("Accept-Encoding: {coding}")]);
    }
    let out = c
        .arg(format!("http://127.0.0.1:{port}/data.json"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (n, enc) = text.split_once(' ').unwrap_or((&text, ""));
    (n.parse().unwrap_or(0), enc.trim().to_string())
}

/// Server CPU microseconds per request over `n` requests.
fn cpu_per_request(pgid: i32, port: u16, coding: Option<&str>, n: u32) -> f64 {
    let before = group_cpu(pgid);
    let mut cmd = Command::new("h2load");
    cmd.args(["--h1", "-c", "4", "-n", &n.to_string()]);
    if let Some(coding) = coding {
        cmd.args(["-H", &format!("Accept-Encoding: {coding}")]);
    }
    let out = cmd
        .arg(format!("http://127.0.0.1:{port}/data.json"))
        .output()
        .expect("h2load");
    let text = String::from_utf8_lossy(&out.stdout);
    let ok = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("status codes:"))
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(0);
    assert_eq!(ok, n, "every request 2xx: {text}");
    (group_cpu(pgid) - before) * 1e6 / n as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (requests, rounds) = if quick { (500, 1) } else { (3000, 3) };
    let dir = std::env::temp_dir().join(format!("rampart-compress-bench-{}", std::process::id()));
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("data.json"), sample_json(FILE_BYTES)).unwrap();
    let mut variants = vec![
        Variant {
            server: Server::Nginx,
            coding: None,
            level: 0,
        },
        Variant {
            server: Server::Rampart,
            coding: None,
            level: 0,
        },
    ];
    for level in [1, 6] {
        variants.push(Variant {
            server: Server::Nginx,
            coding: Some("gzip"),
            level,
        });
    }
    for level in [1, 2, 3, 6] {
        variants.push(Variant {
            server: Server::Rampart,
            coding: Some("gzip"),
            level,
        });
    }
    for level in [1, 3] {
        variants.push(Variant {
            server: Server::Rampart,
            coding: Some("zstd"),
            level,
        });
    }
    for level in [1, 2, 3, 4] {
        variants.push(Variant {
            server: Server::Rampart,
            coding: Some("br"),
            level,
        });
    }
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut sizes = vec![0usize; variants.len()];
    let started = Instant::now();
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..variants.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let v = variants[i];
            let (mut p, port) = start(v, &dir, &www);
            let (size, enc) = one(port, v.coding);
            assert_eq!(
                enc,
                v.coding.unwrap_or(""),
                "{}: Content-Encoding",
                v.name()
            );
            sizes[i] = size;
            // Warm up, then measure.
            cpu_per_request(p.pid(), port, v.coding, requests / 10);
            cpu[i].push(cpu_per_request(p.pid(), port, v.coding, requests));
            p.terminate();
            eprintln!(
                "round {round}: {} {:.0} us/request",
                v.name(),
                cpu[i].last().unwrap()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let identity = |s: Server| {
        let i = variants
            .iter()
            .position(|v| {
                v.coding.is_none()
                    && std::mem::discriminant(&v.server) == std::mem::discriminant(&s)
            })
            .unwrap();
        median(cpu[i].clone())
    };
    println!(
        "{FILE_BYTES}-byte JSON, {requests} requests x {rounds} rounds, median; {:.0} s\n",
        started.elapsed().as_secs_f64()
    );
    println!(
        "| server, coding, level | CPU µs/request | compression CPU ms/MB | size (bytes) | ratio |"
    );
    println!("|---|---|---|---|---|");
    for (i, v) in variants.iter().enumerate() {
        let total = median(cpu[i].clone());
        let extra = total - identity(v.server);
        let per_mb = extra / 1000.0 / (FILE_BYTES as f64 / 1e6);
        println!(
            "| {} | {total:.0} | {} | {} | {:.3} |",
            v.name(),
            if v.coding.is_some() {
                format!("{per_mb:.2}")
            } else {
                "-".into()
            },
            sizes[i],
            sizes[i] as f64 / FILE_BYTES as f64
        );
    }
}
