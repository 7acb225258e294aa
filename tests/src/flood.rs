//! A spoofed SYN flood from inside a namespace: frames with random sources
//! in 10.0.0.0/8, random ports and sequence numbers, written straight onto
//! an interface through an `AF_PACKET` socket, bounded in count and time.
//! And the edge's TCP counters (`nstat`), to tell what reached its stack.

use std::{
    collections::HashMap,
    ffi::CString,
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use crate::{netns::NetNs, segment::Segment};

/// Distinct frames cycled through (each a new source, port and ISN).
const DISTINCT: usize = 4096;

/// Sends up to `count` spoofed SYNs to `dst:port` on `dev` in `ns`, for at
/// most `max`; `dst_mac` is the destination interface's address. Returns
/// how many were sent.
pub fn spoofed_syns(
    ns: &NetNs,
    dev: &str,
    dst_mac: [u8; 6],
    dst: Ipv4Addr,
    port: u16,
    count: usize,
    max: Duration,
) -> usize {
    let mut x: u32 = 0x2545_f491;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let frames: Vec<Vec<u8>> = (0..DISTINCT)
        .map(|_| {
            let src = Ipv4Addr::from(0x0a00_0000 | (next() & 0x00ff_ffff));
            let mut s = Segment::new(
                &src.to_string(),
                &dst.to_string(),
                1024 + (next() % 60000) as u16,
                port,
            );
            s.seq = next();
            s.options = crate::segment::linux_syn_options(1460, next());
            let mut f = s.build();
            f[..6].copy_from_slice(&dst_mac);
            f
        })
        .collect();
    let dev = CString::new(dev).unwrap();
    ns.run(move || {
        // SAFETY: plain socket calls on a socket this closure owns and
        // closes; `sll` and the frames outlive every call that reads them.
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
            let end = Instant::now() + max;
            let mut sent = 0;
            while sent < count && (sent % 256 != 0 || Instant::now() < end) {
                let f = &frames[sent % DISTINCT];
                let rc = libc::sendto(
                    fd,
                    f.as_ptr().cast(),
                    f.len(),
                    0,
                    (&raw const sll).cast(),
                    size_of::<libc::sockaddr_ll>() as u32,
                );
                if rc < 0 {
                    // A full device queue: let it drain.
                    std::thread::yield_now();
                    continue;
                }
                sent += 1;
            }
            libc::close(fd);
            sent
        }
    })
}

/// The kernel's SNMP counters in `ns` (`nstat -asz`: absolute values; the history file is left alone), by name.
pub fn nstat(ns: &NetNs) -> HashMap<String, u64> {
    let out = ns.command("nstat").args(["-asz"]).output().expect("nstat");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.to_string(), f.next()?.parse().ok()?))
        })
        .collect()
}

/// How much each of `names` grew between two [`nstat`] readings.
pub fn grew(before: &HashMap<String, u64>, after: &HashMap<String, u64>, name: &str) -> u64 {
    after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0)
}
