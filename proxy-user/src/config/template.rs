//! Config values with variables (`redirect`, `body`, header values,
//! `rewrite` targets): compiled here, once, with an error that points at
//! the variable itself when the value is written as a plain TOML string.

use toml::Spanned;

use super::{ConfigError, error::Locator};
use crate::template::Template;

/// Compiles `value` (the value of `key`); `captures` as in
/// [`Template::parse`].
pub(super) fn template(
    loc: &Locator,
    value: &Spanned<String>,
    captures: usize,
    key: &str,
) -> Result<Template, ConfigError> {
    Template::parse(value.get_ref(), captures).map_err(|e| {
        loc.error(
            inner_span(loc, value, e.at),
            format!("{key}: {}", e.message),
        )
    })
}

/// The span of byte `at` of a string value: exact when the value is
/// written as is between its quotes (no escapes before `at`), else the
/// value's own start.
pub(super) fn inner_span(
    loc: &Locator,
    value: &Spanned<String>,
    at: usize,
) -> std::ops::Range<usize> {
    let span = value.span();
    let raw = loc.text.get(span.clone()).unwrap_or("");
    let quote = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
        3
    } else {
        1
    };
    let text = value.get_ref();
    match (raw.get(quote..quote + at), text.get(..at)) {
        (Some(a), Some(b)) if a == b => {
            let start = span.start + quote + at;
            start..start + 1
        }
        _ => span,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    #[test]
    fn an_unknown_variable_is_placed_at_its_dollar() {
        let text = "[[route]]\nredirect = \"https://$hots:8443$request_uri\"\n";
        let e = Config::parse(text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("t.toml:2:21: redirect: unknown variable `$hots`"),
            "{e}"
        );
    }
}
