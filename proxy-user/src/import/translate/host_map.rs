//! `map $SRC $VAR { default V; KEY V1; ... }` whose variable is used in
//! locations (`proxy_pass http://$VAR`, `return 301 https://$VAR...`, a
//! header) or in a server-level `if ($VAR) { return 30x $VAR; }` (the
//! redirect-map idiom). Done on the tree before translation:
//!
//! - each location using it is written once per key, with that key's
//!   value and a condition, then once with the default for the others.
//!   Each copy carries a [`HOST`] marker that the location's route reads:
//!   an exact `$host` name is the route's `host`, any other key the
//!   route's `if` (`["$uri", "~*", "^/old$"]`: nginx compares a map's
//!   strings case-insensitively; `~RE` and `~*RE` as written; with
//!   `hostnames`, `*.example.com`, `.example.com` and `www.example.*` as
//!   regexes on `$host`), in nginx's precedence (exact, longest `*.`
//!   wildcard, longest `.*` wildcard, regexes in file order, default);
//! - the server-level `if ($VAR) { return CODE $VAR; }` becomes one
//!   `if (COND) { return CODE VALUE; }` per key whose value is set (not
//!   `""` or `"0"`); the map's default must be unset.
//!
//! `$SRC` is `$host` or a variable rampart's `if` tests. Left to the
//! report: values with variables (captures), `include` in a map, a
//! variable used anywhere else (nested locations, inside another `if`,
//! server or http level), a location using maps whose keys differ unless
//! all are exact, and a map-conditioned location that has `if`s of its own
//! (a route has one `if`).

use std::collections::HashMap;

use super::super::{
    nginx::Directive,
    report::{Kind, Report},
};

/// The name of the marker directive a location copy carries: not a name
/// nginx's grammar can produce (it has a control character).
pub(super) const HOST: &str = "\u{1}host";

/// What a request meets for one key of a map.
#[derive(Clone, Debug, PartialEq)]
enum Cond {
    /// An exact `$host` name: the route's `host`.
    Host(String),
    /// An exact string of another source: case-insensitive, as nginx.
    Exact(String),
    /// A regex (`~`, `~*`) or a `hostnames` wildcard: `[op, regex]`.
    Match(String, String),
}

impl Cond {
    fn exact(&self) -> bool {
        !matches!(self, Cond::Match(..))
    }

    /// The `if` arguments (`(SRC OP VALUE)`, as the lexer leaves them).
    fn if_args(&self, src: &str) -> Vec<String> {
        let (op, v) = self.test();
        vec![format!("({src}"), op, format!("{v})")]
    }

    fn test(&self) -> (String, String) {
        match self {
            Cond::Host(h) => ("=".into(), h.clone()),
            Cond::Exact(s) => ("~*".into(), format!("^{}$", regex::escape(s))),
            Cond::Match(op, re) => (op.clone(), re.clone()),
        }
    }

    /// The marker's arguments: `[NAME]` for a host, else `[SRC, OP, VALUE]`.
    fn marker(&self, src: &str) -> Vec<String> {
        match self {
            Cond::Host(h) => vec![h.clone()],
            _ => {
                let (op, v) = self.test();
                vec![src.to_string(), op, v]
            }
        }
    }
}

struct Map {
    src: String,
    entries: Vec<(Cond, String)>,
    default: String,
}

impl Map {
    fn value(&self, cond: &Cond) -> &str {
        self.entries
            .iter()
            .find(|(c, _)| c == cond)
            .map_or(self.default.as_str(), |(_, v)| v.as_str())
    }

    fn only_hosts(&self) -> bool {
        self.entries.iter().all(|(c, _)| matches!(c, Cond::Host(_)))
    }
}

/// Expands the locations that use a map; returns the ids of the markers
/// (already accounted for) and pushes the notes for the maps.
pub(super) fn expand(top: &mut Vec<Directive>, notes: &mut Vec<(usize, Report)>) -> Vec<usize> {
    let mut maps = HashMap::new();
    let mut map_ids = HashMap::new();
    collect(top, &mut maps, &mut map_ids);
    // Every use must be one we can copy; dropping a map can make another
    // location's set of maps uncopyable, so count again until stable.
    loop {
        if maps.is_empty() {
            return Vec::new();
        }
        let mut total: HashMap<String, usize> = HashMap::new();
        let mut inside: HashMap<String, usize> = HashMap::new();
        count(top, &maps, Place::Other, &mut total, &mut inside);
        let before = maps.len();
        maps.retain(|name, _| total.get(name).is_some_and(|n| inside.get(name) == Some(n)));
        if maps.len() == before {
            break;
        }
    }
    let mut next_id = max_id(top) + 1;
    let mut markers = Vec::new();
    rewrite(top, &maps, false, &mut next_id, &mut markers);
    for (name, (id, at)) in map_ids {
        if maps.contains_key(&name) {
            notes.push((
                id,
                Report {
                    at,
                    directive: "map".into(),
                    kind: Kind::Translated,
                    message: format!(
                        "each use of ${name} is a route per key, and one for the default"
                    ),
                },
            ));
        }
    }
    markers
}

fn plain(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !name.starts_with('.')
}

/// A `hostnames` wildcard key as a regex on `$host`, and its length for
/// nginx's "longest wildcard" order; `true` for a `*.`/`.` prefix form.
fn wildcard(key: &str) -> Option<(bool, String)> {
    let k = key.to_ascii_lowercase();
    if let Some(rest) = k.strip_prefix("*.").filter(|r| plain(r)) {
        return Some((true, format!("^.+\\.{}$", regex::escape(rest))));
    }
    if let Some(rest) = k.strip_prefix('.').filter(|r| plain(r)) {
        return Some((true, format!("^(.+\\.)?{}$", regex::escape(rest))));
    }
    let rest = k.strip_suffix(".*").filter(|r| plain(r))?;
    Some((false, format!("^{}\\..+$", regex::escape(rest))))
}

/// `map SRC $VAR {...}` as a [`Map`], when its keys and values are ones
/// the copies can express.
fn parse(d: &Directive) -> Option<(String, Map)> {
    let [src, var] = d.args.as_slice() else {
        return None;
    };
    let var = var.strip_prefix('$')?;
    let host = src == "$host";
    if !host {
        let probe = [format!("({src}"), "=".into(), "x)".into()];
        super::conditions::condition(&probe, &[]).ok()?;
    }
    let mut map = Map {
        src: src.clone(),
        entries: Vec::new(),
        default: String::new(),
    };
    let (mut hostnames, mut exact, mut prefix, mut suffix, mut regexes) =
        (false, Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for e in d.children() {
        let k = e.name.as_str();
        match e.args.as_slice() {
            [] if k == "hostnames" && host => hostnames = true,
            [] if k == "volatile" => {}
            [v] if v.contains('$') => return None,
            [v] if k == "default" => map.default = v.clone(),
            [v] if k.starts_with('~') => {
                let (op, re) = match k.strip_prefix("~*") {
                    Some(re) => ("~*", re),
                    None => ("~", &k[1..]),
                };
                regex::Regex::new(re).ok()?;
                regexes.push((Cond::Match(op.into(), re.into()), v.clone()));
            }
            [v] if host && hostnames && (k.starts_with('.') || k.contains('*')) => {
                let (front, re) = wildcard(k)?;
                let entry = (k.len(), (Cond::Match("~".into(), re), v.clone()));
                if front {
                    prefix.push(entry)
                } else {
                    suffix.push(entry)
                }
            }
            [v] if host && plain(k) => exact.push((Cond::Host(k.to_ascii_lowercase()), v.clone())),
            [v] if !host && !k.is_empty() && k != "include" => {
                exact.push((Cond::Exact(k.to_string()), v.clone()))
            }
            _ => return None,
        }
    }
    prefix.sort_by_key(|e| std::cmp::Reverse(e.0));
    suffix.sort_by_key(|e| std::cmp::Reverse(e.0));
    map.entries = exact;
    map.entries.extend(prefix.into_iter().map(|e| e.1));
    map.entries.extend(suffix.into_iter().map(|e| e.1));
    map.entries.extend(regexes);
    (!map.entries.is_empty()).then(|| (var.to_string(), map))
}

fn collect(
    block: &[Directive],
    maps: &mut HashMap<String, Map>,
    ids: &mut HashMap<String, (usize, String)>,
) {
    for d in block {
        if d.name == "http" {
            collect(d.children(), maps, ids);
        }
        if d.name != "map" || d.block.is_none() {
            continue;
        }
        if let Some((var, map)) = parse(d) {
            ids.insert(var.clone(), (d.id, d.at()));
            maps.insert(var, map);
        }
    }
}

fn uses(d: &Directive, name: &str) -> bool {
    d.name != "map"
        && d.args.iter().any(|a| {
            let mut rest = a.as_str();
            while let Some(i) = rest.find('$') {
                rest = &rest[i + 1..];
                let n = rest.strip_prefix('{').unwrap_or(rest);
                if n.starts_with(name)
                    && !n[name.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                {
                    return true;
                }
            }
            false
        })
}

/// The maps a location's own directives use, when they can be copied
/// together: all with one source, and either all exact or all with the
/// same keys. `None`: they cannot.
fn location_maps<'m>(d: &Directive, maps: &'m HashMap<String, Map>) -> Option<Vec<&'m String>> {
    let mut used: Vec<&String> = maps
        .keys()
        .filter(|n| d.children().iter().any(|c| uses(c, n)))
        .collect();
    used.sort();
    let first = &maps[*used.first()?];
    let same_src = used.iter().all(|n| maps[*n].src == first.src);
    let keys = |m: &Map| m.entries.iter().map(|e| e.0.clone()).collect::<Vec<_>>();
    let fits = used.iter().all(|n| {
        let m = &maps[*n];
        m.entries.iter().all(|e| e.0.exact()) || keys(m) == keys(first)
    });
    let ifs = d.children().iter().any(|c| c.name == "if");
    let conds_ok = !ifs || used.iter().all(|n| maps[*n].only_hosts());
    (same_src && fits && conds_ok).then_some(used)
}

/// The `if ($VAR) { return CODE $VAR; }` of a redirect map: VAR's name.
fn redirect_if<'m>(d: &Directive, maps: &'m HashMap<String, Map>) -> Option<&'m str> {
    let inner = super::conditions::inner(&d.args)?;
    let [cond] = inner.as_slice() else {
        return None;
    };
    let (var, map) = maps.get_key_value(cond.strip_prefix('$')?)?;
    let var = var.as_str();
    let [ret] = d.children() else {
        return None;
    };
    let redirect = matches!(
        ret.args.first().map(String::as_str),
        Some("301" | "302" | "303" | "307" | "308")
    );
    let unset = map.default.is_empty() || map.default == "0";
    (d.name == "if"
        && ret.name == "return"
        && redirect
        && ret.args.get(1).map(String::as_str) == Some(&format!("${var}"))
        && ret.args.len() == 2
        && unset)
        .then_some(var)
}

#[derive(Clone, Copy, PartialEq)]
enum Place {
    Server,
    Location,
    Other,
}

/// Uses of each map's variable: all, and those we can copy.
fn count(
    block: &[Directive],
    maps: &HashMap<String, Map>,
    place: Place,
    total: &mut HashMap<String, usize>,
    inside: &mut HashMap<String, usize>,
) {
    for d in block {
        let redirect = (place == Place::Server)
            .then(|| redirect_if(d, maps))
            .flatten();
        for name in maps.keys() {
            if uses(d, name) {
                *total.entry(name.clone()).or_default() += 1;
                if (place == Place::Location && d.name != "if") || redirect == Some(name) {
                    *inside.entry(name.clone()).or_default() += 1;
                }
            }
        }
        if let Some(name) = redirect {
            // Its `return` is a copyable use too.
            *total.entry(name.to_string()).or_default() += 1;
            *inside.entry(name.to_string()).or_default() += 1;
            continue;
        }
        let leaf = d.name == "location"
            && !d.children().iter().any(|c| c.name == "location")
            && location_maps(d, maps).is_some();
        let next = match d.name.as_str() {
            "server" => Place::Server,
            "location" if leaf => Place::Location,
            _ => Place::Other,
        };
        if d.name != "map" {
            count(d.children(), maps, next, total, inside);
        }
    }
}

fn max_id(block: &[Directive]) -> usize {
    block
        .iter()
        .map(|d| d.id.max(max_id(d.children())))
        .max()
        .unwrap_or(0)
}

fn rewrite(
    block: &mut Vec<Directive>,
    maps: &HashMap<String, Map>,
    server: bool,
    next_id: &mut usize,
    markers: &mut Vec<usize>,
) {
    let old = std::mem::take(block);
    for mut d in old {
        if let Some(var) = server.then(|| redirect_if(&d, maps)).flatten() {
            let map = &maps[var];
            for (cond, value) in &map.entries {
                if value.is_empty() || value == "0" {
                    continue;
                }
                let mut i = d.clone();
                i.args = cond.if_args(&map.src);
                for r in i.block.iter_mut().flatten() {
                    r.args[1] = value.clone();
                }
                block.push(i);
            }
            continue;
        }
        let used = match d.name.as_str() {
            "location" => location_maps(&d, maps).unwrap_or_default(),
            _ => Vec::new(),
        };
        if used.is_empty() {
            let inner = d.name == "server";
            if let Some(children) = d.block.as_mut() {
                rewrite(children, maps, inner, next_id, markers);
            }
            block.push(d);
            continue;
        }
        let src = maps[used[0]].src.clone();
        let mut conds: Vec<&Cond> = Vec::new();
        for c in used
            .iter()
            .flat_map(|n| maps[*n].entries.iter().map(|e| &e.0))
        {
            if !conds.contains(&c) {
                conds.push(c);
            }
        }
        let copies = conds.into_iter().map(Some).chain([None]);
        for cond in copies {
            let mut c = d.clone();
            let scope: HashMap<String, String> = used
                .iter()
                .map(|n| {
                    let m = &maps[*n];
                    let v = cond.map_or(m.default.as_str(), |c| m.value(c));
                    ((*n).clone(), v.to_string())
                })
                .collect();
            for kid in c.block.iter_mut().flatten() {
                for a in &mut kid.args {
                    if let Some(new) = super::vars::substitute(a, &scope) {
                        *a = new;
                    }
                }
            }
            if let Some(cond) = cond {
                let mut marker = d.clone();
                marker.name = HOST.into();
                marker.args = cond.marker(&src);
                marker.block = None;
                marker.id = *next_id;
                markers.push(*next_id);
                *next_id += 1;
                c.block.get_or_insert_with(Vec::new).push(marker);
            }
            block.push(c);
        }
        d.block = None;
    }
}
