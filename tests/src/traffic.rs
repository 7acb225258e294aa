//! Real traffic between the namespaces of a [`crate::netns::Link`]: UDP
//! datagrams sent from chosen source addresses, and a receiver that counts
//! what arrives per source (what reached userspace past XDP); and raw
//! frames injected on an interface (`inject`), for headers no socket would send.

use std::{
    collections::HashMap,
    ffi::CString,
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

/// Sends `n` copies of `frame` on `dev` of `ns` through an `AF_PACKET` socket.
pub fn inject(ns: &NetNs, dev: &str, frame: Vec<u8>, n: usize) {
    inject_on(ns, dev, frame, n, None)
}

/// [`inject`] from a thread pinned to `cpu` if given. A veth delivers a
/// frame sent this way through the receiving end's NAPI on the sending
/// CPU, so a loop of frames that an XDP program keeps redirecting (the
/// xdp benchmark's bouncer) stays on the CPU that started it.
pub fn inject_on(ns: &NetNs, dev: &str, frame: Vec<u8>, n: usize, cpu: Option<usize>) {
    let dev = CString::new(dev).unwrap();
    ns.run(move || {
        if let Some(cpu) = cpu {
            // SAFETY: sched_setaffinity on this thread with a zeroed, then set, cpu_set_t.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                let rc = libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
                assert_eq!(
                    rc,
                    0,
                    "pin to CPU {cpu}: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
        // SAFETY: plain socket calls on a socket this closure owns and
        // closes; `sll` and `frame` outlive every call that reads them.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(
                fd >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
            sll.sll_ifindex = libc::if_nametoindex(dev.as_ptr()) as i32;
            sll.sll_halen = 6;
            for _ in 0..n {
                let sent = libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&raw const sll).cast(),
                    size_of::<libc::sockaddr_ll>() as u32,
                );
                assert_eq!(
                    sent,
                    frame.len() as isize,
                    "inject: {}",
                    std::io::Error::last_os_error()
                );
            }
            libc::close(fd);
        }
    });
}
