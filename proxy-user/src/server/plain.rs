//! A plain connection's task: it lives while a request is served, not
//! while the connection waits. The lot ([`super::lot`]) hands it a whole
//! head; it serves HTTP until the connection closes or idles, and an idle
//! one goes back to the lot, with no task, to await its next head.

use tokio::sync::watch;

use super::{
    downstream::{Downstream, Protocol},
    in_place,
    lifecycle::{Awaiting, MaxHead, Timeouts},
    lot::{self, Lot},
    park,
};

/// Spawns [`serve`]'s task for a connection whose head has arrived. Its
/// future is boxed where it is built ([`in_place`]): tokio moves a task's
/// future several times as it spawns it (into the task's cell among
/// them), and a pointer is cheaper to move than the future's 500-odd
/// bytes (issue 17: about 0.8k instructions of `memcpy` per connection).
pub(super) fn spawn(ready: lot::Ready, lot: Lot, draining: watch::Receiver<bool>) {
    tokio::spawn(in_place::boxed(|| serve(ready, lot, draining)));
}

/// Serves a plain connection whose head has arrived, until it closes or
/// idles; an idle one goes back to the lot to wait for its next head.
pub(super) async fn serve(ready: lot::Ready, lot: Lot, mut draining: watch::Receiver<bool>) {
    let lot::Ready {
        socket,
        head,
        mut conn,
    } = ready;
    let stream = match tokio::net::TcpStream::from_std(socket) {
        Ok(s) => s,
        Err(e) => {
            log::warn!("{}: {e}", conn.info.client);
            return;
        }
    };
    let slot = park::Slot::new();
    let settings = &conn.snapshot.config.http;
    let downstream = Downstream {
        info: &conn.info,
        snapshot: &conn.snapshot,
        protocol: Protocol::plain(conn.http2),
        awaiting: conn.awaiting,
        timeouts: Timeouts::of(settings),
        max_head: MaxHead::of(settings),
        slot: slot.clone(),
        plain_fd: Some(std::os::fd::AsRawFd::as_raw_fd(&stream)),
        draining: &mut draining,
    };
    // Boxed: the HTTP state machine is large, and the task's future is
    // copied several times as it is spawned and ends; built in its box,
    // not copied there ([`in_place`]). Biased: the connection's work
    // first, and no random pick per poll.
    tokio::select! {
        biased;
        _ = in_place::boxed(|| downstream.serve(stream, head)) => {}
        _ = conn.ticket.kicked() => {
            // The stream (in the dropped future) closes.
            log::debug!("{}: closed: its source is refused now", conn.info.client);
            return;
        }
    }
    let Some(parked) = slot.take() else { return };
    match parked.stream.into_std() {
        Ok(socket) => {
            conn.awaiting = Awaiting::next(parked.idle_since);
            lot.park(socket, conn);
        }
        Err(e) => log::warn!("{}: {e}", conn.info.client),
    }
}
