//! Local Kafka-compatible clusters for tests, tooling and the demo.
//!
//! Each cluster is one `nisshi` broker process (see `shared/reference/test-broker.md`) on a
//! free 127.0.0.1 port, with its data in a directory this crate owns. A cluster can be stopped
//! (SIGTERM or SIGKILL) and started again on the same port and data, which is how tests play a
//! regional outage. Every process started here is killed by PID when its handle is dropped, so a
//! failing test never leaves a broker behind.
//!
//! This crate deliberately has no Kafka client dependency: readiness is checked with a
//! hand-encoded ApiVersions request, the smallest real Kafka exchange there is.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The broker version every test, tool and the demo are written against.
pub const NISSHI_VERSION: &str = "0.8.1";

/// How long a broker may take to answer its first Kafka request.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the test broker `nisshi {NISSHI_VERSION}` is not installed ({detail}); \
         install it with `cargo xtask install-broker`"
    )]
    BrokerMissing { detail: String },
    #[error("installing nisshi {NISSHI_VERSION} failed: {0}")]
    Install(String),
    #[error("cluster `{name}`: {message}")]
    Cluster { name: String, message: String },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Finds an installed `nisshi` of the pinned version: `$NISSHI_BIN`, then `PATH`, then the cargo
/// bin directory (where `cargo install` puts it even when that directory is not on `PATH`).
pub fn find_nisshi() -> Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(explicit) = std::env::var_os("NISSHI_BIN") {
        candidates.push(PathBuf::from(explicit));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join("nisshi")));
    }
    candidates.push(cargo_bin_dir().join("nisshi"));

    let mut seen = Vec::new();
    for candidate in candidates {
        if !candidate.is_file() {
            continue;
        }
        match Command::new(&candidate).arg("--version").output() {
            Ok(out) if String::from_utf8_lossy(&out.stdout).contains(NISSHI_VERSION) => {
                return Ok(candidate)
            }
            Ok(out) => seen.push(format!(
                "{} is version `{}`",
                candidate.display(),
                String::from_utf8_lossy(&out.stdout).trim()
            )),
            Err(e) => seen.push(format!("{} does not run: {e}", candidate.display())),
        }
    }
    let detail = if seen.is_empty() {
        "not found on PATH or in the cargo bin directory".to_string()
    } else {
        seen.join("; ")
    };
    Err(Error::BrokerMissing { detail })
}

/// Returns the pinned `nisshi`, installing it with `cargo install` first when it is missing.
/// A cold install compiles for about 14 minutes; cargo's own progress goes to stderr.
pub fn ensure_nisshi() -> Result<PathBuf> {
    if let Ok(path) = find_nisshi() {
        return Ok(path);
    }
    eprintln!(
        "installing the test broker nisshi {NISSHI_VERSION} (about 14 minutes the first time) ..."
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["install", "nisshi", "--version", NISSHI_VERSION, "--locked"])
        // One dependency declares a newer rustc than this machine has; it compiles fine.
        .arg("--ignore-rust-version")
        .args(["--no-default-features", "--features", "dynostore,libsql"])
        .status()?;
    if !status.success() {
        return Err(Error::Install(format!(
            "cargo install exited with {status}"
        )));
    }
    find_nisshi()
}

fn cargo_bin_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        return PathBuf::from(home).join("bin");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cargo").join("bin")
}

/// Where a cluster keeps its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Fast, lost when the broker stops.
    Memory,
    /// A sqlite file in the cluster's data directory: survives a stop and restart.
    Sqlite,
}

/// How to stop a broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// Ask politely; SIGKILL follows if it has not exited after ten seconds.
    Term,
    /// Crash it.
    Kill,
}

/// One broker process serving one cluster.
#[derive(Debug)]
pub struct LocalCluster {
    name: String,
    port: u16,
    storage: Storage,
    data_dir: PathBuf,
    binary: PathBuf,
    child: Option<Child>,
    /// In a process group of its own, so that a Ctrl-C in the terminal reaches only the
    /// program that owns the cluster, which then stops everything in order.
    detached: bool,
}

impl LocalCluster {
    /// Starts a cluster named `name` with its data under `data_dir`, on `port` or, if `None`,
    /// on a free port. Returns once the broker answers a Kafka request.
    pub fn start(
        binary: &Path,
        name: &str,
        port: Option<u16>,
        storage: Storage,
        data_dir: &Path,
    ) -> Result<Self> {
        Self::start_with(binary, name, port, storage, data_dir, false)
    }

    fn start_with(
        binary: &Path,
        name: &str,
        port: Option<u16>,
        storage: Storage,
        data_dir: &Path,
        detached: bool,
    ) -> Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        // A free port can be taken by someone else between our probe and the broker's bind:
        // try a few when the port is ours to choose.
        let attempts = if port.is_some() { 1 } else { 5 };
        let mut last_error = None;
        for _ in 0..attempts {
            let mut cluster = LocalCluster {
                name: name.to_string(),
                port: match port {
                    Some(p) => p,
                    None => free_port()?,
                },
                storage,
                data_dir: data_dir.to_path_buf(),
                binary: binary.to_path_buf(),
                child: None,
                detached,
            };
            match cluster.spawn_and_wait() {
                Ok(()) => return Ok(cluster),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| cluster_error(name, "could not start")))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Stops the broker and waits until its process is gone.
    pub fn stop(&mut self, signal: StopSignal) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        match signal {
            StopSignal::Kill => {
                let _ = child.kill();
            }
            StopSignal::Term => {
                send_signal(&child, libc::SIGTERM);
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    if child.try_wait()?.is_some() {
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = child.kill();
            }
        }
        child.wait()?;
        Ok(())
    }

    /// Starts the broker again on the same port and data.
    pub fn restart(&mut self) -> Result<()> {
        self.stop(StopSignal::Term)?;
        // The old listener's port can linger for a moment after the process is gone.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn storage_url(&self) -> String {
        match self.storage {
            Storage::Memory => format!("memory://{}/", self.name),
            Storage::Sqlite => format!("sqlite://{}.db", self.name),
        }
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.join(format!("{}.log", self.name))
    }

    fn spawn_and_wait(&mut self) -> Result<()> {
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let mut command = Command::new(&self.binary);
        if self.detached {
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
        }
        let child = command
            .arg("broker")
            .args(["--cluster-id", &self.name])
            .args(["--listener-url", &listener])
            .args(["--advertised-listener-url", &listener])
            .args(["--storage-engine", &self.storage_url()])
            .arg("--silent")
            .current_dir(&self.data_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(cluster_error(
                    &self.name,
                    &format!(
                        "broker exited with {status} while starting on port {}: {}",
                        self.port,
                        tail(&self.log_path())
                    ),
                ));
            }
            if answers_api_versions(self.port) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.stop(StopSignal::Kill);
                return Err(cluster_error(
                    &self.name,
                    &format!(
                        "no Kafka answer on port {} after {READY_TIMEOUT:?}",
                        self.port
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = self.stop(StopSignal::Kill);
    }
}

/// A set of named clusters sharing one data directory (a temporary one unless given).
pub struct Clusters {
    clusters: Vec<LocalCluster>,
    // Dropped after the clusters (field order), so brokers are dead before their files go.
    _temp: Option<tempfile::TempDir>,
    dir: PathBuf,
}

impl Clusters {
    /// Starts one cluster per name on free ports, with data in a fresh temporary directory
    /// that is removed on drop.
    pub fn start(names: &[&str], storage: Storage) -> Result<Self> {
        let temp = tempfile::Builder::new().prefix("localcluster-").tempdir()?;
        let dir = temp.path().to_path_buf();
        let ports = vec![None; names.len()];
        let mut clusters = Self::start_in(&dir, names, &ports, storage)?;
        clusters._temp = Some(temp);
        Ok(clusters)
    }

    /// Starts clusters with data under `dir` (kept after drop), each on the given port or a
    /// free one.
    pub fn start_in(
        dir: &Path,
        names: &[&str],
        ports: &[Option<u16>],
        storage: Storage,
    ) -> Result<Self> {
        Self::start_in_with(dir, names, ports, storage, false)
    }

    /// As [`Clusters::start_in`], each broker in a process group of its own: a Ctrl-C in the
    /// terminal then reaches only the caller, which stops the brokers when it is done with them.
    pub fn start_detached(
        dir: &Path,
        names: &[&str],
        ports: &[Option<u16>],
        storage: Storage,
    ) -> Result<Self> {
        Self::start_in_with(dir, names, ports, storage, true)
    }

    fn start_in_with(
        dir: &Path,
        names: &[&str],
        ports: &[Option<u16>],
        storage: Storage,
        detached: bool,
    ) -> Result<Self> {
        let binary = find_nisshi()?;
        let mut clusters = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let port = ports.get(i).copied().flatten();
            clusters.push(LocalCluster::start_with(
                &binary,
                name,
                port,
                storage,
                &dir.join(name),
                detached,
            )?);
        }
        Ok(Clusters {
            clusters,
            _temp: None,
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn iter(&self) -> impl Iterator<Item = &LocalCluster> {
        self.clusters.iter()
    }

    /// The cluster named `name`; panics on a name that was not started (a programming error).
    pub fn get(&self, name: &str) -> &LocalCluster {
        self.clusters
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no local cluster named `{name}`"))
    }

    pub fn get_mut(&mut self, name: &str) -> &mut LocalCluster {
        self.clusters
            .iter_mut()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no local cluster named `{name}`"))
    }

    /// `bootstrap.servers` of the named cluster.
    pub fn bootstrap(&self, name: &str) -> String {
        self.get(name).bootstrap()
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Sends ApiVersions v0 and checks for a well-formed, error-free answer.
fn answers_api_versions(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let correlation_id: i32 = 0x6c63; // arbitrary, checked on the way back
    let client_id = b"localcluster";
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
    body.extend_from_slice(&0i16.to_be_bytes()); // version 0
    body.extend_from_slice(&correlation_id.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    let mut request = (body.len() as i32).to_be_bytes().to_vec();
    request.extend_from_slice(&body);
    if stream.write_all(&request).is_err() {
        return false;
    }
    let mut header = [0u8; 10]; // size, correlation id, error code
    if stream.read_exact(&mut header).is_err() {
        return false;
    }
    let answered_id = i32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let error_code = i16::from_be_bytes([header[8], header[9]]);
    answered_id == correlation_id && error_code == 0
}

fn send_signal(child: &Child, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with the PID of a child we have not yet reaped.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

fn cluster_error(name: &str, message: &str) -> Error {
    Error::Cluster {
        name: name.to_string(),
        message: message.to_string(),
    }
}

/// The last lines of a broker log, for error messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(10);
    lines[start..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_bindable() {
        let port = free_port().unwrap();
        assert!(TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok());
    }

    #[test]
    fn a_closed_port_does_not_answer() {
        let port = free_port().unwrap();
        assert!(!answers_api_versions(port));
    }
}
