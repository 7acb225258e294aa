//! `send_timeout` for each HTTP/2 stream: a response its client stops
//! taking (its stream's flow-control window left shut) is reset after
//! `send_timeout` without progress, as nginx applies `send_timeout` to
//! each HTTP/2 stream, and what it held is freed: its buffered body, or
//! the upstream connection streaming into it.
//!
//! The connection guard's `send_timeout` cannot see such a stream: the
//! socket still takes what the connection's other streams and PING
//! answers write. Nor does `keepalive_timeout`, which a connection in use
//! never reaches. Before, a client that kept its connection alive (a PING
//! every few seconds) held a stalled stream for ever.
//!
//! hyper drives each stream as a task that it spawns through the
//! connection's executor ([`Streams`]) right after calling the service for
//! it. The service wraps the stream's response body ([`Sending`]) with a
//! [`Clock`] and leaves the clock for the executor, which races the task
//! against it ([`Clock::stalled`]). The clock runs from when the body hands
//! hyper a chunk until hyper asks for the next one (until the chunk has
//! been queued for sending, which needs the stream's window); the body
//! waiting for its own source (an upstream's `read_timeout`) does not
//! count. When the clock reaches `send_timeout` the task is dropped, and
//! h2 resets the stream (RST_STREAM with CANCEL); the connection goes on.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use hyper::body::{Body, Frame, SizeHint};
use tokio::{sync::Notify, time::Instant};

/// The stall clock of one stream's response.
#[derive(Debug, Default)]
pub struct Clock {
    /// Since when a chunk has waited to be taken; `None`: none waits.
    since: Mutex<Option<Instant>>,
    /// A chunk was handed over (wakes [`Clock::stalled`] from rest).
    handed: Notify,
}

impl Clock {
    fn set(&self, since: Option<Instant>) {
        *self.since.lock().unwrap_or_else(|e| e.into_inner()) = since;
    }

    fn since(&self) -> Option<Instant> {
        *self.since.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves once a chunk has waited `timeout` to be taken. One timer
    /// per `timeout` at most, however many chunks pass meanwhile.
    pub async fn stalled(&self, timeout: Duration) {
        loop {
            match self.since() {
                None => self.handed.notified().await,
                Some(since) => {
                    tokio::time::sleep_until(since + timeout).await;
                    if self.since() == Some(since) {
                        return;
                    }
                }
            }
        }
    }
}

/// A response body that runs its stream's [`Clock`].
pub struct Sending<B> {
    body: B,
    clock: Arc<Clock>,
}

impl<B> Sending<B> {
    pub fn new(body: B, clock: Arc<Clock>) -> Sending<B> {
        Sending { body, clock }
    }
}

impl<B: Body + Unpin> Body for Sending<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) => {
                self.clock.set(Some(Instant::now()));
                self.clock.handed.notify_one();
            }
            // Waiting for its source, ended or failed: not the client's doing.
            _ => self.clock.set(None),
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// One connection's executor: spawns hyper's stream tasks, each raced
/// against the clock its service call left.
#[derive(Clone, Debug)]
pub struct Streams {
    next: Arc<Mutex<Option<Arc<Clock>>>>,
    timeout: Duration,
}

impl Streams {
    pub fn new(timeout: Duration) -> Streams {
        Streams {
            next: Arc::default(),
            timeout,
        }
    }

    /// A clock for the stream whose service call this is; its task, spawned
    /// next, is timed by it.
    pub fn clock(&self) -> Arc<Clock> {
        let clock = Arc::new(Clock::default());
        *self.next.lock().unwrap_or_else(|e| e.into_inner()) = Some(clock.clone());
        clock
    }
}

impl<F> hyper::rt::Executor<F> for Streams
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, task: F) {
        // Boxed once here: hyper's stream task holds the service's future
        // (several KiB), and tokio's spawn path moves its future by value
        // through a chain of calls into the task's cell, then writes the
        // whole cell's stage again when the task ends; with the box each of
        // those moves is a pointer's (profile: memmove was 17% of the
        // proxy's CPU at 16 connections x 10 streams, most of it there).
        let task = Box::pin(task);
        let clock = self.next.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(clock) = clock else {
            tokio::spawn(task);
            return;
        };
        let timeout = self.timeout;
        tokio::spawn(async move {
            tokio::select! {
                () = task => {}
                () = clock.stalled(timeout) => {
                    log::debug!("HTTP/2 stream: response not taken for {timeout:?} (send_timeout): reset");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_clock_runs_only_while_a_chunk_waits() {
        let clock = Arc::new(Clock::default());
        let timeout = Duration::from_secs(60);
        let stalled = tokio::spawn({
            let clock = clock.clone();
            async move { clock.stalled(timeout).await }
        });
        // Nothing handed yet: an hour passes without a stall.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(!stalled.is_finished());
        // Chunks taken every 50 s: never 60 s of waiting.
        for _ in 0..5 {
            clock.set(Some(Instant::now()));
            clock.handed.notify_one();
            tokio::time::sleep(Duration::from_secs(50)).await;
            assert!(!stalled.is_finished());
        }
        // The last chunk waits: stalled 60 s after it was handed.
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(!stalled.is_finished());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(stalled.is_finished());
    }
}
