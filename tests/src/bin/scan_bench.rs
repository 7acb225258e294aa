//! What `[filter] fleet_pps` costs to read the XDP sources maps
//! (`proxy_user::filter::source_scan`, docs/fleet.md "Kernel
//! thresholds"): a loaded filter's `sources_v4` filled with N sources, then
//! full passes of bounded calls timed. Needs root. Build it in release
//! (`cargo build --release -p tests --bin scan-bench`) for figures.
//!
//! `scan-bench [N]` (default 65,000; the map holds 65,536).

use std::time::{Duration, Instant};

use aya::maps::{HashMap, Map, MapData};
use proxy_common::{pin, source::SourceState};
use proxy_user::{filter::source_scan::SourceScan, fleet::kernel::SCAN_BUDGET};
use tests::pins::PinDir;

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .map_or(65_000, |a| a.parse().expect("N: a number of sources"));
    let pins = PinDir::new("h18sb");
    let _filter = tests::filter::load(&tests::filter::settings(pins.path()));
    let data = MapData::from_pin(pins.path().join(pin::SOURCES_V4)).unwrap();
    let mut map: HashMap<MapData, [u8; 4], SourceState> =
        HashMap::try_from(Map::LruHashMap(data)).unwrap();
    for i in 0..n {
        let s = SourceState {
            packets: u64::from(i),
            ..SourceState::default()
        };
        map.insert((0x0a00_0000 + i).to_be_bytes(), s, 0).unwrap();
    }
    let present = map.keys().filter_map(Result::ok).count();
    let mut scan = SourceScan::open(pins.path()).unwrap();
    let mut passes = Vec::new();
    let mut slowest = Duration::ZERO;
    let (user0, sys0) = cpu();
    for _ in 0..7 {
        let start = Instant::now();
        let done = scan.passes;
        while scan.passes == done {
            let t = Instant::now();
            let _ = scan.read(SCAN_BUDGET).unwrap();
            slowest = slowest.max(t.elapsed());
        }
        passes.push(start.elapsed());
    }
    let (user1, sys1) = cpu();
    passes.sort();
    let median = passes[passes.len() / 2];
    println!(
        "scan of {present} IPv4 sources, calls of at most {SCAN_BUDGET} entries: full pass median {median:?} \
         (min {:?}, max {:?}, 7 passes), {:.0} ns/entry, slowest call {slowest:?}; CPU per pass: \
         user {:?}, system {:?} ({:.0} ns/entry)",
        passes[0],
        passes[passes.len() - 1],
        median.as_nanos() as f64 / present as f64,
        (user1 - user0) / 7,
        (sys1 - sys0) / 7,
        ((user1 - user0) + (sys1 - sys0)).as_nanos() as f64 / 7.0 / present as f64
    );
}

/// This thread's user and system CPU time so far.
fn cpu() -> (Duration, Duration) {
    // SAFETY: getrusage writes one rusage into the zeroed value we own.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_THREAD is this thread.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut r) };
    let d = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    (d(r.ru_utime), d(r.ru_stime))
}
