use std::net::IpAddr;

use super::{
    Kick, Kicks, Ticket,
    book::{Book, Slot},
};
use crate::cidr::Cidr;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn kick(nets: &[&str], except: &[&str]) -> Kick {
    Kick {
        nets: nets.iter().map(|n| n.parse().unwrap()).collect(),
        except: except.iter().map(|n| n.parse().unwrap()).collect(),
    }
}

#[test]
fn a_connection_costs_a_few_dozen_bytes() {
    // Beside its lot row or task: its slot, and its bucket's head if
    // it is alone there.
    let slot = std::mem::size_of::<Slot>();
    let head = std::mem::size_of::<(IpAddr, u32)>();
    println!("slot {slot} bytes, head {head} bytes");
    assert!(slot <= 56 && head <= 24, "slot {slot}, head {head}");
}

#[test]
fn a_kick_marks_its_networks_except_the_allowlisted() {
    let k = Kicks::default();
    let r = k.registry();
    let t = |s: &str| r.register(ip(s));
    let (v6, v4, allowed, other, edge) = (
        t("2001:db8:1:2::77"),
        t("10.2.3.4"),
        t("10.1.3.4"),
        t("192.0.2.1"),
        t("10.255.255.255"),
    );
    let outside = t("11.0.0.0");
    let marked = k.kick(kick(&["2001:db8:1:2::/64", "10.0.0.0/8"], &["10.1.0.0/16"]));
    assert_eq!(marked, 3);
    assert!(v6.is_kicked() && v4.is_kicked() && edge.is_kicked());
    assert!(!allowed.is_kicked(), "allowlisted");
    assert!(!other.is_kicked() && !outside.is_kicked());
    assert_eq!(k.kick(kick(&["10.2.3.4"], &[])), 0, "marked once");
    // A dropped ticket leaves the registry.
    drop(v4);
    assert_eq!(r.book().slots.len(), 5);
    assert_eq!(k.marked(), 3);
    // Within one /64 bucket, a longer prefix or an address marks only its own.
    let (a, b, c) = (
        t("2001:db8:9:9::1"),
        t("2001:db8:9:9::1:1"),
        t("2001:db8:9:9:8000::1"),
    );
    assert_eq!(k.kick(kick(&["2001:db8:9:9::/96"], &[])), 2);
    assert!(a.is_kicked() && b.is_kicked() && !c.is_kicked());
    // A network wider than a bucket finds every bucket inside it.
    let d = t("2001:db8:9:7::1");
    assert_eq!(k.kick(kick(&["2001:db8:9::/48"], &[])), 2);
    assert!(c.is_kicked() && d.is_kicked());
}

#[test]
fn each_table_hashes_addresses_with_its_own_key() {
    // The addresses are the clients' to choose: a hash without a
    // random key would let them aim every connection at one bucket of
    // the table. Two tables disagree on the same addresses.
    use std::hash::BuildHasher;
    let (a, b) = (Book::default(), Book::default());
    let ips = [ip("192.0.2.1"), ip("10.0.0.1"), ip("2001:db8::")];
    let hashes = |book: &Book| ips.map(|i| book.heads.hasher().hash_one(i));
    assert_ne!(hashes(&a), hashes(&b));
}

#[test]
fn the_registry_agrees_with_a_list_of_its_connections() {
    // Connections that come and go in many buckets (IPv4 addresses and
    // IPv6 /64s, several to a bucket), kicked by addresses, /64s and
    // wider ranges, against a plain list of who is open and marked.
    let k = Kicks::default();
    let r = k.registry();
    let mut open: Vec<(IpAddr, Ticket)> = Vec::new();
    let mut marked: Vec<bool> = Vec::new();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..4000 {
        let n = next();
        let addr = if n % 2 == 0 {
            IpAddr::from([10, 0, (n >> 8) as u8 % 4, (n >> 16) as u8 % 16])
        } else {
            let mut o = [0u8; 16];
            o[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            o[7] = (n >> 8) as u8 % 8;
            o[15] = (n >> 16) as u8 % 4;
            IpAddr::from(o)
        };
        match n >> 32 & 7 {
            0..=3 => {
                open.push((addr, r.register(addr)));
                marked.push(false);
            }
            4..=5 if !open.is_empty() => {
                let i = (n >> 40) as usize % open.len();
                drop(open.swap_remove(i));
                marked.swap_remove(i);
            }
            6 if round % 8 == 0 => {
                let net: Cidr = match n >> 40 & 3 {
                    0 => Cidr::masked(addr, if addr.is_ipv4() { 32 } else { 128 }),
                    1 => Cidr::masked(addr, if addr.is_ipv4() { 30 } else { 64 }),
                    2 => Cidr::masked(addr, if addr.is_ipv4() { 16 } else { 48 }),
                    _ => Cidr::masked(addr, if addr.is_ipv4() { 28 } else { 127 }),
                };
                let expected = open
                    .iter()
                    .zip(&marked)
                    .filter(|((a, _), m)| !**m && net.contains(*a))
                    .count();
                let got = k.kick(Kick {
                    nets: vec![net],
                    except: Vec::new(),
                });
                assert_eq!(got, expected, "round {round}: {net:?}");
                for ((a, _), m) in open.iter().zip(marked.iter_mut()) {
                    *m |= net.contains(*a);
                }
            }
            _ => {}
        }
    }
    for ((a, t), m) in open.iter().zip(&marked) {
        assert_eq!(t.is_kicked(), *m, "{a}");
    }
    assert_eq!(r.book().slots.len(), open.len());
    drop(open);
    let book = r.book();
    assert!(book.heads.is_empty() && book.slots.is_empty());
}

#[test]
fn chains_follow_connections_that_come_and_go() {
    let k = Kicks::default();
    let r = k.registry();
    let ip = ip("2001:db8::1");
    // Many in one bucket, dropped in every order: the chain stays whole.
    let mut tickets: Vec<Ticket> = (0..10).map(|_| r.register(ip)).collect();
    for i in [9, 0, 4, 5, 1] {
        drop(tickets.remove(i.min(tickets.len() - 1)));
    }
    let alive = tickets.len();
    tickets.push(r.register(ip));
    assert_eq!(k.kick(kick(&["2001:db8::/64"], &[])), alive + 1);
    assert!(tickets.iter().all(Ticket::is_kicked));
    drop(tickets);
    let book = r.book();
    assert!(book.heads.is_empty() && book.slots.is_empty());
}

#[test]
fn a_kicked_row_is_named_to_the_lot_and_a_kicked_connection_is_not_parked() {
    let k = Kicks::default();
    let r = k.registry();
    let (a, b) = (r.register(ip("192.0.2.1")), r.register(ip("192.0.2.2")));
    assert!(a.park(7));
    k.kick(kick(&["192.0.2.0/24"], &[]));
    assert_eq!(r.take_rows(), [7]);
    assert!(a.is_kicked());
    assert!(r.take_rows().is_empty());
    assert!(!b.park(8), "kicked before it was parked");
}

#[tokio::test]
async fn kicked_resolves_only_for_a_marked_connection() {
    let k = Kicks::default();
    let r = k.registry();
    let (a, b) = (r.register(ip("192.0.2.1")), r.register(ip("192.0.2.2")));
    let mut wait_a = std::pin::pin!(a.kicked());
    let mut wait_b = std::pin::pin!(b.kicked());
    let short = std::time::Duration::from_millis(20);
    assert!(tokio::time::timeout(short, &mut wait_a).await.is_err());
    assert!(tokio::time::timeout(short, &mut wait_b).await.is_err());
    k.kick(kick(&["192.0.2.1"], &[]));
    tokio::time::timeout(std::time::Duration::from_secs(1), &mut wait_a)
        .await
        .expect("a is kicked");
    assert!(
        tokio::time::timeout(short, &mut wait_b).await.is_err(),
        "b is not"
    );
    // A kick before the wait began still counts.
    k.kick(kick(&["192.0.2.0/24"], &[]));
    tokio::time::timeout(std::time::Duration::from_secs(1), b.kicked())
        .await
        .expect("b is kicked by the range");
    // The spare registry (tunnels) is kicked too.
    let tunnel = k.register(ip("198.51.100.9"));
    k.kick(kick(&["198.51.100.0/24"], &[]));
    tokio::time::timeout(std::time::Duration::from_secs(1), tunnel.kicked())
        .await
        .expect("the tunnel is kicked");
}
