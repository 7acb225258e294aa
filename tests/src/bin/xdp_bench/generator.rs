//! The traffic generators of the veth benchmark, chosen once at start-up.
//!
//! - [`Kind::LiveFrames`]: `tx_gen` run through `BPF_PROG_TEST_RUN` with
//!   `BPF_F_TEST_XDP_LIVE_FRAMES` and the client veth as its ingress
//!   interface, so every run transmits the test frame to the edge. Used
//!   wherever the kernel allows it.
//! - [`Kind::Bouncer`]: where live frames are refused (EPERM on
//!   6.18.44-fc-v1300, even for one frame: issue 14). A second veth pair
//!   (`bg0`/`bg1`) in the client namespace carries the `bounce` program on
//!   `bg1`; it redirects every frame with `BPF_F_BROADCAST` into a devmap
//!   holding `bg0` and the client veth ([`COPIES`] times). The copy sent
//!   on `bg0` comes straight back to `bg1`, the other reaches the edge, so
//!   a burst of [`BURST`] frames injected once through an `AF_PACKET`
//!   socket keeps circulating. The load stops by itself: past the deadline written to the
//!   `BOUNCE` map the bouncer drops every frame, and the benchmark's own wait
//!   is bounded by that same deadline.
//!
//! Why the bouncer over the alternatives the issue names: this kernel is
//! built without `CONFIG_NET_PKTGEN` and has no module directory, so kernel
//! pktgen is not there; AF_XDP would work (`CONFIG_XDP_SOCKETS=y`) but needs
//! a UMEM, rings and a user-space send loop that shares the CPUs with the
//! receiver, while the bouncer needs one ten-line program and keeps the
//! whole loop in softirq on one CPU, like the live-frames path it replaces.
//!
//! Spoofing (a random IPv4 source in 10.0.0.0/8 on every frame) is done in
//! the generator program: `tx_gen_spoof` for live frames, the `BOUNCE`
//! map's spoof flag for the bouncer, which then rewrites the source on
//! every pass. Traffic never leaves the benchmark's own namespaces.

use std::time::{Duration, Instant};

use aya::{
    Ebpf,
    maps::{Array, DevMap},
    programs::{TestRun, TestRunAttrs, TestRunOptions, XdpMode},
};
use tests::netns::{Link, NetNs};

use crate::{bench_programs, xdp};

/// Frames injected into the bouncer's loop: enough to keep every NAPI batch
/// (64) full, and with [`COPIES`] per pass well under a veth ring (256).
const BURST: usize = 64;

/// Copies of each frame the bouncer sends to the edge per pass (the devmap
/// can hold the client veth several times). More copies would make the
/// edge's cost a larger share of the one CPU that bouncer and edge share,
/// but measured with `--quick --bouncer --only veth`, alternating on the
/// loaded machine, 3 copies did worse: the trivial floor fell from
/// 1.19 / 0.88 Mpps to 0.58 / 0.38 and the paths lost their order (clones
/// spent on an edge ring that is already full). So one.
const COPIES: u32 = 1;

/// The bouncer's pair in the client namespace: frames sent on `BOUNCER_TX`
/// arrive on `BOUNCER_RX`, where the bouncer runs.
const BOUNCER_TX: &str = "bg0";
const BOUNCER_RX: &str = "bg1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    LiveFrames,
    Bouncer,
}

impl Kind {
    /// How the table headers name it.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::LiveFrames => "XDP_TX live-frames generator",
            Kind::Bouncer => "devmap-broadcast bouncer generator",
        }
    }
}

/// Sends one live frame on a throw-away link: `LiveFrames` if the kernel
/// allows it, else `Bouncer` (printing why).
pub fn probe() -> Kind {
    let link = Link::new("vp");
    let frame = tests::packet::Frame::v4("198.18.9.9", "198.18.0.1")
        .payload(18)
        .build();
    let ns = link.client.name().to_string();
    let gen_if = ifindex(&link.client, &link.client_if);
    let res = NetNs::existing(&ns).run(move || {
        let mut ebpf = bench_programs();
        live_run(&mut ebpf, "tx_gen", gen_if, &frame, 1).map_err(|e| format!("{e:#}"))
    });
    match res {
        Ok(()) => Kind::LiveFrames,
        Err(e) => {
            eprintln!(
                "BPF_PROG_TEST_RUN with live frames refused ({e}): using the devmap-broadcast bouncer"
            );
            Kind::Bouncer
        }
    }
}

/// One BPF_PROG_TEST_RUN of `prog` with live frames: `repeat` copies of
/// `frame` transmitted on `gen_if`.
fn live_run(
    ebpf: &mut Ebpf,
    prog: &str,
    gen_if: u32,
    frame: &[u8],
    repeat: u32,
) -> Result<(), aya::programs::ProgramError> {
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex.
    // The kernel wants data_end equal to the frame length and everything else but the ifindex zero.
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
    ctx[12..16].copy_from_slice(&gen_if.to_ne_bytes());
    let opts = TestRunOptions {
        data_in: Some(frame),
        ctx_in: Some(&ctx),
        repeat,
        attrs: TestRunAttrs::new().xdp_live_frames(64),
        ..Default::default()
    };
    xdp(ebpf, prog).test_run(opts).map(drop)
}

/// A generator set up on one link.
pub struct Generator {
    kind: Kind,
    /// The bouncer's programs and maps, attached in the client namespace
    /// (its pair goes away with that namespace).
    bouncer: Option<Ebpf>,
    /// Frames per second to offer, for live frames; `None`: as fast as the
    /// CPU it shares with the edge's receive path allows.
    rate: Option<u64>,
    /// Whether the live-frames generator's thread runs at nice -20
    /// ([`tests::connects::favour_this_thread`]).
    favoured: bool,
}

impl Generator {
    pub fn new(kind: Kind, link: &Link) -> Generator {
        if kind == Kind::LiveFrames {
            return Generator {
                kind,
                bouncer: None,
                rate: None,
                favoured: false,
            };
        }
        let c = &link.client;
        c.ip(&[
            "link", "add", BOUNCER_TX, "type", "veth", "peer", "name", BOUNCER_RX,
        ]);
        c.ip(&["link", "set", BOUNCER_TX, "up"]);
        c.ip(&["link", "set", BOUNCER_RX, "up"]);
        let tx_if = ifindex(c, BOUNCER_TX);
        let out_if = ifindex(c, &link.client_if);
        let mut ebpf = bench_programs();
        // Devmap entries name interfaces of the caller's namespace: fill the
        // map from inside the client namespace.
        c.with(|| {
            xdp(&mut ebpf, "bounce")
                .attach(BOUNCER_RX, XdpMode::Driver)
                .expect("attach bouncer");
            let mut ports = DevMap::try_from(ebpf.map_mut("BOUNCE_PORTS").unwrap()).unwrap();
            ports.set(0, tx_if, None, 0).unwrap();
            for i in 1..=COPIES {
                ports.set(i, out_if, None, 0).unwrap();
            }
        });
        Generator {
            kind,
            bouncer: Some(ebpf),
            rate: None,
            favoured: false,
        }
    }

    /// Runs the live-frames generator at nice -20, as the connections
    /// section runs its client and server (the bouncer runs in softirq).
    pub fn favoured(mut self) -> Generator {
        self.favoured = true;
        self
    }

    /// Offers at most `rate` frames per second (live frames only: the
    /// bouncer's rate is set by its loop, and it ignores this).
    pub fn with_rate(mut self, rate: Option<u64>) -> Generator {
        if rate.is_some() && self.kind == Kind::Bouncer {
            eprintln!("the bouncer cannot be held to a rate: flooding at its full rate");
        }
        self.rate = rate;
        self
    }

    /// Floods the edge with `frame` for `secs` seconds (a new random source
    /// on every frame if `spoof`); returns how long the flood lasted.
    pub fn run(&mut self, link: &Link, frame: &[u8], spoof: bool, secs: u64) -> Duration {
        match self.kind {
            Kind::LiveFrames => live(link, frame, spoof, secs, self.rate, self.favoured),
            Kind::Bouncer => self.bounce(link, frame, spoof, secs),
        }
    }

    fn bounce(&mut self, link: &Link, frame: &[u8], spoof: bool, secs: u64) -> Duration {
        let ebpf = self.bouncer.as_mut().expect("bouncer set up");
        let mut ctl: Array<_, u64> = Array::try_from(ebpf.map_mut("BOUNCE").unwrap()).unwrap();
        let len = Duration::from_secs(secs);
        ctl.set(1, u64::from(spoof), 0).unwrap();
        ctl.set(0, monotonic_ns() + len.as_nanos() as u64, 0)
            .unwrap();
        let start = Instant::now();
        // Started from CPU 0: the loop (and, through the devmap, the edge's
        // receive queue) stays on the CPU that injected it, and the
        // connections section keeps CPU 1 and queue 1 for the real client.
        // Unpinned, the loop landed on CPU 1 in some runs, and every XDP row
        // of that section, the trivial program's included, measured the
        // client sharing its CPU with the flood (0.00x).
        tests::traffic::inject_on(&link.client, BOUNCER_TX, frame.to_vec(), BURST, Some(0));
        // The bouncer stops at the deadline; give the last frames in flight
        // a moment to be counted.
        std::thread::sleep(len.saturating_sub(start.elapsed()) + Duration::from_millis(50));
        ctl.set(0, 0, 0).unwrap();
        len
    }
}

/// The live-frames generator, pinned to CPU 0 in the client namespace; at
/// `rate` frames per second if given (one run of `rate / 100` frames every
/// 10 ms), else as fast as it can.
fn live(
    link: &Link,
    frame: &[u8],
    spoof: bool,
    secs: u64,
    rate: Option<u64>,
    favoured: bool,
) -> Duration {
    let template = frame.to_vec();
    let mut frame = frame.to_vec();
    if spoof {
        // Four bytes longer than the template the generator cuts it back
        // to: live frames take a frame's new length from the program only
        // if it changed one (else they keep what a receiver left).
        frame.extend_from_slice(&[0; 4]);
    }
    let ns = link.client.name().to_string();
    let gen_if = ifindex(&link.client, &link.client_if);
    let prog = if spoof { "tx_gen_spoof" } else { "tx_gen" };
    let start = Instant::now();
    NetNs::existing(&ns).run(move || {
        // SAFETY: sched_setaffinity on this thread with a zeroed, then set, cpu_set_t.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
        }
        if favoured {
            tests::connects::favour_this_thread();
        }
        let mut ebpf = bench_programs();
        if spoof {
            // The spoofing generator writes the frame back before each send
            // (a receiver answering in place, with SYN cookies, writes over it).
            let mut t = [0u8; 64];
            let n = template.len().min(64) / 4 * 4;
            t[..n].copy_from_slice(&template[..n]);
            Array::<_, [u8; 64]>::try_from(ebpf.map_mut("TEMPLATE").unwrap())
                .unwrap()
                .set(0, t, 0)
                .unwrap();
            Array::<_, u64>::try_from(ebpf.map_mut("BOUNCE").unwrap())
                .unwrap()
                .set(2, n as u64, 0)
                .unwrap();
        }
        // Keep the generator registered in the kernel's XDP dispatcher for
        // the whole flood: otherwise every BPF_PROG_TEST_RUN call adds it
        // and removes it again, each time patching kernel text and waiting
        // for an RCU grace period on every CPU, which stalled the real
        // client's connections more than the flood itself did.
        let _dispatched = tests::filter::dispatch_program(xdp(&mut ebpf, prog));
        let start = Instant::now();
        let end = start + Duration::from_secs(secs);
        if let Some(rate) = rate {
            let tick = Duration::from_millis(10);
            let chunk = (rate / 100).max(1) as u32;
            for i in 1..=secs * 100 {
                live_run(&mut ebpf, prog, gen_if, &frame, chunk).expect("live-frames generator");
                // Behind schedule (a loaded CPU): go on at once, never
                // catching up with a burst.
                if let Some(wait) = (start + tick * i as u32).checked_duration_since(Instant::now())
                {
                    std::thread::sleep(wait);
                }
                if Instant::now() >= end {
                    break;
                }
            }
            return;
        }
        // A million frames a run takes well over 100 ms on any machine, so
        // this bound only matters if the clock misbehaves.
        for _ in 0..secs * 100 {
            if Instant::now() >= end {
                break;
            }
            live_run(&mut ebpf, prog, gen_if, &frame, 1_000_000).expect("live-frames generator");
        }
    });
    start.elapsed()
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of `bpf_ktime_get_ns`.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The index of `dev` in `ns`.
pub fn ifindex(ns: &NetNs, dev: &str) -> u32 {
    let out = ns.ip(&["-j", "link", "show", dev]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["ifindex"].as_u64().unwrap() as u32
}
