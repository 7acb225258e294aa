//! What a flood actually delivered, per row of the connections section:
//! the kernel's own counters on both ends of the veth and in both stacks,
//! read before and after a measurement. A row is only comparable with the
//! others if the edge took the same flood off its ring; these counters say
//! whether it did, and where the real client's packets were lost.

use std::collections::BTreeMap;

use tests::{flood::nstat, netns::Link};

/// Receive and transmit queues counted per queue (`Q` in [`SHOWN`]).
const QUEUES: usize = 2;

/// One reading of every counter, by a name that says where it was read.
#[derive(Default)]
pub struct Reading(BTreeMap<String, u64>);

/// The counters a row's report shows (a name missing from a reading is 0).
const SHOWN: &[(&str, &str)] = &[
    // The generator's side: frames it handed to the veth and those the
    // edge's ring refused (full, or no NAPI on the edge).
    ("client.tx_queue_Q_xdp_xmit", "offered"),
    ("client.tx_queue_Q_xdp_xmit_errors", "refused"),
    // The edge's ring: frames taken off it (with or without a program),
    // what the program dropped or sent back, and skbs lost at the ring.
    ("edge.rx_queue_Q_xdp_packets", "edge_took"),
    ("edge.rx_queue_Q_xdp_drops", "xdp_drop"),
    ("edge.rx_queue_Q_xdp_tx", "xdp_tx"),
    ("edge.rx_queue_Q_drops", "ring_drops"),
    ("client.rx_queue_Q_xdp_packets", "client_took"),
    ("client.rx_queue_Q_xdp_drops", "client_xdp_drop"),
    ("client.rx_queue_Q_drops", "client_ring_drops"),
    ("edge.tx_queue_Q_xdp_xmit_errors", "edge_xmit_refused"),
    ("edge.link_rx_dropped", "edge_rx_dropped"),
    ("client.link_tx_dropped", "client_tx_dropped"),
    ("edge.link_tx_dropped", "edge_tx_dropped"),
    // The edge's stack.
    ("edge.IpInReceives", "ip_in"),
    ("edge.TcpExtSyncookiesSent", "cookies_sent"),
    ("edge.TcpExtListenDrops", "listen_drops"),
    ("edge.TcpExtListenOverflows", "listen_overflows"),
    ("edge.TcpPassiveOpens", "passive_opens"),
    // The real client.
    ("client.TcpActiveOpens", "client_opens"),
    ("client.TcpExtTCPSynRetrans", "client_syn_retrans"),
    ("client.TcpRetransSegs", "client_retrans"),
    ("client.TcpExtTW", "client_time_wait"),
];

/// Reads every counter of `link` now.
pub fn read(link: &Link) -> Reading {
    let mut r = BTreeMap::new();
    for (side, ns, dev) in [
        ("edge", &link.edge, &link.edge_if),
        ("client", &link.client, &link.client_if),
    ] {
        let out = ns.command("ethtool").args(["-S", dev]).output();
        for line in out.iter().flat_map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        }) {
            let mut kv = line.splitn(2, ':');
            if let (Some(k), Some(v)) = (kv.next(), kv.next())
                && let Ok(v) = v.trim().parse::<u64>()
            {
                r.insert(format!("{side}.{}", k.trim()), v);
            }
        }
        let out = ns.ip(&["-s", "-j", "link", "show", dev]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        for dir in ["rx", "tx"] {
            for what in ["packets", "dropped"] {
                if let Some(n) = v[0]["stats64"][dir][what].as_u64() {
                    r.insert(format!("{side}.link_{dir}_{what}"), n);
                }
            }
        }
        for (k, v) in nstat(ns) {
            r.insert(format!("{side}.{k}"), v);
        }
    }
    Reading(r)
}

/// What grew between `before` and `after`.
pub struct Delta(BTreeMap<String, u64>);

impl Delta {
    pub fn new(before: &Reading, after: &Reading) -> Delta {
        Delta(
            after
                .0
                .iter()
                .map(|(k, v)| {
                    let b = before.0.get(k).copied().unwrap_or(0);
                    (k.clone(), v.saturating_sub(b))
                })
                .collect(),
        )
    }

    /// The counter read as `name` (see [`SHOWN`]), 0 if absent.
    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    /// A shown counter per queue (its `Q` replaced by 0, 1, ...), or
    /// alone for a name without `Q`.
    pub fn queues(&self, name: &str) -> Vec<u64> {
        if name.contains("_Q_") {
            (0..QUEUES)
                .map(|q| self.get(&name.replace("_Q_", &format!("_{q}_"))))
                .collect()
        } else {
            vec![self.get(name)]
        }
    }

    /// One line: every shown counter that moved, per second of `secs`
    /// (per queue: `q0+q1`).
    pub fn describe(&self, secs: f64) -> String {
        SHOWN
            .iter()
            .filter_map(|(k, label)| {
                let q = self.queues(k);
                (q.iter().sum::<u64>() > 0).then(|| {
                    let per: Vec<String> = q
                        .iter()
                        .map(|n| format!("{:.0}", *n as f64 / secs))
                        .collect();
                    format!("{label} {}/s", per.join("+"))
                })
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}
