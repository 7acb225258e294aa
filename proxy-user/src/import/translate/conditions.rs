//! nginx's `if (CONDITION) { [add_header ...;] return ...; }` as a route
//! with rampart's `if` key before the routes it would otherwise reach: at
//! server level before every location (the server's rewrite phase runs
//! before a location is chosen), in a location just before that
//! location's route, with its path. The `if` answers in nginx's rewrite
//! phase, before access checks and limits, so the route has none.
//!
//! Translated conditions: `$VAR`, `$VAR = VALUE`, `$VAR != VALUE`, and
//! the regex operators `~ ~* !~ !~*`, on `$request_method` or a variable
//! rampart's templates have. File tests (`-f`, `-d`, `-e`, `-x`), other
//! variables, an `if` doing anything but `add_header` and one `return`,
//! and a `return` using the regex's captures are reported.

use super::{Chain, Translator, vars};
use crate::import::{
    emit::{self, Table},
    nginx::Directive,
};

/// An `if`'s arguments without its parentheses: `["$var"]` or
/// `["$var", OP, VALUE]` (the lexer leaves `(` on the first word and `)`
/// on the last, or alone after a quoted one).
pub(super) fn inner(args: &[String]) -> Option<Vec<String>> {
    let mut parts = args.to_vec();
    let first = parts.first_mut()?;
    if first == "(" {
        parts.remove(0);
    } else {
        *first = first.strip_prefix('(')?.to_string();
    }
    let last = parts.last_mut()?;
    if last == ")" {
        parts.pop();
    } else {
        *last = last.strip_suffix(')')?.to_string();
    }
    Some(parts)
}

/// The `if` as rampart's `if` key, when rampart can test it.
pub(super) fn condition(args: &[String], names: &[String]) -> Result<Vec<String>, String> {
    let parts = inner(args).ok_or("expected `if (CONDITION)`")?;
    let var = parts.first().ok_or("an empty condition")?;
    if var.starts_with('-') || var.starts_with("!-") {
        return Err(format!(
            "file test `{var}`: rampart has no file checks in conditions"
        ));
    }
    if var != "$request_method" {
        let t = vars::template(var, names, false).map_err(|v| vars::refused(&v))?;
        if !var.starts_with('$') || t != *var || var[1..].contains('$') {
            return Err(format!("`{var}`: the condition must name one variable"));
        }
    }
    match parts.as_slice() {
        [_] => Ok(parts),
        [_, op, value] => match op.as_str() {
            "=" | "!=" if !value.contains('$') => Ok(parts),
            "~" | "~*" | "!~" | "!~*" => regex::Regex::new(value)
                .map(|_| parts.clone())
                .map_err(|e| format!("regex {value:?}: {e}")),
            _ => Err(format!("operator `{op}` with {value:?}")),
        },
        _ => Err("expected `$VAR`, or `$VAR OP VALUE`".into()),
    }
}

impl<'a> Translator<'a> {
    /// A route for `if`-block `i` (with `chain` the levels above it), with
    /// its `if` and its `return`; `None` leaves `i` to the report.
    pub(super) fn if_route(
        &mut self,
        chain: &Chain<'a>,
        i: &'a Directive,
        names: &[String],
    ) -> Option<Table> {
        let cond = match condition(&i.args, names) {
            Ok(c) => c,
            Err(why) => {
                let n = i.children().len();
                self.unsupported(
                    i,
                    format!("condition: {why} (with the {n} lines of its block)"),
                );
                return None;
            }
        };
        let kids = i.children();
        let rets: Vec<&Directive> = kids.iter().filter(|d| d.name == "return").collect();
        let [ret] = rets.as_slice() else {
            self.unsupported(i, format!("an `if` block rampart can write holds `add_header`s and one `return` (with the {} lines of its block)", kids.len()));
            return None;
        };
        if let Some(d) = kids
            .iter()
            .find(|d| d.name != "return" && d.name != "add_header")
        {
            self.unsupported(i, format!("`{}` inside an `if`: an `if` block rampart can write holds `add_header`s and one `return` (with the {} lines of its block)", d.name, kids.len()));
            return None;
        }
        let mut t = Table::new("[[route]]", format!("if ({})", cond.join(" ")));
        t.from(i.at());
        t.set(
            "if",
            format!(
                "[{}]",
                cond.iter()
                    .map(|c| emit::s(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        if !self.respond(&mut t, ret, names, chain) {
            self.unsupported(i, "its `return` names a variable rampart's templates lack (a regex capture of the condition, ...)");
            return None;
        }
        self.take(i);
        let mut inner = chain.clone();
        inner.push(kids);
        self.headers(&mut t, &inner, names, false);
        self.route_gzip(&mut t, chain);
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn conditions_rampart_can_test() {
        let names = ["example.com".to_string()];
        assert_eq!(
            condition(&words("($request_method = OPTIONS)"), &names).unwrap(),
            ["$request_method", "=", "OPTIONS"]
        );
        assert_eq!(
            condition(&words("($http_x_forwarded_proto != https )"), &names).unwrap(),
            ["$http_x_forwarded_proto", "!=", "https"]
        );
        assert_eq!(
            condition(&words("( $http_user_agent ~* (bot|spider) )"), &names).unwrap(),
            ["$http_user_agent", "~*", "(bot|spider)"]
        );
        assert_eq!(
            condition(&words("($cookie_session)"), &names).unwrap(),
            ["$cookie_session"]
        );
        for refused in [
            "(!-f $request_filename)",
            "($request_filename ~ x)",
            "($host = $http_host)",
            "($a = b c)",
            "($uri ~ \"(\")",
            "$uri",
        ] {
            assert!(condition(&words(refused), &names).is_err(), "{refused}");
        }
    }
}
