//! `rampart block|allow list|add|del`: the daemon changes the kernel lists
//! and records the change (with its reason and expiry) in the state file.

use std::{fmt::Write, path::Path, time::Duration};

use anyhow::Result;

use super::Output;
use crate::{
    cli::ListVerb,
    control_socket::{
        client::call,
        protocol::{ListEntryView, Request},
    },
    state_file::ListName,
};

pub fn run(out: &Output, socket: &Path, list: ListName, verb: Option<&ListVerb>) -> Result<()> {
    match verb {
        None | Some(ListVerb::List) => {
            let data = call(socket, &Request::ListShow { list })?;
            let entries: Vec<ListEntryView> = serde_json::from_value(data.clone())?;
            out.emit(&data, || table(&entries));
        }
        Some(ListVerb::Add {
            cidr,
            ttl,
            reason,
            local,
        }) => {
            let data = call(
                socket,
                &Request::ListAdd {
                    list,
                    cidr: *cidr,
                    ttl_secs: ttl.map(|t| t.as_secs().max(1)),
                    reason: reason.clone(),
                    local: *local,
                },
            )?;
            let entry: ListEntryView = serde_json::from_value(data.clone())?;
            out.emit(&data, || {
                format!(
                    "{} {}: {}{}\n",
                    verb_word(list),
                    entry.cidr,
                    entry.kind,
                    entry
                        .expires_in
                        .map_or(String::new(), |s| format!(", expires in {}", human(s)))
                )
            });
        }
        Some(ListVerb::Del { cidr }) => {
            let data = call(socket, &Request::ListDel { list, cidr: *cidr })?;
            out.emit(&data, || format!("removed {cidr}\n"));
        }
    }
    Ok(())
}

fn verb_word(list: ListName) -> &'static str {
    match list {
        ListName::Allow => "allowed",
        ListName::Block => "blocked",
    }
}

fn table(entries: &[ListEntryView]) -> String {
    if entries.is_empty() {
        return "no entries\n".into();
    }
    let mut s = format!(
        "{:<43} {:<8} {:<20} {:>12}  {}\n",
        "SOURCE", "KIND", "ORIGIN", "EXPIRES IN", "REASON"
    );
    for e in entries {
        let _ = writeln!(
            s,
            "{:<43} {:<8} {:<20} {:>12}  {}",
            e.cidr.to_string(),
            e.kind,
            // An entry from another fleet host says which.
            e.host
                .as_ref()
                .map_or_else(|| e.origin.clone(), |h| format!("{}@{h}", e.origin)),
            e.expires_in.map_or("never".into(), human),
            e.reason.as_deref().unwrap_or("-")
        );
    }
    s
}

/// `1h02m`, `10m00s`, `42s`.
pub fn human(secs: u64) -> String {
    let d = Duration::from_secs(secs);
    let (h, m, s) = (d.as_secs() / 3600, d.as_secs() / 60 % 60, d.as_secs() % 60);
    if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}
