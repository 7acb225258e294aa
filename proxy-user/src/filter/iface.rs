//! What the kernel says about an interface, in the calling thread's network
//! namespace (the daemon's, or a test's): its MTU and its driver.

use std::ffi::CString;

/// `struct ethtool_drvinfo` (linux/ethtool.h), for `ETHTOOL_GDRVINFO`.
#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

const ETHTOOL_GDRVINFO: u32 = 0x3;

/// Runs `f` with a socket and an `ifreq` naming `iface`; None if the name
/// does not fit or the socket cannot be made.
fn with_ifreq<T>(iface: &str, f: impl FnOnce(i32, &mut libc::ifreq) -> Option<T>) -> Option<T> {
    let name = CString::new(iface).ok()?;
    // SAFETY: a zeroed ifreq is valid; the name is NUL-terminated and
    // checked to fit; the descriptor is closed before returning.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        let bytes = name.as_bytes_with_nul();
        if bytes.len() > req.ifr_name.len() {
            return None;
        }
        for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let out = f(fd, &mut req);
        libc::close(fd);
        out
    }
}

/// The MTU of `iface`.
pub fn mtu(iface: &str) -> Option<u32> {
    with_ifreq(iface, |fd, req| {
        // SAFETY: SIOCGIFMTU fills the ifreq's union with the MTU.
        let rc = unsafe { libc::ioctl(fd, libc::SIOCGIFMTU, &mut *req) };
        // SAFETY: reading the union member the ioctl wrote (zero if it failed).
        let mtu = unsafe { req.ifr_ifru.ifru_mtu } as u32;
        (rc == 0).then_some(mtu)
    })
}

/// The name of `iface`'s driver (`veth`, `virtio_net`, `mlx5_core`, ...).
pub fn driver(iface: &str) -> Option<String> {
    with_ifreq(iface, |fd, req| {
        // SAFETY: a zeroed drvinfo is valid; the ioctl writes into it
        // through the pointer, which outlives the call.
        let mut info: DrvInfo = unsafe { std::mem::zeroed() };
        info.cmd = ETHTOOL_GDRVINFO;
        req.ifr_ifru.ifru_data = (&raw mut info).cast();
        // SAFETY: SIOCETHTOOL with ETHTOOL_GDRVINFO fills `info`.
        let rc = unsafe { libc::ioctl(fd, libc::SIOCETHTOOL, &mut *req) };
        if rc != 0 {
            return None;
        }
        let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
        Some(String::from_utf8_lossy(&info.driver[..end]).into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_an_mtu_and_a_missing_interface_has_nothing() {
        assert!(mtu("lo").is_some_and(|m| m >= 1280));
        assert_eq!(mtu("no-such-if0"), None);
        assert_eq!(driver("no-such-if0"), None);
        assert_eq!(mtu("a-name-far-too-long-for-linux"), None);
    }
}
