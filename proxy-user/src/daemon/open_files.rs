//! The open-files limit: a proxy holds two descriptors per proxied
//! connection (downstream and upstream) plus idle upstream connections, so
//! the default soft limit of 1,024 caps it at a few hundred clients. Like
//! nginx's `worker_rlimit_nofile`, the daemon raises its soft limit to the
//! hard limit at start, and warns when even that is below what the
//! listeners' `max_connections` can ask for.

use log::{info, warn};

use crate::config::Config;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the limit now in force.
pub fn raise(config: &Config) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        warn!(
            "reading the open-files limit: {}",
            std::io::Error::last_os_error()
        );
        return 0;
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads the struct we own; raising the soft limit
        // up to the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            warn!(
                "raising the open-files limit from {before}: {}",
                std::io::Error::last_os_error()
            );
            lim.rlim_cur = before;
        } else {
            info!("open-files limit raised from {before} to {}", lim.rlim_cur);
        }
    }
    let wanted: u64 = config
        .listeners
        .iter()
        .map(|l| 2 * l.max_connections as u64)
        .sum::<u64>();
    if lim.rlim_cur < wanted {
        warn!(
            "the open-files limit is {} but the listeners' max_connections can need {wanted}: \
             raise LimitNOFILE (systemd) or `ulimit -n`, or lower max_connections",
            lim.rlim_cur
        );
    }
    lim.rlim_cur
}
