//! A route's `access` rules: allow or deny by client network, the first
//! that matches deciding (nginx `allow` / `deny`). The client is the real
//! one behind a trusted proxy ([`crate::http::real_ip`]). A request no rule
//! matches is allowed, as in nginx; end with `"deny all"` to refuse the rest.

use std::net::IpAddr;

use toml::Spanned;

use super::{ConfigError, error::Locator};
use crate::cidr::Cidr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rule {
    allow: bool,
    /// `None`: `all`.
    net: Option<Cidr>,
}

/// The rules in file order; empty (the default) allows everyone at the
/// cost of one length check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access(Vec<Rule>);

impl Access {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` may use the route: the first rule that covers it decides.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = super::real_ip_unmapped(ip);
        self.0
            .iter()
            .find(|r| r.net.is_none_or(|n| n.contains(ip)))
            .is_none_or(|r| r.allow)
    }
}

/// `access = ["allow 10.0.0.0/8", "deny all"]`, or the shorthands
/// `allow = [NETS]` (those, then deny all) and `deny = [NETS]` (those
/// refused, the rest allowed).
pub(super) fn access(
    loc: &Locator,
    rules: Option<Spanned<Vec<Spanned<String>>>>,
    allow: Option<Spanned<Vec<Spanned<String>>>>,
    deny: Option<Spanned<Vec<Spanned<String>>>>,
) -> Result<Access, ConfigError> {
    let net = |s: &Spanned<String>, text: &str| -> Result<Option<Cidr>, ConfigError> {
        if text == "all" {
            return Ok(None);
        }
        text.parse::<Cidr>()
            .map(Some)
            .map_err(|e| loc.error(s.span(), format!("{e}, or `all`")))
    };
    let given = [rules.is_some(), allow.is_some(), deny.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        let span = [&rules, &allow, &deny]
            .into_iter()
            .flatten()
            .nth(1)
            .map_or(0..0, Spanned::span);
        return Err(loc.error(
            span,
            "give one of `access`, `allow` or `deny`: for rules in order, \
             write access = [\"allow 10.0.0.0/8\", \"deny all\"]",
        ));
    }
    let mut out = Vec::new();
    if let Some(rules) = rules {
        for s in rules.into_inner() {
            let text = s.get_ref().trim();
            let (verb, what) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
            let allow = match verb {
                "allow" => true,
                "deny" => false,
                _ => {
                    return Err(loc.error(
                        s.span(),
                        format!("access rule `{text}`: expected \"allow NET\" or \"deny NET\" (NET a CIDR, an address or `all`)"),
                    ));
                }
            };
            out.push(Rule {
                allow,
                net: net(&s, what.trim())?,
            });
        }
    }
    for (list, allow) in [(allow, true), (deny, false)] {
        if let Some(list) = list {
            for s in list.into_inner() {
                out.push(Rule {
                    allow,
                    net: net(&s, s.get_ref().trim())?,
                });
            }
            if allow {
                out.push(Rule {
                    allow: false,
                    net: None,
                });
            }
        }
    }
    Ok(Access(out))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn route(keys: &str) -> Result<super::Access, String> {
        Config::parse(
            &format!("[[route]]\npath = \"/\"\nrespond = 200\n{keys}\n"),
            Path::new("rampart.toml"),
        )
        .map(|c| c.routes[0].access.clone())
        .map_err(|e| e.to_string())
    }

    #[test]
    fn first_match_wins_and_the_rest_is_allowed() {
        let ip = |s: &str| s.parse().unwrap();
        let a =
            route("access = [\"deny 10.1.0.0/16\", \"allow 10.0.0.0/8\", \"deny all\"]").unwrap();
        assert!(!a.allows(ip("10.1.2.3")));
        assert!(a.allows(ip("10.2.2.3")));
        assert!(a.allows(ip("::ffff:10.2.2.3")));
        assert!(!a.allows(ip("192.0.2.1")));
        let a = route("allow = [\"192.0.2.0/24\", \"2001:db8::/32\"]").unwrap();
        assert!(a.allows(ip("2001:db8::1")) && !a.allows(ip("2001:db9::1")));
        let a = route("deny = [\"192.0.2.1\"]").unwrap();
        assert!(!a.allows(ip("192.0.2.1")) && a.allows(ip("192.0.2.2")));
        assert!(route("").unwrap().is_empty());
    }

    #[test]
    fn bad_rules_name_file_line_and_column() {
        let e = route("access = [\"permit 10.0.0.0/8\"]").unwrap_err();
        assert!(
            e.starts_with("rampart.toml:4:11: access rule `permit 10.0.0.0/8`"),
            "{e}"
        );
        let e = route("access = [\"allow 10.0.0.1/8\"]").unwrap_err();
        assert!(
            e.starts_with("rampart.toml:4:11: `10.0.0.1/8` has host bits"),
            "{e}"
        );
        let e = route("allow = [\"everyone\"]").unwrap_err();
        assert!(e.starts_with("rampart.toml:4:10: `everyone` is not"), "{e}");
        let e = route("allow = [\"10.0.0.0/8\"]\ndeny = [\"all\"]").unwrap_err();
        assert!(e.starts_with("rampart.toml:5:8: give one of"), "{e}");
    }
}
