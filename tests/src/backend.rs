//! Small HTTP/1.1 backends and a client for end-to-end tests, inside a
//! network namespace.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    time::Duration,
};

use crate::{netns::NetNs, process::Spawned};

/// An HTTP/1.1 server in `ns` answering its `name`; `/slow` waits 1 s,
/// `/big/N` answers N bytes.
pub fn named_backend(ns: &NetNs, port: u16, name: &'static str) {
    named_backend_at(ns, "127.0.0.1", port, name);
}

/// As [`named_backend`], on another loopback address (`127.0.0.2`, ...).
pub fn named_backend_at(ns: &NetNs, ip: &'static str, port: u16, name: &'static str) {
    let listener = ns.run(move || TcpListener::bind((ip, port)).unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream, name));
        }
    });
}

fn serve(stream: TcpStream, name: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let slow = line.contains("/slow");
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if slow {
            std::thread::sleep(Duration::from_secs(1));
        }
        // `/big/N`: N bytes of body instead of the name.
        let big: Option<usize> = line
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.strip_prefix("/big/")?.parse().ok());
        let body = big.map_or_else(|| name.as_bytes().to_vec(), |n| vec![b'b'; n]);
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        let answer = [head.as_bytes(), &body].concat();
        if writer.write_all(&answer).is_err() {
            return;
        }
    }
}

/// One GET to `addr` inside `ns` (a connection of its own); the body of a
/// 200, or else the whole answer or the error.
pub fn http_get(ns: &NetNs, addr: &str, path: &str) -> Result<String, String> {
    let (path, addr) = (path.to_string(), addr.to_string());
    ns.run(move || {
        let mut s = TcpStream::connect(&addr).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // The Host a client would send: the admin listener answers only
        // Hosts that name it (DNS rebinding).
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut all = String::new();
        s.read_to_string(&mut all).map_err(|e| e.to_string())?;
        if !all.starts_with("HTTP/1.1 200") {
            return Err(all);
        }
        Ok(all.rsplit("\r\n\r\n").next().unwrap_or("").to_string())
    })
}

/// The status `curl` gets for `url` from source address `src` inside `ns`;
/// "000" when the connection is refused or dropped.
pub fn curl_status(ns: &NetNs, src: &str, url: &str) -> String {
    let out = ns
        .command("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "2",
        ])
        .args(["--interface", src, url])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A Uvicorn worker running the FastAPI example app (`examples/fastapi`) on
/// 127.0.0.1:`port` inside `ns`, its output in `log_dir`; ready when this
/// returns. Killed on drop.
pub fn uvicorn(ns: &NetNs, port: u16, log_dir: &std::path::Path) -> Spawned {
    let app = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fastapi");
    let mut cmd = ns.command("python3");
    cmd.args(["-m", "uvicorn", "app:app", "--app-dir"])
        .arg(&app)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--log-level", "warning"]);
    let mut w = Spawned::start(
        &format!("uvicorn :{port}"),
        cmd,
        &log_dir.join(format!("uvicorn-{port}.log")),
    );
    let addr = format!("127.0.0.1:{port}");
    w.wait_until(Duration::from_secs(30), || {
        http_get(ns, &addr, "/health").is_ok()
    });
    w
}
