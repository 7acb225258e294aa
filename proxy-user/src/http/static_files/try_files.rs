//! A static route's `try_files` (nginx's): which candidate answers a
//! request, decided before a file is served.

use hyper::StatusCode;

use super::{StaticRoute, safe_relative};
use crate::config::try_files::{Check, Fallback};
use crate::http::ProxyError;

/// What answers the request.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// Serve this path from the route's directory (the request's own, or
    /// the fallback URI).
    Serve(String),
    /// The `=CODE` fallback.
    Status(StatusCode),
    /// The `@NAME` fallback: proxy to this upstream group.
    Upstream(&'a str),
}

/// Runs the route's checks for `path` in order; the first that finds a
/// file (`$uri`) or directory (`$uri/`) serves the path, else the
/// fallback answers. A route without `try_files` serves the path.
pub async fn resolve<'a>(route: &StaticRoute<'a>, path: &str) -> Result<Outcome<'a>, ProxyError> {
    let Some(tf) = route.try_files else {
        return Ok(Outcome::Serve(path.to_string()));
    };
    let rest = path.strip_prefix(route.prefix).unwrap_or(path);
    // A dotfile is never a candidate (as for a plain static route); a
    // path that climbs out or cannot be decoded is refused outright.
    let meta = match safe_relative(rest, route.well_known) {
        Ok(relative) => tokio::fs::metadata(route.root.join(relative)).await.ok(),
        Err(ProxyError::Downstream { status, .. }) if status == StatusCode::NOT_FOUND => None,
        Err(e) => return Err(e),
    };
    for check in &tf.checks {
        let found = match check {
            Check::File => meta.as_ref().is_some_and(std::fs::Metadata::is_file),
            Check::Dir => meta.as_ref().is_some_and(std::fs::Metadata::is_dir),
        };
        if found {
            return Ok(Outcome::Serve(path.to_string()));
        }
    }
    Ok(match &tf.fallback {
        Fallback::Status(s) => {
            Outcome::Status(StatusCode::from_u16(*s).unwrap_or(StatusCode::NOT_FOUND))
        }
        Fallback::Uri(u) => Outcome::Serve(u.clone()),
        Fallback::Upstream(name) => Outcome::Upstream(name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::try_files::TryFiles;

    fn route<'a>(root: &'a std::path::Path, tf: &'a TryFiles) -> StaticRoute<'a> {
        StaticRoute {
            root,
            prefix: "",
            index: "index.html",
            expires: None,
            cache_control: None,
            well_known: false,
            try_files: Some(tf),
        }
    }

    #[tokio::test]
    async fn files_then_directories_then_the_fallback() {
        let dir = std::env::temp_dir().join(format!("rampart-try-files-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("docs")).unwrap();
        std::fs::write(dir.join("app.js"), "js").unwrap();
        std::fs::write(dir.join(".env"), "secret").unwrap();
        let spa = TryFiles {
            checks: vec![Check::File, Check::Dir],
            fallback: Fallback::Uri("/index.html".into()),
        };
        let r = route(&dir, &spa);
        let serve = |p: &str| Outcome::Serve(p.to_string());
        assert_eq!(resolve(&r, "/app.js").await.unwrap(), serve("/app.js"));
        assert_eq!(resolve(&r, "/docs").await.unwrap(), serve("/docs"));
        assert_eq!(resolve(&r, "/users/7").await.unwrap(), serve("/index.html"));
        assert_eq!(resolve(&r, "/.env").await.unwrap(), serve("/index.html"));
        assert!(resolve(&r, "/a/%2e%2e/%2e%2e/etc/passwd").await.is_err());
        // Without `$uri/`, a directory is not a candidate (nginx tests files only).
        let files = TryFiles {
            checks: vec![Check::File],
            fallback: Fallback::Upstream("app".into()),
        };
        let r = route(&dir, &files);
        assert_eq!(
            resolve(&r, "/docs").await.unwrap(),
            Outcome::Upstream("app")
        );
        assert_eq!(resolve(&r, "/app.js").await.unwrap(), serve("/app.js"));
        let status = TryFiles {
            checks: vec![Check::File],
            fallback: Fallback::Status(418),
        };
        let r = route(&dir, &status);
        assert_eq!(
            resolve(&r, "/nope").await.unwrap(),
            Outcome::Status(StatusCode::IM_A_TEAPOT)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
