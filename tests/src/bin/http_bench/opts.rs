//! Command-line options of `http-bench`: the default run is what
//! `cargo xtask bench http` writes into BENCHMARKS.md; the rest vary one
//! thing at a time.

use ::tests::certs::KeyAlg;

use crate::{
    backends::BackendKind,
    proxies::{Kind, Tuning},
};

pub const USAGE: &str = "usage: http-bench [--quick] [-j|--json] [--secs N] [--rounds N]
  [--backend hyper|nginx|both] [--proxies rampart,nginx,haproxy]
  [--h1 16,64,256 | --h1 none] [--h2 16x1,16x10,... | --h2 none] [--tls-batches N]
  [--tls-key ecdsa|rsa]
  [--keepalive N] [--backend-keepalive-requests N] [--h2load-threads N] [--workers N]";

#[derive(Debug, Clone)]
pub struct Opts {
    pub secs: u64,
    pub rounds: usize,
    pub backends: Vec<BackendKind>,
    pub proxies: Vec<Kind>,
    /// HTTP/1.1 connection counts.
    pub h1: Vec<u32>,
    /// HTTP/2 (connections, streams per connection).
    pub h2: Vec<(u32, u32)>,
    pub tls_batches: u32,
    /// The key of every proxy's certificate (ECDSA P-256 by default).
    pub tls_key: KeyAlg,
    pub tuning: Tuning,
    /// nginx backend's `keepalive_requests`.
    pub backend_keepalive_requests: u64,
    pub h2load_threads: u32,
    pub json: bool,
}

impl Opts {
    pub fn parse(args: &[String]) -> Result<Opts, String> {
        let quick = args.iter().any(|a| a == "--quick");
        let mut o = Opts {
            secs: if quick { 2 } else { 5 },
            rounds: 2,
            backends: vec![BackendKind::Hyper, BackendKind::Nginx],
            proxies: Kind::ALL.to_vec(),
            h1: vec![16, 64, 256],
            h2: vec![(16, 1), (16, 10), (16, 100), (64, 10), (256, 1)],
            tls_batches: if quick { 1 } else { 4 },
            tls_key: KeyAlg::EcdsaP256,
            tuning: Tuning {
                workers: 2,
                keepalive: 1024,
            },
            backend_keepalive_requests: 1000,
            h2load_threads: 1,
            json: false,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = || it.next().ok_or(format!("{a} needs a value"));
            match a.as_str() {
                "--quick" => {}
                "-j" | "--json" => o.json = true,
                "--secs" => o.secs = number(val()?)?,
                "--rounds" => o.rounds = number::<usize>(val()?)?.max(1),
                "--backend" => {
                    o.backends = match val()?.as_str() {
                        "hyper" => vec![BackendKind::Hyper],
                        "nginx" => vec![BackendKind::Nginx],
                        "both" => vec![BackendKind::Hyper, BackendKind::Nginx],
                        v => return Err(format!("unknown backend `{v}`")),
                    }
                }
                "--proxies" => o.proxies = list(val()?, proxy)?,
                "--h1" => o.h1 = list(val()?, number)?,
                "--h2" => o.h2 = list(val()?, conns_x_streams)?,
                "--tls-batches" => o.tls_batches = number(val()?)?,
                "--tls-key" => o.tls_key = tls_key(val()?)?,
                "--keepalive" => o.tuning.keepalive = number(val()?)?,
                "--workers" => o.tuning.workers = number(val()?)?,
                "--backend-keepalive-requests" => o.backend_keepalive_requests = number(val()?)?,
                "--h2load-threads" => o.h2load_threads = number(val()?)?,
                _ => return Err(format!("unknown option `{a}`")),
            }
        }
        Ok(o)
    }

    /// The settings a reader needs to reproduce the table.
    pub fn describe(&self) -> String {
        format!(
            "Each proxy: {} workers, upstream `keepalive {}` per worker (rampart, nginx; HAProxy keeps \
             all idle connections), no access log. wrk: 2 threads, {} s per case; h2load: {} thread(s), \
             {} s per case, TLS 1.3 with ALPN h2, {} certificate. {} rounds per backend, the proxies' order rotated \
             each round; figures are the rounds' means, ratios of the means with the per-round range in brackets.",
            self.tuning.workers,
            self.tuning.keepalive,
            self.secs,
            self.h2load_threads,
            self.secs,
            match self.tls_key {
                KeyAlg::EcdsaP256 => "an ECDSA P-256",
                KeyAlg::Rsa2048 => "an RSA-2048",
            },
            self.rounds,
        )
    }
}

fn number<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("`{s}` is not a number"))
}

fn tls_key(s: &str) -> Result<KeyAlg, String> {
    match s.to_ascii_lowercase().as_str() {
        "ecdsa" | "ec" | "p256" => Ok(KeyAlg::EcdsaP256),
        "rsa" | "rsa2048" => Ok(KeyAlg::Rsa2048),
        _ => Err(format!("unknown TLS key `{s}` (ecdsa or rsa)")),
    }
}

fn proxy(s: &str) -> Result<Kind, String> {
    match s.to_ascii_lowercase().as_str() {
        "rampart" => Ok(Kind::Rampart),
        "nginx" => Ok(Kind::Nginx),
        "haproxy" => Ok(Kind::Haproxy),
        _ => Err(format!("unknown proxy `{s}`")),
    }
}

/// `16x10`: 16 connections, 10 streams each.
fn conns_x_streams(s: &str) -> Result<(u32, u32), String> {
    let (c, m) = s
        .split_once('x')
        .ok_or(format!("`{s}` is not CONNSxSTREAMS"))?;
    Ok((number(c)?, number(m)?))
}

/// A comma-separated list; `none` is the empty one.
fn list<T>(s: &str, item: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    if s == "none" {
        return Ok(Vec::new());
    }
    s.split(',').map(|p| item(p.trim())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn one_thing_at_a_time() {
        let o = Opts::parse(&args(
            "--quick --backend nginx --h2 16x1,64x100 --h1 none -j",
        ))
        .unwrap();
        assert_eq!(o.secs, 2);
        assert_eq!(o.backends, vec![BackendKind::Nginx]);
        assert_eq!(o.h2, vec![(16, 1), (64, 100)]);
        assert!(o.h1.is_empty());
        assert!(o.json);
        assert_eq!(o.proxies.len(), 3);
    }

    #[test]
    fn tls_key_is_ecdsa_unless_asked() {
        assert_eq!(Opts::parse(&[]).unwrap().tls_key, KeyAlg::EcdsaP256);
        let o = Opts::parse(&args("--tls-key rsa")).unwrap();
        assert_eq!(o.tls_key, KeyAlg::Rsa2048);
        assert!(o.describe().contains("RSA-2048"));
    }

    #[test]
    fn bad_options_are_errors_not_panics() {
        assert!(Opts::parse(&args("--h2 16")).is_err());
        assert!(Opts::parse(&args("--secs")).is_err());
        assert!(Opts::parse(&args("--backend apache")).is_err());
        assert!(Opts::parse(&args("--proxies rampart,envoy")).is_err());
        assert!(Opts::parse(&args("--frobnicate")).is_err());
        assert!(Opts::parse(&args("--tls-key dsa")).is_err());
    }
}
