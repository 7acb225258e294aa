//! The command-line grammar, bpftool style: `rampart [OPTIONS] OBJECT [VERB]`.
//! The first verb of each object is its default, unambiguous prefixes work
//! (`rampart st` = `rampart stats`), and `-j` gives JSON everywhere.
//! Behaviour lives in `ctl/`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::cidr::Cidr;

#[derive(Debug, Parser)]
#[command(
    name = "rampart",
    version,
    about = "Edge filter and reverse proxy: XDP drops abusive traffic before it costs a socket",
    long_about = "rampart is an edge filter and reverse proxy. It drops traffic from blocked networks, \
banned sources and per-source floods in XDP, before it costs a socket, and serves HTTP/1.1, HTTP/2 \
and WebSockets in front of app servers (TLS, routes, static files, request limits, least-connections \
balancing). One TOML file configures both tiers; this command runs the daemon and controls it.\n\n\
Objects take a verb (the first is the default: `rampart block` lists the blocklist); unambiguous \
prefixes work (`rampart up l`), `-j` prints JSON, and `rampart help OBJECT` explains each.\n\n\
Examples:\n  rampart config check -c /etc/rampart/rampart.toml   validate, like `nginx -t`\n  \
rampart run -c /etc/rampart/rampart.toml            attach the filter and serve\n  \
rampart stats                                        packets and bytes by verdict\n  \
rampart block add 203.0.113.7 --ttl 10m              ban a source in the kernel\n  \
rampart upstream drain 127.0.0.1:8001                no new requests to a server\n  \
rampart reload                                       re-read the config, report errors\n  \
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
    /// The daemon's control socket [default: the config's [control] socket, else /run/rampart/control.sock].
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
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
    /// Counters: kernel packets and bytes by verdict (pinned, so they work while the
    /// daemon is down), and L7 requests by status class per route and per upstream server.
    Stats {
        /// Refresh every N seconds (1 to 86400) until interrupted.
        #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "1",
              value_parser = clap::value_parser!(u64).range(1..=86_400))]
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
    /// The blocklist and bans: traffic from these sources is dropped in the kernel.
    #[command(
        long_about = "The blocklist and bans: traffic from these sources is dropped in the \
kernel, within a second of the command. A single address becomes a ban (kernel-side expiry); \
a network goes on the blocklist. Entries from the configuration are listed too, and can only be \
removed there.\n\nExamples:\n  rampart block add 203.0.113.7 --ttl 10m --reason \"scanner\"\n  \
rampart block add 198.51.100.0/24\n  rampart block list -j\n  rampart block del 203.0.113.7"
    )]
    Block {
        #[command(subcommand)]
        verb: Option<ListVerb>,
    },
    /// The allowlist: sources never filtered, limited or banned.
    #[command(
        long_about = "The allowlist: sources never filtered, limited or banned.\n\n\
Examples:\n  rampart allow add 10.0.0.0/8 --reason \"office\"\n  rampart allow list\n  rampart allow del 10.0.0.0/8"
    )]
    Allow {
        #[command(subcommand)]
        verb: Option<ListVerb>,
    },
    /// Upstream servers: state and load; drain, weights and blue-green switches.
    #[command(
        long_about = "Upstream servers: state and load; drain, weights and blue-green \
switches. Changes apply to new requests at once (in-flight ones finish) and survive restarts.\n\n\
Examples:\n  rampart upstream list\n  rampart upstream drain app/127.0.0.1:8001\n  \
rampart upstream weight 127.0.0.1:8002 3\n  rampart upstream switch blue --to green\n  \
rampart upstream switch blue --to blue      (back)"
    )]
    Upstream {
        #[command(subcommand)]
        verb: Option<UpstreamVerb>,
    },
    /// The heaviest sources by packets, bytes or drops per second, live (from the pinned map);
    /// with --fleet, the whole fleet's (from its counts in Redis).
    #[command(
        long_about = "The heaviest sources by packets, bytes or drops per second, refreshed \
every second until Ctrl-C; read from the pinned per-source map, so it works while the daemon is \
down. With -j, one one-second sample is printed as JSON.\n\n\
With --fleet, the heaviest sources of the whole fleet instead: for each counter this host's \
configuration holds fleet-wide ([filter] fleet_pps packets and fleet_syn SYNs, [limit.NAME] fleet = true requests, \
[escalate.NAME] fleet = true responses), what every host reported for each source in the current \
and the previous 10 s window, read from the fleet's Redis (the [fleet] section; the daemon need \
not run). Ranked by OF LIMIT: the fleet's rate over what the counter allows one source (100% = \
at the limit; past it, fleet_pps, fleet_syn and escalation ban, a limit refuses). A host reports \
only sources it saw enough of (fleet_pps, fleet_syn: count/(16 x hosts) within `within`), so \
small sources are not listed.\n\n\
Examples:\n  rampart top\n  rampart top --by drops -n 10\n  rampart -j top\n  \
rampart top --fleet\n  rampart -j top --fleet -n 5"
    )]
    Top {
        /// What to rank by (this host's map; --fleet ranks by share of the limit).
        #[arg(long, value_enum, default_value = "packets")]
        by: TopOrder,
        /// The whole fleet's heaviest sources, from its counts in Redis (needs [fleet]).
        #[arg(long)]
        fleet: bool,
        /// How many sources to show (at most 1000000).
        #[arg(short = 'n', long, default_value_t = 20,
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
        limit: usize,
    },
    /// Rate limits: the kernel's per-source pps and SYN limits and the L7 `[limit.*]` zones.
    #[command(
        long_about = "Rate limits: the kernel's per-source packet (pps) and new-connection \
(syn) limits, and the L7 request zones of [limit.NAME]. `set` applies at once and survives \
restarts (the state file); `reset` returns to the configuration.\n\nExamples:\n  \
rampart limit show\n  rampart limit set pps --rate 5000 --burst 10000\n  \
rampart limit set syn --off\n  rampart limit set api --rate 50r/s --burst 20\n  rampart limit reset api"
    )]
    Limit {
        #[command(subcommand)]
        verb: Option<LimitVerb>,
    },
    /// The log: its level, for the daemon and its XDP program alike, changed at run time.
    #[command(
        long_about = "The log: one level for the daemon's messages and for the rare events \
the XDP program records (a malformed frame, with its first bytes; a full source map), which \
reach the daemon's log with target rampart::xdp. The program writes at most [log] xdp_rate \
records per second (default 5) and says how many it suppressed; events above the level are \
skipped in the kernel before they cost anything. A level set here holds until `reset` or a \
restart (reloads keep it); otherwise RUST_LOG, if the daemon was started with it, else the \
configuration's [log] level (default info).\n\nLevels: off, error, warn, info (malformed \
frames), debug, trace.\n\nExamples:\n  rampart log level                  the level in force, and where it comes from\n  \
rampart log level debug            everything, now\n  rampart log level warn             only problems (no malformed-frame samples)\n  \
rampart log level off              nothing, from the daemon or the kernel\n  \
rampart log level reset            back to RUST_LOG or [log] level\n  rampart -j log level"
    )]
    Log {
        #[command(subcommand)]
        verb: Option<LogVerb>,
    },
    /// The fleet this host shares entries with through Redis: hosts, last
    /// heard from, lag, Redis's health (docs/fleet.md).
    Fleet {
        #[command(subcommand)]
        verb: Option<FleetVerb>,
    },
    /// Everything about one source: lists, ban, kernel budgets, L7 limits, counters.
    Ip {
        #[command(subcommand)]
        verb: IpVerb,
    },
    /// Maintenance: every request answered 503 with the 503 error page, at once, without a reload.
    #[command(
        long_about = "Maintenance: every request is answered 503 (with `Retry-After`) and the \
503 [[error_page]] when one is configured, from the moment of the command, without a reload. \
The admin listener is not affected. A reload keeps the switch; a restart starts with it off.\n\n\
Examples:\n  rampart maintenance on\n  rampart maintenance off\n  rampart maintenance"
    )]
    Maintenance {
        #[command(subcommand)]
        verb: Option<MaintenanceVerb>,
    },
    /// Re-read the configuration file and apply it (as SIGHUP); errors are
    /// reported here and the running configuration stays.
    Reload,
    /// Replace the running daemon with a new binary, without downtime.
    #[command(
        long_about = "Replace the running daemon with a new binary, without downtime (as \
nginx's USR2; SIGUSR2 does the same with the daemon's own path). The new binary starts with the \
same configuration, binds beside the old one, adopts the pinned XDP program and maps, and once it \
serves, the old daemon stops accepting (queued connections move to the new one), finishes its \
in-flight requests within the grace period, closes its WebSockets with code 1001 and exits. If the \
new binary fails to start, the old one keeps serving and the error is reported here.\n\n\
Examples:\n  rampart upgrade                          (this rampart's own binary)\n  \
rampart upgrade --binary /usr/bin/rampart.new"
    )]
    Upgrade {
        /// The binary to start [default: this `rampart`'s own path].
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff), e.g. `rampart man | man -l -`.
    Man,
}

#[derive(Debug, Subcommand)]
pub enum FleetVerb {
    /// This host, Redis's health, lag, and every host's last heartbeat.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum ListVerb {
    /// Every entry: network, kind, where it came from (config, cli, auto-ban), reason, expiry.
    List,
    /// Add a source or network.
    Add {
        /// An address (192.0.2.7, 2001:db8::7) or a network (192.0.2.0/24).
        #[arg(value_parser = parse_cidr)]
        cidr: Cidr,
        /// Remove it again after this long (e.g. 90s, 10m, 24h; at most 365d) [default: never].
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<std::time::Duration>,
        /// Why: shown by `list` and `ip show`.
        #[arg(long)]
        reason: Option<String>,
        /// Keep it on this host: not shared with the fleet (`[fleet]`).
        #[arg(long)]
        local: bool,
    },
    /// Remove a source or network added at runtime.
    Del {
        #[arg(value_parser = parse_cidr)]
        cidr: Cidr,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum TopOrder {
    Packets,
    Bytes,
    Drops,
}

#[derive(Debug, Subcommand)]
pub enum LimitVerb {
    /// Every limit: rate, burst, and whether it comes from the configuration or the CLI.
    Show,
    /// Change a limit now: `pps` and `syn` are the kernel's, other names are `[limit.NAME]` zones.
    Set {
        /// pps, syn, or the name of a [limit.NAME] zone.
        name: String,
        /// Kernel: packets (or SYNs) per second, e.g. 5000; zones: 50r/s or 30r/m.
        #[arg(long, required_unless_present = "off")]
        rate: Option<String>,
        /// Back-to-back allowance [default: one second's worth for the kernel, the zone's for zones]
        /// (at most 1000000000 for pps and syn, 1000000 for zones).
        #[arg(long, value_parser = clap::value_parser!(u64).range(0..=1_000_000_000))]
        burst: Option<u64>,
        /// Kernel limits only: no limit.
        #[arg(long, conflicts_with_all = ["rate", "burst"])]
        off: bool,
    },
    /// Go back to the configuration's value.
    Reset { name: String },
}

#[derive(Debug, Subcommand)]
pub enum MaintenanceVerb {
    /// Answer every request with 503.
    On,
    /// Serve requests again.
    Off,
    /// Whether maintenance is on (the default verb).
    Show,
}

#[derive(Debug, Subcommand)]
pub enum LogVerb {
    /// Show the level, or set it: off, error, warn, info, debug, trace; `reset` goes back.
    Level {
        #[arg(value_enum)]
        level: Option<LevelArg>,
    },
}

/// A level, or `reset` (back to RUST_LOG or `[log] level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LevelArg {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
    Reset,
}

#[derive(Debug, Subcommand)]
pub enum IpVerb {
    /// Which allow/block entries match, ban, both kernel budgets, L7 limit state, counters.
    Show { addr: std::net::IpAddr },
}

#[derive(Debug, Subcommand)]
pub enum UpstreamVerb {
    /// Every server: group, state (up, down, drained), weight, in flight, requests, failures.
    List,
    /// Stop sending new requests to a server; those in flight finish.
    Drain {
        /// ADDR, or GROUP/ADDR when the address is in several groups.
        server: String,
    },
    /// Put a drained server back in rotation.
    Undrain { server: String },
    /// Set a server's weight (1-1000) for balancing.
    Weight {
        server: String,
        #[arg(value_parser = clap::value_parser!(u32).range(1..=1000))]
        weight: u32,
    },
    /// Send a group's traffic to another group at once (blue-green deploys).
    Switch {
        group: String,
        /// The group to send it to (the group itself switches back).
        #[arg(long)]
        to: String,
    },
}

fn parse_cidr(s: &str) -> Result<Cidr, String> {
    s.parse::<Cidr>().map_err(|e| e.to_string())
}

fn parse_ttl(s: &str) -> Result<std::time::Duration, String> {
    crate::config::units::duration(s).map_err(|e| e.0)
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
    /// Translate another server's configuration into rampart's: exit 0 when
    /// every directive was translated, 2 when some could not be (what could
    /// be is still written), 1 on a syntax error.
    Import {
        #[command(subcommand)]
        from: ImportFrom,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportFrom {
    /// An nginx configuration (includes followed). Every directive not
    /// translated is reported as `file:line: not needed|unsupported: ...`
    /// on stderr (`-j`: the TOML and every report as JSON on stdout).
    Nginx {
        /// The nginx file, e.g. /etc/nginx/nginx.conf or a sites-available file.
        file: PathBuf,
        /// Write the rampart configuration here instead of stdout.
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
    },
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    /// Issue 13, item 9: every number the CLI takes has a maximum.
    #[test]
    fn values_past_their_maximum_are_refused() {
        let parses = |args: &[&str]| Cli::try_parse_from([&["rampart"], args].concat()).is_ok();
        let huge = "18446744073709551615";
        assert!(parses(&["block", "add", "192.0.2.1", "--ttl", "365d"]));
        assert!(!parses(&["block", "add", "192.0.2.1", "--ttl", huge]));
        assert!(!parses(&["block", "add", "192.0.2.1", "--ttl", "366d"]));
        assert!(parses(&[
            "limit",
            "set",
            "syn",
            "--rate",
            "5",
            "--burst",
            "1000000000"
        ]));
        assert!(!parses(&[
            "limit", "set", "syn", "--rate", "5", "--burst", huge
        ]));
        assert!(!parses(&[
            "limit",
            "set",
            "syn",
            "--rate",
            "5",
            "--burst",
            "1000000001"
        ]));
        assert!(parses(&["stats", "--watch", "86400"]));
        assert!(!parses(&["stats", "--watch", huge]));
        assert!(!parses(&["upstream", "weight", "127.0.0.1:1", "1001"]));
        assert!(!parses(&["top", "-n", huge]));
    }

    /// `rampart log level [LEVEL]` (issue 14): the verb is the default,
    /// prefixes work, and only known levels (or `reset`) are taken.
    #[test]
    fn log_level_grammar() {
        use super::{LevelArg, LogVerb, Object};
        let level = |args: &[&str]| -> Result<Option<LogVerb>, String> {
            match Cli::try_parse_from([&["rampart"], args].concat()) {
                Ok(Cli {
                    object: Object::Log { verb },
                    ..
                }) => Ok(verb),
                Ok(other) => Err(format!("not `log`: {other:?}")),
                Err(e) => Err(e.to_string()),
            }
        };
        assert!(matches!(level(&["log"]), Ok(None)));
        assert!(matches!(
            level(&["log", "level"]),
            Ok(Some(LogVerb::Level { level: None }))
        ));
        for (word, want) in [
            ("off", LevelArg::Off),
            ("error", LevelArg::Error),
            ("warn", LevelArg::Warn),
            ("info", LevelArg::Info),
            ("debug", LevelArg::Debug),
            ("trace", LevelArg::Trace),
            ("reset", LevelArg::Reset),
        ] {
            match level(&["log", "level", word]) {
                Ok(Some(LogVerb::Level { level: Some(got) })) => assert_eq!(got, want, "{word}"),
                other => panic!("{word}: {other:?}"),
            }
        }
        assert!(matches!(
            level(&["-j", "lo", "l", "warn"]),
            Ok(Some(LogVerb::Level {
                level: Some(LevelArg::Warn)
            }))
        ));
        let e = level(&["log", "level", "loud"]).unwrap_err();
        assert!(
            e.contains("invalid value 'loud'") && e.contains("possible values"),
            "{e}"
        );
        assert!(level(&["log", "level", "warn", "info"]).is_err());
        assert!(level(&["log", "volume"]).is_err());
    }
}
