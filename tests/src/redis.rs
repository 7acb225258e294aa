//! A real `redis-server` (Debian's package; `cargo xtask bootstrap`
//! installs it) on a free loopback port, without persistence, killed on
//! drop. [`Redis::restart_empty`] brings it back on the same port with
//! nothing in it, as a crashed Redis without persistence comes back.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::{netns::NetNs, process::Spawned};

pub struct Redis {
    pub port: u16,
    dir: PathBuf,
    proc: Option<Spawned>,
    /// `--aclfile`, when started with an ACL user.
    acl: Option<PathBuf>,
    /// The namespace it runs in and the address it listens on there
    /// (`None`: this one, 127.0.0.1 only).
    ns: Option<(String, String)>,
    /// TLS only (no plain port): the certificate, key and CA files, and
    /// whether clients must present a certificate the CA signed.
    tls: Option<([PathBuf; 3], bool)>,
}

/// Whether `redis-server` is installed (else the test says why it skips,
/// or fails under CI=true).
pub fn available(test: &str) -> bool {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok()
    {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test} needs redis-server (cargo xtask bootstrap installs it)");
    }
    eprintln!("SKIP {test}: redis-server is not installed (cargo xtask bootstrap)");
    false
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Redis {
    /// Starts one, its log in `dir`.
    pub fn start(dir: &Path) -> Redis {
        Redis::new(dir, free_port(), None, None)
    }

    /// Starts one whose only user is `user` with `password`, allowed the
    /// keys and command categories `acl` lists (the `default` user is off,
    /// as in a production deployment).
    pub fn with_acl(dir: &Path, user: &str, password: &str, acl: &str) -> Redis {
        let file = dir.join("users.acl");
        std::fs::write(
            &file,
            format!("user {user} on >{password} {acl}\nuser default off\n"),
        )
        .unwrap();
        Redis::new(dir, free_port(), Some(file), None)
    }

    /// Starts one inside `ns` on port 6379, listening on `addr` (an
    /// address of `ns` that other namespaces reach) and 127.0.0.1.
    pub fn in_netns(dir: &Path, ns: &NetNs, addr: &str) -> Redis {
        Redis::new(
            dir,
            6379,
            None,
            Some((ns.name().to_string(), addr.to_string())),
        )
    }

    /// Starts one that speaks only TLS on its port, with `cert` and `key`
    /// (signed by `ca`); `clients`: clients must present a certificate
    /// `ca` signed (`--tls-auth-clients yes`).
    pub fn with_tls(dir: &Path, cert: &Path, key: &Path, ca: &Path, clients: bool) -> Redis {
        let mut r = Redis {
            port: free_port(),
            dir: dir.to_path_buf(),
            proc: None,
            acl: None,
            ns: None,
            tls: Some(([cert, key, ca].map(Path::to_path_buf), clients)),
        };
        r.spawn();
        r
    }

    fn new(dir: &Path, port: u16, acl: Option<PathBuf>, ns: Option<(String, String)>) -> Redis {
        let mut r = Redis {
            port,
            dir: dir.to_path_buf(),
            proc: None,
            acl,
            ns,
            tls: None,
        };
        r.spawn();
        r
    }

    fn args(&self) -> Vec<String> {
        let bind = match &self.ns {
            Some((_, addr)) => format!("{addr} 127.0.0.1"),
            None => "127.0.0.1".to_string(),
        };
        let mut a: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            &bind,
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if self.ns.is_some() {
            // Reached from other namespaces (ours, made by the test) without
            // a password: protected mode would refuse them.
            a.extend(["--protected-mode".to_string(), "no".to_string()]);
        }
        if let Some(f) = &self.acl {
            a.extend(["--aclfile".to_string(), f.display().to_string()]);
        }
        if let Some(([cert, key, ca], clients)) = &self.tls {
            a[1] = "0".to_string();
            a.extend([
                "--tls-port".to_string(),
                self.port.to_string(),
                "--tls-cert-file".to_string(),
                cert.display().to_string(),
                "--tls-key-file".to_string(),
                key.display().to_string(),
                "--tls-ca-cert-file".to_string(),
                ca.display().to_string(),
                "--tls-auth-clients".to_string(),
                if *clients { "yes" } else { "no" }.to_string(),
            ]);
        }
        a
    }

    fn command(&self, program: &str) -> Command {
        match &self.ns {
            Some((name, _)) => NetNs::existing(name).command(program),
            None => Command::new(program),
        }
    }

    /// It answers: PONG, or NOAUTH when the default user is off.
    fn answers(&self) -> bool {
        let port = self.port;
        if self.tls.is_some() {
            // A plain PING is no TLS handshake: listening is what we can see.
            return TcpStream::connect(("127.0.0.1", port)).is_ok();
        }
        let reply = match &self.ns {
            Some((name, _)) => NetNs::existing(name).run(move || ping(port)),
            None => ping(port),
        };
        reply.is_ok_and(|r| !r.is_empty())
    }

    fn spawn(&mut self) {
        let mut cmd = self.command("redis-server");
        cmd.args(self.args());
        let mut p = Spawned::start("redis-server", cmd, &self.dir.join("redis.log"));
        p.wait_until(Duration::from_secs(10), || self.answers());
        self.proc = Some(p);
    }

    /// SIGSTOP: connections stay open and nothing answers (a slow Redis).
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`Redis::pause`].
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, sig: i32) {
        if let Some(p) = &self.proc {
            // SAFETY: signalling our own child (nsenter execs redis-server
            // in place, so the pid is the server's).
            unsafe { libc::kill(p.pid(), sig) };
        }
    }

    /// SIGKILL: gone, with everything in it.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Starts again on the same port, empty.
    pub fn restart_empty(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            // The port may linger for a moment after the kill.
            let mut cmd = self.command("redis-server");
            cmd.args(self.args());
            let mut p = Spawned::start("redis-server", cmd, &self.dir.join("redis.log"));
            std::thread::sleep(Duration::from_millis(150));
            if p.exited().is_none() && self.answers() {
                self.proc = Some(p);
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not restart");
        }
    }

    /// `redis-cli -p PORT ARGS...`'s output (with an ACL user, pass
    /// `--user`/`--pass` in `args`).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self
            .command("redis-cli")
            .args(["-p", &self.port.to_string(), "--no-auth-warning"])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// One `PING` over a fresh connection: the raw reply.
fn ping(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    s.write_all(b"PING\r\n")?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}
