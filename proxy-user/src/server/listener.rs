//! Binding listening sockets: SO_REUSEADDR and SO_REUSEPORT (so a new
//! process can bind beside an old one), IPv6 sockets IPv6-only (bind
//! `[::]` and `0.0.0.0` separately), and the configured backlog; and
//! accepting from them.

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

/// Accepts a connection: a non-blocking socket, not yet registered with
/// the runtime, and its peer's address.
pub fn accept(listener: &std::net::TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    let (fd, peer) = acceptfrom_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)?;
    let peer = peer
        .and_then(|p| SocketAddr::try_from(p).ok())
        .ok_or_else(|| io::Error::other("a peer without an IP address"))?;
    Ok((TcpStream::from(fd), peer))
}
