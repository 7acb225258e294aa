//! The three proxies, configured alike, each started in its own process
//! group: the same number of workers (rampart's `[http] workers`, nginx's
//! `worker_processes`, HAProxy's `nbthread`), upstream keep-alive, no
//! access log, HTTP/1.1 on a plain listener and HTTP/2 (ALPN) over TLS.
//!
//! Upstream keep-alive: rampart's and nginx's `keepalive` is the idle
//! connections each worker keeps per server (nginx closes the surplus at
//! once, rampart after a second idle); HAProxy keeps every idle connection
//! and purges them gradually (its defaults, `http-reuse always`). nginx's
//! upstream `keepalive_requests` is raised from its default 1000 so that
//! nginx alone does not reconnect every 1000 requests.

use std::{net::SocketAddr, os::unix::process::CommandExt, path::Path, process::Command};

use tests::process::Spawned;

use crate::procstat::{self, Group};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Rampart,
    Nginx,
    Haproxy,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Rampart, Kind::Nginx, Kind::Haproxy];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Rampart => "rampart",
            Kind::Nginx => "nginx",
            Kind::Haproxy => "HAProxy",
        }
    }
}

/// What every proxy is given alike.
#[derive(Clone, Copy, Debug)]
pub struct Tuning {
    pub workers: u32,
    /// Idle upstream connections kept per worker (rampart, nginx).
    pub keepalive: u32,
}

pub struct Running {
    proc: Group,
    pub http_port: u16,
    pub https_port: u16,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Running {
    pub fn start(kind: Kind, dir: &Path, backend: SocketAddr, t: Tuning) -> Running {
        let (http_port, https_port) = (free_port(), free_port());
        let d = dir.display();
        let (workers, keepalive) = (t.workers, t.keepalive);
        let mut cmd = match kind {
            Kind::Rampart => {
                let cfg = format!(
                    "[http]\nworkers = {workers}\n\n\
                     [[listener]]\nbind = \"127.0.0.1:{http_port}\"\nhttp2 = false\n\n\
                     [[listener]]\nbind = \"127.0.0.1:{https_port}\"\ntls = {{ cert = \"{d}/site.crt\", key = \"{d}/site.key\" }}\n\n\
                     [upstream.app]\nservers = [\"{backend}\"]\nkeepalive = {keepalive}\n\n[[route]]\nupstream = \"app\"\naccess_log = false\n"
                );
                std::fs::write(dir.join("rampart.toml"), cfg).unwrap();
                let mut c = Command::new(tests::daemon::rampart_bin());
                c.args(["run", "-c"])
                    .arg(dir.join("rampart.toml"))
                    .env("RUST_LOG", "warn");
                c
            }
            Kind::Nginx => {
                let cfg = format!(
                    "worker_processes {workers};\nworker_rlimit_nofile 20000;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log warn;\n\
                     events {{ worker_connections 8192; }}\n\
                     http {{\n access_log off;\n keepalive_requests 1000000;\n\
                      upstream app {{ server {backend}; keepalive {keepalive}; keepalive_requests 1000000; }}\n\
                      server {{\n  listen 127.0.0.1:{http_port} backlog=1024;\n  listen 127.0.0.1:{https_port} ssl http2;\n\
                       ssl_certificate {d}/site.crt;\n  ssl_certificate_key {d}/site.key;\n  ssl_protocols TLSv1.2 TLSv1.3;\n\
                       location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n }}\n}}\n"
                );
                std::fs::write(dir.join("nginx.conf"), cfg).unwrap();
                let mut c = Command::new("nginx");
                c.args(["-c"])
                    .arg(dir.join("nginx.conf"))
                    .args(["-e", &format!("{d}/nginx-error.log")]);
                c
            }
            Kind::Haproxy => {
                let cfg = format!(
                    "global\n nbthread {workers}\n maxconn 8000\n\n\
                     defaults\n mode http\n timeout connect 5s\n timeout client 30s\n timeout server 30s\n http-reuse always\n\n\
                     frontend plain\n bind 127.0.0.1:{http_port}\n default_backend app\n\n\
                     frontend tls\n bind 127.0.0.1:{https_port} ssl crt {d}/site.pem alpn h2,http/1.1\n default_backend app\n\n\
                     backend app\n server s1 {backend}\n"
                );
                std::fs::write(dir.join("haproxy.cfg"), cfg).unwrap();
                let mut c = Command::new("haproxy");
                c.args(["-f"]).arg(dir.join("haproxy.cfg")).arg("-db");
                c
            }
        };
        // Own process group: CPU and memory are summed over it.
        cmd.process_group(0);
        let mut proc = Spawned::start(kind.name(), cmd, &dir.join(format!("{kind:?}.log")));
        proc.wait_until(std::time::Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", http_port)).is_ok()
        });
        Running {
            proc: Group(proc),
            http_port,
            https_port,
        }
    }

    /// User + system CPU seconds of every process of the proxy.
    pub fn cpu_seconds(&self) -> f64 {
        procstat::group_cpu_seconds(self.proc.pgid())
    }

    /// Peak resident memory, summed over the proxy's processes.
    pub fn peak_rss_mib(&self) -> f64 {
        procstat::group_peak_rss_mib(self.proc.pgid())
    }
}
