//! A route's `auth_basic` (the realm) and `auth_basic_user_file` (an
//! htpasswd file, relative to the configuration's directory), read and
//! checked when the configuration is loaded: nginx's directives of the
//! same names. The request side is [`crate::http::basic_auth`].

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use hyper::header::HeaderValue;
use tokio::time::Instant;
use toml::Spanned;

use super::{ConfigError, error::Locator};

#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Hash {
    Bcrypt(String),
    ShaCrypt(String),
}

impl Hash {
    pub(crate) fn verify(&self, password: &[u8]) -> bool {
        match self {
            Hash::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
            Hash::ShaCrypt(h) => {
                use sha_crypt::PasswordVerifier as _;
                sha_crypt::ShaCrypt::default()
                    .verify_password(password, h.as_str())
                    .is_ok()
            }
        }
    }
}

/// A route's realm and users, read from its file when the configuration
/// is loaded (a reload reads it again).
pub struct BasicAuth {
    pub realm: String,
    pub file: PathBuf,
    pub(crate) users: HashMap<String, Hash>,
    /// The `WWW-Authenticate` value a refusal carries.
    pub(crate) challenge: HeaderValue,
    /// SHA-256 of `Authorization` values that passed, and when they expire:
    /// the request side's memory ([`crate::http::basic_auth`]), which starts
    /// empty with each configuration.
    pub(crate) passed: Mutex<HashMap<[u8; 32], Instant>>,
}

impl PartialEq for BasicAuth {
    fn eq(&self, other: &Self) -> bool {
        self.realm == other.realm && self.file == other.file && self.users == other.users
    }
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("realm", &self.realm)
            .field("file", &self.file)
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// Reads `file` (`user:hash` lines; `#` comments and blank lines
    /// skipped). The error names the file and line.
    pub fn load(realm: &str, file: &Path) -> Result<BasicAuth, String> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("auth_basic_user_file {}: {e}", file.display()))?;
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = || format!("{}:{}", file.display(), n + 1);
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| format!("{}: expected `user:hash`", at()))?;
            // nginx ignores fields after the hash (htpasswd comments).
            let hash = hash.split(':').next().unwrap_or("");
            let hash = if ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
                Hash::Bcrypt(hash.to_string())
            } else if hash.starts_with("$5$") || hash.starts_with("$6$") {
                Hash::ShaCrypt(hash.to_string())
            } else {
                return Err(format!(
                    "{}: user `{user}`: unsupported hash (bcrypt `$2y$` from `htpasswd -B`, \
                     or SHA-crypt `$5$`/`$6$` from `openssl passwd -6`; not MD5 `$apr1$`, \
                     `{{SHA}}`, DES crypt or plain text)",
                    at()
                ));
            };
            users.insert(user.to_string(), hash);
        }
        if users.is_empty() {
            return Err(format!(
                "auth_basic_user_file {}: no users: every request would be refused",
                file.display()
            ));
        }
        let challenge = HeaderValue::from_str(&format!(
            "Basic realm=\"{}\", charset=\"UTF-8\"",
            realm.replace(['"', '\\'], "")
        ))
        .map_err(|_| "auth_basic: the realm is not a header value".to_string())?;
        Ok(BasicAuth {
            realm: realm.to_string(),
            file: file.to_path_buf(),
            users,
            challenge,
            passed: Mutex::new(HashMap::new()),
        })
    }
}

pub(super) fn basic_auth(
    loc: &Locator,
    base: &Path,
    realm: Option<Spanned<String>>,
    file: Option<Spanned<String>>,
) -> Result<Option<Arc<BasicAuth>>, ConfigError> {
    match (realm, file) {
        (None, None) => Ok(None),
        (Some(r), None) => Err(loc.error(
            r.span(),
            "auth_basic needs auth_basic_user_file (an htpasswd file)",
        )),
        (None, Some(f)) => Err(loc.error(
            f.span(),
            "auth_basic_user_file needs auth_basic (the realm shown to the user)",
        )),
        (Some(r), Some(f)) => BasicAuth::load(r.get_ref(), &base.join(f.get_ref()))
            .map(|a| Some(Arc::new(a)))
            .map_err(|e| loc.error(f.span(), e)),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    #[test]
    fn both_keys_or_neither_and_file_errors_name_the_key() {
        let parse = |keys: &str| {
            Config::parse(
                &format!("[[route]]\npath = \"/\"\nrespond = 200\n{keys}\n"),
                Path::new("/nonexistent/rampart.toml"),
            )
            .map_err(|e| e.to_string())
        };
        let e = parse("auth_basic = \"x\"").unwrap_err();
        assert!(
            e.starts_with("/nonexistent/rampart.toml:4:14: auth_basic needs"),
            "{e}"
        );
        let e = parse("auth_basic = \"x\"\nauth_basic_user_file = \"htpasswd\"").unwrap_err();
        assert!(
            e.starts_with(
                "/nonexistent/rampart.toml:5:24: auth_basic_user_file /nonexistent/htpasswd:"
            ),
            "{e}"
        );
    }
}
