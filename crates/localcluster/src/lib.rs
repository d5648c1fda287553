//! Local Kafka clusters for tests, tooling and the demo, on two brokers:
//!
//! - **Apache Kafka** (the reference; [`Broker::Kafka`]): one KRaft node (broker and controller
//!   in one JVM) per cluster, from jars that `cargo xtask install-kafka` fetches from Maven
//!   Central. The integration tests and the benchmark run on it. See [`kafka`].
//! - **nisshi** ([`Broker::Nisshi`]): the Kafka-compatible broker the demo embeds; it needs only
//!   a Rust toolchain (`cargo xtask install-broker`). See [`nisshi`].
//!
//! `MIRRORCAST_TEST_BROKER=kafka|nisshi` picks the broker of [`Clusters::start`] (Kafka unless
//! said otherwise). Each cluster listens on free 127.0.0.1 ports, with its data in a directory
//! this crate owns. A cluster can be stopped (SIGTERM or SIGKILL) and started again on the same
//! port and data, which is how tests play a regional outage. Every process started here is
//! killed by PID when its handle is dropped, so a failing test never leaves a broker behind.
//!
//! This crate deliberately has no Kafka client dependency: readiness is checked with a
//! hand-encoded ApiVersions request, the smallest real Kafka exchange there is.
//!
//! # What differs between nisshi and Apache Kafka (found while moving the suite to Kafka)
//!
//! | | Apache Kafka 4.1 | nisshi 0.8.1 |
//! |---|---|---|
//! | start-up | a JVM: about 3 s to the first answer, plus 2 s to format a new node; about 300 MiB resident each | well under a second |
//! | storage | always a log directory on disk, durable across SIGKILL ([`Storage`] is ignored) | memory or sqlite |
//! | transactions | yes (transactional producers, control markers, read_committed) | InitProducerId with a transactional id refused |
//! | CreatePartitions, ACLs | yes (ACLs with the StandardAuthorizer of [`KafkaOptions::authorizer`]) | no; ACL calls answer SECURITY_DISABLED |
//! | DescribeConfigs | every key with its source (topic override, static or dynamic broker config, default) | only keys set on the topic |
//! | unknown topic in a Metadata request | auto-created only when the broker's `auto.create.topics.enable` (default true) and the client asks; 1 partition here (`num.partitions=1`) | always auto-created, 4 partitions |
//! | fetch | returns as soon as `fetch.min.bytes` is there | waits the full `fetch.wait.max.ms` |
//! | compaction | the log cleaner compacts closed segments, leaving offset gaps (a segment rolls by `segment.ms` measured on record timestamps: records that all carry one old timestamp never roll it) | none |
//! | replication factor above the broker count | refused (InvalidReplicationFactor): single-node tests set every internal topic's factor to 1 | accepted |
//! | SASL, TLS | SCRAM-SHA-512 over TLS with [`Security::SaslSsl`] (users made at format time, a CA per cluster made with openssl) | SCRAM on sqlite only, TLS with its own flags |
//!
//! Found by running the suite on Apache Kafka, and fixed in mirrorcast: the source reader used
//! librdkafka's default `read_committed` where MM2 reads uncommitted; the lag of a partition
//! whose log ends in a transaction marker never reached 0; the scenario's resource asked for
//! replication factor 3 on single-node clusters, which nisshi had accepted.

pub mod kafka;
pub mod kdc;
pub mod nisshi;
pub mod proxy;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka::KafkaPorts;
pub use kafka::{
    ensure_kafka, ensure_kafka_release, find_kafka, find_kafka_release, kafka_version,
    release_for_exactly_once_through_failures, KafkaInstall, KafkaOptions, MirrorMaker, Security,
    KAFKA_VERSION, KAFKA_VERSION_ENV, MARKER_SAFE_KAFKA_VERSION, OLDER_KAFKA_VERSION,
};
pub use kdc::Kdc;
pub use nisshi::{ensure_nisshi, find_nisshi};
pub use proxy::{Fault, FaultProxy};

/// The nisshi version the demo and the nisshi runs are written against.
pub const NISSHI_VERSION: &str = "0.8.1";

/// The environment variable that picks the broker of [`Clusters::start`].
pub const BROKER_ENV: &str = "MIRRORCAST_TEST_BROKER";

/// How long a broker may take to answer its first Kafka request.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the test broker `nisshi {NISSHI_VERSION}` is not installed ({detail}); \
         install it with `cargo xtask install-broker`"
    )]
    BrokerMissing { detail: String },
    #[error(
        "Apache Kafka {version} is not installed ({detail}); \
         install it with `cargo xtask install-kafka`"
    )]
    KafkaMissing { version: String, detail: String },
    #[error(
        "Java 17 or newer is needed to run Apache Kafka ({detail}); install it with \
         `apt-get install openjdk-17-jdk-headless maven`, then run `cargo xtask install-kafka`"
    )]
    JavaMissing { detail: String },
    #[error("{BROKER_ENV}={0:?} is not a broker this harness runs: use `kafka` or `nisshi`")]
    UnknownBroker(String),
    #[error("installing failed: {0}")]
    Install(String),
    #[error("cluster `{name}`: {message}")]
    Cluster { name: String, message: String },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which broker serves a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    /// Apache Kafka, the reference.
    Kafka,
    /// nisshi, the demo's embedded broker.
    Nisshi,
}

impl Broker {
    /// `$MIRRORCAST_TEST_BROKER` (`kafka` or `nisshi`); Apache Kafka when unset.
    pub fn from_env() -> Result<Broker> {
        match std::env::var(BROKER_ENV) {
            Err(_) => Ok(Broker::Kafka),
            Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
                "" | "kafka" => Ok(Broker::Kafka),
                "nisshi" => Ok(Broker::Nisshi),
                _ => Err(Error::UnknownBroker(v)),
            },
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Broker::Kafka => "kafka",
            Broker::Nisshi => "nisshi",
        }
    }
}

/// Where a nisshi cluster keeps its records. Apache Kafka always keeps a log directory on disk,
/// which survives a stop and restart, whichever is asked for.
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

/// The broker program behind one cluster.
#[derive(Debug, Clone)]
enum Backend {
    Nisshi {
        binary: PathBuf,
        storage: Storage,
    },
    Kafka {
        install: KafkaInstall,
        options: KafkaOptions,
        /// The ports besides the client port (the cluster's), kept across restarts.
        other_ports: Option<OtherPorts>,
    },
}

/// The ports of a Kafka node besides its client port.
#[derive(Debug, Clone, Copy)]
struct OtherPorts {
    controller: u16,
    internal: u16,
    /// With [`KafkaOptions::faults`]: the listener behind the relay, and the relay's port,
    /// which that listener advertises.
    faulty: Option<(u16, u16)>,
}

/// One broker process serving one cluster.
#[derive(Debug)]
pub struct LocalCluster {
    name: String,
    port: u16,
    data_dir: PathBuf,
    backend: Backend,
    child: Option<Child>,
    /// In a process group of its own, so that a Ctrl-C in the terminal reaches only the
    /// program that owns the cluster, which then stops everything in order.
    detached: bool,
    /// With [`KafkaOptions::faults`]: the relay in front of the faulty listener. It outlives
    /// broker restarts.
    relay: Option<FaultProxy>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FaultProxy({})", self.port())
    }
}

impl LocalCluster {
    fn start_with(
        backend: Backend,
        name: &str,
        port: Option<u16>,
        data_dir: &Path,
        detached: bool,
    ) -> Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        // A free port can be taken by someone else between our probe and the broker's bind:
        // try a few when the port is ours to choose.
        let attempts = if port.is_some() { 1 } else { 5 };
        let mut last_error = None;
        for attempt in 0..attempts {
            let dir = if attempt == 0 {
                data_dir.to_path_buf()
            } else {
                // A Kafka node remembers its ports in its configuration: start afresh.
                data_dir.join(format!("attempt-{attempt}"))
            };
            let mut cluster = LocalCluster {
                name: name.to_string(),
                port: match port {
                    Some(p) => p,
                    None => free_port()?,
                },
                data_dir: dir,
                backend: backend.clone(),
                child: None,
                detached,
                relay: None,
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

    /// Which broker serves this cluster.
    pub fn broker(&self) -> Broker {
        match self.backend {
            Backend::Nisshi { .. } => Broker::Nisshi,
            Backend::Kafka { .. } => Broker::Kafka,
        }
    }

    /// `127.0.0.1:PORT` of a listener without TLS or authentication: the client port, or for a
    /// SASL_SSL cluster its internal listener (for test fixtures that set up and read data).
    pub fn plaintext_bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.plaintext_port())
    }

    fn plaintext_port(&self) -> u16 {
        match &self.backend {
            Backend::Kafka {
                options,
                other_ports: Some(OtherPorts { internal, .. }),
                ..
            } if options.security.secured() => *internal,
            _ => self.port,
        }
    }

    /// The PEM certificate of the CA that signed a TLS cluster's certificate.
    pub fn ca_certificate(&self) -> Option<PathBuf> {
        match &self.backend {
            Backend::Kafka { options, .. } if options.security.tls() => {
                Some(self.data_dir.join("ca.pem"))
            }
            _ => None,
        }
    }

    /// A client certificate for `cn` signed by a TLS cluster's CA, as `(key, certificate)` PEM
    /// files written into `out` (a mutual-TLS cluster takes `CN=<cn>` as the principal).
    pub fn client_certificate(&self, cn: &str, out: &Path) -> Result<(PathBuf, PathBuf)> {
        if self.ca_certificate().is_none() {
            return Err(cluster_error(
                &self.name,
                "not a TLS cluster, no CA to sign a client certificate",
            ));
        }
        kafka::make_client_certificate(&self.data_dir, cn, out)
    }

    /// The relay in front of a cluster started with [`KafkaOptions::faults`]: break the
    /// connections of clients that bootstrap through [`LocalCluster::faulty_bootstrap`].
    pub fn faults(&self) -> Option<&FaultProxy> {
        self.relay.as_ref()
    }

    /// `127.0.0.1:PORT` of the relay: clients bootstrapped here stay behind it (the listener
    /// behind it advertises the relay's port).
    pub fn faulty_bootstrap(&self) -> Option<String> {
        self.relay.as_ref().map(FaultProxy::address)
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
                send_signal(&child, rustix::process::Signal::TERM);
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
        self.start()
    }

    /// Starts a stopped broker on the same port and data.
    pub fn start(&mut self) -> Result<()> {
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

    fn log_path(&self) -> PathBuf {
        self.data_dir.join(format!("{}.log", self.name))
    }

    /// The command that runs the broker, preparing its files first where the broker needs any.
    fn command(&mut self) -> Result<Command> {
        match &mut self.backend {
            Backend::Nisshi { binary, storage } => {
                let listener = format!("tcp://127.0.0.1:{}", self.port);
                let storage_url = match storage {
                    Storage::Memory => format!("memory://{}/", self.name),
                    Storage::Sqlite => format!("sqlite://{}.db", self.name),
                };
                let mut command = Command::new(binary);
                command
                    .arg("broker")
                    .args(["--cluster-id", &self.name])
                    .args(["--listener-url", &listener])
                    .args(["--advertised-listener-url", &listener])
                    .args(["--storage-engine", &storage_url])
                    .arg("--silent")
                    .current_dir(&self.data_dir);
                Ok(command)
            }
            Backend::Kafka {
                install,
                options,
                other_ports,
            } => {
                let ports = match other_ports {
                    Some(ports) => *ports,
                    None => {
                        let faulty = if options.faults {
                            // The relay binds its own port first: it is what the listener
                            // behind it advertises, and it stays through restarts.
                            let listener = free_port()?;
                            let upstream = SocketAddr::from((Ipv4Addr::LOCALHOST, listener));
                            let relay = FaultProxy::start(0, upstream)?;
                            let advertised = relay.port();
                            self.relay = Some(relay);
                            Some((listener, advertised))
                        } else {
                            None
                        };
                        *other_ports.insert(OtherPorts {
                            controller: free_port()?,
                            internal: free_port()?,
                            faulty,
                        })
                    }
                };
                let ports = KafkaPorts {
                    client: self.port,
                    controller: ports.controller,
                    internal: ports.internal,
                    faulty: ports.faulty,
                };
                kafka::prepare_node(install, &self.name, &self.data_dir, ports, options)?;
                Ok(kafka::node_command(install, &self.data_dir, options))
            }
        }
    }

    fn spawn_and_wait(&mut self) -> Result<()> {
        let mut command = self.command()?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        if self.detached {
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
        }
        let child = command
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
            // A SASL_SSL node answers plaintext on its internal listener only.
            if answers_api_versions(self.plaintext_port()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.stop(StopSignal::Kill);
                return Err(cluster_error(
                    &self.name,
                    &format!(
                        "no Kafka answer on port {} after {READY_TIMEOUT:?}: {}",
                        self.port,
                        tail(&self.log_path())
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
    /// Starts one cluster per name on free ports, on the broker `$MIRRORCAST_TEST_BROKER`
    /// names (Apache Kafka by default), with data in a fresh temporary directory that is
    /// removed on drop.
    pub fn start(names: &[&str], storage: Storage) -> Result<Self> {
        Self::start_on(Broker::from_env()?, names, storage)
    }

    /// As [`Clusters::start`], on the given broker.
    pub fn start_on(broker: Broker, names: &[&str], storage: Storage) -> Result<Self> {
        let backend = match broker {
            Broker::Nisshi => Backend::Nisshi {
                binary: find_nisshi()?,
                storage,
            },
            Broker::Kafka => Backend::Kafka {
                install: find_kafka()?,
                options: KafkaOptions::default(),
                other_ports: None,
            },
        };
        Self::start_temp(backend, names)
    }

    /// Apache Kafka clusters with security or an authorizer.
    pub fn start_kafka(names: &[&str], options: &KafkaOptions) -> Result<Self> {
        let install = match &options.release {
            Some(version) => find_kafka_release(version)?,
            None => find_kafka()?,
        };
        let backend = Backend::Kafka {
            install,
            options: options.clone(),
            other_ports: None,
        };
        Self::start_temp(backend, names)
    }

    fn start_temp(backend: Backend, names: &[&str]) -> Result<Self> {
        let temp = tempfile::Builder::new().prefix("localcluster-").tempdir()?;
        let dir = temp.path().to_path_buf();
        let ports = vec![None; names.len()];
        let mut clusters = Self::start_all(backend, &dir, names, &ports, false)?;
        clusters._temp = Some(temp);
        Ok(clusters)
    }

    /// nisshi clusters with data under `dir` (kept after drop), each on the given port or a
    /// free one, each broker in a process group of its own: a Ctrl-C in the terminal then
    /// reaches only the caller, which stops the brokers when it is done with them (the demo).
    pub fn start_detached(
        dir: &Path,
        names: &[&str],
        ports: &[Option<u16>],
        storage: Storage,
    ) -> Result<Self> {
        let backend = Backend::Nisshi {
            binary: find_nisshi()?,
            storage,
        };
        Self::start_all(backend, dir, names, ports, true)
    }

    /// Starts the clusters side by side (a JVM takes seconds to start).
    fn start_all(
        backend: Backend,
        dir: &Path,
        names: &[&str],
        ports: &[Option<u16>],
        detached: bool,
    ) -> Result<Self> {
        let started: Vec<Result<LocalCluster>> = std::thread::scope(|scope| {
            let handles: Vec<_> = names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let backend = backend.clone();
                    let port = ports.get(i).copied().flatten();
                    let data_dir = dir.join(name);
                    scope.spawn(move || {
                        LocalCluster::start_with(backend, name, port, &data_dir, detached)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(cluster_error("?", "starting thread panicked")))
                })
                .collect()
        });
        // On an error the clusters that did start are dropped, hence killed.
        let clusters = started.into_iter().collect::<Result<Vec<_>>>()?;
        Ok(Clusters {
            clusters,
            _temp: None,
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The broker serving these clusters.
    pub fn broker(&self) -> Option<Broker> {
        self.clusters.first().map(LocalCluster::broker)
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

/// kill(2) to a child we have not yet reaped (so its PID is still its own); errors ignored.
pub(crate) fn send_signal(child: &Child, signal: rustix::process::Signal) {
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

pub(crate) fn cluster_error(name: &str, message: &str) -> Error {
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
