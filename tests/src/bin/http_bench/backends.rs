//! The two upstream servers every proxy is measured against, each in a
//! process group of its own (so its CPU time is read apart from the
//! proxy's): rampart's bench backend (a one-thread hyper server, this
//! binary re-executed with `--serve-backend PORT`) and nginx answering
//! with `return 200` from one worker. Both send the same 13-byte body.

use std::{
    convert::Infallible,
    net::{SocketAddr, TcpStream},
    os::unix::process::CommandExt,
    path::Path,
    process::Command,
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, service::service_fn};
use hyper_util::rt::TokioIo;
use tests::process::Spawned;

use crate::procstat::{self, Group};

pub const BODY: &str = "hello world\n\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// rampart's own: hyper's HTTP/1 server on one tokio worker thread.
    Hyper,
    /// nginx 1.22, one worker, `return 200`.
    Nginx,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Hyper => "hyper",
            BackendKind::Nginx => "nginx",
        }
    }

    pub fn describe(self, keepalive_requests: u64) -> String {
        match self {
            BackendKind::Hyper => {
                "rampart's bench backend: hyper's HTTP/1 server, 1 tokio worker thread, \
                 no limit on requests per connection"
                    .into()
            }
            BackendKind::Nginx => format!(
                "nginx `return 200` from 1 worker process, `keepalive_requests {keepalive_requests}`"
            ),
        }
    }
}

pub struct Backend {
    proc: Group,
    pub addr: SocketAddr,
}

impl Backend {
    pub fn start(kind: BackendKind, dir: &Path, keepalive_requests: u64) -> Backend {
        let port = crate::proxies::free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let d = dir.display();
        let mut cmd = match kind {
            BackendKind::Hyper => {
                let mut c = Command::new(std::env::current_exe().expect("own path"));
                c.args(["--serve-backend", &port.to_string()]);
                c
            }
            BackendKind::Nginx => {
                let cfg = format!(
                    "worker_processes 1;\nworker_rlimit_nofile 20000;\ndaemon off;\npid {d}/backend-nginx.pid;\n\
                     error_log {d}/backend-nginx-error.log warn;\n\
                     events {{ worker_connections 8192; }}\n\
                     http {{\n access_log off;\n keepalive_requests {keepalive_requests};\n\
                      server {{\n  listen {addr} backlog=4096;\n\
                       location / {{ return 200 \"{}\"; }}\n }}\n}}\n",
                    BODY.escape_default()
                );
                std::fs::write(dir.join("backend-nginx.conf"), cfg).unwrap();
                let mut c = Command::new("nginx");
                c.arg("-c")
                    .arg(dir.join("backend-nginx.conf"))
                    .args(["-e", &format!("{d}/backend-nginx-error.log")]);
                c
            }
        };
        cmd.process_group(0);
        let what = format!("{} backend", kind.name());
        let log = dir.join(format!("backend-{}.log", kind.name()));
        let mut proc = Spawned::start(&what, cmd, &log);
        proc.wait_until(Duration::from_secs(10), || TcpStream::connect(addr).is_ok());
        Backend {
            proc: Group(proc),
            addr,
        }
    }

    pub fn cpu_seconds(&self) -> f64 {
        procstat::group_cpu_seconds(self.proc.pgid())
    }
}

/// The body of `--serve-backend PORT`: serves until killed.
pub fn serve_hyper(port: u16) -> ! {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("binding the backend");
    listener.set_nonblocking(true).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                        BODY.as_bytes(),
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}
