//! Where a server listens: a TCP address, or a Unix socket path as Uvicorn
//! (`--uds`) and Gunicorn (`--bind unix:PATH`) are often run (nginx
//! `server unix:/run/app.sock;`).
//!
//! Written `"127.0.0.1:8001"`, `"[::1]:8001"` or `"unix:/run/app.sock"`;
//! shown the same way in `upstream list`, metrics and the access log.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Mutex,
};

/// The longest Unix socket path the kernel takes (`sun_path` is 108 bytes,
/// one of them the terminating NUL).
pub const MAX_UNIX_PATH: usize = 107;

/// `Copy`, as a bare address was: each proxied response carries its
/// server's target to the access log, and a copy costs nothing there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Tcp(SocketAddr),
    /// An absolute path, interned (see [`intern`]).
    Unix(&'static Path),
}

/// The one copy of a socket path for the process's life: the paths a
/// configuration names (a handful, kept across reloads), never a client's.
fn intern(path: &str) -> &'static Path {
    static PATHS: Mutex<Vec<&'static Path>> = Mutex::new(Vec::new());
    let mut paths = PATHS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = paths.iter().find(|p| p.as_os_str() == path) {
        return p;
    }
    let p: &'static Path = Box::leak(PathBuf::from(path).into_boxed_path());
    paths.push(p);
    p
}

/// Why a written target is not one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("`{0}`: a Unix socket path must be absolute (e.g. \"unix:/run/app.sock\")")]
    Relative(String),
    #[error("`{0}`: a Unix socket path is at most {MAX_UNIX_PATH} bytes")]
    TooLong(String),
    #[error(
        "`{0}` is not an address:port or unix:PATH (expected e.g. \"127.0.0.1:8001\" or \"unix:/run/app.sock\")"
    )]
    Invalid(String),
}

impl Target {
    /// `unix:PATH`, or an IP address and port.
    pub fn parse(s: &str) -> Result<Target, TargetError> {
        if let Some(path) = s.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(TargetError::Relative(s.to_string()));
            }
            if path.len() > MAX_UNIX_PATH {
                return Err(TargetError::TooLong(s.to_string()));
            }
            return Ok(Target::Unix(intern(path)));
        }
        s.parse()
            .map(Target::Tcp)
            .map_err(|_| TargetError::Invalid(s.to_string()))
    }

    /// What a request's `Host` header names when it has none of its own
    /// (health checks): the address, or `localhost` for a socket.
    pub fn host(&self) -> String {
        match self {
            Target::Tcp(a) => a.to_string(),
            Target::Unix(_) => "localhost".to_string(),
        }
    }
}

impl From<SocketAddr> for Target {
    fn from(a: SocketAddr) -> Target {
        Target::Tcp(a)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp(a) => a.fmt(f),
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_and_unix_targets_parse_and_show_as_written() {
        for s in ["127.0.0.1:8001", "[::1]:9000", "unix:/run/app.sock"] {
            assert_eq!(Target::parse(s).unwrap().to_string(), s);
        }
        assert!(matches!(
            Target::parse("unix:/run/app.sock").unwrap(),
            Target::Unix(p) if p == Path::new("/run/app.sock")
        ));
    }

    #[test]
    fn bad_targets_say_why() {
        assert_eq!(
            Target::parse("unix:app.sock"),
            Err(TargetError::Relative("unix:app.sock".into()))
        );
        let long = format!("unix:/{}", "a".repeat(MAX_UNIX_PATH));
        assert_eq!(
            Target::parse(&long),
            Err(TargetError::TooLong(long.clone()))
        );
        assert!(matches!(
            Target::parse("localhost"),
            Err(TargetError::Invalid(_))
        ));
        assert!(matches!(
            Target::parse("127.0.0.1"),
            Err(TargetError::Invalid(_))
        ));
    }
}
