//! What the kernel says about a process: CPU time and resident memory,
//! from `/proc/<pid>/stat` and `/proc/<pid>/status`, and the machine.

use std::path::Path;

/// Clock ticks per second of `utime`/`stime` (`USER_HZ`, 100 on Linux for
/// every mainstream architecture).
pub const CLK_TCK: f64 = 100.0;

/// CPU seconds (user + system) the process has used.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// `utime + stime` in seconds from a `/proc/<pid>/stat` line. The command
/// name may hold spaces and parentheses: fields are counted after the last
/// `)`.
pub fn parse_stat(text: &str) -> Option<f64> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After `)`: state is field 3, so utime (14) and stime (15) are 11 and 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / CLK_TCK)
}

/// Busy and total CPU seconds of the whole machine (all CPUs), from the
/// first line of `/proc/stat`: busy is everything but idle and iowait.
pub fn machine_cpu_seconds() -> Option<(f64, f64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    parse_machine_stat(&text)
}

/// `(busy, total)` seconds from a `/proc/stat` text (its `cpu ` line).
pub fn parse_machine_stat(text: &str) -> Option<(f64, f64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse::<f64>())
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal (guest is in user).
    let total: f64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0.0);
    Some(((total - idle) / CLK_TCK, total / CLK_TCK))
}

/// Resident memory of the process, KiB: all of it (`VmRSS`) and its
/// anonymous part (`RssAnon`: heap and stacks, without the binary's pages,
/// which grow as more code runs but not with calls).
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((parse_rss(&text)?, status_kib(&text, "RssAnon:")?))
}

/// `VmRSS` (KiB) from a `/proc/<pid>/status` text.
pub fn parse_rss(text: &str) -> Option<u64> {
    status_kib(text, "VmRSS:")
}

/// A `kB` field of a `/proc/<pid>/status` text.
fn status_kib(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The machine a figure was measured on.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Machine {
    /// CPUs available to the process.
    pub nproc: usize,
    /// `model name` of `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Total memory, MiB.
    pub mem_total_mib: u64,
}

/// This machine.
pub fn machine() -> Machine {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem_total_mib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kib| kib / 1024)
        .unwrap_or(0);
    Machine {
        nproc: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        cpu_model,
        mem_total_mib,
    }
}

/// Whether `/proc` is there (Linux).
pub fn available() -> bool {
    Path::new("/proc/self/stat").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "42 (tal ky) S 1 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_stat(line), Some(3.0));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn rss_is_read_in_kib() {
        let text = "Name:\ttalky\nVmPeak:\t  9000 kB\nVmRSS:\t  1234 kB\n";
        assert_eq!(parse_rss(text), Some(1234));
        assert_eq!(parse_rss("Name: x\n"), None);
        assert_eq!(status_kib("RssAnon:\t  77 kB\n", "RssAnon:"), Some(77));
    }

    #[test]
    fn machine_busy_time_leaves_out_idle_and_iowait() {
        let text = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(parse_machine_stat(text), Some((1.5, 10.0)));
        assert_eq!(parse_machine_stat("intr 1 2\n"), None);
    }

    #[test]
    fn this_process_is_measurable() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).is_some());
        assert!(rss_kib(pid).is_some_and(|(all, anon)| all >= anon && anon > 0));
        assert!(machine().nproc >= 1);
        assert!(machine_cpu_seconds().is_some_and(|(b, t)| b > 0.0 && t >= b));
    }
}
