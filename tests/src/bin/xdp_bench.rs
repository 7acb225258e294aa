//! The XDP benchmark behind `cargo xtask bench xdp`. Prints Markdown tables
//! (stdout) comparing every path of the rampart program with baselines
//! measured in the same run on the same machine:
//!
//! 1. nanoseconds per packet through BPF_PROG_TEST_RUN, beside a trivial
//!    program that only returns XDP_DROP (the floor), with small lists and with
//!    a 100,000-entry blocklist;
//! 2. packets per second dropped on a veth pair fed by an XDP_TX generator
//!    (BPF_PROG_TEST_RUN with live frames), beside the trivial program,
//!    `xdp-filter` and an nftables netdev-ingress rule.
//!
//! Needs root. Figures are ratios first: absolute numbers depend on the
//! machine, and on 2 vCPUs the generator and the receiver share CPUs.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use aya::{
    Ebpf,
    programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp, XdpMode},
};
use proxy_common::{list::ORIGIN_CLI, stats};
use proxy_user::{cidr::Cidr, config::FilterSettings};
use tests::{
    filter::{dispatch, dispatch_program, limit, load, settings},
    netns::{Link, sh},
    packet::Frame,
    pins::PinDir,
    privilege::require_root,
};

struct Opts {
    /// Packets per BPF_PROG_TEST_RUN measurement.
    repeat: u32,
    /// Seconds per veth measurement.
    veth_secs: u64,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let opts = if quick {
        Opts {
            repeat: 2_000_000,
            veth_secs: 1,
        }
    } else {
        Opts {
            repeat: 10_000_000,
            veth_secs: 3,
        }
    };
    if !require_root("xdp-bench") {
        std::process::exit(1);
    }
    println!("{}", machine());
    per_packet(&opts);
    veth(&opts);
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let kernel = String::from_utf8_lossy(&sh("uname", &["-r"]).stdout)
        .trim()
        .to_string();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!(
        "Machine: {cpu}, {cpus} CPUs, kernel {kernel}. Measured {}.\n",
        String::from_utf8_lossy(&sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).stdout).trim()
    )
}

fn bench_programs() -> Ebpf {
    let mut ebpf = Ebpf::load(proxy_user::filter::object::BENCH).expect("load bench programs");
    for name in ["drop_all", "tx_gen"] {
        let p: &mut Xdp = ebpf.program_mut(name).unwrap().try_into().unwrap();
        p.load().expect("load bench program");
    }
    ebpf
}

fn xdp<'a>(ebpf: &'a mut Ebpf, name: &str) -> &'a mut Xdp {
    ebpf.program_mut(name).unwrap().try_into().unwrap()
}

/// Median nanoseconds per packet of `program` on `frame` over three runs.
fn ns_per_packet(program: &Xdp, frame: &[u8], repeat: u32) -> f64 {
    let mut runs: Vec<f64> = (0..3)
        .map(|_| {
            let start = Instant::now();
            program
                .test_run(TestRunOptions {
                    data_in: Some(frame),
                    repeat,
                    ..Default::default()
                })
                .expect("BPF_PROG_TEST_RUN");
            start.elapsed().as_nanos() as f64 / repeat as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[1]
}

/// A deterministic threat feed: `hosts` single IPv4 addresses and `ranges` /24s,
/// none of them in 198.18.0.0/15 (where the benchmark's passing sources live).
fn feed(hosts: usize, ranges: usize) -> Vec<Cidr> {
    let mut x: u32 = 0x9e37_79b9;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let mut out = std::collections::BTreeSet::new();
    while out.len() < hosts {
        let a = next() | 0x0100_0000;
        if a >> 17 != 198 << 7 | 9 {
            out.insert(Cidr::host(std::net::Ipv4Addr::from(a).into()));
        }
    }
    let mut n = 0;
    while n < ranges {
        let a = (next() | 0x0100_0000) & 0xffff_ff00;
        if a >> 17 != 198 << 7 | 9
            && out.insert(
                format!("{}/24", std::net::Ipv4Addr::from(a))
                    .parse()
                    .unwrap(),
            )
        {
            n += 1;
        }
    }
    out.into_iter().collect()
}

/// Settings where every check runs: non-empty allow and block lists, a ban,
/// and both limits so high that the measured source always passes.
fn full_settings(pins: &PinDir, block: Vec<Cidr>) -> FilterSettings {
    let mut s = settings(pins.path());
    s.allow = vec![
        "10.99.0.0/16".parse().unwrap(),
        "2001:db8:99::/48".parse().unwrap(),
    ];
    s.block = block;
    s.pps = limit(1_000_000_000, 1_000_000_000);
    s.syn = limit(1_000_000_000, 1_000_000_000);
    s
}

struct Row {
    path: String,
    value: f64,
    ratio: f64,
    target: &'static str,
    met: Option<bool>,
}

fn table(header: &str, unit: &str, rows: &[Row]) {
    println!("{header}\n");
    println!("| path | {unit} | ratio to trivial XDP_DROP | target | met |");
    println!("|---|---:|---:|---|---|");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        let value = if unit.starts_with("ns") {
            format!("{:.1}", r.value)
        } else {
            format!("{:.2}", r.value)
        };
        println!(
            "| {} | {value} | {:.2}x | {} | {met} |",
            r.path, r.ratio, r.target
        );
    }
    println!();
}

fn per_packet(opts: &Opts) {
    eprintln!(
        "per-packet cost through BPF_PROG_TEST_RUN ({} packets per run)",
        opts.repeat
    );
    let mut bench = bench_programs();
    let _held = dispatch_program(xdp(&mut bench, "drop_all"));
    let udp = Frame::v4("198.18.0.9", "198.18.0.1").payload(18).build();
    let floor = ns_per_packet(xdp(&mut bench, "drop_all"), &udp, opts.repeat);

    let mut rows = vec![Row {
        path: "trivial XDP_DROP (floor)".into(),
        value: floor,
        ratio: 1.0,
        target: "",
        met: None,
    }];
    let mut add = |path: &str, ns: f64, max: Option<(f64, &'static str)>| {
        let ratio = ns / floor;
        rows.push(Row {
            path: path.into(),
            value: ns,
            ratio,
            target: max.map_or("", |m| m.1),
            met: max.map(|m| ratio <= m.0),
        });
    };

    let small_block: Vec<Cidr> = [
        "198.51.100.0/24",
        "192.0.2.7",
        "2001:db8:66::/48",
        "2001:db8:77::7",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let big_block = feed(95_000, 5_000);
    let big_host = big_block
        .iter()
        .find(|c| c.is_host())
        .unwrap()
        .addr()
        .to_string();
    let big_range = big_block
        .iter()
        .find(|c| !c.is_host())
        .unwrap()
        .addr()
        .to_string();
    let big_range_src = big_range.trim_end_matches(".0").to_string() + ".77";

    for (label, block) in [
        ("small lists", small_block),
        ("100,000-entry blocklist", big_block),
    ] {
        eprintln!("  {label}");
        let pins = PinDir::new("bench");
        let mut filter = load(&full_settings(&pins, block));
        filter
            .maps
            .ban("198.18.4.4".parse().unwrap(), None, ORIGIN_CLI)
            .unwrap();
        let _held = dispatch(&mut filter);
        let p = filter.program().unwrap();
        let check = |frame: &[u8], verdict: u32| {
            let before = filter.maps.verdicts().unwrap()[verdict as usize].packets;
            tests::filter::run(&filter, frame);
            assert_eq!(
                filter.maps.verdicts().unwrap()[verdict as usize].packets,
                before + 1,
                "benchmark frame takes the wrong path"
            );
        };
        let syn4 = Frame::v4("198.18.0.9", "198.18.0.1").tcp_syn().build();
        let syn6 = Frame::v6("fd72::9", "fd72::1").tcp_syn().build();
        check(&syn4, stats::PASS);
        add(
            &format!("pass, every check and both limits, IPv4 ({label})"),
            ns_per_packet(p, &syn4, opts.repeat),
            Some((8.0, "<= 8x")),
        );
        check(&syn6, stats::PASS);
        add(
            &format!("pass, every check and both limits, IPv6 ({label})"),
            ns_per_packet(p, &syn6, opts.repeat),
            Some((8.0, "<= 8x")),
        );
        if label == "small lists" {
            let range = Frame::v4("198.51.100.7", "198.18.0.1").build();
            check(&range, stats::BLOCKLISTED);
            add(
                "blocklist drop, range (small lists)",
                ns_per_packet(p, &range, opts.repeat),
                Some((2.5, "<= 2.5x")),
            );
            let host = Frame::v4("192.0.2.7", "198.18.0.1").build();
            check(&host, stats::BLOCKLISTED);
            add(
                "blocklist drop, single address (small lists)",
                ns_per_packet(p, &host, opts.repeat),
                Some((2.5, "<= 2.5x")),
            );
            let host6 = Frame::v6("2001:db8:77::7", "fd72::1").build();
            check(&host6, stats::BLOCKLISTED);
            add(
                "blocklist drop, single IPv6 address (small lists)",
                ns_per_packet(p, &host6, opts.repeat),
                Some((2.5, "<= 2.5x")),
            );
            let banned = Frame::v4("198.18.4.4", "198.18.0.1").build();
            check(&banned, stats::BANNED);
            add("ban drop", ns_per_packet(p, &banned, opts.repeat), None);
            let arp = Frame::raw(0x0806, 28).build();
            check(&arp, stats::NON_IP);
            add(
                "non-IP pass (ARP)",
                ns_per_packet(p, &arp, opts.repeat),
                None,
            );
        } else {
            let host = Frame::v4(&big_host, "198.18.0.1").build();
            check(&host, stats::BLOCKLISTED);
            add(
                "blocklist drop, single address (100,000-entry list)",
                ns_per_packet(p, &host, opts.repeat),
                Some((2.5, "<= 2.5x")),
            );
            let range = Frame::v4(&big_range_src, "198.18.0.1").build();
            check(&range, stats::BLOCKLISTED);
            add(
                "blocklist drop, range (100,000-entry list)",
                ns_per_packet(p, &range, opts.repeat),
                Some((2.5, "<= 2.5x")),
            );
        }
    }
    for (label, pps, syn, verdict) in [
        (
            "pps-limited drop (one source over its packet limit)",
            true,
            false,
            stats::PPS_LIMITED,
        ),
        (
            "syn-limited drop (one source over its SYN limit)",
            false,
            true,
            stats::SYN_LIMITED,
        ),
    ] {
        let pins = PinDir::new("bench");
        let mut s = settings(pins.path());
        if pps {
            s.pps = limit(1, 1);
        }
        if syn {
            s.syn = limit(1, 1);
        }
        let mut filter = load(&s);
        let _held = dispatch(&mut filter);
        let frame = Frame::v4("198.18.0.9", "198.18.0.1").tcp_syn().build();
        tests::filter::run(&filter, &frame);
        let before = filter.maps.verdicts().unwrap()[verdict as usize].packets;
        tests::filter::run(&filter, &frame);
        assert_eq!(
            filter.maps.verdicts().unwrap()[verdict as usize].packets,
            before + 1
        );
        add(
            label,
            ns_per_packet(filter.program().unwrap(), &frame, opts.repeat),
            None,
        );
    }
    table(
        "### Per-packet cost (BPF_PROG_TEST_RUN)",
        "ns/packet",
        &rows,
    );
}

// === veth drop rate ===

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

fn veth(opts: &Opts) {
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
