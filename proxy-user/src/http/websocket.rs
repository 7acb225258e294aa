//! WebSocket tunnels: after the 101, bytes are copied both ways with the
//! route's idle timeout. When the daemon stops (or hands over to a new
//! binary), tunnels still open at the end of the grace period are closed
//! the WebSocket way: a close frame with code 1001 (going away) to the
//! client and to the upstream, sent between frames (the copier follows the
//! frame boundaries of each direction so it never cuts one in two).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use hyper::Response;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::watch,
};

use super::{Body, full};
use crate::upstream::{Lease, ResponseBody};

/// Close frame, code 1001, from the server side (unmasked).
const GOING_AWAY_TO_CLIENT: [u8; 4] = [0x88, 0x02, 0x03, 0xE9];
/// The same from the client side, which must be masked (key 0).
const GOING_AWAY_TO_SERVER: [u8; 8] = [0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE9];
/// Once told to go away, how long a tunnel may wait for a frame boundary.
const BOUNDARY_WAIT: Duration = Duration::from_secs(1);

/// The daemon's "going away" signal and the tunnels still open.
#[derive(Debug)]
pub struct GoingAway {
    tx: watch::Sender<bool>,
    open: AtomicUsize,
}

impl Default for GoingAway {
    fn default() -> Self {
        GoingAway {
            tx: watch::channel(false).0,
            open: AtomicUsize::new(0),
        }
    }
}

impl GoingAway {
    /// Tells every open tunnel to close with 1001.
    pub fn signal(&self) {
        self.tx.send_replace(true);
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// Follows the frames of one direction, to know when it is between two.
#[derive(Debug, Default)]
struct Frames {
    header: [u8; 14],
    have: usize,
    payload_left: u64,
}

impl Frames {
    fn at_boundary(&self) -> bool {
        self.have == 0 && self.payload_left == 0
    }

    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.payload_left > 0 {
                let n = self.payload_left.min(data.len() as u64);
                self.payload_left -= n;
                data = &data[n as usize..];
                continue;
            }
            self.header[self.have] = data[0];
            self.have += 1;
            data = &data[1..];
            if self.have < 2 {
                continue;
            }
            let masked = self.header[1] & 0x80 != 0;
            let len7 = self.header[1] & 0x7f;
            let ext = match len7 {
                126 => 2,
                127 => 8,
                _ => 0,
            };
            let need = 2 + ext + if masked { 4 } else { 0 };
            if self.have < need {
                continue;
            }
            self.payload_left = match ext {
                0 => len7 as u64,
                2 => u16::from_be_bytes([self.header[2], self.header[3]]) as u64,
                _ => u64::from_be_bytes(self.header[2..10].try_into().unwrap_or([0; 8])),
            };
            self.have = 0;
        }
    }
}

/// Answers the client's upgrade with the upstream's 101 and copies bytes
/// both ways until either side closes, the route's idle time passes, the
/// daemon goes away, or the client's source is banned (`kicks`).
pub fn tunnel(
    upstream_resp: Response<ResponseBody>,
    downstream: super::upgrade::Pending,
    lease: Lease,
    idle: Duration,
    going_away: Arc<GoingAway>,
    (kicks, client): (Arc<crate::kick::Kicks>, std::net::IpAddr),
) -> Response<Body> {
    let (parts, body) = upstream_resp.into_parts();
    // The upstream's socket, and what it sent past its 101 (the start of
    // its first frames), to go to the client first.
    let upstream = body.into_upgraded();
    going_away.open.fetch_add(1, Ordering::Relaxed);
    // Registered while the connection that asked for it still is: a ban
    // from now on closes the tunnel too.
    let ticket = kicks.register(client);
    tokio::spawn(async move {
        let _lease = lease;
        let kicked = ticket.kicked();
        tokio::pin!(kicked);
        let mut away = going_away.tx.subscribe();
        // Opened after the daemon started going away: leave at once.
        let mut leaving = (*away.borrow_and_update()).then(tokio::time::Instant::now);
        let (Some(mut down), Some((mut up, early))) = (downstream.connection().await, upstream)
        else {
            log::debug!("websocket upgrade did not complete");
            going_away.open.fetch_sub(1, Ordering::Relaxed);
            return;
        };
        let mut to_down = Frames::default();
        to_down.feed(&early);
        if !early.is_empty() && down.write_all(&early).await.is_err() {
            going_away.open.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let (mut a, mut b) = (vec![0u8; 16 << 10], vec![0u8; 16 << 10]);
        let mut to_up = Frames::default();
        loop {
            if let Some(since) = leaving
                && ((to_up.at_boundary() && to_down.at_boundary())
                    || since.elapsed() >= BOUNDARY_WAIT)
            {
                let _ = down.write_all(&GOING_AWAY_TO_CLIENT).await;
                let _ = up.write_all(&GOING_AWAY_TO_SERVER).await;
                break;
            }
            tokio::select! {
                r = down.read(&mut a) => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        to_up.feed(&a[..n]);
                        if up.write_all(&a[..n]).await.is_err() { break }
                    }
                },
                r = up.read(&mut b) => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        to_down.feed(&b[..n]);
                        if down.write_all(&b[..n]).await.is_err() { break }
                    }
                },
                _ = &mut kicked => {
                    log::debug!("{client}: websocket closed: its source is refused now");
                    break;
                }
                changed = away.changed(), if leaving.is_none() => {
                    if changed.is_err() || *away.borrow() {
                        leaving = Some(tokio::time::Instant::now());
                    }
                }
                _ = tokio::time::sleep(if leaving.is_some() { Duration::from_millis(20) } else { idle }) => {
                    if leaving.is_none() {
                        log::debug!("websocket idle for {idle:?}; closing");
                        break;
                    }
                }
            }
        }
        let _ = down.shutdown().await;
        let _ = up.shutdown().await;
        going_away.open.fetch_sub(1, Ordering::Relaxed);
    });
    Response::from_parts(parts, full(Bytes::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_boundaries_are_followed_across_reads() {
        let mut f = Frames::default();
        assert!(f.at_boundary());
        // A masked 5-byte text frame, then a 300-byte binary frame (16-bit length).
        let mut stream = vec![0x81, 0x85, 1, 2, 3, 4, b'h', b'e', b'l', b'l', b'o'];
        stream.extend([0x82, 126, 0x01, 0x2c]);
        stream.extend(std::iter::repeat_n(7u8, 300));
        for (i, byte) in stream.iter().enumerate() {
            f.feed(std::slice::from_ref(byte));
            let end_of_frame = i == 10 || i == stream.len() - 1;
            assert_eq!(f.at_boundary(), end_of_frame, "after byte {i}");
        }
        let mut g = Frames::default();
        g.feed(&stream[..200]);
        assert!(!g.at_boundary());
        g.feed(&stream[200..]);
        assert!(g.at_boundary());
    }
}
