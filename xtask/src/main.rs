//! `cargo xtask`: what cargo alone cannot do for rampart.
//!
//! - `bootstrap`: install the eBPF toolchain and the test tools a fresh machine lacks.
//! - `build`:     bootstrap, then build `rampart` with the XDP program embedded.
//! - `test`:      bootstrap, build, unit tests, then the privileged kernel tests.
//! - `bench xdp`: per-packet cost and drop rates against baselines; writes BENCHMARKS.md.
//! - `demo`:      build, create a demo topology, run rampart on it with the built-in config.
//! - `fuzz`:      the cargo-fuzz targets in `fuzz/`, each for a bounded time.
//! - `soak`:      the reliability suite's long versions, then longer fuzzing.

mod bench;
mod build;
mod cmd;
mod demo;
mod fuzz;
mod package;
mod test;
mod toolchain;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, test, benchmark and demo rampart"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what is missing to build the XDP program (Debian's rustc-web,
    /// rust-web-src, llvm-N-dev, bpf-linker) and to run the tests (bpftool, ...).
    Bootstrap,
    /// Build `rampart` (debug unless --release) with the XDP program embedded.
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Run every test: unit and in-process tests, then the privileged kernel
    /// tests (root; under CI=true a missing privilege fails instead of skipping).
    Test {
        /// Only run tests whose name contains this.
        filter: Option<String>,
    },
    /// Run a benchmark and write its table into BENCHMARKS.md.
    Bench {
        /// What to benchmark: `xdp` (the kernel tier against nftables and
        /// xdp-filter), `http` (throughput, latency, TLS and memory against
        /// nginx and HAProxy), `instructions` (instructions per request
        /// under callgrind, against nginx and HAProxy) or `fleet`
        /// (fleet-wide limits' cost to Redis, 3-100 simulated hosts).
        #[arg(default_value = "xdp")]
        what: String,
        /// Shorter runs, for a quick look (figures are noisier).
        #[arg(long)]
        quick: bool,
        /// Print the figures as JSON instead of writing BENCHMARKS.md
        /// (`http` only).
        #[arg(short = 'j', long)]
        json: bool,
        /// Options passed to the benchmark binary after `--` (for `http`:
        /// `--backend nginx`, `--h2 16x1,16x100`, `--keepalive 64`, ...;
        /// `http-bench --help` lists them). A run with any prints its table
        /// without writing BENCHMARKS.md.
        #[arg(last = true)]
        extra: Vec<String>,
    },
    /// Build a Debian package (binary, systemd unit, config, logrotate, man page)
    /// into target/debian/ and check it.
    Package {
        /// Package a debug build (faster; for checks).
        #[arg(long)]
        debug: bool,
    },
    /// Run the fuzz targets (nightly, AddressSanitizer) from their seed corpora
    /// in fuzz/corpus; new finds go to fuzz/target/corpus, crashes fail.
    Fuzz {
        /// One target: config, values, route_path, limit, nginx_import or xdp (root). Default: all.
        target: Option<String>,
        /// Seconds per target.
        #[arg(long, default_value_t = 60, value_name = "N")]
        secs: u64,
    },
    /// The reliability suite's long versions (faults, abuse, HTTP/2 attacks,
    /// upgrades under load) against a release build, then every fuzz target
    /// for longer. Prints each case's figure (RELIABILITY.md).
    Soak {
        /// Seconds per fuzz target.
        #[arg(long, default_value_t = 600, value_name = "N")]
        fuzz_secs: u64,
    },
    /// Build, create a demo topology in network namespaces and run rampart on it.
    Demo {
        /// How long the demo traffic runs (Ctrl-C stops it sooner).
        #[arg(long, default_value_t = 30, value_name = "SECS")]
        duration: u64,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.task {
        Task::Bootstrap => toolchain::bootstrap(toolchain::Needs::all()),
        Task::Build { release } => {
            toolchain::bootstrap(toolchain::Needs::build())?;
            build::build_rampart(release)
        }
        Task::Test { filter } => test::all(filter.as_deref()),
        Task::Bench {
            what,
            quick,
            json,
            extra,
        } => bench::run(&what, quick, json, &extra),
        Task::Demo { duration } => demo::run(duration),
        Task::Fuzz { target, secs } => fuzz::run(target.as_deref(), secs),
        Task::Soak { fuzz_secs } => test::soak(fuzz_secs),
        Task::Package { debug } => package::package(!debug).map(|_| ()),
    }
}
