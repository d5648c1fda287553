//! `KafkaMirrorMaker2` resources (Strimzi `kafka.strimzi.io/v1beta2`, IBM Event Streams
//! `eventstreams.ibm.com/v1beta2`), translated into the MM2 properties they stand for. A
//! resource and the equivalent properties file then go through the same resolution and give the
//! same flows.
//!
//! Kubernetes secrets are read as a pod sees them when mounted: `<secrets dir>/<secretName>/<key>`.
//! They become `${directory:...}` references, so they are resolved at load and never shown.
//! Fields with no meaning outside Kubernetes (replicas, resources, template, ...) are reported as
//! ignored, never silently dropped.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_norway::Value;

use super::{ConfigError, RawProperties};

/// Where secrets are looked for when no `--secrets-dir` is given.
pub const DEFAULT_SECRETS_DIR: &str = "/var/run/secrets/mirrorcast";

/// Strimzi's default Connect offsets topic, used unless the connect cluster's config names one.
pub const STRIMZI_OFFSETS_TOPIC: &str = "mirrormaker2-cluster-offsets";

const API_VERSIONS: [&str; 2] = ["kafka.strimzi.io/v1beta2", "eventstreams.ibm.com/v1beta2"];

/// Kafka Connect worker settings of the connect cluster that mirrorcast has no use for.
const CONNECT_WORKER_KEYS: [&str; 10] = [
    "group.id",
    "config.storage.topic",
    "config.storage.replication.factor",
    "status.storage.topic",
    "status.storage.replication.factor",
    "key.converter",
    "value.converter",
    "header.converter",
    "config.providers",
    "offset.flush.timeout.ms",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Resource {
    kind: String,
    api_version: String,
    spec: Spec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    connect_cluster: String,
    clusters: Vec<ClusterSpec>,
    #[serde(default)]
    mirrors: Vec<MirrorSpec>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClusterSpec {
    alias: String,
    bootstrap_servers: String,
    #[serde(default)]
    config: BTreeMap<String, Value>,
    authentication: Option<Authentication>,
    tls: Option<Tls>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Authentication {
    #[serde(rename = "type")]
    kind: String,
    username: Option<String>,
    password_secret: Option<PasswordSecret>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PasswordSecret {
    secret_name: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Tls {
    #[serde(default)]
    trusted_certificates: Vec<CertSecret>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CertSecret {
    secret_name: String,
    certificate: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MirrorSpec {
    source_cluster: String,
    target_cluster: String,
    topics_pattern: Option<String>,
    topics_exclude_pattern: Option<String>,
    groups_pattern: Option<String>,
    groups_exclude_pattern: Option<String>,
    source_connector: Option<ConnectorSpec>,
    checkpoint_connector: Option<ConnectorSpec>,
    heartbeat_connector: Option<ConnectorSpec>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct ConnectorSpec {
    #[serde(default)]
    config: BTreeMap<String, Value>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

/// A resource as MM2 properties, and what in it was ignored.
#[derive(Debug)]
pub struct Translated {
    pub raw: RawProperties,
    /// `spec.replicas`, `spec.template`, ...
    pub ignored: Vec<String>,
    /// Mirrors as (source, target): their progress is kept the Strimzi way.
    pub mirrors: Vec<(String, String)>,
}

/// Whether `path` names a resource rather than a properties file.
pub fn is_resource_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// Reads a `KafkaMirrorMaker2` resource into the properties it stands for.
/// With `strip_security`, authentication and TLS are left out (and their secrets not read), for
/// running the resource against local plaintext clusters.
pub fn translate(
    path: &Path,
    text: &str,
    secrets_dir: &Path,
    strip_security: bool,
) -> Result<Translated, ConfigError> {
    let error = |key: &str, line: Option<usize>, message: String| ConfigError {
        file: path.to_path_buf(),
        line,
        key: key.to_string(),
        message,
    };
    let resource: Resource = serde_norway::from_str(text).map_err(|e| {
        error(
            "",
            e.location().map(|l| l.line()),
            format!("not a KafkaMirrorMaker2 resource: {e}"),
        )
    })?;
    if resource.kind != "KafkaMirrorMaker2" {
        return Err(error(
            "kind",
            None,
            format!("is `{}`, not `KafkaMirrorMaker2`", resource.kind),
        ));
    }
    if !API_VERSIONS.contains(&resource.api_version.as_str()) {
        return Err(error(
            "apiVersion",
            None,
            format!(
                "`{}` is not one of {}",
                resource.api_version,
                API_VERSIONS.join(", ")
            ),
        ));
    }
    let spec = resource.spec;
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut ignored: Vec<String> = spec
        .other
        .keys()
        .filter(|k| *k != "replicas")
        .map(|k| format!("spec.{k}"))
        .collect();
    // Strimzi's Connect workers share the connectors' tasks; mirrorcast's processes share the
    // sources' partitions through a group (`instances.group.enabled`).
    if let Some(replicas) = spec.other.get("replicas") {
        let count = scalar(replicas)
            .and_then(|r| r.trim().parse::<u32>().ok())
            .ok_or_else(|| error("spec.replicas", None, "is not a number".into()))?;
        if count > 1 {
            pairs.push(("instances.group.enabled".into(), "true".into()));
        }
    }
    let aliases: Vec<&str> = spec.clusters.iter().map(|c| c.alias.as_str()).collect();
    pairs.push(("clusters".into(), aliases.join(", ")));

    for (i, cluster) in spec.clusters.iter().enumerate() {
        let at = format!("spec.clusters[{i}]");
        let alias = &cluster.alias;
        ignored.extend(cluster.other.keys().map(|k| format!("{at}.{k}")));
        pairs.push((
            format!("{alias}.bootstrap.servers"),
            cluster.bootstrap_servers.clone(),
        ));
        let (authentication, tls) = if strip_security {
            (None, None)
        } else {
            (cluster.authentication.as_ref(), cluster.tls.as_ref())
        };
        let sasl = match authentication {
            None => false,
            Some(auth) => {
                let mechanism = match auth.kind.as_str() {
                    "scram-sha-512" => "SCRAM-SHA-512",
                    "scram-sha-256" => "SCRAM-SHA-256",
                    "plain" => "PLAIN",
                    other => {
                        return Err(error(
                            &format!("{at}.authentication.type"),
                            None,
                            format!(
                            "`{other}` is not supported: use scram-sha-512, scram-sha-256 or plain"
                        ),
                        ))
                    }
                };
                let (Some(username), Some(secret)) = (&auth.username, &auth.password_secret) else {
                    return Err(error(
                        &format!("{at}.authentication"),
                        None,
                        "needs `username` and `passwordSecret`".into(),
                    ));
                };
                let secret_dir = secrets_dir.join(&secret.secret_name);
                pairs.push((format!("{alias}.sasl.mechanism"), mechanism.into()));
                pairs.push((format!("{alias}.sasl.username"), username.clone()));
                pairs.push((
                    format!("{alias}.sasl.password"),
                    format!(
                        "${{directory:{}:{}}}",
                        secret_dir.display(),
                        secret.password
                    ),
                ));
                true
            }
        };
        let protocol = match (sasl, tls.is_some()) {
            (true, true) => Some("SASL_SSL"),
            (true, false) => Some("SASL_PLAINTEXT"),
            (false, true) => Some("SSL"),
            (false, false) => None,
        };
        if let Some(protocol) = protocol {
            pairs.push((format!("{alias}.security.protocol"), protocol.into()));
        }
        if let Some(tls) = tls {
            match tls.trusted_certificates.as_slice() {
                [] => {}
                [one] => {
                    let file = secrets_dir.join(&one.secret_name).join(&one.certificate);
                    pairs.push((format!("{alias}.ssl.truststore.type"), "PEM".into()));
                    pairs.push((
                        format!("{alias}.ssl.truststore.location"),
                        file.display().to_string(),
                    ));
                }
                many => {
                    let pems: Vec<String> = many
                        .iter()
                        .map(|c| {
                            let dir = secrets_dir.join(&c.secret_name);
                            format!("${{directory:{}:{}}}", dir.display(), c.certificate)
                        })
                        .collect();
                    pairs.push((
                        format!("{alias}.ssl.truststore.certificates"),
                        pems.join("\n"),
                    ));
                }
            }
        }
        for (key, value) in &cluster.config {
            let value = scalar(value).ok_or_else(|| {
                error(
                    &format!("{at}.config.{key}"),
                    None,
                    "is not a plain value".into(),
                )
            })?;
            if key == "offset.storage.topic"
                || key == "offset.storage.replication.factor"
                || key == "offset.storage.partitions"
            {
                if *alias == spec.connect_cluster {
                    pairs.push((key.clone(), value));
                }
            } else if CONNECT_WORKER_KEYS.contains(&key.as_str()) {
                ignored.push(format!("{at}.config.{key}"));
            } else {
                pairs.push((format!("{alias}.{key}"), value));
            }
        }
    }
    if !pairs.iter().any(|(k, _)| k == "offset.storage.topic") {
        pairs.push(("offset.storage.topic".into(), STRIMZI_OFFSETS_TOPIC.into()));
    }

    let mut mirrors = Vec::new();
    for (i, mirror) in spec.mirrors.iter().enumerate() {
        let at = format!("spec.mirrors[{i}]");
        for (field, alias) in [
            ("sourceCluster", &mirror.source_cluster),
            ("targetCluster", &mirror.target_cluster),
        ] {
            if !aliases.contains(&alias.as_str()) {
                return Err(error(
                    &format!("{at}.{field}"),
                    None,
                    format!(
                        "`{alias}` is not the alias of one of `spec.clusters` ({})",
                        aliases.join(", ")
                    ),
                ));
            }
        }
        if mirror.target_cluster != spec.connect_cluster {
            return Err(error(
                "spec.connectCluster",
                None,
                format!(
                    "is `{}` but {at} targets `{}`: mirrorcast keeps each flow's progress on its \
                     target, so the connect cluster must be the target of every mirror (one \
                     resource per target region, as in the broadcast scenario)",
                    spec.connect_cluster, mirror.target_cluster
                ),
            ));
        }
        ignored.extend(mirror.other.keys().map(|k| format!("{at}.{k}")));
        let flow = format!("{}->{}", mirror.source_cluster, mirror.target_cluster);
        pairs.push((format!("{flow}.enabled"), "true".into()));
        for (key, value) in [
            ("topics", &mirror.topics_pattern),
            ("topics.exclude", &mirror.topics_exclude_pattern),
            ("groups", &mirror.groups_pattern),
            ("groups.exclude", &mirror.groups_exclude_pattern),
        ] {
            if let Some(value) = value {
                pairs.push((format!("{flow}.{key}"), value.clone()));
            }
        }
        for (name, connector) in [
            ("sourceConnector", &mirror.source_connector),
            ("checkpointConnector", &mirror.checkpoint_connector),
            ("heartbeatConnector", &mirror.heartbeat_connector),
        ] {
            let Some(connector) = connector else { continue };
            let mut other = connector.other.clone();
            // The source connector's tasks are mirrorcast's copier threads (`tasks.max`).
            if name == "sourceConnector" {
                if let Some(tasks) = other.remove("tasksMax") {
                    let tasks = scalar(&tasks).ok_or_else(|| {
                        error(
                            &format!("{at}.{name}.tasksMax"),
                            None,
                            "is not a number".into(),
                        )
                    })?;
                    pairs.push((format!("{flow}.tasks.max"), tasks));
                }
            }
            ignored.extend(other.keys().map(|k| format!("{at}.{name}.{k}")));
            for (key, value) in &connector.config {
                let value = scalar(value).ok_or_else(|| {
                    error(
                        &format!("{at}.{name}.config.{key}"),
                        None,
                        "is not a plain value".into(),
                    )
                })?;
                pairs.push((format!("{flow}.{key}"), value));
            }
        }
        mirrors.push((mirror.source_cluster.clone(), mirror.target_cluster.clone()));
    }
    let raw = RawProperties::from_pairs(path, pairs)?;
    Ok(Translated {
        raw,
        ignored,
        mirrors,
    })
}

/// A YAML scalar as the string a properties file would hold.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESOURCE: &str = r#"
kind: KafkaMirrorMaker2
apiVersion: eventstreams.ibm.com/v1beta2
metadata:
  name: mm2-na
spec:
  connectCluster: northamerica
  mirrors:
    - sourceCluster: europe
      targetCluster: northamerica
      topicsPattern: LH.*
      sourceConnector:
        tasksMax: 2
        config:
          refresh.topics.interval.seconds: 600
          replication.policy.class: "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"
          sync.topic.acls.enabled: false
  clusters:
    - alias: europe
      bootstrapServers: eu:9098
      authentication:
        type: scram-sha-512
        username: mm2-europe
        passwordSecret:
          secretName: mm2-europe
          password: password
      tls:
        trustedCertificates:
          - secretName: eu-ca
            certificate: ca.crt
    - alias: northamerica
      bootstrapServers: na:9098
      config:
        group.id: mm2-na
        offset.storage.topic: __mm2_na_offsets
        consumer.fetch.max.bytes: 1048576
  replicas: 1
  template:
    pod: {}
"#;

    fn translate_text(text: &str, secrets: &Path) -> Result<Translated, ConfigError> {
        translate(Path::new("mm2-na.yaml"), text, secrets, false)
    }

    #[test]
    fn a_scenario_resource_becomes_mm2_properties() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("mm2-europe")).unwrap();
        std::fs::write(dir.path().join("mm2-europe/password"), "s3cret\n").unwrap();
        let t = translate_text(RESOURCE, dir.path()).unwrap();
        let get = |k: &str| t.raw.get(k).map(|e| e.value.clone());
        assert_eq!(get("clusters").as_deref(), Some("europe, northamerica"));
        assert_eq!(get("europe.security.protocol").as_deref(), Some("SASL_SSL"));
        assert_eq!(
            get("europe.sasl.mechanism").as_deref(),
            Some("SCRAM-SHA-512")
        );
        assert_eq!(get("europe.sasl.password").as_deref(), Some("s3cret"));
        assert!(
            t.raw
                .get("europe.sasl.password")
                .unwrap()
                .reference
                .is_some(),
            "a secret"
        );
        assert_eq!(get("europe.ssl.truststore.type").as_deref(), Some("PEM"));
        assert_eq!(get("northamerica.security.protocol"), None);
        assert_eq!(
            get("offset.storage.topic").as_deref(),
            Some("__mm2_na_offsets")
        );
        assert_eq!(
            get("northamerica.consumer.fetch.max.bytes").as_deref(),
            Some("1048576")
        );
        assert_eq!(get("europe->northamerica.enabled").as_deref(), Some("true"));
        assert_eq!(get("europe->northamerica.topics").as_deref(), Some("LH.*"));
        assert_eq!(
            get("europe->northamerica.refresh.topics.interval.seconds").as_deref(),
            Some("600")
        );
        assert_eq!(
            t.ignored,
            ["spec.template", "spec.clusters[1].config.group.id",]
        );
        assert_eq!(get("europe->northamerica.tasks.max").as_deref(), Some("2"));
        assert_eq!(get("instances.group.enabled"), None, "one replica");
        let three =
            translate_text(&RESOURCE.replace("replicas: 1", "replicas: 3"), dir.path()).unwrap();
        assert_eq!(
            three
                .raw
                .get("instances.group.enabled")
                .map(|v| v.value.clone())
                .as_deref(),
            Some("true"),
            "replicas share through a group"
        );
    }

    #[test]
    fn a_missing_secret_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = translate_text(RESOURCE, dir.path()).unwrap_err();
        assert_eq!(err.key, "europe.sasl.password");
        assert!(err.message.contains("mm2-europe"), "{}", err.message);
    }

    #[test]
    fn stripping_security_needs_no_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let t = translate(Path::new("mm2-na.yaml"), RESOURCE, dir.path(), true).unwrap();
        assert!(t
            .raw
            .iter()
            .all(|(k, _)| !k.contains("sasl") && !k.contains("ssl") && !k.contains("security")));
    }

    #[test]
    fn the_connect_cluster_must_be_every_mirrors_target() {
        let dir = tempfile::tempdir().unwrap();
        let text = RESOURCE.replace("connectCluster: northamerica", "connectCluster: europe");
        let err = translate_text(&text, dir.path()).unwrap_err();
        assert_eq!(err.key, "spec.connectCluster");
    }

    #[test]
    fn unknown_aliases_and_authentication_types_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let text = RESOURCE.replace("targetCluster: northamerica", "targetCluster: asia");
        assert_eq!(
            translate_text(&text, dir.path()).unwrap_err().key,
            "spec.mirrors[0].targetCluster"
        );
        let text = RESOURCE.replace("type: scram-sha-512", "type: oauth");
        assert_eq!(
            translate_text(&text, dir.path()).unwrap_err().key,
            "spec.clusters[0].authentication.type"
        );
        let text = RESOURCE.replace("kind: KafkaMirrorMaker2", "kind: KafkaConnect");
        assert_eq!(translate_text(&text, dir.path()).unwrap_err().key, "kind");
    }
}
