//! `rampart`: parse the command line, then hand over to `ctl`.

use clap::Parser;
use proxy_user::{EXIT_CONFIG, cli::Cli, config::ConfigError, ctl};

#[cfg(all(feature = "jemalloc", feature = "mimalloc"))]
compile_error!("choose one global allocator: feature `jemalloc` or `mimalloc`, not both");

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// glibc's allocator, without `posix_memalign` for tokio's aligned blocks
/// (see `proxy_user::allocator`).
#[cfg(not(any(feature = "jemalloc", feature = "mimalloc")))]
#[global_allocator]
static GLOBAL: proxy_user::allocator::Aligned = proxy_user::allocator::Aligned;

fn main() {
    proxy_user::logging::init();
    let cli = Cli::parse();
    if let Err(err) = ctl::dispatch(cli) {
        eprintln!("error: {err:#}");
        let code = if err.downcast_ref::<ConfigError>().is_some() {
            EXIT_CONFIG
        } else {
            1
        };
        std::process::exit(code);
    }
}
