//! The accept backlog of listening sockets, read from the kernel: for a
//! socket in LISTEN state, `getsockopt(TCP_INFO)` reports the accept
//! queue's current length (`tcpi_unacked`) and its capacity
//! (`tcpi_sacked`), as `ss -lt` shows them. With SO_REUSEPORT each worker's
//! socket has its own queue; a listener's figures are summed over them.

use std::os::fd::RawFd;

/// Current length and capacity of the accept queue of the listening socket `fd`.
pub fn of_socket(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: tcp_info is plain data; getsockopt writes at most `len` bytes
    // into it, on a descriptor the caller keeps open for the call.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let rc = libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        (rc == 0 && info.tcpi_state == 10/* TCP_LISTEN */)
            .then_some((info.tcpi_unacked as u64, info.tcpi_sacked as u64))
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn a_listening_socket_reports_its_queue() {
        let l = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        l.bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
        l.listen(37).unwrap();
        let addr = l.local_addr().unwrap().as_socket().unwrap();
        assert_eq!(of_socket(l.as_raw_fd()), Some((0, 37)));
        // Two connections the listener has not accepted wait in its queue.
        let _a = std::net::TcpStream::connect(addr).unwrap();
        let _b = std::net::TcpStream::connect(addr).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(of_socket(l.as_raw_fd()), Some((2, 37)));
        let c = std::net::TcpStream::connect(addr).unwrap();
        assert_eq!(of_socket(c.as_raw_fd()), None, "not a listener");
    }
}
