//! Running the `mirrorcast` binary: a replicator process, and one-shot commands
//! (`translate-offsets`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::now_ms;

/// A `mirrorcast` process, killed on drop; its log goes to a file for failure messages.
pub struct Replicator {
    child: Option<Child>,
    log: PathBuf,
}

impl Replicator {
    pub fn start(config: &Path, args: &[&str]) -> Self {
        Self::start_logging(config, args, "info")
    }

    /// [`Replicator::start`] with `RUST_LOG` set to `filter`.
    pub fn start_logging(config: &Path, args: &[&str], filter: &str) -> Self {
        Self::start_with_env(config, args, &[("RUST_LOG", filter)])
    }

    /// [`Replicator::start`] with these environment variables (`RUST_LOG` is `info` unless
    /// given).
    pub fn start_with_env(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        // Unique even for processes started in the same millisecond.
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = config.with_extension(format!("{}-{n}.log", now_ms()));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mirrorcast"))
            .arg("run")
            .arg(config)
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start mirrorcast");
        Replicator {
            child: Some(child),
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// CPU time (user + system, in clock ticks) of each of the process's threads, by name.
    pub fn thread_cpu(&self) -> BTreeMap<String, u64> {
        let mut threads = BTreeMap::new();
        let Some(pid) = self.pid() else {
            return threads;
        };
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return threads;
        };
        for task in tasks.flatten() {
            let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            // After the name in parentheses: state is field 3, utime 14, stime 15.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
            if let (Some(user), Some(system)) = (ticks(11), ticks(12)) {
                *threads.entry(name.trim().to_string()).or_default() += user + system;
            }
        }
        threads
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): the process freezes, every thread of it, as in a
    /// long garbage-collection pause or a VM stall, and later goes on.
    pub fn freeze(&self, frozen: bool) {
        let signal = if frozen {
            rustix::process::Signal::STOP
        } else {
            rustix::process::Signal::CONT
        };
        let pid = self
            .pid()
            .and_then(|pid| i32::try_from(pid).ok())
            .and_then(rustix::process::Pid::from_raw)
            .expect("a running replicator");
        rustix::process::kill_process(pid, signal).expect("signal the replicator");
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = i32::try_from(child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Replicator {
    /// Waits up to `timeout` for the process to exit by itself; its exit status.
    pub fn exit_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGTERM, asserting an exit with status 0 within `timeout`; returns the log.
    pub fn terminate_cleanly(&mut self, timeout: Duration) -> String {
        let status = self.terminate(timeout);
        let log = self.log();
        assert!(
            status.is_some_and(|s| s.success()),
            "exit status {status:?}\n{log}"
        );
        log
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `mirrorcast translate-offsets` and returns, per partition of `topic`, the translated
/// downstream offset of `group`.
pub fn translate_offsets(
    config: &Path,
    source: &str,
    target: &str,
    group: &str,
    topic: &str,
) -> BTreeMap<i32, i64> {
    try_translate_offsets(config, source, target, group, topic).unwrap_or_else(|e| panic!("{e}"))
}

/// `mirrorcast validate CONFIG`: whether it passed, and what it printed (stdout, then stderr).
pub fn validate(config: &Path) -> (bool, String) {
    let out = mirrorcast_command(&["validate", &config.display().to_string()]);
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), shown)
}

/// Runs the mirrorcast binary to its end.
pub fn mirrorcast_command(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mirrorcast"))
        .args(args)
        .output()
        .unwrap()
}

/// [`translate_offsets`], or the command's output when it fails (e.g. no checkpoints yet).
pub fn try_translate_offsets(
    config: &Path,
    source: &str,
    target: &str,
    group: &str,
    topic: &str,
) -> Result<BTreeMap<i32, i64>, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorcast"))
        .arg("translate-offsets")
        .arg(config)
        .args(["--source", source, "--target", target, "--group", group])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)));
    }
    // Lines read `TOPIC [P] UPSTREAM -> REMOTE [P] DOWNSTREAM`.
    Ok(stdout
        .lines()
        .filter_map(|line| {
            let (from, to) = line.split_once(" -> ")?;
            let mut from = from.split_whitespace();
            (from.next()? == topic).then_some(())?;
            let partition = from.next()?.trim_matches(['[', ']']).parse().ok()?;
            let downstream = to.split_whitespace().nth(2)?.parse().ok()?;
            Some((partition, downstream))
        })
        .collect())
}
