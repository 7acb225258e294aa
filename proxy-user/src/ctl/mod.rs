//! What each command does. The grammar is in `cli.rs`; this module resolves
//! the configuration and the pin directory, runs the verb, and prints a table
//! or, with `-j`, JSON.

mod config;
mod fleet;
mod import;
mod ip;
mod limit;
mod lists;
mod log;
mod maintenance;
mod manual;
mod map;
mod prog;
mod reload;
mod run;
mod stats;
mod top;
mod upstream;

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::{
    cli::{Cli, ConfigVerb, MapVerb, Object},
    config::{Config, DEFAULT_PATH, DEFAULT_TOML},
    state_file::ListName,
};

pub fn dispatch(cli: Cli) -> Result<()> {
    let out = Output { json: cli.json };
    match &cli.object {
        Object::Run => {
            // The file SIGHUP re-reads; none when running the built-in configuration.
            let source = cli.config.clone().or_else(|| {
                let default = PathBuf::from(DEFAULT_PATH);
                default.exists().then_some(default)
            });
            if source.is_none() {
                ::log::info!("no -c and no {DEFAULT_PATH}: running the built-in configuration");
            }
            run::run(&load_config(&cli)?, source)
        }
        Object::Config { verb } => match verb {
            None => config::check(&out, &config_path(&cli, None)),
            Some(ConfigVerb::Check { file }) => {
                config::check(&out, &config_path(&cli, file.as_deref()))
            }
            Some(ConfigVerb::Show) => config::show(&out, &load_config(&cli)?),
            Some(ConfigVerb::Import { from }) => import::run(&out, from),
        },
        Object::Stats { watch } => stats::stats(&out, &pin_dir(&cli), &socket(&cli)?, *watch),
        Object::Map { verb } => match verb {
            None | Some(MapVerb::List) => map::list(&out, &pin_dir(&cli)),
            Some(MapVerb::Dump { name }) => map::dump(&out, &pin_dir(&cli), name),
        },
        Object::Prog { .. } => prog::show(&out),
        Object::Block { verb } => lists::run(&out, &socket(&cli)?, ListName::Block, verb.as_ref()),
        Object::Allow { verb } => lists::run(&out, &socket(&cli)?, ListName::Allow, verb.as_ref()),
        Object::Upstream { verb } => upstream::run(&out, &socket(&cli)?, verb.as_ref()),
        Object::Reload => reload::run(&out, &socket(&cli)?),
        Object::Upgrade { binary } => reload::upgrade(&out, &socket(&cli)?, binary.clone()),
        Object::Top {
            fleet: true, limit, ..
        } => top::fleet(&out, &load_config(&cli)?, *limit),
        Object::Top { by, limit, .. } => top::top(&out, &pin_dir(&cli), *by, *limit),
        Object::Limit { verb } => limit::run(&out, &socket(&cli)?, verb.as_ref()),
        Object::Log { verb } => log::run(&out, &socket(&cli)?, verb.as_ref()),
        Object::Fleet { .. } => fleet::status(&out, &socket(&cli)?),
        Object::Maintenance { verb } => maintenance::run(&out, &socket(&cli)?, verb.as_ref()),
        Object::Ip { verb } => match verb {
            crate::cli::IpVerb::Show { addr } => ip::show(&out, &socket(&cli)?, *addr),
        },
        Object::Completions { shell } => manual::completions(*shell),
        Object::Man => manual::man(),
    }
}

/// The daemon's control socket: `--socket`, else the configuration's
/// `[control] socket`. Only that section is read, so a configuration that
/// the daemon would refuse (say, a broken certificate) still leads the CLI
/// to the daemon, which then says what is wrong; a file that is not even
/// valid TOML is reported here, with its line and column.
fn socket(cli: &Cli) -> Result<PathBuf> {
    if let Some(s) = &cli.socket {
        return Ok(s.clone());
    }
    let path = match &cli.config {
        Some(path) => path.clone(),
        None if Path::new(DEFAULT_PATH).exists() => PathBuf::from(DEFAULT_PATH),
        None => return Ok(PathBuf::from(crate::config::control::DEFAULT_SOCKET)),
    };
    Config::control_of(&path).map(|c| c.socket).map_err(|e| {
        anyhow::anyhow!(
            "{e}\n(the control socket is found through this file; --socket PATH bypasses it)"
        )
    })
}

/// Where the configuration is: `-c`, else the default path.
fn config_path(cli: &Cli, explicit: Option<&Path>) -> PathBuf {
    explicit
        .or(cli.config.as_deref())
        .unwrap_or(Path::new(DEFAULT_PATH))
        .to_path_buf()
}

/// The validated configuration: `-c FILE`, else /etc/rampart/rampart.toml,
/// else the built-in default (`builtin` says so, for `run` to log it).
fn load_config(cli: &Cli) -> Result<Config> {
    match &cli.config {
        Some(path) => Ok(Config::load(path)?),
        None if Path::new(DEFAULT_PATH).exists() => Ok(Config::load(Path::new(DEFAULT_PATH))?),
        None => Ok(Config::parse(DEFAULT_TOML, Path::new("<built-in>"))?),
    }
}

/// The pin directory to read: `--pin-dir`, else the config's, else the default.
fn pin_dir(cli: &Cli) -> PathBuf {
    if let Some(dir) = &cli.pin_dir {
        return dir.clone();
    }
    if let Ok(Config {
        filter: Some(f), ..
    }) = load_config(cli)
    {
        return f.pin_dir;
    }
    PathBuf::from(proxy_common::pin::PIN_DIR)
}

/// Tables for people, JSON for scripts.
pub struct Output {
    pub json: bool,
}

impl Output {
    pub fn emit(&self, value: &serde_json::Value, table: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            print!("{}", table());
        }
    }
}
