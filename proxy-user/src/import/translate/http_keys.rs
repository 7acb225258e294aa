//! `[http]` keys from nginx's http-level (and single server's) settings:
//! timeouts, body and header sizes, the access log and its format, and
//! `autoindex` wherever it is.

use super::{Kind, Translator, emit, find, find_all, units};
use crate::import::nginx::Directive;

impl<'a> Translator<'a> {
    /// `[http]` keys from http-level directives, and nginx's own values
    /// where rampart's defaults differ.
    pub(super) fn http_settings(&mut self, chain: &[&'a [Directive]]) {
        // nginx's client_header_timeout default is 60s; rampart's is 10s.
        self.http.set("header_timeout", emit::s("60s"));
        self.timeouts(chain);
        self.body_and_headers(chain);
        self.access_log(chain);
    }

    /// Server-level values of [http]'s keys: rampart has one [http], so a
    /// server's own value is taken when only one server sets it.
    pub(super) fn server_http_keys(&mut self, srv: &'a [Directive]) {
        let chain = [srv];
        self.timeouts(&chain);
    }

    fn timeouts(&mut self, chain: &[&'a [Directive]]) {
        for (name, key) in [
            ("client_header_timeout", "header_timeout"),
            ("keepalive_timeout", "keepalive_timeout"),
            ("client_body_timeout", "body_timeout"),
            ("send_timeout", "send_timeout"),
            ("worker_shutdown_timeout", "grace_period"),
        ] {
            let Some(d) = find(chain, name) else { continue };
            let Some(ms) = d.args.first().and_then(|a| units::millis(a)) else {
                self.unsupported(d, "expected a time such as 60s");
                continue;
            };
            if name == "keepalive_timeout" && ms == 0 {
                self.unsupported(d, "keep-alive cannot be switched off in rampart");
                continue;
            }
            if d.args.len() > 1 {
                self.note(
                    d,
                    Kind::NotNeeded,
                    "the Keep-Alive header's timeout is not sent by rampart",
                );
            }
            self.http.set(key, emit::s(&units::duration(ms)));
            self.http.from(d.at());
            self.take(d);
        }
    }

    fn body_and_headers(&mut self, chain: &[&'a [Directive]]) {
        if let Some(d) = find(chain, "client_max_body_size") {
            if let Some(v) = units::body_size(d) {
                self.http.set("max_body", emit::s(&v));
                self.http.from(d.at());
                self.take(d);
            } else {
                self.unsupported(d, "expected a size such as 10m");
            }
        }
        if let Some(d) = find(chain, "large_client_header_buffers") {
            match (
                d.args.first().and_then(|n| n.parse::<u64>().ok()),
                d.args.get(1).and_then(|s| units::bytes(s)),
            ) {
                (Some(n), Some(b)) if (1024..=1 << 20).contains(&b) => {
                    self.http.set("max_header_line", emit::s(&units::size(b)));
                    self.http.set(
                        "max_header_size",
                        emit::s(&units::size((n * b).min(1 << 20))),
                    );
                    self.http.from(d.at());
                    self.take(d);
                }
                _ => self.unsupported(
                    d,
                    "expected `large_client_header_buffers N SIZE` with SIZE from 1k to 1m",
                ),
            }
        }
    }

    /// `access_log` at http level: one file for everything, in nginx's
    /// combined format.
    fn access_log(&mut self, chain: &[&'a [Directive]]) {
        let formats: Vec<&Directive> = chain
            .iter()
            .flat_map(|b| b.iter())
            .filter(|d| d.name == "log_format")
            .collect();
        for d in find_all(chain, "access_log") {
            match d.args.first().map(String::as_str) {
                Some("off") => {
                    self.http.set("access_log", emit::s("off"));
                    self.http.from(d.at());
                    self.take(d);
                }
                Some(path) if !path.contains('$') && !path.starts_with("syslog:") => {
                    let format = d.args.get(1).filter(|a| !a.contains('='));
                    match format.map(String::as_str) {
                        None | Some("combined") => {
                            if self.http.get("access_log").is_some() {
                                self.unsupported(
                                    d,
                                    "rampart writes one access log; the first is kept",
                                );
                                continue;
                            }
                            self.http.set("access_log", emit::s(path));
                            self.http.from(d.at());
                            self.take(d);
                        }
                        Some(name) => {
                            let f = formats
                                .iter()
                                .find(|f| f.args.first().map(String::as_str) == Some(name))
                                .copied();
                            match f.map(|f| (f, custom_format(f))) {
                                Some((f, Ok(text))) if self.http.get("access_log").is_none() => {
                                    self.http.set("access_log", emit::s(path));
                                    self.http.set("access_log_format", emit::s(&text));
                                    self.http.from(d.at());
                                    self.http.from(f.at());
                                    self.take(d);
                                    self.take(f);
                                }
                                Some((f, Err(why))) => {
                                    self.unsupported(d, format!("log format `{name}`: {why}"));
                                    self.unsupported(f, why);
                                }
                                Some(_) => self.unsupported(
                                    d,
                                    "rampart writes one access log; the first is kept",
                                ),
                                None => {
                                    self.unsupported(d, format!("no log_format named `{name}`"))
                                }
                            }
                        }
                    }
                }
                _ => self.unsupported(d, "only a file path or `off` (no syslog, no variables)"),
            }
        }
        for f in formats {
            if !self.used.contains(&f.id) {
                self.note(
                    f,
                    Kind::NotNeeded,
                    "not used by an access_log at http level",
                );
            }
        }
    }

    /// `autoindex` wherever it is: `off` is what rampart's static routes do
    /// (a directory without its index answers 403); `on` is not in rampart.
    pub(super) fn autoindex(&mut self, block: &[Directive]) {
        for d in block {
            if d.name == "autoindex" {
                if d.args.first().map(String::as_str) == Some("off") {
                    self.note(d, Kind::NotNeeded, "rampart never lists a directory: one without its index file answers 403, as nginx's `autoindex off`");
                } else {
                    self.unsupported(d, "directory listings are not in rampart: a directory without its index file answers 403");
                }
            }
            self.autoindex(d.children());
        }
    }
}

/// A `log_format NAME [escape=default] 'text' ...` as rampart's
/// `access_log_format` template: the strings joined, as nginx does.
fn custom_format(f: &Directive) -> Result<String, String> {
    let mut parts = f.args.get(1..).unwrap_or(&[]);
    if let Some(e) = parts.first().and_then(|a| a.strip_prefix("escape=")) {
        if e != "default" {
            return Err(format!(
                "escape={e}: rampart escapes log values as nginx's escape=default"
            ));
        }
        parts = &parts[1..];
    }
    let text = parts.concat();
    if !text.contains('$') {
        return Err("a format without variables".into());
    }
    crate::config::log_format::LogFormat::parse(&text)
        .map(|_| text)
        .map_err(|e| format!("{e}"))
}
