//! `server_name`: which `[[server]]` of a listener a host name selects, in
//! nginx's order: the exact name, then the longest wildcard starting with
//! `*` (or `.example.com`), then the longest wildcard ending with `*`,
//! then the first regular expression (in file order) that matches. A name
//! that none selects goes to the listener's default server.

use std::collections::HashMap;

/// One `server_name` entry.
#[derive(Clone, Debug)]
pub enum ServerName {
    /// `example.com` (lowercased); `""` selects requests without a host.
    Exact(String),
    /// `*.example.com` (kept as `.example.com`): any name ending so, with
    /// at least one label in front; `bare` (written `.example.com`) also
    /// selects `example.com` itself.
    Leading { suffix: String, bare: bool },
    /// `www.example.*` (kept as `www.example.`): any name starting so.
    Trailing(String),
    /// `~^api\d+\.example\.com$`: case-insensitive, found anywhere unless anchored.
    Regex(regex::Regex),
}

impl PartialEq for ServerName {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl std::fmt::Display for ServerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerName::Exact(n) => f.write_str(n),
            ServerName::Leading { suffix, bare: true } => f.write_str(suffix),
            ServerName::Leading {
                suffix,
                bare: false,
            } => write!(f, "*{suffix}"),
            ServerName::Trailing(prefix) => write!(f, "{prefix}*"),
            ServerName::Regex(re) => write!(f, "~{}", re.as_str()),
        }
    }
}

impl ServerName {
    /// Parses one entry as written; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<ServerName, String> {
        if let Some(re) = text.strip_prefix('~') {
            return regex::RegexBuilder::new(re)
                .case_insensitive(true)
                .build()
                .map(ServerName::Regex)
                .map_err(|e| format!("server_name `{text}`: the regex does not compile: {e}"));
        }
        let name = text.to_ascii_lowercase();
        let name = name.strip_suffix('.').unwrap_or(&name).to_string();
        let valid = |s: &str| {
            !s.is_empty()
                && !s.contains("..")
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        };
        let parsed = if let Some(rest) = name.strip_prefix("*.") {
            valid(rest).then(|| ServerName::Leading {
                suffix: format!(".{rest}"),
                bare: false,
            })
        } else if let Some(rest) = name.strip_suffix(".*") {
            valid(rest).then(|| ServerName::Trailing(format!("{rest}.")))
        } else if let Some(rest) = name.strip_prefix('.') {
            valid(rest).then(|| ServerName::Leading {
                suffix: format!(".{rest}"),
                bare: true,
            })
        } else if name.is_empty() || valid(&name) {
            Some(ServerName::Exact(name))
        } else {
            None
        };
        parsed.ok_or_else(|| {
            format!(
                "server_name `{text}`: expected a host name, `*.example.com`, \
                 `.example.com`, `www.example.*` or `~REGEX` (a `*` only as a whole \
                 first or last label)"
            )
        })
    }
}

/// The servers of one listener by name: what [`Table::select`] reads.
#[derive(Clone, Debug, Default)]
pub struct Table {
    exact: HashMap<String, usize>,
    /// `(suffix, bare, server)`, longest suffix first.
    leading: Vec<(String, bool, usize)>,
    /// `(prefix, server)`, longest prefix first.
    trailing: Vec<(String, usize)>,
    /// In file order.
    regex: Vec<(String, regex::Regex, usize)>,
    /// The listener's default server; `None` when no server is on it.
    pub default: Option<usize>,
}

impl PartialEq for Table {
    fn eq(&self, other: &Self) -> bool {
        let regexes = |t: &Table| {
            t.regex
                .iter()
                .map(|e| (e.0.clone(), e.2))
                .collect::<Vec<_>>()
        };
        self.exact == other.exact
            && self.leading == other.leading
            && self.trailing == other.trailing
            && regexes(self) == regexes(other)
            && self.default == other.default
    }
}

impl Table {
    /// Adds `name` of server `server`; `Err` names the server that has it already.
    pub fn add(&mut self, name: &ServerName, server: usize) -> Result<(), usize> {
        let taken = match name {
            ServerName::Exact(n) => self.exact.get(n).copied(),
            ServerName::Leading { suffix, bare } => self
                .leading
                .iter()
                .find(|(s, b, _)| s == suffix && b == bare)
                .map(|e| e.2),
            ServerName::Trailing(p) => self.trailing.iter().find(|(q, _)| q == p).map(|e| e.1),
            ServerName::Regex(re) => self
                .regex
                .iter()
                .find(|(t, _, _)| t == re.as_str())
                .map(|e| e.2),
        };
        if let Some(other) = taken {
            return Err(other);
        }
        match name {
            ServerName::Exact(n) => {
                self.exact.insert(n.clone(), server);
            }
            ServerName::Leading { suffix, bare } => {
                self.leading.push((suffix.clone(), *bare, server));
                // Stable: of two of the same length, the first written stays first.
                self.leading.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
            }
            ServerName::Trailing(p) => {
                self.trailing.push((p.clone(), server));
                self.trailing.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
            }
            ServerName::Regex(re) => {
                self.regex
                    .push((re.as_str().to_string(), re.clone(), server));
            }
        }
        Ok(())
    }

    /// The server `host` selects: `host` as [`normal_host`] gives it
    /// (`None`: the request named no host).
    pub fn select(&self, host: Option<&str>) -> Option<usize> {
        self.named(host.unwrap_or("")).or(self.default)
    }

    /// The server a name selects, if one names it (no default).
    fn named(&self, host: &str) -> Option<usize> {
        if let Some(&s) = self.exact.get(host) {
            return Some(s);
        }
        if host.is_empty() {
            return None;
        }
        let leading = self.leading.iter().find(|(suffix, bare, _)| {
            (host.len() > suffix.len() && host.ends_with(suffix.as_str()))
                || (*bare && host == &suffix[1..])
        });
        if let Some(e) = leading {
            return Some(e.2);
        }
        let trailing = self
            .trailing
            .iter()
            .find(|(prefix, _)| host.len() > prefix.len() && host.starts_with(prefix.as_str()));
        if let Some(e) = trailing {
            return Some(e.1);
        }
        self.regex
            .iter()
            .find(|(_, re, _)| re.is_match(host))
            .map(|e| e.2)
    }
}

/// A request's host as server names are matched against it: lowercased,
/// without a port and without a trailing dot (`Example.COM.:8080` is
/// `example.com`); a bracketed IPv6 literal keeps its brackets.
pub fn normal_host(raw: &str) -> String {
    let host = match raw.rsplit_once(':') {
        Some((h, port))
            if port.bytes().all(|b| b.is_ascii_digit())
                && (!h.contains(':') || h.ends_with(']')) =>
        {
            h
        }
        _ => raw,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    host.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(servers: &[&[&str]]) -> Table {
        let mut t = Table {
            default: Some(99),
            ..Table::default()
        };
        for (i, names) in servers.iter().enumerate() {
            for n in *names {
                t.add(&ServerName::parse(n).unwrap(), i).unwrap();
            }
        }
        t
    }

    #[test]
    fn nginx_order_exact_then_leading_then_trailing_then_first_regex() {
        // Each kind is written before the kind that beats it, so that the
        // order of the file is not what decides.
        let t = table(&[
            &["~^www\\..*$"],                // 0
            &["~^www\\.example"],            // 1
            &["www.*"],                      // 2
            &["*.com"],                      // 3
            &["*.example.com"],              // 4
            &["www.example.com"],            // 5
            &[".example.org"],               // 6
            &["~^api\\d+\\.example\\.com$"], // 7
            &["mail.example.*"],             // 8
            &[""],                           // 9
        ]);
        let cases = [
            ("www.example.com", Some(5)),  // exact beats all
            ("a.example.com", Some(4)),    // longest leading wildcard
            ("a.b.example.com", Some(4)),  // several labels, as nginx
            ("x.com", Some(3)),            // the shorter one, alone
            ("www.example.net", Some(2)),  // trailing beats regex
            ("mail.example.net", Some(8)), // the longest trailing wins
            ("www.other.net", Some(2)),
            ("example.org", Some(6)),      // `.example.org`: the bare name
            ("a.example.org", Some(6)),    // and its subdomains
            ("api7.example.com", Some(4)), // a leading wildcard beats a regex
            ("nothing.test", Some(99)),    // the default
            ("", Some(9)),                 // no Host: the "" name
        ];
        for (host, want) in cases {
            assert_eq!(t.select(Some(host)), want, "{host}");
        }
        assert_eq!(t.select(None), Some(9));
        // Regexes in file order, when nothing else names the host.
        let t = table(&[&["~^api\\d+\\."], &["~^api"], &["*.example.com"]]);
        assert_eq!(t.select(Some("api1.test")), Some(0));
        assert_eq!(t.select(Some("apix.test")), Some(1));
        assert_eq!(t.select(Some("API1.example.com")), Some(2));
        assert_eq!(t.select(Some("api1.example.com")), Some(2));
        // Regexes are case-insensitive, as nginx's server_name ones.
        let t = table(&[&["~^API\\d+$"]]);
        assert_eq!(t.select(Some("api3")), Some(0));
        // A wildcard needs a label in front: `*.example.com` is not `example.com`.
        let t = table(&[&["*.example.com"]]);
        assert_eq!(t.select(Some("example.com")), Some(99));
        assert_eq!(t.select(Some("xexample.com")), Some(99));
        assert_eq!(t.select(None), Some(99));
    }

    #[test]
    fn a_name_is_taken_once_per_table() {
        let mut t = Table::default();
        t.add(&ServerName::parse("a.test").unwrap(), 0).unwrap();
        assert_eq!(t.add(&ServerName::parse("A.Test").unwrap(), 1), Err(0));
        t.add(&ServerName::parse("*.a.test").unwrap(), 0).unwrap();
        assert_eq!(t.add(&ServerName::parse("*.a.test").unwrap(), 2), Err(0));
        // `.a.test` is another entry than `*.a.test`.
        t.add(&ServerName::parse(".a.test").unwrap(), 1).unwrap();
    }

    #[test]
    fn bad_names_say_what_is_expected() {
        for bad in ["a.*.test", "*", "*.", "a b", "a..b", "~(unclosed"] {
            assert!(ServerName::parse(bad).is_err(), "{bad}");
        }
        assert!(
            ServerName::parse("~(x")
                .unwrap_err()
                .contains("the regex does not compile")
        );
        assert_eq!(
            ServerName::parse("WWW.Example.COM.").unwrap(),
            ServerName::Exact("www.example.com".into())
        );
        for shown in ["*.example.com", ".example.com", "www.*", "~^a$", "", "_"] {
            assert_eq!(ServerName::parse(shown).unwrap().to_string(), shown);
        }
    }

    #[test]
    fn hosts_are_compared_without_port_case_or_final_dot() {
        assert_eq!(normal_host("Example.COM:8080"), "example.com");
        assert_eq!(normal_host("example.com."), "example.com");
        assert_eq!(normal_host("example.com.:443"), "example.com");
        assert_eq!(normal_host("[::1]:8080"), "[::1]");
        assert_eq!(normal_host("[::1]"), "[::1]");
        assert_eq!(normal_host("::1"), "::1");
    }
}
