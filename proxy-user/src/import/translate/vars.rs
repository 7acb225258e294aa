//! nginx variables in text: rampart's templates (docs/configuration.md,
//! Variables): `redirect`, `body`, header values and `rewrite` targets;
//! and the names a text uses and the `set`/`map` values written into it
//! ([`name_at`], [`substitute`]), shared by `variables` and `host_map`.

use std::collections::HashMap;

/// nginx variables rampart's templates substitute, under the same names.
const KNOWN: &[&str] = &[
    "host",
    "scheme",
    "remote_addr",
    "request_id",
    "server_port",
    "request_uri",
    "uri",
    "args",
    "query_string",
    "is_args",
];

/// `text` with nginx's variables written as rampart's: the ones rampart
/// knows kept (with `$http_*`, `$cookie_*` and `$arg_*`), `$server_name`
/// written as the server's first name when that is a plain name (not a
/// wildcard or regex), as nginx takes it, and `$1`..`$9` kept where
/// `captures` (a rewrite target). `Err` names the first variable rampart
/// cannot substitute.
pub(super) fn template(text: &str, names: &[String], captures: bool) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        if let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
            chars.next();
            if !captures || d == '0' {
                return Err(format!("${d}"));
            }
            out.push('$');
            out.push(d);
            continue;
        }
        let braced = chars.peek() == Some(&'{');
        let mut name = String::new();
        if braced {
            chars.next();
            for c in chars.by_ref() {
                if c == '}' {
                    break;
                }
                name.push(c);
            }
        } else {
            while let Some(c) = chars
                .peek()
                .copied()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            {
                name.push(c);
                chars.next();
            }
        }
        match name.as_str() {
            n if KNOWN.contains(&n) || crate::request_var::RequestVar::parse(n).is_some() => {
                if braced {
                    out.push_str(&format!("${{{n}}}"));
                } else {
                    out.push('$');
                    out.push_str(n);
                }
            }
            "server_name" => match names.first() {
                Some(one) if plain_host(one) => {
                    out.push_str(one);
                }
                _ => return Err(format!("${name}")),
            },
            _ => return Err(format!("${name}")),
        }
    }
    Ok(out)
}

/// The report's wording for a variable `template` refused.
pub(super) fn refused(var: &str) -> String {
    format!(
        "`{var}`: rampart's templates have $host, $scheme, $request_uri, $uri, $args, $is_args, $server_port, $remote_addr, $request_id, $http_NAME, $cookie_NAME and $arg_NAME (and $server_name when the server's first name is a plain name)"
    )
}

/// A host name rampart's `redirect_https_host` takes as written: no
/// variable, wildcard, regex, port or path.
pub(super) fn plain_host(h: &str) -> bool {
    !h.is_empty()
        && !h.starts_with('.')
        && h.len() <= 253
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// The variable name starting at `at` (after `$`), and where it ends.
pub(super) fn name_at(text: &str, at: usize) -> (&str, usize) {
    let b = text.as_bytes();
    if b.get(at) == Some(&b'{') {
        return match text[at + 1..].find('}') {
            Some(end) => (&text[at + 1..at + 1 + end], at + end + 2),
            None => ("", at),
        };
    }
    let end = b[at..]
        .iter()
        .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
        .map_or(b.len(), |p| at + p);
    (&text[at..end], end)
}

/// `text` with the variables of `scope` written out; `None` when it names
/// none of them.
pub(super) fn substitute(text: &str, scope: &HashMap<String, String>) -> Option<String> {
    if scope.is_empty() || !text.contains('$') {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut i = 0;
    while let Some(off) = text[i..].find('$') {
        let at = i + off;
        out.push_str(&text[i..at]);
        let (name, next) = name_at(text, at + 1);
        match scope.get(name) {
            Some(value) if !name.is_empty() => {
                out.push_str(value);
                changed = true;
                i = next;
            }
            _ => {
                out.push('$');
                i = at + 1;
            }
        }
    }
    out.push_str(&text[i..]);
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::template;

    #[test]
    fn known_variables_are_kept_and_server_name_is_written_out() {
        let one = ["api.example.com".to_string()];
        assert_eq!(
            template("https://$server_name$request_uri", &one, false).as_deref(),
            Ok("https://api.example.com$request_uri")
        );
        assert_eq!(
            template("${scheme}://$host:$server_port${uri}x?$args", &[], false).as_deref(),
            Ok("${scheme}://$host:$server_port${uri}x?$args")
        );
        assert_eq!(template("/p/$1", &[], true).as_deref(), Ok("/p/$1"));
        assert_eq!(template("plain", &[], false).as_deref(), Ok("plain"));
    }

    #[test]
    fn unknown_or_ambiguous_variables_are_named() {
        let two = ["a.example".to_string(), "b.example".to_string()];
        let wild = ["*.example".to_string()];
        assert_eq!(
            template("https://$server_name/", &two, false).as_deref(),
            Ok("https://a.example/"),
            "nginx's $server_name is the first name"
        );
        assert_eq!(
            template("https://$server_name/", &wild, false),
            Err("$server_name".into())
        );
        assert_eq!(
            template("$upstream_addr", &[], false),
            Err("$upstream_addr".into())
        );
        assert_eq!(
            template("$cookie_x $http_x_real_ip ${arg_p} $http_host", &[], false).as_deref(),
            Ok("$cookie_x $http_x_real_ip ${arg_p} $http_host")
        );
        assert_eq!(template("/p/$1", &[], false), Err("$1".into()));
        assert_eq!(template("cost $", &[], false), Err("$".into()));
    }
}
