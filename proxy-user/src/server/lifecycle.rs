//! A downstream connection's lifecycle: its phases, the timeout that
//! bounds each, and the one deadline rule (nginx's) that the lot
//! ([`super::lot`]), a TLS connection's head reader ([`super::park`]) and
//! the connection guard ([`super::guard`]) all ask, rather than each
//! computing its own.
//!
//! ```text
//!  accept
//!    │  ProxyHeader   header_timeout from the accept (proxy_protocol listeners)
//!    │  TlsHandshake  handshake_timeout from the accept (TLS listeners;
//!    │                busy_handshake_timeout while the listener is busy)
//!    ▼
//!  FirstHead ── header_timeout from the accept ──────────────────► close
//!    │ a whole head
//!    ▼
//!  Request ── upgraded ──► Tunnel (the route's idle timeout)
//!    │ handled
//!    ▼
//!  Sending ── send_timeout from a write's last progress ─────────► close
//!    │ written (a response that goes out at once skips this)
//!    ▼
//!  Idle ── keepalive_timeout from the last response ─────────────► close
//!    │      (HTTP/1: parked after PARK_AFTER, see `park`)
//!    │ its first byte
//!    ▼
//!  Head ── header_timeout from its first byte ───────────────────► close
//!    │ a whole head
//!    └──► Request ...
//! ```
//!
//! | phase | timeout | counted from | on expiry |
//! |---|---|---|---|
//! | [`Phase::FirstHead`] | `header_timeout` | the accept (a TLS connection's: its handshake's end; with room on its listener it is timed as [`Phase::Idle`] then [`Phase::Head`], see `tls_conn`) | close |
//! | [`Phase::Idle`] | `keepalive_timeout` ([`PARK_AFTER`] if parkable) | the last response's end | close (park) |
//! | [`Phase::Head`] | `header_timeout` | the head's first byte (a pipelined head's: the last response's end) | close |
//! | [`Phase::Request`] | none on reads: `body_timeout` between body reads is the handler's | - | - |
//! | [`Phase::Sending`] | `send_timeout` (on the stalled write) | the write's last progress | close |
//! | [`Phase::Tunnel`] | none: the route's WebSocket idle timeout | - | - |
//!
//! Beside the read phases: a body the handler left unread is drained for
//! at most [`LINGER`] after its response, then the connection closes; the
//! PROXY protocol header is due within
//! `header_timeout` of the accept ([`Timeouts::proxy_header`]), the TLS
//! handshake within its listener's `handshake_timeout`, or its
//! `busy_handshake_timeout` while more than half of the listener's
//! `max_connections` are open ([`tls_handshake`]), and in any phase a write that makes no progress
//! for `send_timeout` closes the connection ([`Timeouts::send_due`]).

use std::time::Duration;

use tokio::time::Instant;

use crate::{
    config::{BUSY_HANDSHAKE_TIMEOUT, HANDSHAKE_TIMEOUT, HttpSettings, Listener},
    later::Later,
};

/// Idleness between requests after which an HTTP/1 connection is parked
/// (see [`super::park`]). Under steady keep-alive traffic requests come
/// sooner, so busy connections never pay for rebuilding their HTTP state.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// How long a body nobody read (a 413 answered while the client still
/// sends) is read and thrown away after the response before the
/// connection closes (nginx's `lingering_time`; its bytes are bounded too,
/// `h1_feed`).
pub const LINGER: Duration = Duration::from_secs(10);

/// The smallest head buffer: hyper's smallest HTTP/1 read buffer (its
/// `MINIMUM_MAX_BUFFER_SIZE`) when hyper served HTTP/1, kept so that a
/// small `max_header_size` means what it did.
const MIN_HEAD: usize = 8192;

/// The timeouts of a downstream connection, named as nginx names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// `header_timeout` (nginx `client_header_timeout`): a first request
    /// head from the accept, a later one from its first byte.
    pub header: Duration,
    /// `keepalive_timeout`: an idle connection, from the last response.
    pub keepalive: Duration,
    /// `send_timeout`: a write that makes no progress.
    pub send: Duration,
    /// `body_timeout` (nginx `client_body_timeout`): between two reads of a
    /// request body. Timed by the request handler; the connection only
    /// makes sure a body's bytes reach it in time ([`Timeouts::body_nudge`]).
    pub body: Duration,
}

impl Timeouts {
    pub fn of(s: &HttpSettings) -> Timeouts {
        Timeouts {
            header: s.header_timeout,
            keepalive: s.keepalive_timeout,
            send: s.send_timeout,
            body: s.body_timeout,
        }
    }

    /// How long a PROXY protocol header may take to arrive whole.
    pub fn proxy_header(&self) -> Duration {
        self.header
    }

    /// When a write stalled since `since` closes the connection.
    pub fn send_due(&self, since: Instant) -> Instant {
        since.later(self.send)
    }

    /// When bytes of a request body held back by the socket's low-water
    /// mark since the last read at `last_read` are let through: half a
    /// `body_timeout` later, so that the handler sees them in time.
    pub fn body_nudge(&self, last_read: Instant) -> Instant {
        last_read.later(self.body / 2)
    }

    /// The soonest any read deadline can come, counted from when it
    /// starts: a connection's one timer is armed no later than this.
    pub fn soonest_read(&self, parkable: bool) -> Duration {
        let soonest = self.header.min(self.keepalive);
        if parkable {
            soonest.min(PARK_AFTER)
        } else {
            soonest
        }
    }
}

/// A TLS handshake's timeouts, both counted from the accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeTimeouts {
    /// `handshake_timeout`: the most a handshake may take.
    pub full: Duration,
    /// `busy_handshake_timeout` (at most `full`): the most it may take while
    /// its listener is busy; past it, it goes on only while the listener
    /// has room (see `tls_conn`).
    pub busy: Duration,
}

/// The TLS handshake's timeouts on `listener`.
pub fn tls_handshake(listener: &Listener) -> HandshakeTimeouts {
    listener.tls.as_ref().map_or(
        HandshakeTimeouts {
            full: HANDSHAKE_TIMEOUT,
            busy: BUSY_HANDSHAKE_TIMEOUT,
        },
        |t| HandshakeTimeouts {
            full: t.handshake_timeout,
            busy: t.busy_handshake_timeout,
        },
    )
}

/// The most bytes of a request head read before the HTTP/1 server parses
/// it (over it: 414 or 431): `max_header_size`, but never below 8 KiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxHead(usize);

impl MaxHead {
    pub fn of(s: &HttpSettings) -> MaxHead {
        MaxHead(s.max_header_size.max(MIN_HEAD))
    }

    pub fn bytes(self) -> usize {
        self.0
    }
}

/// Where a connection is, as far as its read deadline goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Its first request head is awaited, since the accept.
    FirstHead { accepted: Instant },
    /// Idle between requests, since the last response ended. A
    /// `parkable` one is parked after [`PARK_AFTER`] rather than closed.
    Idle { since: Instant, parkable: bool },
    /// A later request head is arriving, since its first byte.
    Head { first_byte: Instant },
    /// A request is being handled (until its response has been sent).
    Request,
    /// Between requests, the last response is still being written and a
    /// write has made no progress since: the write's `send_timeout`
    /// bounds it ([`Timeouts::send_due`]), and idleness starts once it has
    /// been sent (nginx sets its keep-alive timer only then).
    Sending,
    /// Upgraded (a WebSocket): its route's idle timeout applies.
    Tunnel,
}

/// What happens when a read deadline passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// The connection is closed, for this reason.
    Close(&'static str),
    /// The connection is parked.
    Park,
}

/// A phase's read deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    At(Instant, Expiry),
    /// None while a request is handled; one will come once it ends.
    AfterRequest,
    /// None on reads: a tunnel times itself, a response being sent is
    /// timed by its writes.
    Never,
}

impl Phase {
    /// The deadline rule.
    pub fn due(self, t: &Timeouts) -> Due {
        match self {
            Phase::FirstHead { accepted } => Due::At(
                accepted.later(t.header),
                Expiry::Close("no request head in time"),
            ),
            Phase::Idle {
                since,
                parkable: true,
            } if PARK_AFTER < t.keepalive => Due::At(since.later(PARK_AFTER), Expiry::Park),
            Phase::Idle { since, .. } => Due::At(
                since.later(t.keepalive),
                Expiry::Close("keep-alive idle timeout"),
            ),
            Phase::Head { first_byte } => Due::At(
                first_byte.later(t.header),
                Expiry::Close("request head timed out"),
            ),
            Phase::Request => Due::AfterRequest,
            Phase::Sending | Phase::Tunnel => Due::Never,
        }
    }
}

/// A connection awaiting a request head: what the deadline rule needs to
/// know of its past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Awaiting {
    /// The accept (its first head), or the end of the last response.
    pub since: Instant,
    /// A request has been served on it: it awaits a keep-alive head.
    pub resumed: bool,
}

impl Awaiting {
    /// A connection accepted at `at`, awaiting its first head.
    pub fn first(at: Instant) -> Awaiting {
        Awaiting {
            since: at,
            resumed: false,
        }
    }

    /// A connection whose last response ended at `since`.
    pub fn next(since: Instant) -> Awaiting {
        Awaiting {
            since,
            resumed: true,
        }
    }

    /// Its phase, once the head's first byte came at `first_byte` (if it did).
    pub fn phase(self, first_byte: Option<Instant>) -> Phase {
        match (self.resumed, first_byte) {
            (false, _) => Phase::FirstHead {
                accepted: self.since,
            },
            (true, None) => Phase::Idle {
                since: self.since,
                parkable: false,
            },
            (true, Some(first_byte)) => Phase::Head { first_byte },
        }
    }

    /// When it is closed if the head (its first byte, if `first_byte` is
    /// `None`) has not arrived.
    pub fn deadline(self, t: &Timeouts, first_byte: Option<Instant>) -> Instant {
        match self.phase(first_byte).due(t) {
            Due::At(at, _) => at,
            // Not reached: a connection awaiting a head is in a head phase.
            Due::AfterRequest | Due::Never => self.since.later(t.header),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header: Duration::from_secs(10),
        keepalive: Duration::from_secs(75),
        send: Duration::from_secs(60),
        body: Duration::from_secs(30),
    };

    /// nginx's rule, phase by phase.
    #[test]
    fn each_phase_has_its_deadline() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let table = [
            (
                Phase::FirstHead { accepted: t0 },
                Due::At(t0 + s(10), Expiry::Close("no request head in time")),
            ),
            (
                Phase::Idle {
                    since: t0,
                    parkable: false,
                },
                Due::At(t0 + s(75), Expiry::Close("keep-alive idle timeout")),
            ),
            (
                Phase::Idle {
                    since: t0,
                    parkable: true,
                },
                Due::At(t0 + PARK_AFTER, Expiry::Park),
            ),
            (
                Phase::Head {
                    first_byte: t0 + s(3),
                },
                Due::At(t0 + s(13), Expiry::Close("request head timed out")),
            ),
            (Phase::Request, Due::AfterRequest),
            (Phase::Sending, Due::Never),
            (Phase::Tunnel, Due::Never),
        ];
        for (phase, due) in table {
            assert_eq!(phase.due(&T), due, "{phase:?}");
        }
        assert_eq!(T.send_due(t0), t0 + s(60), "a stalled write");
        assert_eq!(T.body_nudge(t0), t0 + s(15), "a body held back");
        assert_eq!(T.proxy_header(), s(10));
    }

    /// The first head is due from the accept however its bytes come; a
    /// later one's first byte from the last response, the rest from that byte.
    #[test]
    fn a_head_is_due_by_the_rule_of_its_phase() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let first = Awaiting::first(t0);
        assert_eq!(first.deadline(&T, None), t0 + s(10));
        assert_eq!(first.deadline(&T, Some(t0 + s(8))), t0 + s(10));
        let next = Awaiting::next(t0);
        assert_eq!(next.deadline(&T, None), t0 + s(75));
        assert_eq!(next.deadline(&T, Some(t0 + s(70))), t0 + s(80));
        assert_eq!(
            next.phase(None),
            Phase::Idle {
                since: t0,
                parkable: false
            }
        );
    }

    /// Parking only pays when it comes before the keep-alive timeout.
    #[test]
    fn a_short_keepalive_closes_before_parking() {
        let t0 = Instant::now();
        let short = Timeouts {
            keepalive: Duration::from_millis(500),
            ..T
        };
        let idle = Phase::Idle {
            since: t0,
            parkable: true,
        };
        assert_eq!(
            idle.due(&short),
            Due::At(
                t0 + Duration::from_millis(500),
                Expiry::Close("keep-alive idle timeout")
            )
        );
        assert_eq!(short.soonest_read(true), Duration::from_millis(500));
        assert_eq!(T.soonest_read(true), PARK_AFTER);
        assert_eq!(T.soonest_read(false), Duration::from_secs(10));
    }

    /// A configured timeout never makes a deadline overflow the clock.
    #[test]
    fn deadlines_saturate() {
        let huge = Timeouts {
            header: Duration::MAX,
            keepalive: Duration::MAX,
            send: Duration::MAX,
            body: Duration::MAX,
        };
        let t0 = Instant::now();
        assert!(Awaiting::first(t0).deadline(&huge, None) > t0);
        assert!(huge.send_due(t0) > t0);
    }

    #[test]
    fn the_head_buffer_is_never_below_8k() {
        let mut s = HttpSettings {
            max_header_size: 100,
            ..HttpSettings::default()
        };
        assert_eq!(MaxHead::of(&s).bytes(), 8192);
        s.max_header_size = 32 << 10;
        assert_eq!(MaxHead::of(&s).bytes(), 32 << 10);
    }
}
