//! The access log: one line per request ([`line`]: nginx's combined
//! format, JSON or a custom format), written by a background task through
//! a buffer flushed every second.
//! Requests never wait for the disk: when the writer falls behind (or the
//! disk is full) lines are dropped and counted, and serving goes on.
//! SIGUSR1 reopens the file (for logrotate), as with nginx.

mod line;

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::mpsc;

pub use line::{Entry, line};

use crate::config::log_format::LineFormat;

/// Lines waiting for the writer; beyond this, new lines are dropped.
const QUEUE: usize = 65_536;
const FLUSH_EVERY: Duration = Duration::from_secs(1);

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
        let line = line(&self.format, e);
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
