//! Servers written as `host:port` (nginx `server app:8000 resolve;`,
//! HAProxy `resolvers`): resolved through DNS as the system configures it
//! (`/etc/resolv.conf`, `/etc/hosts`: Docker Compose service names work),
//! and resolved again when the answer's TTL runs out (bounded to
//! [`MIN_TTL`]..[`MAX_TTL`]) or every `resolve_interval`.
//!
//! A new answer replaces the group's set of servers in place: an address
//! the name still has keeps its server (counters, health, keep-alive
//! connections); a new one gets a fresh server (and its health check); a
//! removed one takes no new requests and is dropped once its requests in
//! flight have finished, its idle connections with it. A lookup that
//! fails (timeout, no server) keeps the addresses the name had; one the
//! DNS answers with "no such name" or no address removes them.
//!
//! A name that does not resolve at start leaves its server down (the
//! group's other servers serve), said once in the log, and is tried again
//! with a backoff from [`MIN_TTL`] to [`RETRY_MAX`] until it resolves.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Weak},
    time::Duration,
};

use hickory_resolver::{TokioResolver, lookup_ip::LookupIp};

use super::{Backend, Group, Target, health::spawn_check};
use crate::config::{Address, Config};

/// The shortest time an answer is used for (a TTL of 0 is common for
/// local names)...
pub const MIN_TTL: Duration = Duration::from_secs(1);
/// ...and the longest, whatever its TTL says.
pub const MAX_TTL: Duration = Duration::from_secs(300);
/// The longest wait between two tries of a name that does not resolve.
pub const RETRY_MAX: Duration = Duration::from_secs(30);
/// One lookup's limit (the resolver's own timeouts and attempts inside it).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// What a name resolved to.
enum Answer {
    /// Addresses, valid for this long.
    Addresses(Vec<IpAddr>, Duration),
    /// The DNS says there is no such name, or it has no address.
    None(String),
    /// No answer (timeout, no reachable server, bad resolv.conf).
    Failed(String),
}

/// Starts re-resolving the names of `group`, if it has any. The task stops
/// when the group is dropped (a reload built another, with a task of its own).
pub fn spawn_resolution(group: &Arc<Group>) {
    let names: Vec<(String, u16, u32)> = group
        .config
        .servers
        .iter()
        .filter_map(|s| match &s.addr {
            Address::Name { host, port } => Some((host.clone(), *port, s.weight)),
            Address::Fixed(_) => None,
        })
        .collect();
    if names.is_empty() {
        return;
    }
    tokio::spawn(run(Arc::downgrade(group), names));
}

async fn run(group: Weak<Group>, names: Vec<(String, u16, u32)>) {
    let interval = match group.upgrade() {
        Some(g) => g.config.resolve_interval,
        None => return,
    };
    // Per name: whether it resolved last time (log lines on changes only),
    // and the wait before the next try while it does not.
    let mut resolved: BTreeMap<String, bool> = BTreeMap::new();
    let mut backoff = MIN_TTL;
    loop {
        // A resolver per round: /etc/resolv.conf and /etc/hosts are read
        // again, as a container's are rewritten when its network changes.
        let resolver = TokioResolver::builder_tokio().map(|b| b.build());
        let mut answers = Vec::with_capacity(names.len());
        for (host, port, _) in &names {
            let answer = match &resolver {
                Ok(r) => lookup(r, host).await,
                Err(e) => {
                    Answer::Failed(format!("reading the system's resolver configuration: {e}"))
                }
            };
            answers.push((host, *port, answer));
        }
        let Some(g) = group.upgrade() else { return };
        let mut next = MAX_TTL;
        let mut failing = false;
        for (host, port, answer) in &answers {
            let key = format!("{host}:{port}");
            let was = resolved.get(&key).copied();
            match answer {
                Answer::Addresses(_, ttl) => {
                    next = next.min(*ttl);
                    if was != Some(true) && was.is_some() {
                        log::info!("upstream {}: `{key}` resolves again", g.config.name);
                    }
                    resolved.insert(key, true);
                }
                Answer::None(why) | Answer::Failed(why) => {
                    failing = true;
                    if was != Some(false) {
                        log::warn!(
                            "upstream {}: `{key}` does not resolve ({why}); {}",
                            g.config.name,
                            if was == Some(true) && matches!(answer, Answer::Failed(_)) {
                                "keeping its last addresses until it does"
                            } else {
                                "its server is down until it does"
                            }
                        );
                    }
                    resolved.insert(key, false);
                }
            }
        }
        apply(&g, &names, &answers);
        drop(g);
        let wait = if failing {
            let w = backoff;
            backoff = (backoff * 2).min(RETRY_MAX);
            match interval {
                Some(i) => w.min(i),
                None => w.min(next),
            }
        } else {
            backoff = MIN_TTL;
            interval.unwrap_or(next)
        };
        tokio::time::sleep(wait).await;
    }
}

async fn lookup(resolver: &TokioResolver, host: &str) -> Answer {
    match tokio::time::timeout(LOOKUP_TIMEOUT, resolver.lookup_ip(host)).await {
        Err(_) => Answer::Failed(format!("no answer within {LOOKUP_TIMEOUT:?}")),
        Ok(Err(e)) if e.is_nx_domain() => Answer::None("no such name".into()),
        Ok(Err(e)) if e.is_no_records_found() => Answer::None("no address records".into()),
        Ok(Err(e)) => Answer::Failed(e.to_string()),
        Ok(Ok(found)) => addresses(&found),
    }
}

fn addresses(found: &LookupIp) -> Answer {
    let mut ips: Vec<IpAddr> = found.iter().collect();
    ips.sort();
    ips.dedup();
    if ips.is_empty() {
        return Answer::None("no address".into());
    }
    let ttl = found
        .valid_until()
        .saturating_duration_since(std::time::Instant::now());
    Answer::Addresses(ips, ttl.clamp(MIN_TTL, MAX_TTL))
}

/// The group's new set: its servers in the configuration's order, a
/// name's addresses in place of the name (kept servers for the addresses
/// it had, fresh ones for new addresses; a failed lookup keeps the old).
fn apply(g: &Arc<Group>, names: &[(String, u16, u32)], answers: &[(&String, u16, Answer)]) {
    let before = g.backends();
    let mut list = Vec::new();
    let mut added = Vec::new();
    let mut changes = Vec::new();
    let mut next_name = 0;
    for s in &g.config.servers {
        match &s.addr {
            Address::Fixed(t) => {
                if let Some(b) = before.iter().find(|b| b.name.is_none() && b.addr == *t) {
                    list.push(b.clone());
                }
            }
            Address::Name { .. } => {
                let (host, port, weight) = &names[next_name];
                let (_, _, answer) = &answers[next_name];
                next_name += 1;
                let key: Arc<str> = Arc::from(format!("{host}:{port}"));
                let had: Vec<&Arc<Backend>> = before
                    .iter()
                    .filter(|b| b.name.as_deref() == Some(&*key))
                    .collect();
                let ips: &[IpAddr] = match answer {
                    Answer::Addresses(ips, _) => ips,
                    Answer::None(_) => &[],
                    Answer::Failed(_) => {
                        list.extend(had.into_iter().cloned());
                        continue;
                    }
                };
                let mut now_has = Vec::new();
                for ip in ips {
                    let target = Target::Tcp(SocketAddr::new(*ip, *port));
                    match had.iter().find(|b| b.addr == target) {
                        Some(b) => now_has.push((*b).clone()),
                        None => {
                            let b = Arc::new(Backend::new(
                                target,
                                Some(key.clone()),
                                *weight,
                                s.backup,
                                g.config.keepalive,
                            ));
                            added.push(b.clone());
                            now_has.push(b);
                        }
                    }
                }
                let gone: Vec<String> = had
                    .iter()
                    .filter(|b| !now_has.iter().any(|n| Arc::ptr_eq(n, b)))
                    .map(|b| b.addr.to_string())
                    .collect();
                let new: Vec<String> = now_has
                    .iter()
                    .filter(|n| !had.iter().any(|b| Arc::ptr_eq(n, b)))
                    .map(|b| b.addr.to_string())
                    .collect();
                if !gone.is_empty() || !new.is_empty() {
                    changes.push(format!(
                        "`{key}` -> [{}] (added [{}], removed [{}])",
                        now_has
                            .iter()
                            .map(|b| b.addr.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                        new.join(", "),
                        gone.join(", ")
                    ));
                }
                list.extend(now_has);
            }
        }
    }
    if changes.is_empty() {
        return;
    }
    for c in &changes {
        log::info!("upstream {}: {c}", g.config.name);
    }
    g.replace_backends(list);
    for b in &added {
        spawn_check(g, b);
    }
}

/// `config check`: the servers written as names that do not resolve now,
/// each with why (the daemon would start with them down).
pub fn unresolved_names(config: &Config) -> Vec<String> {
    let names: Vec<(String, String, u16)> = config
        .upstreams
        .iter()
        .flat_map(|(group, u)| {
            u.servers.iter().filter_map(move |s| match &s.addr {
                Address::Name { host, port } => Some((group.clone(), host.clone(), *port)),
                Address::Fixed(_) => None,
            })
        })
        .collect();
    if names.is_empty() {
        return Vec::new();
    }
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return vec!["could not start a runtime to resolve upstream names".into()];
    };
    rt.block_on(async {
        let resolver = match TokioResolver::builder_tokio() {
            Ok(b) => b.build(),
            Err(e) => return vec![format!("the system's resolver configuration: {e}")],
        };
        let mut out = Vec::new();
        for (group, host, port) in names {
            match lookup(&resolver, &host).await {
                Answer::Addresses(..) => {}
                Answer::None(why) | Answer::Failed(why) => out.push(format!(
                    "upstream {group}: `{host}:{port}` does not resolve now ({why}); \
                     the daemon starts with it down and resolves it again until it does"
                )),
            }
        }
        out
    })
}

impl Group {
    /// Servers written as names that have no address now (never resolved,
    /// or resolved to none), as written: `upstream list` shows them down.
    pub fn unresolved(&self) -> Vec<(String, u32, bool)> {
        let list = self.backends();
        self.config
            .servers
            .iter()
            .filter(|s| matches!(s.addr, Address::Name { .. }))
            .map(|s| (s.addr.to_string(), s.weight, s.backup))
            .filter(|(name, _, _)| {
                !list
                    .iter()
                    .any(|b| b.name.as_deref() == Some(name.as_str()))
            })
            .collect()
    }
}
