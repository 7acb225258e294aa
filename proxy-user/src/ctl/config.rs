//! `rampart config check|show`: validation, and the effective configuration
//! with every default filled in (key files are named, never read out).

use std::path::Path;

use anyhow::Result;
use serde_json::json;

use super::Output;
use crate::config::{Action, AttachMode, Config, Listener, OnExit, SynCookieMode};

pub fn check(out: &Output, path: &Path) -> Result<()> {
    let cfg = Config::load(path)?;
    // What the host must provide for SYN cookies; a missing piece leaves
    // them off (the daemon says so too) but is not a configuration error.
    let syn = cfg.filter.as_ref().and_then(|f| {
        let c = &f.syn_cookies;
        (c.mode != SynCookieMode::Off && !f.interfaces.is_empty()).then(|| {
            if c.ports.is_empty() {
                Err("no ports to protect (no [[listener]] and no syn_cookies.ports)".to_string())
            } else {
                crate::filter::host_check()
            }
        })
    });
    // Valid, but worth knowing before a start: servers named host:port
    // that do not resolve now (the daemon would start with them down).
    let mut warnings = crate::upstream::unresolved_names(&cfg);
    // And server blocks no request can reach.
    warnings.extend(cfg.servers.unreachable());
    out.emit(
        &json!({
            "file": path,
            "valid": true,
            "filter": cfg.filter.is_some(),
            "warnings": warnings,
            "syn_cookies": syn.as_ref().map(|r| match r {
                Ok(()) => json!({ "ready": true }),
                Err(why) => json!({ "ready": false, "why": why }),
            }),
        }),
        || {
            let mut s = String::new();
            for w in &warnings {
                s.push_str(&format!("warning: {w}\n"));
            }
            s.push_str(&format!("{}: configuration is valid\n", path.display()));
            match &syn {
                Some(Ok(())) => s.push_str("SYN cookies: this host can run them\n"),
                Some(Err(why)) => {
                    s.push_str(&format!("SYN cookies: will stay off on this host: {why}\n"))
                }
                None => {}
            }
            s
        },
    );
    Ok(())
}

pub fn show(out: &Output, cfg: &Config) -> Result<()> {
    let value = view(cfg);
    out.emit(&value, || {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        )
    });
    Ok(())
}

/// The configuration as `config show` prints it.
fn view(cfg: &Config) -> serde_json::Value {
    let mut value = match &cfg.filter {
        None => json!({ "filter": null }),
        Some(f) => json!({ "filter": {
            "enabled": f.enabled,
            "interfaces": f.interfaces,
            "mode": match f.mode { AttachMode::Auto => "auto", AttachMode::Native => "native", AttachMode::Skb => "skb" },
            "pin_dir": f.pin_dir,
            "allow": f.allow.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "block": f.block.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "pps": f.pps.map(|l| json!({ "rate": l.rate, "burst": l.burst })),
            "syn": f.syn.map(|l| json!({ "rate": l.rate, "burst": l.burst })),
            "ipv6_prefix": f.ipv6_prefix,
            "track_sources": f.track_sources,
            "fleet_pps": f.fleet_pps.map(|t| json!({
                "count": t.count, "within_secs": t.within.as_secs(), "ban_secs": t.ban.as_secs(),
            })),
            "fleet_syn": f.fleet_syn.map(|t| json!({
                "count": t.count, "within_secs": t.within.as_secs(), "ban_secs": t.ban.as_secs(),
            })),
            "maps": {
                "sources": f.maps.sources, "bans": f.maps.bans, "allow": f.maps.allow,
                "block_ranges": f.maps.block_ranges, "block_addrs": f.maps.block_addrs,
            },
            "on_exit": match f.on_exit { OnExit::Keep => "keep", OnExit::Detach => "detach" },
            "syn_cookies": {
                "mode": f.syn_cookies.mode.name(),
                "ports": f.syn_cookies.ports,
                "ports_from_listeners": f.syn_cookies.ports_from_listeners,
                "threshold": f.syn_cookies.threshold,
            },
            "new_sources": {
                "rate": f.new_sources.rate,
                "burst": f.new_sources.burst,
                "hold_secs": f.new_sources.hold.as_secs(),
            },
        }}),
    };
    value["listeners"] = json!(cfg.listeners.iter().map(listener).collect::<Vec<_>>());
    let h = &cfg.http;
    value["http"] = json!({
        "header_timeout": secs(h.header_timeout),
        "keepalive_timeout": secs(h.keepalive_timeout),
        "send_timeout": secs(h.send_timeout),
        "body_timeout": secs(h.body_timeout),
        "body_memory": h.body_memory,
        "body_memory_per_connection": h.body_memory_per_connection,
        "max_header_size": h.max_header_size,
        "max_header_line": h.max_header_line,
        "max_headers": h.max_headers,
        "max_uri_length": h.max_uri_length,
        "max_body": h.max_body,
        "response_buffer": h.response_buffer,
        "workers": h.workers,
        "grace_period": secs(h.grace_period),
        "access_log": if h.access_log_off { json!("off") } else { json!(h.access_log) },
        "access_log_format": h.access_log_format.name(),
    });
    value["upstreams"] = cfg
        .upstreams
        .iter()
        .map(|(name, u)| {
            (name.clone(), json!({
                "balance": format!("{:?}", u.balance),
                "servers": u.servers.iter().map(|s| json!({ "addr": s.addr.to_string(), "weight": s.weight, "backup": s.backup })).collect::<Vec<_>>(),
                "max_fails": u.max_fails,
                "fail_timeout": secs(u.fail_timeout),
                "keepalive": u.keepalive,
                "connect_timeout": secs(u.connect_timeout),
                "read_timeout": secs(u.read_timeout),
                "send_timeout": secs(u.send_timeout),
                "retries": u.retries,
                "health_check": u.health_check.as_ref().map(|c| json!({
                    "path": c.path, "interval": secs(c.interval), "timeout": secs(c.timeout),
                    "fails": c.fails, "passes": c.passes, "status": c.status,
                })),
            }))
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    value["limits"] = cfg
        .limits
        .iter()
        .map(|(name, z)| {
            (
                name.clone(),
                json!({
                    "rate": z.rate.to_string(), "burst": z.burst, "delay_after": z.delay_after,
                    "dry_run": z.dry_run, "status": z.status, "max_clients": z.max_clients,
                }),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    value["escalate"] = cfg
        .escalate
        .iter()
        .map(|(name, r)| {
            (
                name.clone(),
                json!({
                    "statuses": r.statuses, "count": r.count,
                    "within": secs(r.within), "ban": secs(r.ban),
                }),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    value["servers"] = servers(cfg);
    value["routes"] = json!(cfg.routes.iter().enumerate().map(|(i, r)| json!({
        "match": cfg.route_name(i),
        "action": match &r.action {
            Action::Respond { status, .. } => format!("respond {status}"),
            Action::Static { root, alias, try_files, .. } => format!(
                "{} {}{}",
                if *alias { "static" } else { "root" },
                root.display(),
                try_files.as_ref().map_or(String::new(), |t| format!(" (try_files, then {})", t.fallback))
            ),
            Action::Proxy { upstream } => format!("upstream {upstream}"),
            Action::Redirect { to, status } => format!("redirect {status} {to}"),
        },
        "limit": r.limits,
        "escalate": r.escalate,
        "max_body": r.max_body,
        "idle_timeout": secs(r.idle_timeout),
        "access_log": r.access_log,
        "rewrite": r.rewrite.as_ref().map(ToString::to_string),
        "headers": r.headers.as_ref().map(|h| h.describe()).unwrap_or_default(),
        "compress": compress(r.compress.as_deref()),
        "error_page": pages(&r.error_pages),
    })).collect::<Vec<_>>());
    value["compress"] = compress(cfg.compress.as_ref());
    value["error_page"] = pages(&cfg.error_pages);
    value["instance"] = json!(cfg.instance);
    value["control"] = json!({
        "socket": cfg.control.socket,
        "state_file": cfg.control.state_file,
    });
    value["admin"] = json!({ "bind": cfg.admin.bind.map(|b| b.to_string()) });
    value
}

/// `[compress]` (or a route's), `null` when off.
fn compress(c: Option<&crate::config::compress::CompressSettings>) -> serde_json::Value {
    c.map_or(serde_json::Value::Null, |c| {
        json!({
            "encodings": c.encodings.iter().map(|e| e.token()).collect::<Vec<_>>(),
            "types": c.types,
            "min_length": c.min_length,
            "gzip_level": c.gzip_level,
            "brotli_level": c.brotli_level,
            "zstd_level": c.zstd_level,
        })
    })
}

/// Error pages by status: what is sent (the files were read at load).
fn pages(p: &crate::config::error_page::ErrorPages) -> serde_json::Value {
    json!(
        p.iter()
            .map(|(status, page)| json!({
                "status": status,
                "content_type": page.content_type,
                "bytes": page.body.len(),
                "intercept": page.intercept,
            }))
            .collect::<Vec<_>>()
    )
}

/// Durations as seconds (fractions kept), as JSON readers expect numbers.
fn secs(d: std::time::Duration) -> f64 {
    d.as_secs_f64()
}

/// A listener; certificate and key are named by path, never shown.
fn listener(l: &Listener) -> serde_json::Value {
    json!({
        "bind": l.bind,
        "name": l.name,
        "tls": l.tls.as_ref().map(|t| json!({
            "certs": t.certs.iter().map(|c| json!({ "cert": c.cert, "key": c.key })).collect::<Vec<_>>(),
            "min_version": if t.min_version_13 { "1.3" } else { "1.2" },
            "handshake_timeout": secs(t.handshake_timeout),
            "busy_handshake_timeout": secs(t.busy_handshake_timeout),
        })),
        "http2": l.http2,
        "redirect_https": l.redirect_https,
        "redirect_https_port": l.redirect_https_port,
        "redirect_https_host": l.redirect_https_host,
        "backlog": l.backlog,
        "max_connections": l.max_connections,
    })
}

/// The server blocks: names, listeners (by name, else bind), where each is
/// the default server, its routes (as `routes` names them) and certificates.
fn servers(cfg: &Config) -> serde_json::Value {
    let label = |l: usize| {
        let l = &cfg.listeners[l];
        l.name.clone().unwrap_or_else(|| l.bind.to_string())
    };
    let list = cfg.servers.list.iter().enumerate().map(|(i, s)| {
        json!({
            "server_name": s.names.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "top_level_routes": s.implicit,
            "listen": s.listen.iter().map(|&l| label(l)).collect::<Vec<_>>(),
            "default_server_on": (0..cfg.listeners.len())
                .filter(|&l| cfg.servers.tables[l].default == Some(i))
                .map(label)
                .collect::<Vec<_>>(),
            "routes": s.routes.clone().map(|r| cfg.route_name(r)).collect::<Vec<_>>(),
            "tls": s.tls.iter().map(|c| json!({ "cert": c.cert, "key": c.key })).collect::<Vec<_>>(),
            "error_page": pages(&s.error_pages),
        })
    });
    json!(list.collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn servers_are_shown_with_their_listeners_defaults_and_routes() {
        let text = "[[listener]]\nbind = \"127.0.0.1:0\"\nname = \"web\"\n\
                    [[listener]]\nbind = \"127.0.0.1:8081\"\n\
                    [[server]]\nserver_name = [\"a.test\", \"~^b\\\\d$\"]\n\
                    [[server.route]]\npath = \"/api/\"\nrespond = 200\n\
                    [[server]]\nlisten = [\"127.0.0.1:8081\"]\ndefault_server = true\n";
        let cfg = Config::parse(text, Path::new("t.toml")).unwrap();
        let shown = servers(&cfg);
        assert_eq!(
            shown,
            json!([
                {
                    "server_name": ["a.test", "~^b\\d$"],
                    "top_level_routes": false,
                    "listen": ["web", "127.0.0.1:8081"],
                    "default_server_on": ["web"],
                    "routes": ["a.test /api/"],
                    "tls": [],
                    "error_page": [],
                },
                {
                    "server_name": [],
                    "top_level_routes": false,
                    "listen": ["127.0.0.1:8081"],
                    "default_server_on": ["127.0.0.1:8081"],
                    "routes": [],
                    "tls": [],
                    "error_page": [],
                },
            ])
        );
    }

    #[test]
    fn show_lists_compression_and_error_pages() {
        let dir = std::env::temp_dir().join(format!("rampart-show-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("50x.html"), "<h1>down</h1>").unwrap();
        let cfg = Config::parse(
            "[compress]\nencodings = [\"gzip\"]\n\
             [[error_page]]\nstatus = [502, 503]\nfile = \"50x.html\"\nintercept = true\n\
             [[route]]\nrespond = 200\ncompress = false\nerror_page = []\n",
            &dir.join("rampart.toml"),
        )
        .unwrap();
        let v = super::view(&cfg);
        assert_eq!(v["compress"]["encodings"], serde_json::json!(["gzip"]));
        assert_eq!(v["compress"]["min_length"], 256);
        let pages = v["error_page"].as_array().unwrap();
        assert_eq!(pages.len(), 2);
        assert_eq!(pages[1]["status"], 503);
        assert_eq!(pages[1]["intercept"], true);
        assert_eq!(pages[1]["bytes"], 13);
        assert_eq!(v["routes"][0]["compress"], serde_json::Value::Null);
        assert_eq!(v["routes"][0]["error_page"], serde_json::json!([]));
        let off = super::view(&Config::parse("", Path::new("x.toml")).unwrap());
        assert_eq!(off["compress"], serde_json::Value::Null);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
