//! The command-line grammar, bpftool style: `rampart [OPTIONS] OBJECT [VERB]`.
//! The first verb of each object is its default, unambiguous prefixes work
//! (`rampart st` = `rampart stats`), and `-j` gives JSON everywhere.
//! Behaviour lives in `ctl/`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "rampart",
    version,
    about = "Edge filter and reverse proxy: XDP drops abusive traffic before it costs a socket",
    long_about = "rampart drops traffic from blocked networks, banned sources and per-source floods \
in XDP, and keeps its kernel maps in step with a TOML configuration.\n\n\
Examples:\n  rampart config check -c /etc/rampart/rampart.toml   validate, like `nginx -t`\n  \
rampart run -c /etc/rampart/rampart.toml            attach the filter and serve\n  \
rampart stats                                        packets and bytes by verdict\n  \
rampart map dump bans_v4 -j                          a pinned map, typed, as JSON",
    infer_subcommands = true,
    propagate_version = true
)]
pub struct Cli {
    /// Configuration file [default: /etc/rampart/rampart.toml, else the built-in one].
    #[arg(
        short = 'c',
        long = "config",
        global = true,
        env = "RAMPART_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// Print JSON instead of tables (for scripts).
    #[arg(short = 'j', long = "json", global = true)]
    pub json: bool,
    /// Directory of the pinned maps to read [default: the config's filter.pin_dir, else /sys/fs/bpf/rampart].
    #[arg(long, global = true, value_name = "DIR")]
    pub pin_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub object: Object,
}

#[derive(Debug, Subcommand)]
pub enum Object {
    /// Load the XDP filter, attach it to the configured interfaces and keep it in
    /// step with the config until SIGINT/SIGTERM (SIGHUP reloads the config).
    Run,
    /// Validate or print the configuration.
    Config {
        #[command(subcommand)]
        verb: Option<ConfigVerb>,
    },
    /// Kernel counters: packets and bytes by verdict, summed over CPUs.
    Stats {
        /// Refresh every N seconds until interrupted.
        #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "1")]
        watch: Option<u64>,
    },
    /// The pinned kernel maps, decoded (works while the daemon is down).
    Map {
        #[command(subcommand)]
        verb: Option<MapVerb>,
    },
    /// The loaded XDP program.
    Prog {
        #[command(subcommand)]
        verb: Option<ProgVerb>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigVerb {
    /// Validate a configuration and exit: 0 if valid, 64 with file:line:column if not.
    Check {
        /// The file to check [default: -c, else /etc/rampart/rampart.toml].
        file: Option<PathBuf>,
    },
    /// Print the effective configuration after validation.
    Show,
}

#[derive(Debug, Subcommand)]
pub enum MapVerb {
    /// Every rampart map: type, capacity, entries, pin path.
    List,
    /// One map's entries with typed keys and values.
    Dump {
        /// A name from `rampart map list` (e.g. config, verdicts, bans_v4, sources_v6).
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProgVerb {
    /// Loaded rampart XDP programs: id, load time, instructions, maps.
    Show,
}
