//! Signals held off the thread that loads the programs. The verifier gives
//! up with EAGAIN when a signal is pending for the loading thread, so a
//! SIGHUP sent as the daemon starts (a reload from systemd or a script)
//! would otherwise leave it without its XDP filter. Held here, a
//! process-directed signal goes to another thread, or waits until the
//! load is done; nothing is lost.

/// Blocks the asynchronous signals on this thread until dropped, then
/// restores the mask it found.
pub struct SignalsHeld {
    previous: libc::sigset_t,
}

impl SignalsHeld {
    pub fn new() -> SignalsHeld {
        // SAFETY: building signal sets we own and changing this thread's
        // mask; the previous mask is written into `previous`.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut set);
            // Signals a fault raises on this very thread stay deliverable.
            for sig in [
                libc::SIGSEGV,
                libc::SIGBUS,
                libc::SIGFPE,
                libc::SIGILL,
                libc::SIGTRAP,
                libc::SIGSYS,
            ] {
                libc::sigdelset(&mut set, sig);
            }
            let mut previous: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut previous);
            SignalsHeld { previous }
        }
    }
}

impl Drop for SignalsHeld {
    fn drop(&mut self) {
        // SAFETY: restoring the mask saved by `new` on this thread.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.previous, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(sig: libc::c_int) -> bool {
        // SAFETY: reading this thread's mask into a set we own.
        unsafe {
            let mut now: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut now);
            libc::sigismember(&now, sig) == 1
        }
    }

    #[test]
    fn held_while_alive_and_restored_after() {
        assert!(!blocked(libc::SIGHUP));
        {
            let _held = SignalsHeld::new();
            assert!(blocked(libc::SIGHUP) && blocked(libc::SIGTERM));
            assert!(!blocked(libc::SIGSEGV));
        }
        assert!(!blocked(libc::SIGHUP) && !blocked(libc::SIGTERM));
    }
}
