//! rampart's userspace: the daemon and the CLI.
//!
//! # Layout
//!
//! - [`config`]: the TOML file, parsed into a raw form (`config::file`) and
//!   validated into [`config::Config`], with every compiled value it holds
//!   (routes and their path matchers, header rules, rewrites, basic-auth
//!   users, the access log's format, upstream targets). It imports nothing
//!   of the runtime (but the leaf list of hop-by-hop headers,
//!   `h1::hop_by_hop`, which header rules may not touch): the modules
//!   below apply what it compiled.
//! - [`template`]: values with nginx-style variables, compiled at load and
//!   filled in per request ([`request_var`]: the `$http_*`, `$cookie_*`
//!   and `$arg_*` families it shares with the access log); [`path`]: a
//!   request path's normal form, which routes are written in and requests
//!   are matched in.
//! - [`cidr`]: networks as operators write them; [`later`]: deadlines and
//!   expiries that saturate instead of overflowing.
//! - [`filter`]: the kernel tier: loads the XDP program, pins and writes its maps,
//!   attaches it, reads its counters. The only code that writes kernel maps;
//!   in the daemon, only its reconciler calls it to.
//! - [`gate`]: the same lists, bans and connection rate in userspace at accept
//!   time, when XDP cannot run; [`enforcer`]: one interface over both.
//! - [`daemon`]: the daemon as a value (`Daemon::start(config, Io) ->
//!   Handle`): one main loop carrying out commands, one reconciler putting
//!   the configuration with the runtime changes over it in force;
//!   `daemon::run` is `rampart run`, the process around it (signals,
//!   [`systemd`] notification, the control socket, upgrades).
//!   [`state_file`]: the runtime changes (the CLI's entries, bans and
//!   limits, drained servers, weights, switches) kept across restarts in
//!   `[control] state_file`. [`fleet`]: hosts sharing entries and bans
//!   through Redis, one task beside the main loop.
//! - [`control_socket`]: the Unix socket the CLI and a running daemon talk
//!   over: its protocol (`control_socket::protocol`, one JSON request and
//!   reply per line), the daemon's listener, and the CLI's client.
//! - [`server`]: accepting connections, their lifecycle and its timeouts
//!   (`server::lifecycle`), the lot where plain connections wait for a
//!   request head with no task, rampart's own HTTP/1 server on [`h1`]
//!   (`server::h1_conn`) and hyper's HTTP/2 server; [`kick`]: a ban or list change closes the
//!   refused source's open connections (connections and WebSocket tunnels
//!   hold a ticket in it);
//!   [`http`]: the L7 request path (routes, limits, static files, proxying),
//!   the per-configuration snapshot (`http::State`, published to every
//!   worker through `http::SharedState`) and the process's services it
//!   refers to (`http::Services`); [`h1`]: HTTP/1 heads and body framing
//!   for forwarding, and the one list of hop-by-hop headers
//!   (`h1::hop_by_hop`, which `http::headers` and `config` use too);
//!   [`upstream`]: server groups, balancing, health, and the HTTP/1 client
//!   (on [`h1`]) with its keep-alive pool; [`limit`]: nginx-style
//!   request limits; [`escalate`]: L7 abuse that becomes kernel bans;
//!   [`counted`]: what the fleet exchanges per source, which limits,
//!   escalation rules and the kernel tier's `fleet_pps` implement;
//!   [`access_log`]: one line per request, written off the request path;
//!   [`worker`]: which worker thread this is, for per-worker tables.
//! - [`tls`]: certificates and rustls settings, from plain values: it uses
//!   nothing of the crate's (`config` loads certificates with it to check
//!   them, the daemon builds each listener's rustls configuration with it).
//! - [`source`]: what one source is (an IPv4 address, an IPv6 prefix), for
//!   every tier's limits, counters and bans.
//! - [`metrics`]: the counters behind `/metrics`, the status page and
//!   `stats`, and the text format; it imports nothing of the request path,
//!   which counts into it. [`admin`]: the admin listener that serves them
//!   (`admin::scrape` renders `/metrics` from the current snapshot).
//! - [`cli`]: the command-line grammar (clap); [`ctl`]: what each command
//!   does; [`import`]: `rampart config import nginx`.
//! - [`logging`]: the process's logger, whose level changes at run time
//!   (`rampart log level`); the XDP program's records go through it too.
//! - [`allocator`]: the binary's global allocator when no other is
//!   chosen: glibc's, with tokio's 128-byte-aligned blocks carved out of a
//!   `malloc` rather than made by `posix_memalign`.
//!
//! A concept that spans tiers keeps one name in each: `config/X.rs` reads
//! its `[X]` section, `ctl/X.rs` is the `rampart X` command, `daemon/X.rs`
//! is the running daemon's side of it, `X` itself (a module at the root)
//! is what does the work. So `rampart limit set api --rate 50r/s` goes:
//!
//! ```text
//! cli.rs (grammar) -> ctl/limit.rs -> control_socket::client ──Request──▶ control_socket (checks the caller)
//!   -> daemon::run's loop: Command -> Daemon::handle (daemon/operate.rs) -> daemon/limit.rs
//!   -> the desired state (daemon/desired.rs) -> the reconciler (daemon/reconcile.rs)
//!   -> the kernel's `config` map (filter) or the gate, and `limit`'s zones
//! ```
//!
//! *Limits*, by tier: the kernel's per-source packet and new-connection
//! rates (`[filter]` `pps`, `syn`: `config/filter.rs`, made the kernel's
//! `config` map by `filter/settings.rs`); L7 request zones (`[limit.NAME]`:
//! `config/limit.rs`, enforced by [`limit`]); the CLI's `rampart limit`
//! over both (`ctl/limit.rs`, `daemon/limit.rs`); and the sizes of a
//! request head (`h1/request.rs` for HTTP/1, `server/downstream.rs`'s
//! `check_fields` for HTTP/2 fields).
//!
//! *Commands*: a CLI command is `rampart OBJECT VERB` ([`cli`], [`ctl`]);
//! the ones that change a running daemon send it a control request
//! ([`control_socket`]); inside the daemon, requests, reloads, signals and
//! escalation's reports are all `Command`s of its one main loop
//! (`daemon::Handle`), carried out one at a time.
//!
//! # Vocabulary
//!
//! *Downstream*: the client side; *upstream*: the backend servers.
//! *Source*: the address (IPv4) or prefix (IPv6) a packet comes from, the unit
//! of rate limits. *Verdict*: what the XDP program decided for a packet
//! (`proxy_common::stats`). *Pinned*: a kernel object kept alive by a path in
//! bpffs, so it outlives the process that made it.

pub mod access_log;
pub mod admin;
pub mod allocator;
pub mod cidr;
pub mod cli;
pub mod config;
pub mod control_socket;
pub mod counted;
pub mod ctl;
pub mod daemon;
pub mod enforcer;
pub mod escalate;
pub mod filter;
pub mod fleet;
pub mod gate;
pub mod h1;
pub mod http;
pub mod import;
pub mod kick;
pub mod later;
pub mod limit;
pub mod logging;
pub mod metrics;
pub mod path;
pub mod request_var;
pub mod server;
pub mod source;
pub mod state_file;
pub mod systemd;
pub mod template;
pub mod tls;
pub mod upstream;
pub mod worker;

/// Exit status for an invalid configuration or command line (sysexits EX_USAGE, as `nginx -t` users expect a failure).
pub const EXIT_CONFIG: i32 = 64;
