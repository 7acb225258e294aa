//! The receive low-water mark of a plain client socket: while a request
//! body is due, the kernel wakes the proxy only once the rest of it (or
//! [`MAX`] bytes of it) has arrived, not for every segment.
//!
//! Request bodies are read whole before they are forwarded
//! (`http::proxy`), so bytes of a body that has not all arrived are of no
//! use yet. Waking for each of them costs a poll of the connection's HTTP
//! state: a client dripping its body a byte at a time (a slow-POST attack)
//! cost about 10 µs of the proxy's CPU per byte that way, against nginx's
//! 4.4 µs; with the mark set it costs the kernel's receive work alone.
//!
//! The mark never asks for more than the body still owes (as followed by
//! the framing check, [`super::framing::Scanner::body_left`]), so a
//! request's last bytes always wake it; a closed or reset connection wakes
//! it too. Outside a body the mark is 1, the kernel's default, so a
//! connection handed back to the lot waits for heads as before. A read
//! still returns whatever has arrived: only readiness waits for the mark.
//!
//! Bytes the mark holds back are not reads for `body_timeout` (the time
//! between two reads of a body): half a `body_timeout` after the last read
//! the guard lowers the mark to 1, Linux then signals what is queued, and
//! it is read (`Guarded::set_lowat`). A body dripping in below the mark
//! thus costs one wake per half `body_timeout` and is never cut while
//! bytes keep coming.
//!
//! TLS connections keep the default: their bytes are records, whose
//! boundaries the framing check does not see.

use std::os::fd::RawFd;

/// The largest mark set. Linux grows the receive buffer to fit a mark and
/// then clamps the advertised window to it for the rest of the
/// connection; 16 KiB needs about 32 KiB of buffer, well under the
/// default 128 KiB, so neither happens.
pub const MAX: u64 = 16 * 1024;

/// One socket's mark, set only when it changes.
#[derive(Debug)]
pub struct RcvLowat {
    fd: RawFd,
    /// The mark now set on the socket.
    set: u64,
    /// Setting it failed once: not tried again.
    broken: bool,
}

impl RcvLowat {
    /// For the socket `fd`, whose mark is the default (1). The caller keeps
    /// `fd` open while it calls [`RcvLowat::want`].
    pub fn new(fd: RawFd) -> RcvLowat {
        RcvLowat {
            fd,
            set: 1,
            broken: false,
        }
    }

    /// Readiness once `bytes` have arrived (at least 1, at most [`MAX`]).
    pub fn want(&mut self, bytes: u64) {
        let want = bytes.clamp(1, MAX);
        if want == self.set || self.broken {
            return;
        }
        let value = want as libc::c_int;
        // SAFETY: `fd` is the connection's open socket (see `new`); the
        // option is an int, passed with its size.
        let rc = unsafe {
            libc::setsockopt(
                self.fd,
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            self.set = want;
        } else {
            log::debug!(
                "SO_RCVLOWAT on fd {}: {}",
                self.fd,
                std::io::Error::last_os_error()
            );
            self.broken = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::Write,
        net::{TcpListener, TcpStream},
        os::fd::AsRawFd,
        time::Duration,
    };

    use super::*;

    fn readable(s: &TcpStream, wait: Duration) -> bool {
        let mut p = libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, wait.as_millis() as i32) == 1 }
    }

    #[test]
    fn readiness_waits_for_the_mark_and_the_mark_is_capped() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let mut mark = RcvLowat::new(server.as_raw_fd());
        mark.want(10);
        client.write_all(b"123456789").unwrap();
        assert!(!readable(&server, Duration::from_millis(100)));
        client.write_all(b"0").unwrap();
        assert!(readable(&server, Duration::from_secs(2)));
        mark.want(1);
        assert_eq!(mark.set, 1);
        mark.want(u64::MAX);
        assert_eq!(mark.set, MAX);
        // A closed connection is readable whatever the mark.
        drop(client);
        assert!(readable(&server, Duration::from_secs(2)));
    }
}
