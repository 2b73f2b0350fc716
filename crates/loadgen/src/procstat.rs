//! Memory and CPU of a process (the server, or this generator) from `/proc`.

use std::time::Instant;

use anyhow::Context;

/// `/proc/PID/stat` counts CPU time in USER_HZ ticks, which Linux fixes at 100 per second for
/// every architecture's user-visible interface, whatever the kernel's internal HZ.
const TICKS_PER_SECOND: f64 = 100.0;

/// One reading of a process.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub at: Instant,
    pub rss_bytes: u64,
    /// User plus system time of all its threads.
    pub cpu_seconds: f64,
}

/// Reads the process now.
pub fn sample(pid: u32) -> anyhow::Result<Sample> {
    let at = Instant::now();
    Ok(Sample {
        at,
        rss_bytes: rss_bytes(pid)?,
        cpu_seconds: cpu_seconds(pid)?,
    })
}

/// Resident memory from `VmRSS` in `/proc/PID/status`.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .with_context(|| format!("no VmRSS in {path}"))?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("unreadable {line:?}"))?;
    Ok(kib * 1024)
}

/// `utime + stime` from `/proc/PID/stat`, in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_cpu_seconds(&stat).with_context(|| format!("unreadable {path}"))
}

/// The command name (field 2) may hold spaces and parentheses, so fields are counted from
/// the last `)`: after it come the state (field 3), ..., utime (14) and stime (15).
fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// Busy and total time of all CPUs from `/proc/stat`, in ticks, to tell whether the machine
/// as a whole was saturated during a run.
pub fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().sum();
    // idle and iowait are the 4th and 5th values.
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_the_command_name() {
        let line = "42 (tern (x) server) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0";
        assert_eq!(parse_cpu_seconds(line), Some(3.0));
    }

    #[test]
    fn this_process_can_be_read() -> anyhow::Result<()> {
        let me = sample(std::process::id())?;
        assert!(me.rss_bytes > 0);
        Ok(())
    }
}
