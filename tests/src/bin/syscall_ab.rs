//! The lot's and the listener's system calls through glibc (as rampart
//! called them before it took rustix) and through rustix (as it calls them
//! now): an A/B in user-space instructions per call, for
//! docs/dependencies.md. Run it under callgrind, once a side:
//!
//! ```text
//! cargo build --release -p tests --bin syscall-ab
//! for side in libc rustix; do
//!   valgrind --tool=callgrind --callgrind-out-file=cg.$side target/release/syscall-ab $side
//!   callgrind_annotate --inclusive=yes cg.$side | grep -E 'syscall_ab::(libc|rustix)_'
//! done
//! ```
//!
//! Each measured function is `#[inline(never)]` and makes [`N`] calls (an
//! `epoll_ctl` add and delete, an `epoll_wait` that finds one event, an
//! `accept4` with the peer's address, a `poll` of one socket), so its
//! inclusive count divided by [`N`] is the instructions per call. The
//! process runs a second thread, as the daemon does: glibc's cancellable
//! calls (`epoll_wait`, `accept4`, `poll`) take their slower path then.
//! The kernel's share is not counted, and is the same on both sides.

use std::{
    hint::black_box,
    io::{self, Write},
    mem::MaybeUninit,
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
};

use rustix::event::{Timespec, epoll};

/// Calls per measured function.
const N: usize = 1000;
/// Events taken per `epoll_wait`, as the lot's.
const BATCH: usize = 64;

// === glibc, as server/lot.rs and server/listener.rs called it ===

fn libc_ctl(ep: RawFd, op: libc::c_int, fd: RawFd, events: u32, key: usize) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events,
        u64: key as u64,
    };
    // SAFETY: both descriptors are open and `event` outlives the call.
    let r = unsafe { libc::epoll_ctl(ep, op, fd, &mut event) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[inline(never)]
fn libc_add_del(ep: RawFd, fd: RawFd) {
    for i in 0..N {
        let events = (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
        libc_ctl(ep, libc::EPOLL_CTL_ADD, fd, events, i).unwrap();
        libc_ctl(ep, libc::EPOLL_CTL_DEL, fd, 0, 0).unwrap();
    }
}

#[inline(never)]
fn libc_wait(ep: RawFd) -> usize {
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; BATCH];
    let mut sum = 0;
    for _ in 0..N {
        let n = loop {
            // SAFETY: `events` is valid for its length; a zero timeout never blocks.
            let n = unsafe {
                libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as libc::c_int, 0)
            };
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            assert_eq!(e.kind(), io::ErrorKind::Interrupted, "{e}");
        };
        for event in &events[..n] {
            sum += black_box(event.u64 as usize);
        }
    }
    sum
}

#[inline(never)]
fn libc_accept(listener: &TcpListener, out: &mut Vec<(TcpStream, SocketAddr)>) {
    for _ in 0..N {
        // SAFETY: `try_init` hands accept4 storage of the right size and its length.
        let (fd, peer) = unsafe {
            socket2::SockAddr::try_init(|storage, len| {
                let fd = libc::accept4(
                    listener.as_raw_fd(),
                    storage.cast(),
                    len,
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                );
                if fd < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(fd)
                }
            })
            .unwrap()
        };
        // SAFETY: accept4 returned a new descriptor that nothing else owns.
        let stream = unsafe { TcpStream::from_raw_fd(fd) };
        out.push((stream, peer.as_socket().unwrap()));
    }
}

#[inline(never)]
fn libc_poll(fd: RawFd) -> usize {
    let mut sum = 0;
    for _ in 0..N {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        sum += unsafe { libc::poll(&mut p, 1, 0) } as usize;
    }
    sum
}

// === rustix, as they are called now ===

#[inline(never)]
fn rustix_add_del(ep: &OwnedFd, fd: &TcpStream) {
    for i in 0..N {
        let events = epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
        epoll::add(ep, fd, epoll::EventData::new_u64(i as u64), events).unwrap();
        epoll::delete(ep, fd).unwrap();
    }
}

#[inline(never)]
fn rustix_wait(ep: &OwnedFd) -> usize {
    let mut sum = 0;
    for _ in 0..N {
        let mut events = [MaybeUninit::<epoll::Event>::uninit(); BATCH];
        let (events, _) = loop {
            match epoll::wait(ep, &mut events, Some(&Timespec::default())) {
                Ok(taken) => break taken,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => panic!("{e}"),
            }
        };
        for event in events.iter() {
            sum += black_box(event.data.u64() as usize);
        }
    }
    sum
}

#[inline(never)]
fn rustix_accept(listener: &TcpListener, out: &mut Vec<(TcpStream, SocketAddr)>) {
    use rustix::net::{SocketFlags, acceptfrom_with};
    for _ in 0..N {
        let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
        let (fd, peer) = acceptfrom_with(listener, flags).unwrap();
        let peer = peer.and_then(|p| SocketAddr::try_from(p).ok()).unwrap();
        out.push((TcpStream::from(fd), peer));
    }
}

#[inline(never)]
fn rustix_poll(fd: &TcpStream) -> usize {
    use rustix::event::{PollFd, PollFlags, poll};
    let mut sum = 0;
    for _ in 0..N {
        let mut p = [PollFd::new(fd, PollFlags::IN)];
        sum += poll(&mut p, Some(&Timespec::default())).unwrap();
    }
    sum
}

fn listener() -> TcpListener {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    s.listen(4096).unwrap();
    s.into()
}

fn main() {
    let side = std::env::args().nth(1).unwrap_or_default();
    let libc_side = match side.as_str() {
        "libc" => true,
        "rustix" => false,
        _ => {
            eprintln!("usage: syscall-ab libc|rustix (under callgrind)");
            std::process::exit(2);
        }
    };
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || {
        let _ = rx.recv();
    });
    // A connected pair with a byte waiting: epoll_wait and poll report it.
    let l = listener();
    let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (server, _) = l.accept().unwrap();
    client.write_all(b"x").unwrap();
    // N connections waiting in a second listener's queue, for accept4.
    let queued = listener();
    let addr = queued.local_addr().unwrap();
    let clients: Vec<TcpStream> = (0..N).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(std::time::Duration::from_millis(50));

    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
    let mut accepted = Vec::with_capacity(N);
    let mut sum = 0;
    if libc_side {
        libc_add_del(ep.as_raw_fd(), server.as_raw_fd());
        let events = libc::EPOLLIN as u32;
        libc_ctl(
            ep.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            server.as_raw_fd(),
            events,
            1,
        )
        .unwrap();
        sum += libc_wait(ep.as_raw_fd());
        libc_accept(&queued, &mut accepted);
        sum += libc_poll(server.as_raw_fd());
    } else {
        rustix_add_del(&ep, &server);
        let data = epoll::EventData::new_u64(1);
        epoll::add(&ep, &server, data, epoll::EventFlags::IN).unwrap();
        sum += rustix_wait(&ep);
        rustix_accept(&queued, &mut accepted);
        sum += rustix_poll(&server);
    }
    // Every wait found the one event, every poll the one socket.
    assert_eq!(sum, 2 * N);
    assert_eq!(accepted.len(), N);
    println!("{side}: {N} calls of each");
    drop((clients, tx));
    other.join().unwrap();
}
