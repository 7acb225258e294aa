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

use crate::process::Spawned;

pub struct Redis {
    pub port: u16,
    dir: PathBuf,
    proc: Option<Spawned>,
    /// `--aclfile`, when started with an ACL user.
    acl: Option<PathBuf>,
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
        let mut r = Redis {
            port: free_port(),
            dir: dir.to_path_buf(),
            proc: None,
            acl: None,
        };
        r.spawn();
        r
    }

    /// Starts one whose only user is `user` with `password`, allowed the
    /// keys under `prefix` and the command categories `acl` lists (the
    /// `default` user is off, as in a production deployment).
    pub fn with_acl(dir: &Path, user: &str, password: &str, acl: &str) -> Redis {
        let file = dir.join("users.acl");
        std::fs::write(
            &file,
            format!("user {user} on >{password} {acl}\nuser default off\n"),
        )
        .unwrap();
        let mut r = Redis {
            port: free_port(),
            dir: dir.to_path_buf(),
            proc: None,
            acl: Some(file),
        };
        r.spawn();
        r
    }

    fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(f) = &self.acl {
            a.extend(["--aclfile".to_string(), f.display().to_string()]);
        }
        a
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(self.args());
        let mut p = Spawned::start("redis-server", cmd, &self.dir.join("redis.log"));
        let port = self.port;
        // PONG, or NOAUTH when the default user is off: it answers.
        p.wait_until(Duration::from_secs(10), || {
            ping(port).is_ok_and(|r| !r.is_empty())
        });
        self.proc = Some(p);
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
            let mut cmd = Command::new("redis-server");
            cmd.args(self.args());
            let mut p = Spawned::start("redis-server", cmd, &self.dir.join("redis.log"));
            std::thread::sleep(Duration::from_millis(150));
            if p.exited().is_none() && ping(self.port).is_ok() {
                let port = self.port;
                p.wait_until(Duration::from_secs(5), || ping(port).is_ok());
                self.proc = Some(p);
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not restart");
        }
    }

    /// `redis-cli -p PORT ARGS...`'s output (as the ACL file's first user,
    /// when there is one: pass `--user`/`--pass` in `args`).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
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
