//! HTTP basic auth on a route from an htpasswd file (nginx `auth_basic` and
//! `auth_basic_user_file`): bcrypt (`$2y$`, `$2b$`, `$2a$`: `htpasswd -B`)
//! and SHA-crypt (`$5$`, `$6$`: `openssl passwd -5/-6`, `mkpasswd`) hashes.
//! A request without valid credentials gets 401 with `WWW-Authenticate`.
//!
//! Checking a bcrypt hash costs milliseconds of CPU or more (by its cost;
//! SHA-crypt: by its rounds), too long for the event loop, so it runs
//! on the blocking pool, and at most [`MAX_VERIFYING`] at once per
//! process: a client sending wrong passwords as fast as it can costs at
//! most those threads, never the event loops, and a request that cannot
//! get a turn within [`QUEUE_WAIT`] gets 503 instead of piling up.
//! Credentials that passed are remembered for [`REMEMBER`] (by a SHA-256
//! of the header, never the password), so a browser's every request does
//! not pay the hash again; wrong ones never are. An unknown user is
//! refused without a hash check (no work to spend on one).

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock},
    time::Duration,
};

use base64::Engine as _;
use hyper::{
    HeaderMap, Response, StatusCode,
    header::{self, HeaderValue},
};
use sha2::{Digest, Sha256};
use tokio::{sync::Semaphore, time::Instant};

use super::Body;
use crate::config::basic_auth::BasicAuth;

/// How long credentials that passed are taken without a new hash check.
pub const REMEMBER: Duration = Duration::from_secs(60);
/// Credentials remembered per route; past it, the expired go, then all.
const MAX_REMEMBERED: usize = 4096;
/// How long a request waits for a turn at the hash check before 503.
pub const QUEUE_WAIT: Duration = Duration::from_secs(2);
/// Hash checks at once, process-wide.
pub static MAX_VERIFYING: LazyLock<usize> =
    LazyLock::new(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
static VERIFYING: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(*MAX_VERIFYING));

// === impl BasicAuth: checking a request ===

impl BasicAuth {
    /// `Ok` when the request's credentials are a user's; else the answer.
    pub async fn check(self: &Arc<Self>, headers: &HeaderMap) -> Result<(), Response<Body>> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(self.unauthorized());
        };
        let key: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        let now = Instant::now();
        if self.lock().get(&key).is_some_and(|until| now < *until) {
            return Ok(());
        }
        let Some((user, password)) = credentials(value) else {
            return Err(self.unauthorized());
        };
        let Some(hash) = self.users.get(&user).cloned() else {
            return Err(self.unauthorized());
        };
        let Ok(Ok(permit)) = tokio::time::timeout(QUEUE_WAIT, VERIFYING.acquire()).await else {
            log::warn!(
                "basic auth: {} hash checks busy for {QUEUE_WAIT:?}: 503",
                *MAX_VERIFYING
            );
            return Err(super::response::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy\n",
            ));
        };
        let ok = tokio::task::spawn_blocking(move || hash.verify(&password))
            .await
            .unwrap_or(false);
        drop(permit);
        if !ok {
            log::debug!("basic auth: wrong password for `{user}`");
            return Err(self.unauthorized());
        }
        let mut passed = self.lock();
        if passed.len() >= MAX_REMEMBERED {
            passed.retain(|_, until| now < *until);
            if passed.len() >= MAX_REMEMBERED {
                passed.clear();
            }
        }
        passed.insert(key, now + REMEMBER);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Instant>> {
        self.passed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn unauthorized(&self) -> Response<Body> {
        let mut r = super::response::text(StatusCode::UNAUTHORIZED, "401 Unauthorized\n");
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, self.challenge.clone());
        r
    }
}

/// `Basic base64(user:password)`: the user and the password's bytes.
fn credentials(value: &HeaderValue) -> Option<(String, Vec<u8>)> {
    let v = value.to_str().ok()?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let colon = raw.iter().position(|b| *b == b':')?;
    let user = String::from_utf8(raw[..colon].to_vec()).ok()?;
    Some((user, raw[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn header(user: &str, pass: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {b64}").parse().unwrap(),
        );
        h
    }

    fn file(lines: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "rampart-htpasswd-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::write(&p, lines).unwrap();
        p
    }

    #[tokio::test]
    async fn bcrypt_and_sha_crypt_users_pass_and_others_get_401() {
        let bc = bcrypt::hash("s3cret", 4).unwrap();
        // `openssl passwd -6 -salt saltsalt s3cret` and `-5`.
        let sha512 = "$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1";
        let sha256 = "$5$saltsalt$i1q2ZQzc.tl/BQ6CHiENAcVDvEY6nJ1OWlWXKh94b1.";
        let path = file(&format!(
            "# admins\nalice:{bc}\nbob:{sha512}\ncarl:{sha256}:a comment\n\n"
        ));
        let auth = Arc::new(BasicAuth::load("Admin area", &path).unwrap());
        assert!(auth.check(&header("alice", "s3cret")).await.is_ok());
        assert!(
            auth.check(&header("alice", "s3cret")).await.is_ok(),
            "remembered"
        );
        assert!(auth.check(&header("bob", "s3cret")).await.is_ok());
        assert!(auth.check(&header("carl", "s3cret")).await.is_ok());
        for (u, p) in [("alice", "wrong"), ("bob", "s3cre"), ("carol", "s3cret")] {
            let r = auth.check(&header(u, p)).await.unwrap_err();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(
                r.headers()[header::WWW_AUTHENTICATE],
                "Basic realm=\"Admin area\", charset=\"UTF-8\""
            );
        }
        let none = auth.check(&HeaderMap::new()).await.unwrap_err();
        assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn unsupported_hashes_and_bad_lines_name_the_line() {
        let path = file("alice:$apr1$abc$def\n");
        let e = BasicAuth::load("r", &path).unwrap_err();
        assert!(e.contains(":1: user `alice`: unsupported hash"), "{e}");
        let path2 = file("# c\nnocolon\n");
        let e = BasicAuth::load("r", &path2).unwrap_err();
        assert!(e.ends_with(":2: expected `user:hash`"), "{e}");
        let path3 = file("# nobody\n");
        assert!(
            BasicAuth::load("r", &path3)
                .unwrap_err()
                .contains("no users")
        );
        for p in [path, path2, path3] {
            let _ = std::fs::remove_file(p);
        }
    }
}
