//! Kicks: a ban, or a list change that refuses a source, closes that
//! source's open connections too, not only its new ones (issue 13, item 7).
//!
//! The daemon publishes each refusal as a [`Kick`] (the networks now
//! refused, minus the allowlist entries that still win) into [`Kicks`],
//! which numbers them. Every connection task waits on the kicks beside
//! its work ([`Kicks::kicked`]), and the lot checks its waiting rows (see
//! [`super::lot`]); a connection whose client a newer kick refuses is
//! closed at once: in-flight requests are dropped, an HTTP/2 connection
//! is closed without a GOAWAY (in XDP mode the client's packets are
//! dropped anyway). Nothing is paid per request: a connection holds one
//! `watch` receiver, and wakes only when a kick is published (a burst of
//! kicks wakes it once).

use std::{collections::VecDeque, net::IpAddr, sync::Mutex};

use tokio::sync::watch;

use crate::cidr::Cidr;

/// Kicks kept for connections that have not looked yet; a connection that
/// fell further behind checks the ones kept (it is woken within
/// milliseconds of each kick, so this never happens in practice).
const KEPT: usize = 4096;

/// Networks whose open connections close, except addresses in `except`
/// (allowlisted, which wins over bans and the blocklist).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kick {
    pub nets: Vec<Cidr>,
    pub except: Vec<Cidr>,
}

impl Kick {
    fn refuses(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip)) && !self.except.iter().any(|e| e.contains(ip))
    }
}

/// The kicks published so far, numbered from 1.
#[derive(Debug)]
pub struct Kicks {
    generation: watch::Sender<u64>,
    kept: Mutex<VecDeque<(u64, Kick)>>,
}

impl Default for Kicks {
    fn default() -> Self {
        Kicks {
            generation: watch::Sender::new(0),
            kept: Mutex::new(VecDeque::new()),
        }
    }
}

impl Kicks {
    /// Closes the open connections `kick` refuses.
    pub fn kick(&self, kick: Kick) {
        if kick.nets.is_empty() {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let generation = *self.generation.borrow() + 1;
        if kept.len() >= KEPT {
            kept.pop_front();
        }
        kept.push_back((generation, kick));
        self.generation.send_replace(generation);
    }

    /// The number of the latest kick: a connection accepted now need not
    /// look at kicks up to it (the gate already refused their sources).
    pub fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Whether a kick after `seen` refuses `ip`, and the latest kick's number.
    pub fn refused_since(&self, seen: u64, ip: IpAddr) -> (bool, u64) {
        // The usual case, no kick since: no lock shared by the workers.
        if self.generation() <= seen {
            return (false, seen);
        }
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let latest = kept.back().map_or(seen, |(g, _)| *g);
        let refused = kept
            .iter()
            .rev()
            .take_while(|(g, _)| *g > seen)
            .any(|(_, k)| k.refuses(ip));
        (refused, latest.max(seen))
    }

    /// Resolves when a kick after `seen` refuses `ip`; never otherwise.
    pub async fn kicked(&self, mut seen: u64, ip: IpAddr) {
        let mut rx = self.generation.subscribe();
        loop {
            if *rx.borrow_and_update() > seen {
                let (refused, latest) = self.refused_since(seen, ip);
                if refused {
                    return;
                }
                seen = latest;
                // A kick published meanwhile is seen by the next turn.
                continue;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Waits for the next kick after `seen` (for the lot, which then checks its rows).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn kick(nets: &[&str], except: &[&str]) -> Kick {
        Kick {
            nets: nets.iter().map(|n| n.parse().unwrap()).collect(),
            except: except.iter().map(|n| n.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn a_kick_refuses_its_networks_except_the_allowlisted() {
        let k = Kicks::default();
        let seen = k.generation();
        k.kick(kick(&["2001:db8:1:2::/64", "10.0.0.0/8"], &["10.1.0.0/16"]));
        assert_eq!(k.refused_since(seen, ip("2001:db8:1:2::77")), (true, 1));
        assert_eq!(k.refused_since(seen, ip("10.2.3.4")), (true, 1));
        assert_eq!(
            k.refused_since(seen, ip("10.1.3.4")),
            (false, 1),
            "allowlisted"
        );
        assert_eq!(k.refused_since(seen, ip("192.0.2.1")), (false, 1));
        assert_eq!(
            k.refused_since(1, ip("10.2.3.4")),
            (false, 1),
            "seen already"
        );
    }

    #[tokio::test]
    async fn kicked_resolves_only_for_a_refused_client() {
        let k = std::sync::Arc::new(Kicks::default());
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        let seen = k.generation();
        let wait_a = tokio::spawn({
            let k = k.clone();
            async move { k.kicked(seen, a).await }
        });
        let mut wait_b = std::pin::pin!(k.kicked(seen, b));
        tokio::task::yield_now().await;
        k.kick(kick(&["192.0.2.1"], &[]));
        tokio::time::timeout(std::time::Duration::from_secs(1), wait_a)
            .await
            .expect("a is kicked")
            .unwrap();
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), &mut wait_b)
                .await
                .is_err(),
            "b is not"
        );
        // A kick published before the wait began still counts.
        k.kick(kick(&["192.0.2.0/24"], &[]));
        tokio::time::timeout(std::time::Duration::from_secs(1), wait_b)
            .await
            .expect("b is kicked by the range");
    }
}
