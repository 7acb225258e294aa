//! Active health checks: a GET of the configured path on every server at an
//! interval; `fails` consecutive failures mark a server down, `passes`
//! consecutive successes bring it back. The tasks stop when their group is
//! dropped (a reload builds new groups).

use std::sync::{Arc, Weak};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpStream, UnixStream},
};

use super::{Backend, Group, Target};
use crate::config::HealthCheck;

/// Starts one checking task per server of `group`, if it has a health check.
pub fn spawn_checks(group: &Arc<Group>) {
    for backend in group.backends().iter() {
        spawn_check(group, backend);
    }
}

/// Starts checking one server of `group` (also one a name newly resolved
/// to). The task stops when the group is dropped (a reload built another)
/// or the server left it (its name no longer resolves to it).
pub(super) fn spawn_check(group: &Arc<Group>, backend: &Arc<Backend>) {
    let Some(check) = group.config.health_check.clone() else {
        return;
    };
    let (group, backend) = (Arc::downgrade(group), Arc::downgrade(backend));
    tokio::spawn(async move { run(group, backend, check).await });
}

async fn run(group: Weak<Group>, backend: Weak<Backend>, check: HealthCheck) {
    let (mut fails, mut passes) = (0u32, 0u32);
    let mut ticker = tokio::time::interval(check.interval);
    loop {
        ticker.tick().await;
        let (Some(g), Some(backend)) = (group.upgrade(), backend.upgrade()) else {
            return;
        };
        if !g.has(&backend) {
            return;
        }
        let name = g.config.name.clone();
        drop(g);
        let ok = probe(&backend.addr, &check).await;
        if ok {
            passes += 1;
            fails = 0;
            if passes >= check.passes && !backend.available_by_checks() {
                log::info!(
                    "upstream {name}: {} passes its health check again",
                    backend.addr
                );
                backend.set_healthy(true);
            }
        } else {
            fails += 1;
            passes = 0;
            if fails >= check.fails && backend.available_by_checks() {
                log::warn!(
                    "upstream {name}: {} failed {} health checks in a row; taken out",
                    backend.addr,
                    fails
                );
                backend.set_healthy(false);
            }
        }
    }
}

/// One check: connect (over TCP or the Unix socket, as requests do), send
/// a GET, read the status line.
async fn probe(addr: &Target, check: &HealthCheck) -> bool {
    let attempt = async {
        match addr {
            Target::Tcp(a) => exchange(TcpStream::connect(a).await.ok()?, addr, check).await,
            Target::Unix(p) => exchange(UnixStream::connect(p).await.ok()?, addr, check).await,
        }
    };
    match tokio::time::timeout(check.timeout, attempt).await {
        Ok(Some(status)) => match check.status {
            Some(want) => status == want,
            None => (200..400).contains(&status),
        },
        _ => false,
    }
}

/// The check's request and the status of its answer.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    addr: &Target,
    check: &HealthCheck,
) -> Option<u16> {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: rampart-health\r\nConnection: close\r\n\r\n",
        check.path,
        addr.host()
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).await.ok()?;
    let line = std::str::from_utf8(&head[..n]).ok()?;
    line.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()
}

impl super::Backend {
    fn available_by_checks(&self) -> bool {
        self.healthy.load(std::sync::atomic::Ordering::Relaxed)
    }
}
