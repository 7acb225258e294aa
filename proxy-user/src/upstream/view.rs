//! What `upstream list`, the status page and `inspect` show of one server:
//! a [`ServerView`] read from its [`Backend`].

use super::Backend;
use crate::control_socket::protocol::ServerView;

impl ServerView {
    /// The view of server `b` of `group` at `now`.
    pub fn of(
        group: &str,
        b: &Backend,
        switched_to: Option<String>,
        now: tokio::time::Instant,
    ) -> ServerView {
        use std::sync::atomic::Ordering::Relaxed;
        ServerView {
            group: group.to_string(),
            addr: b.addr.to_string(),
            weight: b.weight(),
            backup: b.backup,
            state: b.state(now).into(),
            in_flight: b.active(),
            requests: b.requests.load(Relaxed),
            failures: b.failures.load(Relaxed),
            idle_connections: b.pool.idle(),
            switched_to,
        }
    }
}
