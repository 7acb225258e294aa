//! The access log: one line per request in nginx's combined format, as
//! JSON or in a custom format ([`crate::log_format`]), written by a background task through a buffer flushed every second.
//! Requests never wait for the disk: when the writer falls behind (or the
//! disk is full) lines are dropped and counted, and serving goes on.
//! SIGUSR1 reopens the file (for logrotate), as with nginx.

use std::{
    io::Write,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use tokio::sync::mpsc;

use crate::log_format::LineFormat;

/// Lines waiting for the writer; beyond this, new lines are dropped.
const QUEUE: usize = 65_536;
const FLUSH_EVERY: Duration = Duration::from_secs(1);

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
    pub upstream: Option<(&'a crate::upstream::Target, Duration)>,
    pub request_id: &'a str,
    pub referer: &'a str,
    pub user_agent: &'a str,
    /// The request's headers, kept only when the format reads them
    /// (`$http_*`, `$cookie_*`: [`crate::log_format::LineFormat::needs_headers`]).
    pub headers: Option<&'a hyper::HeaderMap>,
}

#[derive(Debug)]
pub struct AccessLog {
    pub path: PathBuf,
    format: LineFormat,
    tx: mpsc::Sender<String>,
    /// Lines dropped because the writer was behind or failing.
    pub dropped: Arc<AtomicU64>,
    /// True while writes fail (disk full, file gone): reported by
    /// `/metrics` and logged once on entry and once on recovery.
    pub failing: Arc<AtomicBool>,
    /// Asks the writer to reopen the file.
    reopen: Arc<tokio::sync::Notify>,
    /// The file and the queue, until [`AccessLog::start`] hands them to the writer.
    idle: Mutex<Option<(std::fs::File, mpsc::Receiver<String>)>>,
}

impl AccessLog {
    /// Opens (creates, appends to) the log; lines queue until
    /// [`AccessLog::start`] starts its writer.
    pub fn open(path: &Path, format: LineFormat) -> std::io::Result<AccessLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        Ok(AccessLog {
            path: path.to_path_buf(),
            format,
            tx,
            dropped: Arc::default(),
            failing: Arc::default(),
            reopen: Arc::default(),
            idle: Mutex::new(Some((file, rx))),
        })
    }

    /// Starts the writer task, once (the daemon does when it installs the
    /// snapshot that opened the log).
    pub fn start(&self) {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((file, rx)) = idle {
            let health = Health {
                dropped: self.dropped.clone(),
                failing: self.failing.clone(),
            };
            let path = self.path.clone();
            tokio::spawn(writer(file, rx, path, health, self.reopen.clone()));
        }
    }

    pub fn format(&self) -> &LineFormat {
        &self.format
    }

    /// Flushes and reopens the file at its path (after logrotate moved it).
    pub fn reopen(&self) {
        self.reopen.notify_one();
    }

    pub fn write(&self, e: &Entry) {
        let line = self.format.line(e);
        if self.tx.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The writer's condition, shared with [`AccessLog`] for `/metrics`.
struct Health {
    dropped: Arc<AtomicU64>,
    failing: Arc<AtomicBool>,
}

async fn writer(
    file: std::fs::File,
    mut rx: mpsc::Receiver<String>,
    path: PathBuf,
    health: Health,
    reopen: Arc<tokio::sync::Notify>,
) {
    let Health {
        dropped,
        failing: failing_flag,
    } = health;
    let mut out = std::io::BufWriter::with_capacity(64 << 10, file);
    let mut failing = false;
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                Some(line) => {
                    if let Err(e) = out.write_all(line.as_bytes()) {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        if !failing {
                            log::error!("access log {}: {e}; lines are dropped until it recovers", path.display());
                            failing = true;
                            failing_flag.store(true, Ordering::Relaxed);
                        }
                    }
                }
                None => break,
            },
            _ = reopen.notified() => {
                let _ = out.flush();
                match std::fs::OpenOptions::new().create(true).append(true).open(&path) {
                    Ok(file) => {
                        out = std::io::BufWriter::with_capacity(64 << 10, file);
                        log::info!("access log {}: reopened", path.display());
                    }
                    Err(e) => log::error!("access log {}: reopening: {e}; still writing to the old file", path.display()),
                }
            }
            _ = tick.tick() => {
                match out.flush() {
                    Ok(()) if failing => {
                        log::warn!("access log {}: writing again", path.display());
                        failing = false;
                        failing_flag.store(false, Ordering::Relaxed);
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        log::error!("access log {}: {e}; lines are dropped until it recovers", path.display());
                        failing = true;
                        failing_flag.store(true, Ordering::Relaxed);
                    }
                    Err(_) => {}
                }
            }
        }
    }
    let _ = out.flush();
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

/// A proxied GET as the access-log tests (here and in `log_format`) write it.
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
            Box::leak(Box::new(crate::upstream::Target::Tcp(
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
}
