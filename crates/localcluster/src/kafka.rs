//! The Apache Kafka backend: jars from Maven Central, one KRaft node per cluster, and genuine
//! MirrorMaker 2 in dedicated mode.
//!
//! `ensure_kafka` fetches Kafka's runtime jars once (with `mvn dependency:copy-dependencies` on
//! the `kafka/pom.xml` beside this crate) into a cache directory that later runs, and CI runs on
//! the same machine, reuse. A cluster is one JVM running `kafka.Kafka` with
//! `process.roles=broker,controller`, formatted with `kafka.tools.StorageTool` before its first
//! start. Every file the node needs (server.properties, log config, certificates) lives in the
//! cluster's data directory, so a restart finds the same node with the same data.
//!
//! Notes for test writers (what differs from nisshi) are in the crate's README section of the
//! top-level docs (`lib.rs`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{cluster_error, Error, Result};

/// The Kafka release the tests and the benchmark run (Maven Central's `org.apache.kafka`): the
/// newest whose MirrorMaker 2 (`connect-mirror`) is served here.
pub const KAFKA_VERSION: &str = "4.3.1";
/// The newest release here on which exactly once holds through failures. From 4.3 the
/// transaction coordinator skips the marker of a partition that has no leader at that moment
/// (KAFKA-20734, open), so a transaction the client saw committed can end aborted across a
/// broker's restart; and librdkafka 2.12.1 can abort the process on a 4.3 coordinator's answer
/// while transactional ids move between processes (`rd_kafka_txn_set_state: Invalid
/// transaction state transition`, librdkafka PR #3331 open). Tests of exactly once through
/// broker restarts and process kills run this release
/// ([`release_for_exactly_once_through_failures`]).
pub const MARKER_SAFE_KAFKA_VERSION: &str = "4.1.1";
/// The older release line many production clusters still run: a chosen part of the suite runs
/// on it too ([`KAFKA_VERSION_ENV`]).
pub const OLDER_KAFKA_VERSION: &str = "3.9.2";
/// Names the Kafka release (and MirrorMaker 2) that clusters run, instead of [`KAFKA_VERSION`].
pub const KAFKA_VERSION_ENV: &str = "MIRRORCAST_KAFKA_VERSION";

/// The release a test of exactly once through broker restarts or process kills runs: the
/// line's, unless the line is 4.3 or newer ([`MARKER_SAFE_KAFKA_VERSION`]).
pub fn release_for_exactly_once_through_failures() -> Option<String> {
    let line = kafka_version();
    let mut numbers = line.split('.').map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    (major, minor)
        .ge(&(4, 3))
        .then(|| MARKER_SAFE_KAFKA_VERSION.to_string())
}

/// The release clusters run: `$MIRRORCAST_KAFKA_VERSION`, else [`KAFKA_VERSION`].
pub fn kafka_version() -> String {
    std::env::var(KAFKA_VERSION_ENV)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| KAFKA_VERSION.to_string())
}

const POM: &str = include_str!("../kafka/pom.xml");
/// Written last by an install, so a half-finished download is never taken for a complete one.
const COMPLETE_MARKER: &str = ".complete";

/// Kafka's own JVM performance options (`bin/kafka-run-class.sh`), with a heap small enough that
/// three clusters, MirrorMaker 2 and the tests fit comfortably in this machine's memory.
const BROKER_JVM_OPTIONS: &[&str] = &[
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
];

/// Where the jars of [`kafka_version`] are: `$MIRRORCAST_KAFKA_HOME`, else
/// `~/.cache/mirrorcast/kafka-VERSION`.
pub fn kafka_home() -> PathBuf {
    if let Some(explicit) = std::env::var_os("MIRRORCAST_KAFKA_HOME") {
        return PathBuf::from(explicit);
    }
    kafka_home_of(&kafka_version())
}

fn kafka_home_of(version: &str) -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache")
        });
    cache.join("mirrorcast").join(format!("kafka-{version}"))
}

/// An installed Kafka: a directory of jars and a working `java`.
#[derive(Debug, Clone)]
pub struct KafkaInstall {
    lib: PathBuf,
    java: PathBuf,
}

impl KafkaInstall {
    /// The classpath that holds the broker, the tools, MirrorMaker 2 and the clients, for
    /// `java -cp` and `javac -cp`.
    pub fn classpath(&self) -> String {
        format!("{}/*", self.lib.display())
    }

    pub fn lib_dir(&self) -> &Path {
        &self.lib
    }

    /// A `java` command on Kafka's classpath, logging through `log4j_config`.
    pub fn java(&self, jvm_options: &[&str], log4j_config: &Path) -> Command {
        let mut command = Command::new(&self.java);
        command
            .args(jvm_options)
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                log4j_config.display()
            ))
            .arg("-cp")
            .arg(self.classpath());
        command
    }
}

/// Finds Java and the jars of [`kafka_version`], or says which install command is missing.
pub fn find_kafka() -> Result<KafkaInstall> {
    find_kafka_in(&kafka_home(), &kafka_version())
}

/// Finds Java and the jars of `version` (installed by [`ensure_kafka_release`]).
pub fn find_kafka_release(version: &str) -> Result<KafkaInstall> {
    find_kafka_in(&kafka_home_of(version), version)
}

fn find_kafka_in(home: &Path, version: &str) -> Result<KafkaInstall> {
    let java = find_java()?;
    let lib = home.join("lib");
    if !lib.join(COMPLETE_MARKER).is_file() {
        return Err(Error::KafkaMissing {
            version: version.to_string(),
            detail: format!("no complete download in {}", lib.display()),
        });
    }
    Ok(KafkaInstall { lib, java })
}

fn find_java() -> Result<PathBuf> {
    let java = std::env::var_os("JAVA_HOME")
        .map(|home| PathBuf::from(home).join("bin").join("java"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("java"));
    match Command::new(&java).arg("-version").output() {
        Ok(out) if out.status.success() => Ok(java),
        Ok(out) => Err(Error::JavaMissing {
            detail: format!(
                "`{} -version` failed: {}",
                java.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }),
        Err(e) => Err(Error::JavaMissing {
            detail: format!("`{}` does not run: {e}", java.display()),
        }),
    }
}

/// Returns the install of [`kafka_version`], downloading it first when it is missing.
pub fn ensure_kafka() -> Result<KafkaInstall> {
    if let Ok(install) = find_kafka() {
        return Ok(install);
    }
    install_release(&kafka_home(), &kafka_version())
}

/// Returns the install of `version` (not `$MIRRORCAST_KAFKA_HOME`'s), downloading the jars with
/// Maven first when they are missing (a few seconds to a minute; Maven's local repository
/// caches them too).
pub fn ensure_kafka_release(version: &str) -> Result<KafkaInstall> {
    let home = kafka_home_of(version);
    if let Ok(install) = find_kafka_in(&home, version) {
        return Ok(install);
    }
    install_release(&home, version)
}

fn install_release(home: &Path, version: &str) -> Result<KafkaInstall> {
    find_java()?;
    std::fs::create_dir_all(home)?;
    let pom = home.join("pom.xml");
    std::fs::write(&pom, POM.replace("@KAFKA_VERSION@", version))?;
    let lib = home.join("lib");
    if lib.exists() {
        std::fs::remove_dir_all(&lib)?;
    }
    eprintln!(
        "downloading Apache Kafka {version} and MirrorMaker 2 from Maven Central into {} ...",
        lib.display()
    );
    let status = Command::new("mvn")
        .args(["-B", "-q", "-f"])
        .arg(&pom)
        .arg("dependency:copy-dependencies")
        .arg(format!("-DoutputDirectory={}", lib.display()))
        .arg("-DincludeScope=runtime")
        // Kafka 3.x also brings slf4j's log4j 1 binding: only log4j2's logs (and is configured).
        .arg("-DexcludeArtifactIds=slf4j-reload4j")
        .status()
        .map_err(|e| Error::Install(format!("cannot run `mvn` (is Maven installed?): {e}")))?;
    if !status.success() {
        return Err(Error::Install(format!(
            "mvn dependency:copy-dependencies exited with {status}"
        )));
    }
    std::fs::write(lib.join(COMPLETE_MARKER), version)?;
    find_kafka_in(home, version)
}

/// How clients reach a Kafka cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// No TLS, no authentication.
    Plaintext,
    /// SCRAM-SHA-512 over TLS (the seed's Event Streams listeners) with these users, and a
    /// certificate signed by a CA made for this cluster (`LocalCluster::ca_certificate`).
    SaslSsl { users: Vec<(String, String)> },
    /// TLS with client certificates (`ssl.client.auth=required`): the broker trusts the CA made
    /// for this cluster, which also signs the clients' certificates
    /// (`LocalCluster::client_certificate`).
    MutualTls,
    /// SASL/OAUTHBEARER without TLS, the tokens validated by Kafka's own OIDC validator against
    /// the keys this JWKS endpoint serves (KIP-768).
    Oidc { jwks_url: String },
    /// SASL/GSSAPI without TLS: the node logs in to a KDC ([`crate::Kdc::broker_security`])
    /// as `principal` with the key in `keytab`; clients get tickets for `kafka/127.0.0.1`.
    Kerberos {
        krb5_conf: PathBuf,
        keytab: PathBuf,
        principal: String,
    },
}

impl Security {
    /// Whether clients reach the cluster over TLS (with a CA made for it).
    pub fn tls(&self) -> bool {
        matches!(self, Security::SaslSsl { .. } | Security::MutualTls)
    }

    /// Whether the client listener is not plaintext (the node then has a plaintext internal one).
    pub fn secured(&self) -> bool {
        !matches!(self, Security::Plaintext)
    }
}

/// Settings of one Kafka node beyond its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaOptions {
    pub security: Security,
    /// Run the StandardAuthorizer (ACLs are enforced and can be listed) with these principals
    /// as super users besides the node itself (e.g. `User:ANONYMOUS` for plaintext clients).
    pub authorizer: Option<Vec<String>>,
    /// A second plaintext listener behind a [`crate::FaultProxy`] that advertises the relay's
    /// port ([`crate::LocalCluster::faulty_bootstrap`], [`crate::LocalCluster::faults`]).
    /// Plaintext clusters only.
    pub faults: bool,
    /// SASL_SSL only: the broker's certificate expired yesterday (clients must refuse it).
    pub expired_certificate: bool,
    /// Another installed release than the line's ([`kafka_version`]).
    pub release: Option<String>,
}

impl Default for KafkaOptions {
    fn default() -> Self {
        KafkaOptions {
            security: Security::Plaintext,
            authorizer: None,
            faults: false,
            expired_certificate: false,
            release: None,
        }
    }
}

/// The ports of one node: the one clients use, the controller's, and for SASL_SSL nodes a
/// plaintext one the node uses to talk to itself (inter-broker traffic needs no credentials).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KafkaPorts {
    pub client: u16,
    pub controller: u16,
    pub internal: u16,
    /// The faulty listener's port and the relay's port it advertises.
    pub faulty: Option<(u16, u16)>,
}

/// Writes the node's configuration into `dir` and formats its log directory, unless a previous
/// start already did (a restart keeps its data).
pub(crate) fn prepare_node(
    install: &KafkaInstall,
    name: &str,
    dir: &Path,
    ports: KafkaPorts,
    options: &KafkaOptions,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(log4j_path(dir), LOG4J2_PROPERTIES)?;
    let data = dir.join("data");
    if data.join("meta.properties").is_file() {
        return Ok(());
    }
    if options.security.tls() {
        make_certificates(name, dir, options.expired_certificate)?;
    }
    std::fs::write(
        server_properties_path(dir),
        server_properties(dir, ports, options),
    )?;
    let mut format = install.java(&["-Xmx256m"], &log4j_path(dir));
    format
        .arg("kafka.tools.StorageTool")
        .arg("format")
        .args(["--cluster-id", &cluster_id(name)])
        .arg("--config")
        .arg(server_properties_path(dir))
        .arg("--ignore-formatted");
    if let Security::SaslSsl { users } = &options.security {
        for (user, password) in users {
            format
                .arg("--add-scram")
                .arg(format!("SCRAM-SHA-512=[name={user},password={password}]"));
        }
    }
    let out = format.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(cluster_error(
            name,
            &format!(
                "formatting the Kafka log directory failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ));
    }
    Ok(())
}

/// The command that runs a prepared node; its output goes wherever the caller sends it.
pub(crate) fn node_command(install: &KafkaInstall, dir: &Path, options: &KafkaOptions) -> Command {
    let mut jvm_options: Vec<String> = BROKER_JVM_OPTIONS.iter().map(|o| o.to_string()).collect();
    if let Security::Oidc { jwks_url } = &options.security {
        // Kafka 4 fetches no OAuth URL it is not told it may.
        jvm_options.push(format!(
            "-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={jwks_url}"
        ));
    }
    if let Security::Kerberos { krb5_conf, .. } = &options.security {
        // The test realm's file, not the machine's /etc/krb5.conf.
        jvm_options.push(format!("-Djava.security.krb5.conf={}", krb5_conf.display()));
    }
    let jvm_options: Vec<&str> = jvm_options.iter().map(String::as_str).collect();
    let mut command = install.java(&jvm_options, &log4j_path(dir));
    command
        .arg("kafka.Kafka")
        .arg(server_properties_path(dir))
        .current_dir(dir);
    command
}

fn server_properties_path(dir: &Path) -> PathBuf {
    dir.join("server.properties")
}

fn log4j_path(dir: &Path) -> PathBuf {
    dir.join("log4j2.properties")
}

/// Warnings and errors only: the log is read when a start fails.
const LOG4J2_PROPERTIES: &str = "\
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = out
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
";

/// A KRaft cluster id is 16 bytes in URL-safe base64 without padding; derive it from the name
/// so that a node's id is stable across restarts and readable in its logs.
fn cluster_id(name: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = [0u8; 16];
    for (i, b) in name.bytes().enumerate() {
        bytes[i % 16] = bytes[i % 16].wrapping_mul(31).wrapping_add(b);
    }
    // 16 bytes = 128 bits = 21 full sextets and 2 bits in the 22nd.
    let mut out = String::with_capacity(22);
    let mut bits: u32 = 0;
    let mut count = 0;
    for b in bytes {
        bits = (bits << 8) | u32::from(b);
        count += 8;
        while count >= 6 {
            count -= 6;
            out.push(ALPHABET[((bits >> count) & 63) as usize] as char);
        }
    }
    if count > 0 {
        out.push(ALPHABET[((bits << (6 - count)) & 63) as usize] as char);
    }
    out
}

fn server_properties(dir: &Path, ports: KafkaPorts, options: &KafkaOptions) -> String {
    let KafkaPorts {
        client,
        controller,
        faulty,
        ..
    } = ports;
    let mut text = format!(
        "process.roles=broker,controller\n\
         node.id=1\n\
         controller.quorum.voters=1@127.0.0.1:{controller}\n\
         controller.listener.names=CONTROLLER\n\
         log.dirs={data}\n\
         num.partitions=1\n\
         offsets.topic.replication.factor=1\n\
         offsets.topic.num.partitions=5\n\
         transaction.state.log.replication.factor=1\n\
         transaction.state.log.min.isr=1\n\
         transaction.state.log.num.partitions=5\n\
         share.coordinator.state.topic.replication.factor=1\n\
         share.coordinator.state.topic.min.isr=1\n\
         group.initial.rebalance.delay.ms=0\n\
         group.consumer.min.session.timeout.ms=6000\n\
         group.consumer.session.timeout.ms=6000\n\
         group.consumer.min.heartbeat.interval.ms=1000\n\
         group.consumer.heartbeat.interval.ms=1000\n\
         log.cleaner.backoff.ms=1000\n",
        data = dir.join("data").display(),
    );
    match &options.security {
        Security::Plaintext => match faulty {
            None => text.push_str(&format!(
                "listeners=PLAINTEXT://127.0.0.1:{client},CONTROLLER://127.0.0.1:{controller}\n\
                 advertised.listeners=PLAINTEXT://127.0.0.1:{client}\n\
                 listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
                 inter.broker.listener.name=PLAINTEXT\n"
            )),
            // A client's metadata names the listener it came in on: through the relay, the
            // relay's port.
            Some((listener, relay)) => text.push_str(&format!(
                "listeners=PLAINTEXT://127.0.0.1:{client},FAULTY://127.0.0.1:{listener},CONTROLLER://127.0.0.1:{controller}\n\
                 advertised.listeners=PLAINTEXT://127.0.0.1:{client},FAULTY://127.0.0.1:{relay}\n\
                 listener.security.protocol.map=PLAINTEXT:PLAINTEXT,FAULTY:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
                 inter.broker.listener.name=PLAINTEXT\n"
            )),
        },
        Security::SaslSsl { .. } => {
            text.push_str(&secured_listeners("SASL_SSL", ports));
            text.push_str(
                "sasl.enabled.mechanisms=SCRAM-SHA-512\n\
                 listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;\n",
            );
            text.push_str(&tls_stores(dir));
        }
        Security::Oidc { jwks_url } => {
            text.push_str(&secured_listeners("SASL_PLAINTEXT", ports));
            text.push_str(&format!(
                "sasl.enabled.mechanisms=OAUTHBEARER\n\
                 listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;\n\
                 listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler\n\
                 sasl.oauthbearer.jwks.endpoint.url={jwks_url}\n"
            ));
        }
        Security::Kerberos {
            keytab, principal, ..
        } => {
            text.push_str(&secured_listeners("SASL_PLAINTEXT", ports));
            text.push_str(&format!(
                "sasl.enabled.mechanisms=GSSAPI\n\
                 sasl.kerberos.service.name={}\n\
                 listener.name.sasl_plaintext.gssapi.sasl.jaas.config=com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true storeKey=true keyTab=\"{}\" principal=\"{principal}\";\n",
                crate::kdc::KAFKA_SERVICE_NAME,
                keytab.display(),
            ));
        }
        Security::MutualTls => {
            text.push_str(&secured_listeners("SSL", ports));
            text.push_str("ssl.client.auth=required\n");
            text.push_str(&tls_stores(dir));
        }
    }
    if let Some(super_users) = &options.authorizer {
        // The node reaches its own controller and itself as ANONYMOUS over plaintext.
        let mut users = vec!["User:ANONYMOUS".to_string()];
        users.extend(super_users.iter().cloned());
        users.dedup();
        text.push_str(&format!(
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n\
             super.users={}\n",
            users.join(";")
        ));
    }
    text
}

/// Clients on `protocol` at the client port; the node talks to itself and its controller in
/// plaintext (inter-broker traffic needs no credentials).
fn secured_listeners(protocol: &str, ports: KafkaPorts) -> String {
    let KafkaPorts {
        client,
        controller,
        internal,
        ..
    } = ports;
    format!(
        "listeners={protocol}://127.0.0.1:{client},INTERNAL://127.0.0.1:{internal},CONTROLLER://127.0.0.1:{controller}\n\
         advertised.listeners={protocol}://127.0.0.1:{client},INTERNAL://127.0.0.1:{internal}\n\
         listener.security.protocol.map={protocol}:{protocol},INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
         inter.broker.listener.name=INTERNAL\n"
    )
}

/// The node's certificate and the CA it trusts (clients' certificates too), made at format time.
fn tls_stores(dir: &Path) -> String {
    format!(
        "ssl.keystore.type=PEM\n\
         ssl.keystore.location={}\n\
         ssl.truststore.type=PEM\n\
         ssl.truststore.location={}\n",
        dir.join("broker-keystore.pem").display(),
        dir.join("ca.pem").display(),
    )
}

/// A client certificate for `cn` signed by the CA of the cluster in `dir`: `<cn>.key` (PKCS#8
/// PEM) and `<cn>.pem`, written into `out`.
pub(crate) fn make_client_certificate(
    dir: &Path,
    cn: &str,
    out: &Path,
) -> Result<(PathBuf, PathBuf)> {
    let key = out.join(format!("{cn}.key"));
    let cert = out.join(format!("{cn}.pem"));
    let csr = out.join(format!("{cn}.csr"));
    let subject = format!("/CN={cn}");
    let (key_s, cert_s, csr_s) = (
        key.display().to_string(),
        cert.display().to_string(),
        csr.display().to_string(),
    );
    openssl(
        cn,
        dir,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key_s, "-out", &csr_s, "-subj",
            &subject,
        ],
    )?;
    openssl(
        cn,
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr_s,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &cert_s,
            "-days",
            "2",
        ],
    )?;
    Ok((key, cert))
}

/// Runs the openssl command in `dir`.
fn openssl(name: &str, dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| cluster_error(name, &format!("cannot run openssl: {e}")))?;
    if !out.status.success() {
        return Err(cluster_error(
            name,
            &format!(
                "openssl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ),
        ));
    }
    Ok(())
}

/// A CA (`ca.pem`) and a certificate for 127.0.0.1 signed by it, as the PEM keystore Kafka
/// reads (private key and certificate in one file), made with the openssl command.
fn make_certificates(name: &str, dir: &Path, expired: bool) -> Result<()> {
    let run = |args: &[&str]| openssl(name, dir, args);
    let subject = format!("/CN={name}-test-ca");
    run(&[
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", &subject,
    ])?;
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "broker.key",
        "-out",
        "broker.csr",
        "-subj",
        "/CN=127.0.0.1",
    ])?;
    std::fs::write(
        dir.join("broker.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )?;
    run(&[
        "x509",
        "-req",
        "-in",
        "broker.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "broker.pem",
        "-days",
        // Valid from now until yesterday: expired as soon as it is made.
        if expired { "-1" } else { "2" },
        "-extfile",
        "broker.ext",
    ])?;
    let key = std::fs::read_to_string(dir.join("broker.key"))?;
    let cert = std::fs::read_to_string(dir.join("broker.pem"))?;
    std::fs::write(dir.join("broker-keystore.pem"), format!("{key}{cert}"))?;
    Ok(())
}

/// Genuine MirrorMaker 2 in dedicated mode (`connect-mirror-maker.sh`'s main class) on a
/// properties file, killed on drop. Its log (INFO) goes to `log`.
pub struct MirrorMaker {
    child: Option<Child>,
    log: PathBuf,
}

impl MirrorMaker {
    /// Starts `org.apache.kafka.connect.mirror.MirrorMaker CONFIG [--clusters ...]` with the
    /// heap `connect-mirror-maker.sh` gives it (at most 2 GiB).
    pub fn start(config: &Path, clusters: &[&str], log: &Path) -> Result<Self> {
        Self::start_with_jvm_options(config, clusters, log, &[])
    }

    /// As [`MirrorMaker::start`] with another maximum heap (`-Xmx`).
    pub fn start_with_heap(
        config: &Path,
        clusters: &[&str],
        log: &Path,
        max_heap: &str,
    ) -> Result<Self> {
        Self::start_with_jvm_options(config, clusters, log, &[&format!("-Xmx{max_heap}")])
    }

    /// As [`MirrorMaker::start`] with more JVM options (e.g. a Kerberos realm's
    /// `-Djava.security.krb5.conf=...`), after the default heap's.
    pub fn start_with_jvm_options(
        config: &Path,
        clusters: &[&str],
        log: &Path,
        jvm_options: &[&str],
    ) -> Result<Self> {
        let install = find_kafka()?;
        let dir = log
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir);
        let log4j = dir.join("mm2-log4j2.properties");
        std::fs::write(&log4j, LOG4J2_PROPERTIES.replace("WARN", "INFO"))?;
        let file = std::fs::File::create(log)?;
        // The last -Xmx given wins.
        let mut options = vec!["-Xms256m", "-Xmx2g", "-XX:+UseG1GC"];
        options.extend(jvm_options);
        let mut command = install.java(&options, &log4j);
        command
            .arg("org.apache.kafka.connect.mirror.MirrorMaker")
            .arg(config);
        if !clusters.is_empty() {
            command.arg("--clusters").args(clusters);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()?;
        Ok(MirrorMaker {
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// SIGKILL: a crash, nothing flushed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (MM2 then stops its connectors and flushes their offsets), SIGKILL after
    /// `timeout`. Returns whether it exited by itself.
    pub fn stop(&mut self, timeout: std::time::Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        crate::send_signal(&child, rustix::process::Signal::TERM);
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for MirrorMaker {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_jars_name_the_install_command() {
        let empty = tempfile::tempdir().unwrap();
        let error = find_kafka_in(empty.path(), "3.9.2")
            .unwrap_err()
            .to_string();
        // Without Java the error names Java's install; with it, the jars' install.
        assert!(
            error.contains("cargo xtask install-kafka"),
            "the error should say how to install: {error}"
        );
    }

    #[test]
    fn cluster_ids_are_22_url_safe_characters_and_stable() {
        let id = cluster_id("europe");
        assert_eq!(id.len(), 22);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(id, cluster_id("europe"));
        assert_ne!(id, cluster_id("northamerica"));
    }

    #[test]
    fn sasl_ssl_nodes_talk_to_themselves_in_plaintext_and_clients_use_scram() {
        let ports = KafkaPorts {
            client: 1,
            controller: 2,
            internal: 3,
            faulty: None,
        };
        let options = KafkaOptions {
            security: Security::SaslSsl {
                users: vec![("alice".into(), "s3cret".into())],
            },
            authorizer: Some(vec!["User:alice".into()]),
            faults: false,
            expired_certificate: false,
            release: None,
        };
        let text = server_properties(Path::new("/d"), ports, &options);
        assert!(text.contains("listeners=SASL_SSL://127.0.0.1:1,INTERNAL://127.0.0.1:3,"));
        assert!(text.contains("inter.broker.listener.name=INTERNAL\n"));
        assert!(text.contains("sasl.enabled.mechanisms=SCRAM-SHA-512\n"));
        assert!(text.contains("super.users=User:ANONYMOUS;User:alice\n"));
        assert!(
            !text.contains("s3cret"),
            "passwords go to format, not the file"
        );
    }
}
