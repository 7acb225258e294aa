//! Drop rate on a veth pair fed by an XDP_TX live-frames generator, beside
//! the trivial program, xdp-filter and an nftables netdev rule.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use aya::programs::{TestRun, TestRunAttrs, TestRunOptions, XdpMode};
use proxy_user::cidr::Cidr;
use tests::{
    filter::{limit, load},
    netns::Link,
    packet::Frame,
    pins::PinDir,
};

use crate::{Opts, Row, bench_programs, feed, full_settings, table, xdp};

/// Sum of `rx_queue_*_xdp_drops` from `ethtool -S` of `dev` in `link.edge`.
fn xdp_drops(link: &Link) -> u64 {
    let out = link
        .edge
        .command("ethtool")
        .args(["-S", &link.edge_if])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("_xdp_drops:"))
        .filter_map(|l| l.split(':').nth(1)?.trim().parse::<u64>().ok())
        .sum()
}

fn nft_counter(link: &Link) -> u64 {
    let out = link
        .edge
        .command("nft")
        .args(["-j", "list", "chain", "netdev", "bench", "ingress"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["rule"]["expr"].as_array())
        .flatten()
        .filter_map(|x| x["counter"]["packets"].as_u64())
        .sum()
}

/// Sends `frame` into the edge interface for `secs` seconds from the client
/// side: the `tx_gen` program run with live frames and the client veth as its
/// ingress interface transmits every frame to the peer.
fn generate(link: &Link, gen_ifindex: u32, frame: &[u8], secs: u64) {
    let frame = frame.to_vec();
    let ns = link.client.name().to_string();
    std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
        // SAFETY: setns on this thread only; pin it to CPU 0.
        unsafe {
            use std::os::fd::AsRawFd;
            assert_eq!(libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET), 0);
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
        }
        let mut ebpf = bench_programs();
        let tx = xdp(&mut ebpf, "tx_gen");
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex.
        // The kernel wants data_end equal to the frame length and everything else but the ifindex zero.
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
        ctx[12..16].copy_from_slice(&gen_ifindex.to_ne_bytes());
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            let opts = TestRunOptions {
                data_in: Some(&frame),
                ctx_in: Some(&ctx),
                repeat: 1_000_000,
                attrs: TestRunAttrs::new().xdp_live_frames(64),
                ..Default::default()
            };
            tx.test_run(opts).expect("live-frames generator");
        }
    })
    .join()
    .unwrap();
}

fn ifindex(link: &Link) -> u32 {
    let out = link.client.ip(&["-j", "link", "show", &link.client_if]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["ifindex"].as_u64().unwrap() as u32
}

fn edge_mac(link: &Link) -> [u8; 6] {
    let out = link.edge.ip(&["-j", "link", "show", &link.edge_if]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut mac = [0u8; 6];
    for (i, b) in v[0]["address"].as_str().unwrap().split(':').enumerate() {
        mac[i] = u8::from_str_radix(b, 16).unwrap();
    }
    mac
}

/// One veth measurement: a fresh link, `setup` installs the filter on the
/// edge side, then frames from `src` flood it; returns Mpps dropped.
fn measure(
    opts: &Opts,
    src: &str,
    setup: impl FnOnce(&Link) -> Box<dyn std::any::Any>,
    count: impl Fn(&Link) -> u64,
) -> f64 {
    let link = Link::new("vb");
    let guard = setup(&link);
    let mut frame = Frame::v4(src, "198.18.0.1").payload(18).build();
    frame[..6].copy_from_slice(&edge_mac(&link));
    let gen_if = ifindex(&link);
    // Warm up (neighbour tables, caches), then measure.
    generate(&link, gen_if, &frame, 1);
    let before = count(&link);
    let start = Instant::now();
    generate(&link, gen_if, &frame, opts.veth_secs);
    let rate = (count(&link) - before) as f64 / start.elapsed().as_secs_f64() / 1e6;
    drop(guard);
    rate
}

pub fn run(opts: &Opts) {
    eprintln!("drop rate on veth ({} s per path)", opts.veth_secs);
    let mut rows = Vec::new();
    let floor = measure(
        opts,
        "198.18.9.9",
        |link| {
            let mut ebpf = bench_programs();
            let iface = link.edge_if.clone();
            link.edge
                .with(|| xdp(&mut ebpf, "drop_all").attach(&iface, XdpMode::Driver))
                .unwrap();
            Box::new(ebpf)
        },
        xdp_drops,
    );
    rows.push(Row {
        path: "trivial XDP_DROP (floor)".into(),
        value: floor,
        ratio: 1.0,
        target: "",
        met: None,
    });

    let big = feed(95_000, 5_000);
    let big_host = big.iter().find(|c| c.is_host()).unwrap().addr().to_string();
    let rampart = |block: Vec<Cidr>, pps: bool| {
        move |link: &Link| -> Box<dyn std::any::Any> {
            let pins = PinDir::new("vb");
            let mut s = full_settings(&pins, block);
            if pps {
                s.pps = limit(1000, 1000);
            }
            let mut f = load(&s);
            let iface = link.edge_if.clone();
            link.edge
                .with(|| f.attach(&iface, proxy_user::config::AttachMode::Native))
                .unwrap();
            Box::new((f, pins))
        }
    };
    let blocked = measure(opts, &big_host, rampart(big.clone(), false), xdp_drops);
    let nft = measure(
        opts,
        &big_host,
        |link| {
            let dev = &link.edge_if;
            link.edge
                .command("ethtool")
                .args(["-K", dev, "gro", "on"])
                .output()
                .unwrap();
            let rules = format!(
                "table netdev bench {{\n chain ingress {{\n  type filter hook ingress device \"{dev}\" priority 0;\n  ip saddr {big_host} counter drop\n }}\n}}\n"
            );
            let out = link
                .edge
                .command("nft")
                .args(["-f", "-"])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut c| {
                    use std::io::Write;
                    c.stdin.take().unwrap().write_all(rules.as_bytes())?;
                    c.wait_with_output()
                });
            assert!(out.unwrap().status.success(), "nft rules");
            Box::new(())
        },
        nft_counter,
    );
    let xdp_filter = measure(
        opts,
        &big_host,
        |link| {
            let dev = link.edge_if.clone();
            let ok = link
                .edge
                .command("xdp-filter")
                .args(["load", "-m", "native", &dev])
                .output()
                .unwrap();
            assert!(
                ok.status.success(),
                "xdp-filter load: {}",
                String::from_utf8_lossy(&ok.stderr)
            );
            let ok = link
                .edge
                .command("xdp-filter")
                .args(["ip", "-m", "src", &big_host])
                .output()
                .unwrap();
            assert!(
                ok.status.success(),
                "xdp-filter ip: {}",
                String::from_utf8_lossy(&ok.stderr)
            );
            struct Unload(String, String);
            impl Drop for Unload {
                fn drop(&mut self) {
                    let _ = Command::new("nsenter")
                        .arg(format!("--net=/run/netns/{}", self.0))
                        .args(["--", "xdp-filter", "unload", &self.1])
                        .output();
                }
            }
            Box::new(Unload(link.edge.name().to_string(), dev))
        },
        xdp_drops,
    );
    let limited = measure(
        opts,
        "198.18.9.9",
        rampart(vec!["192.0.2.7".parse().unwrap()], true),
        xdp_drops,
    );
    let mut add = |path: &str, mpps: f64, min: Option<(f64, &'static str)>| {
        rows.push(Row {
            path: path.into(),
            value: mpps,
            ratio: mpps / floor,
            target: min.map_or("", |m| m.1),
            met: min.map(|m| mpps / floor >= m.0),
        });
    };
    add(
        "rampart, blocklisted source (100,000-entry list)",
        blocked,
        Some((0.85, ">= 0.85x")),
    );
    add(
        "rampart, one source over its packet limit",
        limited,
        Some((0.5, ">= 0.5x")),
    );
    add("xdp-filter, same source (exact address)", xdp_filter, None);
    add("nftables netdev ingress drop, same source", nft, None);
    table(
        "### Drop rate on veth (Mpps, XDP_TX live-frames generator)",
        "Mpps",
        &rows,
    );
    println!("| comparison | ratio | target | met |\n|---|---:|---|---|");
    let vs = |name: &str, ratio: f64, min: f64| {
        println!(
            "| rampart blocklist drop vs {name} | {ratio:.2}x | >= {min}x | {} |",
            if ratio >= min { "yes" } else { "**no**" }
        );
    };
    vs("nftables", blocked / nft, 2.5);
    vs("xdp-filter", blocked / xdp_filter, 1.0);
    println!();
}
