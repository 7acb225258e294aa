//! The three proxies, configured alike, started in their own process group.

use std::{net::SocketAddr, os::unix::process::CommandExt, path::Path, process::Command};

use tests::process::Spawned;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Rampart,
    Nginx,
    Haproxy,
}

pub struct Running {
    proc: Spawned,
    pub http_port: u16,
    pub https_port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Running {
    pub fn start(kind: Kind, dir: &Path, backend: SocketAddr) -> Running {
        let (http_port, https_port) = (free_port(), free_port());
        let d = dir.display();
        let mut cmd = match kind {
            Kind::Rampart => {
                let cfg = format!(
                    "[[listener]]\nbind = \"127.0.0.1:{http_port}\"\nhttp2 = false\n\n\
                     [[listener]]\nbind = \"127.0.0.1:{https_port}\"\ntls = {{ cert = \"{d}/site.crt\", key = \"{d}/site.key\" }}\n\n\
                     [upstream.app]\nservers = [\"{backend}\"]\nkeepalive = 64\n\n[[route]]\nupstream = \"app\"\naccess_log = false\n"
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
                    "worker_processes 2;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log warn;\n\
                     events {{ worker_connections 4096; }}\n\
                     http {{\n access_log off;\n keepalive_requests 1000000;\n upstream app {{ server {backend}; keepalive 64; }}\n\
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
                    "global\n nbthread 2\n maxconn 4000\n\ndefaults\n mode http\n timeout connect 5s\n timeout client 30s\n timeout server 30s\n http-reuse always\n\n\
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
        let mut proc = Spawned::start(
            &format!("{kind:?}"),
            cmd,
            &dir.join(format!("{kind:?}.log")),
        );
        proc.wait_until(std::time::Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", http_port)).is_ok()
        });
        Running {
            proc,
            http_port,
            https_port,
        }
    }

    fn group_pids(&self) -> Vec<u32> {
        let pgid = self.proc.pid();
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                stat(*pid)
                    .is_some_and(|f| f.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid))
            })
            .collect()
    }

    /// User + system CPU seconds of every process of the proxy.
    pub fn cpu_seconds(&self) -> f64 {
        // SAFETY: sysconf takes a constant and reads no memory of ours.
        let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        self.group_pids()
            .iter()
            .filter_map(|p| stat(*p))
            .map(|f| {
                (f[11].parse::<f64>().unwrap_or(0.0) + f[12].parse::<f64>().unwrap_or(0.0)) / tick
            })
            .sum()
    }

    /// Peak resident memory, summed over the proxy's processes.
    pub fn peak_rss_mib(&self) -> f64 {
        self.group_pids()
            .iter()
            .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
            .filter_map(|s| {
                s.lines().find_map(|l| l.strip_prefix("VmHWM:")).map(|v| {
                    v.trim()
                        .trim_end_matches(" kB")
                        .parse::<f64>()
                        .unwrap_or(0.0)
                })
            })
            .sum::<f64>()
            / 1024.0
    }
}

/// Fields of /proc/PID/stat after the command name (index 0 = state).
fn stat(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}
