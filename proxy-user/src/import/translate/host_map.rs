//! `map $host $VAR { default V; NAME V1; ... }` whose variable a location
//! uses (`proxy_pass http://$VAR`, `return 301 https://$VAR$request_uri`,
//! a header): the location is written once per name, with that name's
//! value and the route's `host`, then once with the default for the other
//! hosts. Done on the tree before translation: each copy carries a
//! [`HOST`] marker that the location's route reads.
//!
//! Only exact names (no `~regex`, `*.`, `.name`, `hostnames`, `include`),
//! literal values, and a variable used nowhere but in locations without
//! nested locations; any other `map` is left to the report.

use std::collections::HashMap;

use super::super::{
    nginx::Directive,
    report::{Kind, Report},
};

/// The name of the marker directive a location copy carries: not a name
/// nginx's grammar can produce (it has a control character).
pub(super) const HOST: &str = "\u{1}host";

struct HostMap {
    entries: Vec<(String, String)>,
    default: String,
}

/// Expands the locations that use a `$host` map; returns the notes for
/// the maps (and the ids of the markers, already accounted for).
pub(super) fn expand(top: &mut Vec<Directive>, notes: &mut Vec<(usize, Report)>) -> Vec<usize> {
    let mut maps = HashMap::new();
    let mut map_ids = HashMap::new();
    collect(top, &mut maps, &mut map_ids);
    if maps.is_empty() {
        return Vec::new();
    }
    // Every use must be in a location we can copy.
    let mut total: HashMap<String, usize> = HashMap::new();
    let mut inside: HashMap<String, usize> = HashMap::new();
    count(top, &maps, false, &mut total, &mut inside);
    maps.retain(|name, _| total.get(name).is_some_and(|n| inside.get(name) == Some(n)));
    if maps.is_empty() {
        return Vec::new();
    }
    let mut next_id = max_id(top) + 1;
    let mut markers = Vec::new();
    rewrite(top, &maps, &mut next_id, &mut markers);
    for (name, (id, at)) in map_ids {
        if maps.contains_key(&name) {
            notes.push((
                id,
                Report {
                    at,
                    directive: "map".into(),
                    kind: Kind::Translated,
                    message: format!(
                        "each location using ${name} is a route per host, and one for the default"
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

fn collect(
    block: &[Directive],
    maps: &mut HashMap<String, HostMap>,
    ids: &mut HashMap<String, (usize, String)>,
) {
    for d in block {
        if d.name == "http" {
            collect(d.children(), maps, ids);
        }
        let (true, Some("$host"), Some(var), 2) = (
            d.name == "map" && d.block.is_some(),
            d.args.first().map(String::as_str),
            d.args.get(1).and_then(|v| v.strip_prefix('$')),
            d.args.len(),
        ) else {
            continue;
        };
        let mut map = HostMap {
            entries: Vec::new(),
            default: String::new(),
        };
        let mut ok = true;
        for e in d.children() {
            match (e.name.as_str(), e.args.as_slice()) {
                (_, [v]) if v.contains('$') => ok = false,
                ("default", [v]) => map.default = v.clone(),
                (k, [v]) if plain(k) => map.entries.push((k.to_ascii_lowercase(), v.clone())),
                _ => ok = false,
            }
        }
        if ok && !map.entries.is_empty() {
            maps.insert(var.to_string(), map);
            ids.insert(var.to_string(), (d.id, d.at()));
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

/// Uses of each map's variable: all, and those directly in a location
/// without nested locations.
fn count(
    block: &[Directive],
    maps: &HashMap<String, HostMap>,
    copyable: bool,
    total: &mut HashMap<String, usize>,
    inside: &mut HashMap<String, usize>,
) {
    for d in block {
        for name in maps.keys() {
            if uses(d, name) {
                *total.entry(name.clone()).or_default() += 1;
                if copyable {
                    *inside.entry(name.clone()).or_default() += 1;
                }
            }
        }
        let leaf = d.name == "location" && !d.children().iter().any(|c| c.name == "location");
        if d.name != "map" {
            count(d.children(), maps, leaf, total, inside);
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
    maps: &HashMap<String, HostMap>,
    next_id: &mut usize,
    markers: &mut Vec<usize>,
) {
    let old = std::mem::take(block);
    for mut d in old {
        let used: Vec<&String> = maps
            .keys()
            .filter(|n| d.children().iter().any(|c| uses(c, n)))
            .collect();
        if d.name != "location" || used.len() != 1 {
            if let Some(children) = d.block.as_mut() {
                rewrite(children, maps, next_id, markers);
            }
            block.push(d);
            continue;
        }
        let name = used[0];
        let map = &maps[name];
        let copies = map
            .entries
            .iter()
            .map(|(h, v)| (Some(h.as_str()), v.as_str()))
            .chain([(None, map.default.as_str())]);
        for (host, value) in copies {
            let mut c = d.clone();
            let scope = HashMap::from([(name.clone(), value.to_string())]);
            for kid in c.block.iter_mut().flatten() {
                for a in &mut kid.args {
                    if let Some(new) = super::vars::substitute(a, &scope) {
                        *a = new;
                    }
                }
            }
            if let Some(h) = host {
                let mut marker = d.clone();
                marker.name = HOST.into();
                marker.args = vec![h.to_string()];
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
