//! CPU seconds and peak memory of processes (replicators, brokers, this one), from /proc.

use localcluster::Clusters;

/// CPU seconds and peak resident memory of a process, from /proc.
pub(super) fn cpu_and_peak(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, r)| r.split(' ').collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    (cpu, status_kb(pid, "VmHWM") * 1024)
}

/// A memory figure of `/proc/<pid>/status` (`VmHWM`: peak resident, `VmRSS`: resident now),
/// in KiB; 0 when unknown.
pub(super) fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| {
            l.strip_prefix(field)
                .is_some_and(|rest| rest.starts_with(':'))
        })
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
}

/// CPU seconds the brokers of these clusters used so far.
pub(super) fn brokers_cpu(clusters: &Clusters, names: &[&str]) -> f64 {
    names
        .iter()
        .filter_map(|n| clusters.get(n).pid())
        .map(|pid| cpu_and_peak(pid).0)
        .sum()
}
