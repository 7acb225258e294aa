//! A request body fed to its handler from rampart's own HTTP/1
//! connection ([`super::h1_conn`]): read only when the handler asks
//! ([`http::request_body`]), its framing followed by the codec
//! ([`h1::body::Body::next_data`]), `Expect: 100-continue` answered at the
//! first ask; after the response, what is left of it taken, or thrown away
//! before a close.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::guard::Guarded;
use crate::{
    h1::{
        self, Blame, Framing,
        body::{BodyLimits, Piece},
    },
    http::request_body::{Feeder, Want},
};

/// How much of a body nobody read is read and thrown away after the
/// response (nginx's lingering close; for how long:
/// [`super::lifecycle::LINGER`]), so that a client still sending it reads
/// the response rather than a reset.
const LINGER_BYTES: u64 = 64 << 20;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A request body being fed to its handler from the connection.
pub(super) struct Feeding {
    feeder: Feeder,
    follow: h1::body::Body,
    /// `Expect: 100-continue`, and whether the 100 went out.
    pub(super) expect: bool,
    continued: bool,
    /// The body broke (or the connection did): the connection closes.
    failed: bool,
    /// The handler was done with the body unread, and something (a
    /// drain after a refusal) still held it: the rest is read and
    /// thrown away before the connection closes.
    held: bool,
}

impl Feeding {
    pub(super) fn new(feeder: Feeder, framing: Framing, limits: BodyLimits) -> Feeding {
        Feeding {
            feeder,
            follow: h1::body::Body::new(framing, Blame::Downstream, limits),
            expect: false,
            continued: false,
            failed: false,
            held: false,
        }
    }

    /// Runs `handling` while feeding it the body as it asks.
    pub(super) async fn during<F, S>(
        &mut self,
        handling: F,
        io: &mut Guarded<S>,
        buf: &mut Vec<u8>,
    ) -> F::Output
    where
        F: std::future::Future,
        S: AsyncRead + AsyncWrite + Unpin,
    {
        tokio::pin!(handling);
        let feed = self.feed(io, buf);
        tokio::pin!(feed);
        let mut fed = false;
        loop {
            tokio::select! {
                biased;
                out = &mut handling => return out,
                () = &mut feed, if !fed => fed = true,
            }
        }
    }

    /// Hands the body's data over, reading the connection only when the
    /// body asks, until the body ends, breaks or is dropped.
    async fn feed<S>(&mut self, io: &mut Guarded<S>, buf: &mut Vec<u8>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            if self.feeder.want().await == Want::Gone {
                return;
            }
            if self.expect && !self.continued {
                self.continued = true;
                if io.write_all(CONTINUE).await.is_err() {
                    return self.fail("connection failed");
                }
            }
            // Until one piece of data is handed over, or the body ends.
            loop {
                if !buf.is_empty() {
                    let Piece { used, data, done } = match self.follow.next_data(buf) {
                        Ok(piece) => piece,
                        Err(e) => return self.fail(e.why),
                    };
                    let handed = !data.is_empty();
                    if handed {
                        let chunk = if data.start == 0 && used == buf.len() {
                            // All of the buffer is data: handed over as it is.
                            Bytes::from(std::mem::take(buf))
                        } else {
                            let chunk = Bytes::copy_from_slice(&buf[data]);
                            buf.drain(..used);
                            chunk
                        };
                        self.feeder.push(chunk);
                    } else {
                        buf.drain(..used);
                    }
                    if done {
                        return self.feeder.finish(Ok(()));
                    }
                    if handed {
                        break;
                    }
                    if !buf.is_empty() {
                        continue;
                    }
                }
                if buf.capacity() - buf.len() < 1024 {
                    buf.reserve(16 << 10);
                }
                // The socket's low-water mark follows what the body owes.
                io.body_left(self.follow.data_left());
                match io.read_buf(buf).await {
                    Ok(n) if n > 0 => {}
                    _ => return self.fail("body cut short"),
                }
            }
        }
    }

    fn fail(&mut self, why: &'static str) {
        self.failed = true;
        self.feeder.finish(Err(why));
    }

    /// The handler is done: whether the body is over, taking what of it
    /// is already read. A body left unread is ended for whoever still
    /// holds it.
    pub(super) fn settle(&mut self, buf: &mut Vec<u8>) -> bool {
        if self.failed {
            return false;
        }
        while !self.follow.is_done() && !buf.is_empty() {
            match self.follow.next_data(buf) {
                Ok(piece) => {
                    buf.drain(..piece.used);
                }
                Err(_) => {
                    self.failed = true;
                    break;
                }
            }
        }
        let done = self.follow.is_done();
        if !done {
            self.held = !self.feeder.gone();
            self.feeder.finish(Err("request body abandoned"));
        }
        done && !self.failed
    }

    /// Reads and discards the rest of a body the handler left to a drain
    /// (a 413 refused while the client still sends), within bounds, before
    /// the connection closes, as hyper's connection does for that drain;
    /// not one the client waits to be asked for, nor one nobody holds (a
    /// 408 or 503 closes at once).
    pub(super) async fn linger<S>(&mut self, io: &mut Guarded<S>, buf: &mut Vec<u8>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if self.failed || !self.held || (self.expect && !self.continued) {
            return;
        }
        let mut seen = 0u64;
        let _ = tokio::time::timeout(super::lifecycle::LINGER, async {
            while !self.follow.is_done() && seen < LINGER_BYTES {
                buf.clear();
                buf.reserve(16 << 10);
                match io.read_buf(buf).await {
                    Ok(n) if n > 0 => seen += n as u64,
                    _ => return,
                }
                let mut at = 0;
                while at < buf.len() && !self.follow.is_done() {
                    match self.follow.next_data(&buf[at..]) {
                        Ok(piece) if piece.used > 0 => at += piece.used,
                        _ => return,
                    }
                }
            }
        })
        .await;
    }
}
