//! Real traffic between the namespaces of a [`crate::netns::Link`]: UDP
//! datagrams sent from chosen source addresses, and a receiver that counts
//! what arrives per source (what reached userspace past XDP).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr, UdpSocket},
    os::fd::AsRawFd,
    sync::{Arc, Mutex},
    time::Duration,
};

use socket2::{Domain, Protocol, Socket, Type};

use crate::netns::NetNs;

/// Datagrams received per source address.
pub type Tally = Arc<Mutex<HashMap<IpAddr, u64>>>;

/// A UDP receiver bound to `bind` inside `ns`, counting datagrams per
/// source on a thread of its own (which stops after 30 s of silence).
pub fn udp_receiver(ns: &NetNs, bind: &str) -> Tally {
    let bind: SocketAddr = bind.parse().unwrap();
    let sock = ns.run(move || {
        let s = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP)).unwrap();
        if bind.is_ipv6() {
            s.set_only_v6(true).unwrap();
        }
        // Room for every datagram of a test even if this thread falls behind.
        let size: libc::c_int = 32 << 20;
        // SAFETY: setsockopt on a socket we own with a c_int value.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as u32,
            )
        };
        s.bind(&bind.into()).unwrap();
        UdpSocket::from(s)
    });
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let tally: Tally = Arc::default();
    let t = Arc::clone(&tally);
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut idle = 0;
        while idle < 300 {
            match sock.recv_from(&mut buf) {
                Ok((_, from)) => {
                    idle = 0;
                    *t.lock().unwrap().entry(from.ip()).or_default() += 1;
                }
                Err(_) => idle += 1,
            }
        }
    });
    tally
}

/// Sends `n` datagrams from `src` to `dst` (`ADDR:PORT`), inside `ns`.
pub fn send_udp(ns: &NetNs, src: &str, dst: &str, n: usize) {
    let src: IpAddr = src.parse().unwrap();
    let dst: SocketAddr = dst.parse().unwrap();
    ns.run(move || {
        let s = UdpSocket::bind(SocketAddr::new(src, 0)).unwrap();
        for i in 0..n {
            s.send_to(&(i as u32).to_be_bytes(), dst).unwrap();
        }
    });
}

/// Datagrams from `src` counted so far.
pub fn received(tally: &Tally, src: &str) -> u64 {
    let src: IpAddr = src.parse().unwrap();
    tally.lock().unwrap().get(&src).copied().unwrap_or(0)
}
