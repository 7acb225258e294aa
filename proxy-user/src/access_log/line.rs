//! One access line: the [`Entry`] a request leaves, written as nginx's
//! `combined`, as JSON, or in a custom format compiled at load
//! ([`crate::config::log_format`]).
//!
//! Variable values of a custom format are escaped as nginx's
//! `escape=default` does: `"`, `\` and bytes outside printable ASCII
//! become `\xHH`, so a client cannot forge a field or a line. An empty
//! value prints as `-`, as nginx does.

use std::{
    fmt::Write,
    net::IpAddr,
    time::{Duration, SystemTime},
};

use crate::config::log_format::{LineFormat, LogFormat, Piece, Var};

/// One request, as logged.
pub struct Entry<'a> {
    pub client: IpAddr,
    pub method: &'a str,
    pub target: &'a str,
    pub version: &'a str,
    pub host: &'a str,
    /// The request came over TLS (`$scheme`).
    pub https: bool,
    pub status: u16,
    /// Response body size when known (Content-Length).
    pub bytes: Option<u64>,
    pub request_time: Duration,
    pub upstream: Option<(&'a crate::config::target::Target, Duration)>,
    pub request_id: &'a str,
    pub referer: &'a str,
    pub user_agent: &'a str,
    /// The request's headers, kept only when the format reads them
    /// (`$http_*`, `$cookie_*`: [`crate::config::log_format::LineFormat::needs_headers`]).
    pub headers: Option<&'a hyper::HeaderMap>,
}

/// The line for `e` in `format`, newline included.
pub fn line(format: &LineFormat, e: &Entry) -> String {
    match format {
        LineFormat::Combined => combined(e),
        LineFormat::Json => json(e),
        LineFormat::Custom(f) => custom(f, e, SystemTime::now()),
    }
}

/// The line for `e` at `now` in a custom format, newline included.
pub fn custom(f: &LogFormat, e: &Entry, now: SystemTime) -> String {
    let mut out = String::with_capacity(f.source().len() + 128);
    for p in f.pieces() {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Var(v) => value(&mut out, v, e, now),
        }
    }
    out
}

fn dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

/// nginx's `combined` format, followed by timing, upstream and id fields.
pub fn combined(e: &Entry) -> String {
    combined_at(e, SystemTime::now())
}

/// nginx's `$time_local` as `combined` writes it, `06/Dec/2026:19:14:09
/// +0000` (strftime `%d/%b/%Y:%H:%M:%S %z`), in UTC: what goaccess's
/// `COMBINED` and fluent-bit's `nginx` parser expect. Cut from httpdate's
/// IMF-fixdate (`Sun, 06 Dec 2026 19:14:09 GMT`), which is fixed-width for
/// the years 1970 to 9999 it covers, rather than hand-written calendar
/// arithmetic.
pub fn time_local(t: SystemTime) -> String {
    let d = httpdate::fmt_http_date(t);
    format!(
        "{}/{}/{}:{} +0000",
        &d[5..7],
        &d[8..11],
        &d[12..16],
        &d[17..25]
    )
}

/// [`combined`] at a given time.
pub fn combined_at(e: &Entry, now: SystemTime) -> String {
    let time = time_local(now);
    let bytes = e.bytes.map_or("-".to_string(), |b| b.to_string());
    let (ua, ut) = e
        .upstream
        .map_or(("-".to_string(), "-".to_string()), |(a, t)| {
            (a.to_string(), format!("{:.3}", t.as_secs_f64()))
        });
    format!(
        "{} - - [{time}] \"{} {} {}\" {} {bytes} \"{}\" \"{}\" rt={:.3} ua={ua} urt={ut} id={}\n",
        e.client,
        e.method,
        e.target,
        e.version,
        e.status,
        dash(e.referer),
        dash(e.user_agent),
        e.request_time.as_secs_f64(),
        e.request_id
    )
}

pub fn json(e: &Entry) -> String {
    let v = serde_json::json!({
        "time": httpdate::fmt_http_date(SystemTime::now()),
        "client": e.client.to_string(),
        "method": e.method,
        "target": e.target,
        "version": e.version,
        "host": e.host,
        "status": e.status,
        "bytes": e.bytes,
        "request_time": e.request_time.as_secs_f64(),
        "upstream": e.upstream.map(|(a, _)| a.to_string()),
        "upstream_time": e.upstream.map(|(_, t)| t.as_secs_f64()),
        "request_id": e.request_id,
        "referer": e.referer,
        "user_agent": e.user_agent,
    });
    format!("{v}\n")
}

/// A proxied GET as the access-log tests write it.
#[cfg(test)]
pub(crate) fn sample_entry() -> Entry<'static> {
    Entry {
        client: "192.0.2.1".parse().unwrap(),
        method: "GET",
        target: "/api/x?y=1",
        version: "HTTP/1.1",
        host: "example.com",
        https: false,
        status: 200,
        bytes: Some(123),
        request_time: Duration::from_millis(12),
        upstream: Some((
            Box::leak(Box::new(crate::config::target::Target::Tcp(
                "127.0.0.1:8001".parse().unwrap(),
            ))),
            Duration::from_millis(10),
        )),
        request_id: "abc",
        referer: "",
        user_agent: "curl/8",
        headers: None,
    }
}

/// Appends `s` escaped as nginx's `escape=default`, `-` when empty.
fn escaped(out: &mut String, s: &str) {
    if s.is_empty() {
        out.push('-');
        return;
    }
    for b in s.bytes() {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\x{b:02X}");
        } else {
            out.push(b as char);
        }
    }
}

fn value(out: &mut String, v: &Var, e: &Entry, now: SystemTime) {
    let (path, query) = e.target.split_once('?').unwrap_or((e.target, ""));
    let secs = |d: std::time::Duration| format!("{:.3}", d.as_secs_f64());
    match v {
        Var::RemoteAddr => {
            let _ = write!(out, "{}", e.client);
        }
        Var::RemoteUser => out.push('-'),
        Var::TimeLocal => out.push_str(&time_local(now)),
        Var::TimeIso8601 => out.push_str(&time_iso8601(now)),
        Var::Msec => {
            let d = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            let _ = write!(out, "{}.{:03}", d.as_secs(), d.subsec_millis());
        }
        Var::Request => escaped(out, &format!("{} {} {}", e.method, e.target, e.version)),
        Var::RequestMethod => escaped(out, e.method),
        Var::RequestUri => escaped(out, e.target),
        Var::Uri => escaped(out, path),
        Var::Args => escaped(out, query),
        Var::ServerProtocol => escaped(out, e.version),
        Var::Scheme => out.push_str(if e.https { "https" } else { "http" }),
        Var::Host => escaped(out, e.host),
        Var::Status => {
            let _ = write!(out, "{}", e.status);
        }
        Var::BodyBytesSent => match e.bytes {
            Some(b) => {
                let _ = write!(out, "{b}");
            }
            None => out.push('-'),
        },
        Var::HttpReferer => escaped(out, e.referer),
        Var::HttpUserAgent => escaped(out, e.user_agent),
        Var::RequestTime => out.push_str(&secs(e.request_time)),
        Var::UpstreamAddr => match e.upstream {
            Some((a, _)) => {
                let _ = write!(out, "{a}");
            }
            None => out.push('-'),
        },
        Var::UpstreamResponseTime => match e.upstream {
            Some((_, t)) => out.push_str(&secs(t)),
            None => out.push('-'),
        },
        Var::RequestId => escaped(out, e.request_id),
        Var::PerRequest(r) => escaped(
            out,
            r.lookup(e.headers, e.target.split_once('?').map(|(_, q)| q))
                .as_deref()
                .unwrap_or(""),
        ),
    }
}

/// nginx's `$time_iso8601`, `2026-12-06T19:14:09+00:00`, in UTC; cut from
/// httpdate's fixed-width IMF-fixdate as [`time_local`] is.
pub fn time_iso8601(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let d = httpdate::fmt_http_date(t);
    let month = MONTHS.iter().position(|m| *m == &d[8..11]).unwrap_or(0) + 1;
    format!(
        "{}-{month:02}-{}T{}+00:00",
        &d[12..16],
        &d[5..7],
        &d[17..25]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry<'static> {
        sample_entry()
    }

    #[test]
    fn combined_line() {
        let line = combined(&entry());
        assert!(line.starts_with("192.0.2.1 - - ["), "{line}");
        assert!(line.contains("] \"GET /api/x?y=1 HTTP/1.1\" 200 123 \"-\" \"curl/8\" rt=0.012 ua=127.0.0.1:8001 urt=0.010 id=abc\n"), "{line}");
    }

    #[test]
    fn combined_time_is_nginx_time_local() {
        let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        // 2026-12-06T19:14:09Z and 2026-01-02T03:04:05Z (zero-padded fields).
        assert_eq!(time_local(at(1_796_584_449)), "06/Dec/2026:19:14:09 +0000");
        assert_eq!(time_local(at(1_767_323_045)), "02/Jan/2026:03:04:05 +0000");
        assert_eq!(time_local(at(0)), "01/Jan/1970:00:00:00 +0000");
        let line = combined_at(&entry(), at(1_796_584_449));
        assert!(
            line.starts_with("192.0.2.1 - - [06/Dec/2026:19:14:09 +0000] \"GET "),
            "{line}"
        );
    }

    /// The line as log parsers read it: goaccess's `COMBINED` log format
    /// (`%h %^[%d:%t %^] "%r" %s %b "%R" "%u"`, date `%d/%b/%Y`, time
    /// `%H:%M:%S`) and fluent-bit's `nginx` parser (its regex, time format
    /// `%d/%b/%Y:%H:%M:%S %z`), with the extra fields after them ignored as
    /// both do.
    #[test]
    fn combined_line_reads_as_goaccess_and_fluent_bit_read_it() {
        let line = combined(&entry());
        let goaccess = regex::Regex::new(
            r#"^(?<h>\S+) \S+ \S+ \[(?<d>\d{2}/[A-Z][a-z]{2}/\d{4}):(?<t>\d{2}:\d{2}:\d{2}) [+-]\d{4}\] "(?<r>[^"]*)" (?<s>\d{3}) (?<b>\d+|-) "(?<R>[^"]*)" "(?<u>[^"]*)""#,
        )
        .unwrap();
        let c = goaccess.captures(&line).unwrap_or_else(|| panic!("{line}"));
        assert_eq!(&c["h"], "192.0.2.1");
        assert_eq!(&c["r"], "GET /api/x?y=1 HTTP/1.1");
        assert_eq!((&c["s"], &c["b"], &c["u"]), ("200", "123", "curl/8"));
        let fluent_bit = regex::Regex::new(
            r#"^(?<remote>[^ ]*) (?<host>[^ ]*) (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?<method>\S+)(?: +(?<path>[^\"]*?)(?: +\S*)?)?" (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^\"]*)" "(?<agent>[^\"]*)")"#,
        )
        .unwrap();
        let c = fluent_bit
            .captures(&line)
            .unwrap_or_else(|| panic!("{line}"));
        assert_eq!((&c["method"], &c["path"]), ("GET", "/api/x?y=1"));
        assert_eq!(
            (&c["code"], &c["size"], &c["agent"]),
            ("200", "123", "curl/8")
        );
        let time =
            regex::Regex::new(r"^\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000$").unwrap();
        assert!(time.is_match(&c["time"]), "{}", &c["time"]);
    }

    #[test]
    fn json_line() {
        let v: serde_json::Value = serde_json::from_str(&json(&entry())).unwrap();
        assert_eq!(v["status"], 200);
        assert_eq!(v["upstream"], "127.0.0.1:8001");
        assert_eq!(v["request_id"], "abc");
    }

    fn quoted_entry() -> Entry<'static> {
        Entry {
            user_agent: "curl/8 \"x\"",
            ..sample_entry()
        }
    }

    fn at() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_584_449_042)
    }

    #[test]
    fn nginx_combined_as_a_template_matches_the_builtin_prefix() {
        let f = LogFormat::parse(
            r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#,
        )
        .unwrap();
        assert_eq!(
            custom(&f, &quoted_entry(), at()),
            "192.0.2.1 - - [06/Dec/2026:19:14:09 +0000] \"GET /api/x?y=1 HTTP/1.1\" 200 123 \"-\" \"curl/8 \\x22x\\x22\"\n"
        );
    }

    #[test]
    fn every_variable_renders() {
        let f = LogFormat::parse(
            "${host}|$scheme|$uri|$args|$query_string|$request_method|$request_uri|$server_protocol|$request_time|$upstream_addr|$upstream_response_time|$request_id|$time_iso8601|$msec",
        )
        .unwrap();
        assert_eq!(
            custom(&f, &quoted_entry(), at()),
            "example.com|http|/api/x|y=1|y=1|GET|/api/x?y=1|HTTP/1.1|0.012|127.0.0.1:8001|0.010|abc|2026-12-06T19:14:09+00:00|1796584449.042\n"
        );
        let mut none = quoted_entry();
        none.upstream = None;
        none.bytes = None;
        none.target = "/";
        let f = LogFormat::parse("$upstream_addr $upstream_response_time $body_bytes_sent $args")
            .unwrap();
        assert_eq!(custom(&f, &none, at()), "- - - -\n");
    }

    #[test]
    fn request_variables_render_escaped() {
        let mut h = hyper::HeaderMap::new();
        h.insert("x-forwarded-for", "198.51.100.4, 10.0.0.1".parse().unwrap());
        h.insert("cookie", "sid=\"q\"".parse().unwrap());
        let f = LogFormat::parse("$http_x_forwarded_for|$cookie_sid|$arg_y|$http_x_none").unwrap();
        assert!(LineFormat::Custom(std::sync::Arc::new(f.clone())).needs_headers());
        let e = Entry {
            headers: Some(&h),
            ..entry()
        };
        assert_eq!(
            custom(&f, &e, at()),
            "198.51.100.4, 10.0.0.1|\\x22q\\x22|1|-\n"
        );
        assert_eq!(custom(&f, &entry(), at()), "-|-|1|-\n");
        let plain = LogFormat::parse("$arg_y $http_user_agent").unwrap();
        assert!(!LineFormat::Custom(std::sync::Arc::new(plain)).needs_headers());
    }

    #[test]
    fn iso8601_pads_fields() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_323_045);
        assert_eq!(time_iso8601(t), "2026-01-02T03:04:05+00:00");
    }
}
