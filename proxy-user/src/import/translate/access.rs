//! Who may use a location: `allow`/`deny` as a route's `access`,
//! `auth_basic` + `auth_basic_user_file` as its keys of the same names;
//! and who the client is: `set_real_ip_from`, `real_ip_header` and
//! `real_ip_recursive` as `[http]`'s `trusted_proxies`, `real_ip_header`
//! and `real_ip_recursive`.

use std::net::IpAddr;

use super::{Chain, Translator, find, find_all};
use crate::{
    cidr::Cidr,
    import::{
        emit::{self, Table},
        nginx::Directive,
        report::Kind,
    },
};

/// An address or network as rampart reads it: nginx accepts host bits
/// past the prefix (and ignores them), rampart asks for the network.
pub(super) fn network(text: &str) -> Option<String> {
    if let Some((addr, len)) = text.split_once('/') {
        let ip = addr.parse::<IpAddr>().ok()?;
        let len = len.parse::<u8>().ok()?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        (len <= max).then(|| Cidr::masked(ip, len).to_string())
    } else {
        text.parse::<IpAddr>().ok().map(|ip| ip.to_string())
    }
}

/// The `allow`s and `deny`s a location sees, in file order: one list,
/// from the innermost level that has either (nginx's access module).
fn rules<'a>(chain: &Chain<'a>) -> Vec<&'a Directive> {
    for block in chain.iter().rev() {
        let found: Vec<&'a Directive> = block
            .iter()
            .filter(|d| d.name == "allow" || d.name == "deny")
            .collect();
        if !found.is_empty() {
            return found;
        }
    }
    Vec::new()
}

impl<'a> Translator<'a> {
    /// `access` and `auth_basic` of a route that proxies or serves files.
    pub(super) fn guard(&mut self, t: &mut Table, chain: &Chain<'a>) {
        let mut access = Vec::new();
        let mut ok = true;
        let rules = rules(chain);
        for d in &rules {
            t.from(d.at());
            let net = match d.args.as_slice() {
                [a] if a == "all" => Some("all".to_string()),
                [a] => network(a),
                _ => None,
            };
            match net {
                Some(n) => access.push(emit::s(&format!("{} {n}", d.name))),
                None => {
                    ok = false;
                    self.unsupported(
                        d,
                        "expected an address, a network (CIDR) or `all`; unix: is not in rampart",
                    );
                }
            }
        }
        if ok && !access.is_empty() {
            for d in rules {
                self.take(d);
            }
            t.set("access", format!("[{}]", access.join(", ")));
        } else if !ok {
            // Closed rather than open: the rules rampart could not read
            // may have refused anyone.
            let readable: Vec<&Directive> = rules
                .iter()
                .copied()
                .filter(|d| !self.used.contains(&d.id))
                .collect();
            for d in readable {
                self.unsupported(d, "part of a list rampart cannot read whole: the location refuses everyone (closed rather than open)");
            }
            t.set("access", format!("[{}]", emit::s("deny all")));
        }
        self.basic_auth(t, chain);
        if let Some(d) = find(chain, "satisfy").filter(|d| !self.used.contains(&d.id)) {
            match d.args.first().map(String::as_str) {
                Some("all") => self.note(d, Kind::NotNeeded, "rampart asks for both the access rules and the password, as nginx's default `satisfy all`"),
                _ => self.unsupported(d, "rampart asks for both the access rules and the password (`satisfy all`); either one is not enough"),
            }
        }
    }

    /// True (and the rules taken) when the location's rules are only
    /// `deny all`: it answers 403 whatever its content.
    pub(super) fn denies_all(&mut self, chain: &Chain<'a>) -> bool {
        let rules = rules(chain);
        let all = !rules.is_empty()
            && rules
                .iter()
                .all(|d| d.name == "deny" && d.args.len() == 1 && d.args[0] == "all");
        if all {
            for d in rules {
                self.take(d);
            }
        }
        all
    }

    fn basic_auth(&mut self, t: &mut Table, chain: &Chain<'a>) {
        let Some(auth) = find(chain, "auth_basic") else {
            if let Some(f) = find(chain, "auth_basic_user_file") {
                self.note(
                    f,
                    Kind::NotNeeded,
                    "without auth_basic, nginx asks for no password",
                );
            }
            return;
        };
        t.from(auth.at());
        let realm = auth.args.first().map(String::as_str).unwrap_or("");
        if realm == "off" || auth.args.len() != 1 {
            if realm == "off" {
                self.note(
                    auth,
                    Kind::NotNeeded,
                    "`auth_basic off`: no authentication, as rampart does",
                );
                if let Some(f) = find(chain, "auth_basic_user_file") {
                    self.note(f, Kind::NotNeeded, "authentication is off here");
                }
            } else {
                self.unsupported(auth, "expected `auth_basic REALM`: the location refuses everyone (closed rather than open)");
                t.set("access", format!("[{}]", emit::s("deny all")));
            }
            return;
        }
        let Some(file) = find(chain, "auth_basic_user_file")
            .and_then(|f| f.args.first().map(|p| (f, p)))
            .filter(|(_, p)| !p.contains('$'))
        else {
            self.unsupported(auth, "auth_basic without an auth_basic_user_file rampart can read: the location refuses everyone with 403 (closed rather than open)");
            t.set("access", format!("[{}]", emit::s("deny all")));
            return;
        };
        let (f, path) = file;
        t.from(f.at());
        // nginx reads a relative path from its configuration directory;
        // rampart from rampart.toml's: written absolute.
        let path = if std::path::Path::new(path).is_absolute() {
            path.clone()
        } else {
            f.file
                .parent()
                .unwrap_or(std::path::Path::new("/"))
                .join(path)
                .display()
                .to_string()
        };
        t.set("auth_basic", emit::s(realm));
        t.set("auth_basic_user_file", emit::s(&path));
        self.take(auth);
        self.take(f);
    }

    /// `[http]` trusted_proxies, real_ip_header and real_ip_recursive, with
    /// nginx's defaults written out (X-Real-IP, recursion off).
    pub(super) fn real_ip(&mut self, chain: &[&'a [Directive]]) {
        let froms = find_all(chain, "set_real_ip_from");
        if froms.is_empty() {
            for name in ["real_ip_header", "real_ip_recursive"] {
                if let Some(d) = find(chain, name)
                    && !self.used.contains(&d.id)
                {
                    self.note(
                        d,
                        Kind::NotNeeded,
                        "without set_real_ip_from no proxy is trusted, so nginx reads no header",
                    );
                }
            }
            return;
        }
        let mut nets = Vec::new();
        for d in &froms {
            match d.args.first().and_then(|a| network(a)) {
                Some(n) if d.args.len() == 1 => {
                    nets.push(emit::s(&n));
                    self.take(d);
                    self.http.from(d.at());
                }
                _ => self.unsupported(
                    d,
                    "expected an address or a network (CIDR); unix: is not in rampart",
                ),
            }
        }
        if nets.is_empty() {
            return;
        }
        let value = format!("[{}]", nets.join(", "));
        if let Some(old) = self.http.get("trusted_proxies")
            && old != value
        {
            for d in froms {
                self.note(d, Kind::Unsupported, "servers trust different proxies, and rampart's trusted_proxies are for every listener: the first server's are used");
            }
            return;
        }
        self.http.set("trusted_proxies", value);
        let header = match find(chain, "real_ip_header") {
            Some(d) => match d.args.first().map(String::as_str) {
                Some("proxy_protocol") | None => {
                    self.unsupported(d, "the PROXY protocol is a listener's `proxy_protocol = true` in rampart; X-Real-IP is read instead");
                    "X-Real-IP".to_string()
                }
                Some(h) => {
                    self.take(d);
                    self.http.from(d.at());
                    h.to_string()
                }
            },
            // nginx's default; rampart's is X-Forwarded-For.
            None => "X-Real-IP".to_string(),
        };
        self.http.set("real_ip_header", emit::s(&header));
        let recursive = match find(chain, "real_ip_recursive") {
            Some(d) => {
                self.take(d);
                self.http.from(d.at());
                d.args.first().map(String::as_str) == Some("on")
            }
            // nginx's default is off; rampart's is on.
            None => false,
        };
        self.http.set("real_ip_recursive", recursive.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::network;

    #[test]
    fn networks_lose_their_host_bits() {
        assert_eq!(network("10.1.2.3/8").as_deref(), Some("10.0.0.0/8"));
        assert_eq!(network("192.168.1.7").as_deref(), Some("192.168.1.7"));
        assert_eq!(network("2001:db8::1/32").as_deref(), Some("2001:db8::/32"));
        assert_eq!(network("10.0.0.0/33"), None);
        assert_eq!(network("unix:"), None);
    }
}
