//! CPU time and memory of a process group, read from /proc: the proxy's
//! processes (nginx's master and workers, rampart's or HAProxy's one
//! process) and the backend's are each started in a group of their own.

use std::time::{Duration, Instant};

use ::tests::process::Spawned;

/// What the benchmark reads from one `/proc/PID/stat` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `R`, `S`, ..., `Z` for a zombie.
    pub state: char,
    pub pgrp: i32,
    /// utime + stime, in clock ticks (every thread of the process, the exited ones included).
    pub cpu_ticks: u64,
}

/// Parses a `/proc/PID/stat` line. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from its last `)`.
pub fn parse_stat(line: &str) -> Option<Stat> {
    let rest = line.get(line.rfind(')')? + 1..)?;
    // After the name: state(3) ppid(4) pgrp(5) ... utime(14) stime(15).
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3).copied();
    Some(Stat {
        state: field(3)?.chars().next()?,
        pgrp: field(5)?.parse().ok()?,
        cpu_ticks: field(14)?.parse::<u64>().ok()? + field(15)?.parse::<u64>().ok()?,
    })
}

/// The `VmHWM` (peak resident set) of a `/proc/PID/status` text, in KiB.
pub fn parse_hwm_kib(status: &str) -> Option<f64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

fn pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
}

fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The live (not zombie) processes of group `pgid`.
pub fn group_pids(pgid: i32) -> Vec<u32> {
    pids()
        .filter(|p| stat(*p).is_some_and(|s| s.pgrp == pgid && s.state != 'Z'))
        .collect()
}

/// A child started in a process group of its own (`process_group(0)`),
/// which is stopped as a whole: SIGTERM to the group, up to 3 s for it to
/// go, then SIGKILL. (Killing only nginx's master would leave its workers.)
pub struct Group(pub Spawned);

impl Group {
    pub fn pgid(&self) -> i32 {
        self.0.pid()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let pgid = self.pgid();
        // SAFETY: signals only the group this child leads.
        unsafe { libc::killpg(pgid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while !group_pids(pgid).is_empty() && Instant::now() < deadline {
            let _ = self.0.exited();
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above; a group already gone makes this a no-op (ESRCH).
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
    }
}

/// User + system CPU seconds of every live process of group `pgid`.
pub fn group_cpu_seconds(pgid: i32) -> f64 {
    // SAFETY: sysconf takes a constant and reads no memory of ours.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let ticks: u64 = group_pids(pgid)
        .into_iter()
        .filter_map(stat)
        .map(|s| s.cpu_ticks)
        .sum();
    ticks as f64 / tick
}

/// Peak resident memory of group `pgid`'s processes, summed, in MiB.
pub fn group_peak_rss_mib(pgid: i32) -> f64 {
    group_pids(pgid)
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| parse_hwm_kib(&s))
        .sum::<f64>()
        / 1024.0
}

/// The 1-, 5- and 15-minute load averages (`/proc/loadavg`).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line = "4242 (nginx: worker (x) y) S 4241 4241 4241 0 -1 4194624 \
                    900 0 0 0 1234 567 0 0 20 0 1 0 100 1000 200 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'S',
                pgrp: 4241,
                cpu_ticks: 1234 + 567
            })
        );
    }

    #[test]
    fn a_short_or_garbled_stat_line_is_none() {
        assert_eq!(parse_stat("12 (x) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis here"), None);
        assert_eq!(
            parse_stat("1 (x) S 0 abc 1 0 -1 0 0 0 0 0 5 6 0"),
            None,
            "a pgrp that is not a number"
        );
    }

    #[test]
    fn this_process_is_in_its_own_group_listing() {
        let me = std::process::id();
        let s = stat(me).expect("own stat");
        assert!(group_pids(s.pgrp).contains(&me));
    }

    #[test]
    fn hwm_is_read_in_kib() {
        let status = "Name:\tnginx\nVmPeak:\t  1000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(parse_hwm_kib(status), Some(2048.0));
        assert_eq!(parse_hwm_kib("Name:\tx\n"), None);
    }
}
