//! `proxy_pass` targets, `upstream` blocks and `limit_req` zones as
//! `[upstream.*]` and `[limit.*]` tables, with nginx's values written out
//! where rampart's defaults differ (round robin, 60s connect timeout, no
//! idle keep-alive without `keepalive`, 503 for limited requests).

use super::{Chain, Translator, find, units};
use crate::import::{
    emit::{self, Table},
    nginx::Directive,
    report::Kind,
};

/// `zone=NAME:SIZE` of a `limit_req_zone`.
pub(super) fn zone_name(d: &Directive) -> Option<String> {
    let z = d.args.iter().find_map(|a| a.strip_prefix("zone="))?;
    Some(z.split(':').next()?.to_string())
}

/// A name usable as a TOML bare key.
fn key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// An nginx server address as rampart writes it: `127.0.0.1:8001`,
/// `localhost:8001`, `10.0.0.2` (port 80), a name `app:8000` or `app`
/// (resolved by rampart, port 80), or `unix:/run/app.sock`.
fn addr(s: &str) -> Option<String> {
    if let Some(path) = s.strip_prefix("unix:") {
        return (path.starts_with('/') && path.len() <= 107 && !path.contains('$'))
            .then(|| s.to_string());
    }
    let local = s.replacen("localhost", "127.0.0.1", 1);
    if let Ok(a) = local.parse::<std::net::SocketAddr>() {
        return Some(a.to_string());
    }
    if let Ok(ip) = local.parse::<std::net::IpAddr>() {
        return Some(std::net::SocketAddr::new(ip, 80).to_string());
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok().filter(|p| *p > 0)?),
        None => (s, 80),
    };
    let name = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        && !host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    name.then(|| format!("{host}:{port}"))
}

const NGINX_TIMEOUT_MS: u64 = 60_000;

impl<'a> Translator<'a> {
    /// The upstream group a `proxy_pass` sends to, written if new.
    pub(super) fn proxy_pass(
        &mut self,
        pp: &'a Directive,
        chain: &Chain<'a>,
        mode: super::Mode,
        loc_path: &str,
    ) -> Option<(String, Option<String>)> {
        let url = pp.args.first()?;
        if url.contains('$') {
            self.unsupported(
                pp,
                "proxy_pass with variables nginx reads per request (a URI part in them replaces the whole request URI): no rampart key",
            );
            return None;
        }
        let Some(rest) = url.strip_prefix("http://") else {
            self.unsupported(
                pp,
                "only http:// upstreams (no TLS to upstreams or other schemes)",
            );
            return None;
        };
        // `http://unix:/run/app.sock:/uri` names a socket, then a URI.
        let (host, uri) = match rest.strip_prefix("unix:") {
            Some(p) => match p.find(':') {
                Some(i) => (
                    &rest[..5 + i],
                    Some(&rest[5 + i + 1..]).filter(|u| !u.is_empty()),
                ),
                None => (rest, None),
            },
            None => match rest.find('/') {
                Some(i) => (&rest[..i], Some(&rest[i..])),
                None => (rest, None),
            },
        };
        let prefix = matches!(mode, super::Mode::Prefix | super::Mode::Priority);
        // The location's matched prefix replaced by the URI part: the
        // route's `upstream_path`.
        let mut upstream_path = None;
        let mut path_ok = true;
        if let Some(uri) = uri
            && uri != loc_path
        {
            if prefix {
                upstream_path = Some(uri.to_string());
            } else {
                path_ok = false;
                self.note(pp, Kind::Unsupported, format!("proxy_pass with a URI part (`{uri}`) in a `=` or regex location: rampart replaces only a `path` prefix (upstream_path); the path is sent unchanged"));
            }
        }
        let base = if let Some(block) = self.upstream_blocks.get(host).copied() {
            let name = key(host);
            if !self.upstreams.contains_key(&name) && !self.upstream_block(block, &name) {
                self.unsupported(
                    pp,
                    format!("upstream `{host}` has no server rampart can use"),
                );
                return None;
            }
            name
        } else if let Some(a) = addr(host) {
            let name = key(&a);
            if !self.upstreams.contains_key(&name) {
                let mut t = Table::new(format!("[upstream.{name}]"), format!("proxy_pass {url}"));
                t.from(pp.at());
                t.set("servers", format!("[{}]", emit::s(&a)));
                defaults(&mut t, None);
                self.upstreams.insert(name.clone(), t);
            }
            name
        } else {
            self.unsupported(
                pp,
                format!("`{host}` is neither an upstream block nor an address rampart reads"),
            );
            return None;
        };
        if path_ok {
            self.take(pp);
        }
        // Timeouts are per location in nginx, per group in rampart: one
        // group per set of values.
        let mut ms = [NGINX_TIMEOUT_MS; 3];
        for (i, n) in [
            "proxy_connect_timeout",
            "proxy_read_timeout",
            "proxy_send_timeout",
        ]
        .iter()
        .enumerate()
        {
            if let Some(d) = find(chain, n) {
                match d.args.first().and_then(|a| units::millis(a)) {
                    Some(v) if (1000..=86_400_000).contains(&v) => {
                        ms[i] = v;
                        self.take(d);
                    }
                    _ => self.unsupported(d, "expected a time from 1s to 1d"),
                }
            }
        }
        let name = match self.variants.get(&(base.clone(), ms)) {
            Some(n) => n.clone(),
            None => {
                let k = self.variants.keys().filter(|(b, _)| b == &base).count();
                let n = if k == 0 {
                    base.clone()
                } else {
                    format!("{base}_{}", k + 1)
                };
                self.variants.insert((base.clone(), ms), n.clone());
                n
            }
        };
        if let Some(mut t) = self.upstreams.get(&base).cloned() {
            t.header = format!("[upstream.{name}]");
            t.set("connect_timeout", emit::s(&units::duration(ms[0])));
            t.set("read_timeout", emit::s(&units::duration(ms[1])));
            t.set("send_timeout", emit::s(&units::duration(ms[2])));
            self.upstreams.insert(name.clone(), t);
        }
        Some((name, upstream_path))
    }

    /// An `upstream` block as `[upstream.NAME]`; false when no server
    /// could be written.
    fn upstream_block(&mut self, block: &'a Directive, name: &str) -> bool {
        self.take(block);
        let mut t = Table::new(
            format!("[upstream.{name}]"),
            format!("upstream {}", block.args.join(" ")),
        );
        t.from(block.at());
        let mut servers = Vec::new();
        let mut fails: Option<(String, String)> = None;
        let mut balance = "round_robin";
        let mut keepalive = None;
        for d in block.children() {
            match d.name.as_str() {
                "server" => {
                    let Some(a) = d.args.first().and_then(|a| addr(a)) else {
                        self.unsupported(
                            d,
                            "expected an address, a name (host:port) or unix:/path",
                        );
                        continue;
                    };
                    let mut weight = 1u32;
                    let mut mf = "1".to_string();
                    let mut ft = "10s".to_string();
                    let mut skip = false;
                    let mut backup = false;
                    for o in &d.args[1..] {
                        if let Some(w) = o.strip_prefix("weight=") {
                            match w.parse::<u32>() {
                                Ok(n) if (1..=1000).contains(&n) => weight = n,
                                _ => self.note(
                                    d,
                                    Kind::Unsupported,
                                    format!("weight={w}: expected 1 to 1000"),
                                ),
                            }
                        } else if let Some(v) = o.strip_prefix("max_fails=") {
                            match v.parse::<u32>() {
                                Ok(n) if n <= 1000 => mf = n.to_string(),
                                _ => self.note(
                                    d,
                                    Kind::Unsupported,
                                    format!("max_fails={v}: expected 0 to 1000"),
                                ),
                            }
                        } else if let Some(v) = o.strip_prefix("fail_timeout=") {
                            match units::millis(v) {
                                Some(ms) if ms <= 86_400_000 => ft = units::duration(ms),
                                _ => self.note(
                                    d,
                                    Kind::Unsupported,
                                    format!("fail_timeout={v}: expected a time up to 1d"),
                                ),
                            }
                        } else if o == "resolve" {
                            // rampart resolves names again as their TTLs run out.
                        } else if o == "down" {
                            skip = true;
                        } else if o == "backup" {
                            backup = true;
                        } else {
                            self.note(
                                d,
                                Kind::Unsupported,
                                format!("server option `{o}` is not in rampart"),
                            );
                        }
                    }
                    if skip {
                        self.used.insert(d.id);
                        continue;
                    }
                    match &fails {
                        None => fails = Some((mf, ft)),
                        Some(f) if *f != (mf.clone(), ft.clone()) => {
                            self.note(d, Kind::Unsupported, "max_fails and fail_timeout apply to the whole group in rampart; the first server's values are used");
                        }
                        _ => {}
                    }
                    t.from(d.at());
                    self.take(d);
                    servers.push(match (weight, backup) {
                        (1, false) => emit::s(&a),
                        (1, true) => format!("{{ addr = {}, backup = true }}", emit::s(&a)),
                        (w, false) => format!("{{ addr = {}, weight = {w} }}", emit::s(&a)),
                        (w, true) => {
                            format!("{{ addr = {}, weight = {w}, backup = true }}", emit::s(&a))
                        }
                    });
                }
                "least_conn" => {
                    balance = "least_conn";
                    self.take(d);
                }
                "random" => {
                    balance = "random_two";
                    self.take(d);
                }
                "keepalive" => {
                    keepalive = d.args.first().and_then(|n| n.parse::<u32>().ok());
                    self.take(d);
                }
                "keepalive_timeout" | "keepalive_requests" | "keepalive_time" => {
                    self.note(
                        d,
                        Kind::NotNeeded,
                        "rampart closes idle upstream connections beyond `keepalive` itself",
                    );
                }
                "zone" => self.note(
                    d,
                    Kind::NotNeeded,
                    "rampart's workers share upstream state without a zone",
                ),
                _ => {}
            }
        }
        if servers.is_empty() {
            self.note(
                block,
                Kind::Unsupported,
                "no server of this upstream could be translated",
            );
            return false;
        }
        if servers.iter().all(|s| s.ends_with("backup = true }")) {
            self.note(
                block,
                Kind::Unsupported,
                "every server is a backup: nginx refuses this (no servers in upstream), and so does rampart",
            );
            return false;
        }
        t.set("servers", format!("[{}]", servers.join(", ")));
        t.set("balance", emit::s(balance));
        if let Some((mf, ft)) = fails {
            t.set("max_fails", mf);
            t.set("fail_timeout", emit::s(&ft));
        }
        defaults(&mut t, keepalive);
        self.upstreams.insert(name.to_string(), t);
        true
    }

    /// `limit_req zone=NAME [burst=N] [nodelay|delay=N]` as a `[limit.*]`
    /// zone (one per distinct set of options, as rampart keeps them there).
    pub(super) fn limit(&mut self, d: &'a Directive, chain: &Chain<'a>) -> Option<String> {
        let Some(zone) = d
            .args
            .iter()
            .find_map(|a| a.strip_prefix("zone="))
            .map(str::to_string)
        else {
            self.unsupported(
                d,
                "expected `limit_req zone=NAME [burst=N] [nodelay|delay=N]`",
            );
            return None;
        };
        let Some(z) = self.zones.get(&zone).copied() else {
            self.unsupported(d, format!("no limit_req_zone named `{zone}`"));
            return None;
        };
        let Some(rate) = z
            .args
            .iter()
            .find_map(|a| a.strip_prefix("rate="))
            .filter(|r| valid_rate(r))
            .map(str::to_string)
        else {
            self.unsupported(d, format!("zone `{zone}` has no rate rampart reads"));
            self.unsupported(z, "expected rate=Nr/s or rate=Nr/m (N from 1 to 1000000)");
            return None;
        };
        let key = z.args.first().map(String::as_str).unwrap_or("");
        if key != "$binary_remote_addr" && key != "$remote_addr" {
            self.note(
                z,
                Kind::Unsupported,
                format!("zone key `{key}`: rampart limits per client address only"),
            );
        } else {
            self.take(z);
        }
        let mut burst = 0u64;
        let mut nodelay = false;
        let mut delay = 0u64;
        for a in &d.args {
            if let Some(b) = a.strip_prefix("burst=") {
                match b.parse::<u64>() {
                    Ok(n) if n <= 1_000_000 => burst = n,
                    _ => self.note(
                        d,
                        Kind::Unsupported,
                        format!("burst={b}: expected 0 to 1000000"),
                    ),
                }
            } else if a == "nodelay" {
                nodelay = true;
            } else if let Some(v) = a.strip_prefix("delay=") {
                match v.parse::<u64>() {
                    Ok(n) if n <= 1_000_000 => delay = n,
                    _ => self.note(
                        d,
                        Kind::Unsupported,
                        format!("delay={v}: expected 0 to 1000000"),
                    ),
                }
            }
        }
        let status = match find(chain, "limit_req_status") {
            Some(s) => match s.args.first().and_then(|v| v.parse::<u16>().ok()) {
                Some(code) if (400..=599).contains(&code) => {
                    self.take(s);
                    code
                }
                _ => {
                    self.unsupported(s, "expected a status from 400 to 599; 503 is used");
                    503
                }
            },
            // nginx answers 503 by default, rampart 429.
            None => 503,
        };
        let size = z
            .args
            .iter()
            .find_map(|a| a.strip_prefix("zone="))
            .and_then(|v| v.split(':').nth(1))
            .and_then(units::bytes);
        let mut t = Table::new(
            format!("[limit.{}]", key_of(&zone)),
            format!("limit_req_zone {zone} and its limit_req"),
        );
        t.from(z.at());
        t.from(d.at());
        t.set("rate", emit::s(&rate));
        if burst > 0 {
            t.set("burst", burst.to_string());
        }
        // delay= at or past the burst serves the whole burst at once.
        if nodelay || (delay > 0 && delay >= burst) {
            t.set("nodelay", "true".into());
        } else if delay > 0 {
            t.set("delay", delay.to_string());
        }
        t.set("status", status.to_string());
        if let Some(b) = size {
            // nginx keeps about 16,000 states per megabyte of zone.
            t.set("max_clients", (b / 64).clamp(1, 100_000_000).to_string());
        }
        let base = key_of(&zone);
        let mut name = base.clone();
        let mut n = 1;
        loop {
            match self.limits.get(&name) {
                Some(existing) if existing.keys == t.keys => break,
                Some(_) => {
                    if n == 1 {
                        self.note(d, Kind::Unsupported, format!("zone `{zone}` used with other options elsewhere: rampart keeps options per zone, so this use gets a zone (and a count) of its own"));
                    }
                    n += 1;
                    name = format!("{base}_{n}");
                }
                None => {
                    t.header = format!("[limit.{name}]");
                    self.limits.insert(name.clone(), t.clone());
                    break;
                }
            }
        }
        if let Some(e) = self.limits.get_mut(&name) {
            e.from(d.at());
        }
        self.used.insert(d.id);
        Some(name)
    }
}

/// `Nr/s` or `Nr/m` with N from 1 to 1,000,000, as rampart reads rates.
fn valid_rate(r: &str) -> bool {
    r.strip_suffix("r/s")
        .or_else(|| r.strip_suffix("r/m"))
        .and_then(|n| n.parse::<u64>().ok())
        .is_some_and(|n| (1..=1_000_000).contains(&n))
}

fn key_of(zone: &str) -> String {
    key(zone)
}

/// nginx's behaviour where rampart's defaults differ.
fn defaults(t: &mut Table, keepalive: Option<u32>) {
    if t.get("balance").is_none() {
        t.set("balance", emit::s("round_robin"));
    }
    // Without `keepalive` nginx closes every upstream connection.
    t.set("keepalive", keepalive.unwrap_or(0).to_string());
    t.set("connect_timeout", emit::s("60s"));
    t.set("read_timeout", emit::s("60s"));
    t.set("send_timeout", emit::s("60s"));
}
