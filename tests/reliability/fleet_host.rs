//! One host of the fleet under test (issue 18): a `rampart` daemon in a
//! directory of its own, with its listener, admin port, control socket and
//! state file, the fleet on against a test's redis-server; the userspace
//! gate enforcing (no `[filter]` interfaces). Shared by fleet.rs,
//! fleet_limit.rs, fleet_tls.rs and the outage tests.

use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use proxy_user::{
    control_socket::{client::call, protocol::Request},
    state_file::ListName,
};
use serde_json::Value;
use tests::{daemon::rampart_bin, process::Spawned};

pub const FLEET: &str = "f18test";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The fleet's directory (one subdirectory per host), removed on drop.
pub struct Root(pub tests::scratch::Scratch);

pub fn root(tag: &str) -> Root {
    let dir = tests::scratch::Scratch::new(&format!("f18-{tag}"));
    Root(dir)
}

/// One host of the fleet: its own directory, listener, admin port, state file.
pub struct Host {
    name: &'static str,
    dir: PathBuf,
    pub config: PathBuf,
    pub port: u16,
    admin: u16,
    proc: Option<Spawned>,
}

impl Host {
    pub fn new(root: &Path, name: &'static str, redis: u16) -> Host {
        Host::with_auth(root, name, redis, "")
    }

    /// `auth`: more `[fleet]` keys (`user`, `password_file`).
    pub fn with_auth(root: &Path, name: &'static str, redis: u16, auth: &str) -> Host {
        Host::configured(root, name, redis, auth, "", "")
    }

    /// `tables`: more tables (`[limit.NAME]`...); `routes`: `[[route]]`s
    /// matched before the test's own.
    pub fn configured(
        root: &Path,
        name: &'static str,
        redis: u16,
        auth: &str,
        tables: &str,
        routes: &str,
    ) -> Host {
        let redis = format!("127.0.0.1:{redis}");
        Host::with_redis(root, name, &redis, auth, tables, routes)
    }

    /// `redis`: `[fleet] redis`'s value (`rediss://...` for TLS).
    pub fn with_redis(
        root: &Path,
        name: &'static str,
        redis: &str,
        auth: &str,
        tables: &str,
        routes: &str,
    ) -> Host {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let (port, admin) = (free_port(), free_port());
        let config = dir.join("rampart.toml");
        std::fs::write(
            &config,
            format!(
                "[filter]\ninterfaces = []\n\n\
                 [control]\nsocket = \"{d}/control.sock\"\nstate_file = \"{d}/state.json\"\n\n\
                 [admin]\nbind = \"127.0.0.1:{admin}\"\n\n\
                 [fleet]\nredis = \"{redis}\"\nname = \"{FLEET}\"\nhost = \"{name}\"\n{auth}\n\
                 [escalate.scanners]\nstatuses = [404]\ncount = 3\nwithin = \"1m\"\nban = \"1h\"\n\n{tables}\n\
                 [[listener]]\nbind = \"127.0.0.1:{port}\"\n\n{routes}\n\
                 [[route]]\npath_regex = '\\.env$'\nrespond = 404\nescalate = \"scanners\"\n\n\
                 [[route]]\nrespond = 200\n",
                d = dir.display()
            ),
        )
        .unwrap();
        Host {
            name,
            dir,
            config,
            port,
            admin,
            proc: None,
        }
    }

    /// Starts it and waits until it serves and its fleet task has synchronised.
    pub fn start(&mut self) {
        self.start_serving();
        let mut p = self.proc.take().expect("started");
        let socket = self.dir.join("control.sock");
        p.wait_until(Duration::from_secs(10), || {
            call(&socket, &Request::FleetStatus).is_ok_and(|s| s["health"] == "up")
        });
        self.proc = Some(p);
    }

    /// Starts it and waits until it serves (its fleet may be down).
    pub fn start_serving(&mut self) {
        let mut cmd = Command::new(rampart_bin());
        cmd.args(["run", "-c"]).arg(&self.config);
        let log = self.dir.join(format!("rampart-{}.log", self.name));
        let mut p = Spawned::start("rampart", cmd, &log);
        let port = self.port;
        p.wait_until(Duration::from_secs(15), || get_from(port, "127.0.0.1"));
        self.proc = Some(p);
    }

    pub fn stop(&mut self) {
        let mut p = self.proc.take().expect("running");
        assert!(p.terminate().success(), "{}", p.log_text());
    }

    pub fn log(&self) -> String {
        self.proc
            .as_ref()
            .map(Spawned::log_text)
            .unwrap_or_default()
    }

    pub fn call(&self, r: &Request) -> Value {
        call(&self.dir.join("control.sock"), r)
            .unwrap_or_else(|e| panic!("{}: {r:?}: {e:#}", self.name))
    }

    pub fn ban(&self, addr: &str, reason: &str, local: bool) {
        self.call(&Request::ListAdd {
            list: ListName::Block,
            cidr: addr.parse().unwrap(),
            ttl_secs: Some(3600),
            reason: Some(reason.into()),
            local,
        });
    }

    pub fn unban(&self, addr: &str) {
        self.call(&Request::ListDel {
            list: ListName::Block,
            cidr: addr.parse().unwrap(),
        });
    }

    /// The ban of `addr` as `ip show` has it (null when none).
    pub fn ban_of(&self, addr: &str) -> Value {
        let ip: IpAddr = addr.parse().unwrap();
        self.call(&Request::IpShow { addr: ip })["ban"].clone()
    }

    pub fn banned(&self, addr: &str) -> bool {
        !self.ban_of(addr).is_null()
    }

    /// Whether a request from `src` gets a 200.
    pub fn serves(&self, src: &str) -> bool {
        get_from(self.port, src)
    }

    pub fn metric(&self, line: &str) -> u64 {
        let text = http_get(self.admin, "/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(line).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{line} not in /metrics of {}", self.name))
    }
}

/// A GET from source address `src` to 127.0.0.1:`port`: true for a 200
/// (the gate refuses a banned source by closing the connection).
fn get_from(port: u16, src: &str) -> bool {
    get_path(port, src, "/").starts_with(b"HTTP/1.1 200")
}

/// The raw answer to a GET of `path` from `src` (empty when refused).
pub fn get_path(port: u16, src: &str, path: &str) -> Vec<u8> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let src: SocketAddr = format!("{src}:0").parse().unwrap();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    if sock.bind(&src.into()).is_err()
        || sock
            .connect_timeout(&to.into(), Duration::from_secs(2))
            .is_err()
    {
        return Vec::new();
    }
    let mut s: std::net::TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let mut out = Vec::new();
    if s.write_all(head.as_bytes()).is_ok() {
        let _ = s.read_to_end(&mut out);
    }
    out
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

pub fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}
