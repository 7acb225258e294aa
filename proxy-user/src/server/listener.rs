//! Binding listening sockets: SO_REUSEADDR and SO_REUSEPORT (so a new
//! process can bind beside an old one), IPv6 sockets IPv6-only (bind
//! `[::]` and `0.0.0.0` separately), and the configured backlog; and
//! accepting from them. `TCP_NODELAY` is set once on the listening
//! socket ([`nodelay`]), not per accepted connection.

use std::{
    io,
    net::{SocketAddr, TcpStream},
};

use rustix::net::{SocketFlags, acceptfrom_with};
use socket2::{Domain, Protocol, Socket, Type};

/// A bound, listening, non-blocking socket.
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    Ok(socket.into())
}

/// Sets `TCP_NODELAY` on a listening socket, for every connection it
/// accepts: Linux builds an accepted socket as a copy of its listener's
/// (`sk_clone_lock`), Nagle's setting included, so this spares a
/// `setsockopt` per connection. Done where each listener starts accepting,
/// so a socket handed over by an older process ([`crate::daemon`]'s
/// upgrade) gets it too.
pub fn nodelay(listener: &std::net::TcpListener) -> io::Result<()> {
    rustix::net::sockopt::set_tcp_nodelay(listener, true).map_err(Into::into)
}

/// Accepts a connection: a non-blocking socket, not yet registered with
/// the runtime, and its peer's address.
pub fn accept(listener: &std::net::TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    let (fd, peer) = acceptfrom_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)?;
    let peer = peer
        .and_then(|p| SocketAddr::try_from(p).ok())
        .ok_or_else(|| io::Error::other("a peer without an IP address"))?;
    Ok((TcpStream::from(fd), peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts one connection from `listener`, as the accept loop does.
    fn accepted(listener: &std::net::TcpListener) -> TcpStream {
        let addr = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        for _ in 0..1000 {
            match accept(listener) {
                Ok((s, _)) => return s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
        panic!("no connection accepted");
    }

    #[test]
    fn accepted_connections_inherit_the_listeners_nodelay() {
        let listener = bind("127.0.0.1:0".parse().unwrap(), 8).unwrap();
        // Without it, an accepted socket has Nagle's algorithm on: the
        // setting below is what turns it off.
        assert!(!accepted(&listener).nodelay().unwrap());
        nodelay(&listener).unwrap();
        assert!(accepted(&listener).nodelay().unwrap());
        assert!(accepted(&listener).nodelay().unwrap());
    }
}
