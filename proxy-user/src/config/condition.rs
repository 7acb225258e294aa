//! A route's `if` (nginx's `if (...)` in the rewrite phase): a condition
//! on one request variable the route needs besides its path and host.
//!
//! ```toml
//! if = ["$request_method", "=", "OPTIONS"]
//! if = ["$http_x_forwarded_proto", "!=", "https"]
//! if = ["$http_user_agent", "~*", "bot|crawler"]
//! if = ["$cookie_session"]      # set and not "0", as nginx's `if ($var)`
//! ```
//!
//! The variable is `$request_method` or one of rampart's template
//! variables (`$host`, `$scheme`, `$uri`, `$request_uri`, `$args`,
//! `$remote_addr`, `$server_port`, `$http_NAME`, `$cookie_NAME`,
//! `$arg_NAME`); the value is literal. `=` and `!=` compare strings
//! exactly, `~`/`~*`/`!~`/`!~*` search a regex (`*`: case-insensitive).

use regex::Regex;
use toml::Spanned;

use super::{ConfigError, error::Locator};
use crate::template::{Template, Vars};

#[derive(Clone, Debug)]
pub struct Condition {
    subject: Subject,
    test: Test,
    /// As written, for views and equality.
    source: String,
}

#[derive(Clone, Debug)]
enum Subject {
    Method,
    Var(Template),
}

#[derive(Clone, Debug)]
enum Test {
    /// Set, and not "0".
    Set,
    Equals(String, bool),
    Matches(Regex, bool),
}

impl PartialEq for Condition {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Condition {
    /// Whether the request (its method, and `vars` with its headers) meets it.
    pub fn holds(&self, method: &str, vars: &Vars) -> bool {
        let value = match &self.subject {
            Subject::Method => method.to_string(),
            Subject::Var(t) => t.render(vars),
        };
        match &self.test {
            Test::Set => !value.is_empty() && value != "0",
            Test::Equals(want, equal) => (value == *want) == *equal,
            Test::Matches(re, found) => re.is_match(&value) == *found,
        }
    }

    /// How the route's name shows it.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// The route key `if`: `["$VAR"]` or `["$VAR", OP, VALUE]`.
pub(super) fn condition(
    loc: &Locator,
    raw: Option<Spanned<Vec<Spanned<String>>>>,
) -> Result<Option<Condition>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let span = raw.span();
    let parts: Vec<String> = raw
        .into_inner()
        .into_iter()
        .map(Spanned::into_inner)
        .collect();
    let bad = |why: String| loc.error(span.clone(), why);
    let (var, test) = match parts.as_slice() {
        [var] => (var, Test::Set),
        [var, op, value] => {
            let test = match op.as_str() {
                "=" | "!=" => Test::Equals(value.clone(), op == "="),
                "~" | "~*" | "!~" | "!~*" => {
                    let pattern = if op.ends_with('*') {
                        format!("(?i){value}")
                    } else {
                        value.clone()
                    };
                    let re = Regex::new(&pattern)
                        .map_err(|e| bad(format!("`if` regex {value:?}: {e}")))?;
                    Test::Matches(re, !op.starts_with('!'))
                }
                _ => {
                    return Err(bad(format!(
                        "`if` operator {op:?}: expected =, !=, ~, ~*, !~ or !~*"
                    )));
                }
            };
            if value.contains('$') && matches!(test, Test::Equals(..)) {
                return Err(bad(format!(
                    "`if` value {value:?}: a literal, without variables"
                )));
            }
            (var, test)
        }
        _ => {
            return Err(bad(
                "`if`: expected [\"$VAR\"] or [\"$VAR\", OP, \"VALUE\"]".into(),
            ));
        }
    };
    let subject = if var == "$request_method" {
        Subject::Method
    } else {
        let t =
            Template::parse(var, 0).map_err(|e| bad(format!("`if` variable: {}", e.message)))?;
        if !var.starts_with('$') || t.literal().is_some() || var[1..].contains('$') {
            return Err(bad(format!(
                "`if` variable {var:?}: one variable, such as \"$request_method\""
            )));
        }
        Subject::Var(t)
    };
    Ok(Some(Condition {
        subject,
        test,
        source: parts.join(" "),
    }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn parse(cond: &str) -> Result<Config, String> {
        let text = format!("[[route]]\npath = \"/\"\nif = {cond}\nrespond = 204\n");
        Config::parse(&text, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn conditions_parse_or_name_what_is_wrong() {
        for good in [
            r#"["$request_method", "=", "OPTIONS"]"#,
            r#"["$http_x_forwarded_proto", "!=", "https"]"#,
            r#"["$http_user_agent", "~*", "bot|spider"]"#,
            r#"["$cookie_session"]"#,
        ] {
            let cfg = parse(good).unwrap_or_else(|e| panic!("{good}: {e}"));
            assert!(cfg.routes[0].name().contains(" if $"), "{good}");
        }
        for (bad, why) in [
            (r#"["$uri", "<", "x"]"#, "operator"),
            (r#"["$uri", "~", "("]"#, "regex"),
            (r#"["$uri", "=", "$host"]"#, "literal"),
            (r#"["uri", "=", "x"]"#, "one variable"),
            (r#"["$nope", "=", "x"]"#, "variable"),
            (r#"["$uri", "="]"#, "expected"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(why) && e.contains("t.toml:3"), "{bad}: {e}");
        }
    }
}
