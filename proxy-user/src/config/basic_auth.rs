//! A route's `auth_basic` (the realm) and `auth_basic_user_file` (an
//! htpasswd file, relative to the configuration's directory), read and
//! checked when the configuration is loaded: nginx's directives of the
//! same names. The request side is [`crate::http::basic_auth`].

use std::{path::Path, sync::Arc};

use toml::Spanned;

use super::{ConfigError, error::Locator};
use crate::http::basic_auth::BasicAuth;

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
