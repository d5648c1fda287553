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
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let peak_kb = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    (cpu, peak_kb * 1024)
}

/// CPU seconds the brokers of these clusters used so far.
pub(super) fn brokers_cpu(clusters: &Clusters, names: &[&str]) -> f64 {
    names
        .iter()
        .filter_map(|n| clusters.get(n).pid())
        .map(|pid| cpu_and_peak(pid).0)
        .sum()
}
