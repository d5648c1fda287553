//! `KafkaMirrorMaker2` resources (Strimzi `kafka.strimzi.io/v1` and `v1beta2`, IBM Event
//! Streams `eventstreams.ibm.com/v1beta2`), translated into the MM2 properties they stand for.
//! A resource and the equivalent properties file then go through the same resolution and give
//! the same flows.
//!
//! Both layouts are read as Strimzi's operator reads them (`validateAndUpdateToNewAPI`): the
//! v1 one (`spec.target`, `spec.mirrors[].source`) and the older one (`spec.connectCluster`,
//! `spec.clusters`, `spec.mirrors[].sourceCluster`/`targetCluster`), mixed as v1beta2 allows:
//! `target` wins over `connectCluster`, a mirror's `source` over its `sourceCluster`.
//!
//! Kubernetes secrets are read as a pod sees them when mounted: `<secrets dir>/<secretName>/<key>`.
//! They become `${directory:...}` references, so they are resolved at load and never shown.
//! Fields with no meaning outside Kubernetes (resources, template, ...) are reported as
//! ignored, never silently dropped.

mod providers;
mod security;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_norway::Value;

use super::{ConfigError, RawProperties};
use providers::Providers;
use security::{Authentication, Tls};

/// Where secrets are looked for when no `--secrets-dir` is given.
pub const DEFAULT_SECRETS_DIR: &str = "/var/run/secrets/mirrorcast";

/// Strimzi's default Connect offsets topic, used unless the connect cluster's config names one.
pub const STRIMZI_OFFSETS_TOPIC: &str = "mirrormaker2-cluster-offsets";

const V1: &str = "kafka.strimzi.io/v1";
const API_VERSIONS: [&str; 3] = [
    V1,
    "kafka.strimzi.io/v1beta2",
    "eventstreams.ibm.com/v1beta2",
];

/// Strimzi's Connect workers when `spec.replicas` is not given (v1beta2; v1 requires it).
const DEFAULT_REPLICAS: u32 = 3;

/// Kafka Connect worker settings of the connect cluster that mirrorcast has no use for.
const CONNECT_WORKER_KEYS: [&str; 9] = [
    "group.id",
    "config.storage.topic",
    "config.storage.replication.factor",
    "status.storage.topic",
    "status.storage.replication.factor",
    "key.converter",
    "value.converter",
    "header.converter",
    "offset.flush.timeout.ms",
];

/// Worker keys that become mirrorcast's (the progress topic).
const PROGRESS_KEYS: [&str; 3] = [
    "offset.storage.topic",
    "offset.storage.replication.factor",
    "offset.storage.partitions",
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
    replicas: Option<Value>,
    target: Option<TargetSpec>,
    connect_cluster: Option<String>,
    clusters: Option<Vec<ClusterSpec>>,
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

/// v1's target: the cluster, and its Connect worker's group and topics.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TargetSpec {
    offset_storage_topic: Option<String>,
    #[serde(flatten)]
    cluster: ClusterSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MirrorSpec {
    source: Option<ClusterSpec>,
    source_cluster: Option<String>,
    target_cluster: Option<String>,
    topics_pattern: Option<String>,
    topics_exclude_pattern: Option<String>,
    topics_blacklist_pattern: Option<String>,
    groups_pattern: Option<String>,
    groups_exclude_pattern: Option<String>,
    groups_blacklist_pattern: Option<String>,
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
    /// `spec.template`, `spec.target.groupId`, ...
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

/// The resource in one layout: the connect (target) cluster, and each mirror's source.
struct Layout<'a> {
    /// (where in the resource, the cluster)
    target: (String, &'a ClusterSpec),
    offset_storage_topic: Option<&'a str>,
    /// Each mirror's source, in order, once per alias.
    sources: Vec<(String, &'a ClusterSpec)>,
    /// Each mirror with its source's alias.
    mirrors: Vec<(String, &'a str, &'a MirrorSpec)>,
    /// Old-layout fields the layout made pointless (e.g. clusters no mirror uses).
    unused: Vec<String>,
}

/// An error about the field `key` of the resource.
type FieldError = (String, String);

/// The operator's reading of both layouts (`validateAndUpdateToNewAPI`).
fn layout(spec: &Spec, v1: bool) -> Result<Layout<'_>, FieldError> {
    let clusters = spec.clusters.as_deref().unwrap_or_default();
    let find = |alias: &str| clusters.iter().position(|c| c.alias == alias);
    if spec.mirrors.is_empty() {
        return Err((
            "spec.mirrors".into(),
            "is required: at least one mirror".into(),
        ));
    }
    let mut unused = Vec::new();
    let target = match (&spec.target, &spec.connect_cluster) {
        (Some(target), connect) => {
            if connect.is_some() {
                unused.push("spec.connectCluster (spec.target wins, as in Strimzi)".into());
            }
            ("spec.target".to_string(), &target.cluster)
        }
        (None, _) if v1 => {
            return Err((
                "spec.target".into(),
                format!("is required in {V1} (with spec.mirrors[].source)"),
            ))
        }
        (None, Some(connect)) if !clusters.is_empty() => {
            let i = find(connect).ok_or_else(|| {
                (
                    "spec.connectCluster".to_string(),
                    format!("`{connect}` cannot be found in the list of clusters at spec.clusters"),
                )
            })?;
            (format!("spec.clusters[{i}]"), &clusters[i])
        }
        (None, _) => {
            return Err((
                "spec.target".into(),
                "either spec.target, or spec.connectCluster and spec.clusters, have to be \
                 specified"
                    .into(),
            ))
        }
    };
    let target_alias = target.1.alias.as_str();
    let mut sources: Vec<(String, &ClusterSpec)> = Vec::new();
    let mut mirrors = Vec::new();
    for (i, mirror) in spec.mirrors.iter().enumerate() {
        let at = format!("spec.mirrors[{i}]");
        if let Some(named) = &mirror.target_cluster {
            if named != target_alias {
                return Err((
                    format!("{at}.targetCluster"),
                    format!(
                        "is `{named}`, not the target (connect) cluster `{target_alias}`: \
                         mirrorcast keeps each flow's progress on its target, so every mirror \
                         of a resource goes to its connect cluster (one resource per target \
                         region, as in the broadcast scenario)"
                    ),
                ));
            }
        }
        let source = match (&mirror.source, &mirror.source_cluster) {
            (Some(source), _) => (format!("{at}.source"), source),
            (None, Some(alias)) => {
                let j = find(alias).ok_or_else(|| {
                    (
                        format!("{at}.sourceCluster"),
                        format!(
                            "`{alias}` is not the alias of one of spec.clusters ({})",
                            clusters
                                .iter()
                                .map(|c| c.alias.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?;
                (format!("spec.clusters[{j}]"), &clusters[j])
            }
            (None, None) => {
                return Err((
                    format!("{at}.source"),
                    "is missing, and so is sourceCluster: cannot determine the source cluster"
                        .into(),
                ))
            }
        };
        let alias = source.1.alias.as_str();
        if alias == target_alias {
            return Err((
                format!("{}.alias", source.0),
                format!("`{alias}` is the target's alias too: the aliases must be unique"),
            ));
        }
        match sources.iter().find(|(_, c)| c.alias == alias) {
            // The same alias written twice could differ in anything (security, config): the
            // operator wants aliases unique, and so does this.
            Some((_, seen)) if !std::ptr::eq(*seen, source.1) => {
                return Err((
                    format!("{}.alias", source.0),
                    format!(
                        "`{alias}` is defined twice: give the cluster once (spec.clusters and \
                         sourceCluster), or use one alias per cluster"
                    ),
                ));
            }
            Some(_) => {}
            None => sources.push(source),
        }
        mirrors.push((at, alias, mirror));
    }
    for (i, cluster) in clusters.iter().enumerate() {
        let used = (cluster.alias == target_alias && spec.target.is_none())
            || sources.iter().any(|(_, c)| std::ptr::eq(*c, cluster));
        if !used {
            unused.push(format!(
                "spec.clusters[{i}] (`{}`: no mirror uses it)",
                cluster.alias
            ));
        }
    }
    Ok(Layout {
        target,
        offset_storage_topic: spec
            .target
            .as_ref()
            .and_then(|t| t.offset_storage_topic.as_deref()),
        sources,
        mirrors,
        unused,
    })
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
    let field_error = |(key, message): FieldError| error(&key, None, message);
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
    let v1 = resource.api_version == V1;
    let spec = &resource.spec;
    let layout = layout(spec, v1).map_err(field_error)?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut ignored: Vec<String> = spec.other.keys().map(|k| format!("spec.{k}")).collect();
    ignored.extend(layout.unused.iter().cloned());

    // Strimzi's Connect workers share the connectors' tasks; mirrorcast's processes share the
    // sources' partitions through a group (`instances.group.enabled`).
    let replicas = match &spec.replicas {
        Some(replicas) => scalar(replicas)
            .and_then(|r| r.trim().parse::<u32>().ok())
            .ok_or_else(|| error("spec.replicas", None, "is not a number".into()))?,
        None if v1 => {
            return Err(error("spec.replicas", None, format!("is required in {V1}")));
        }
        None => DEFAULT_REPLICAS,
    };
    // One replica runs alone (no group, no group rights needed), as the resource declares.
    let shared = replicas > 1;
    pairs.push(("instances.group.enabled".into(), shared.to_string()));

    // The connect cluster's config declares the providers every value may name.
    let (target_at, target) = &layout.target;
    let target_config = plain_values(target_at, &target.config).map_err(field_error)?;
    let providers = Providers::declared(&target_config, secrets_dir)
        .map_err(|(key, message)| error(&format!("{target_at}.config.{key}"), None, message))?;
    ignored.extend(providers.params.iter().map(|key| {
        format!("{target_at}.config.{key} (mirrorcast's providers take no parameters)")
    }));
    let value = |at: &str, v: &Value| -> Result<String, ConfigError> {
        let plain = scalar(v).ok_or_else(|| error(at, None, "is not a plain value".into()))?;
        providers
            .rewrite(&plain)
            .map_err(|message| error(at, None, message))
    };

    // In the order of spec.clusters when the resource names them there, else sources first.
    let mut clusters: Vec<&(String, &ClusterSpec)> =
        layout.sources.iter().chain([&layout.target]).collect();
    let listed = spec.clusters.as_deref().unwrap_or_default();
    if clusters
        .iter()
        .all(|(_, c)| listed.iter().any(|l| std::ptr::eq(l, *c)))
    {
        clusters.sort_by_key(|(_, c)| listed.iter().position(|l| std::ptr::eq(l, *c)));
    }
    let aliases: Vec<&str> = clusters.iter().map(|(_, c)| c.alias.as_str()).collect();
    pairs.push(("clusters".into(), aliases.join(", ")));
    for (at, cluster) in &clusters {
        let alias = &cluster.alias;
        let is_target = std::ptr::eq(*cluster, *target);
        // v1's `groupId`, `configStorageTopic`, `statusStorageTopic` among them: Connect's.
        ignored.extend(cluster.other.keys().map(|k| format!("{at}.{k}")));
        pairs.push((
            format!("{alias}.bootstrap.servers"),
            cluster.bootstrap_servers.clone(),
        ));
        if !strip_security {
            let secured = security::cluster_security(
                at,
                alias,
                cluster.authentication.as_ref(),
                cluster.tls.as_ref(),
                secrets_dir,
                v1,
            )
            .map_err(field_error)?;
            for (key, v) in secured.pairs {
                let v = providers
                    .rewrite(&v)
                    .map_err(|message| error(&key, None, message))?;
                pairs.push((key, v));
            }
            ignored.extend(secured.ignored);
        }
        for (key, v) in &cluster.config {
            let at_key = format!("{at}.config.{key}");
            if key == "config.providers" || key.starts_with("config.providers.") {
                // Read above when this is the connect cluster (as the operator does).
                if !is_target {
                    ignored.push(at_key);
                }
            } else if PROGRESS_KEYS.contains(&key.as_str()) {
                if is_target {
                    pairs.push((key.clone(), value(&at_key, v)?));
                } else {
                    ignored.push(at_key);
                }
            } else if CONNECT_WORKER_KEYS.contains(&key.as_str()) {
                ignored.push(at_key);
            } else {
                pairs.push((format!("{alias}.{key}"), value(&at_key, v)?));
            }
        }
    }
    if let Some(topic) = layout.offset_storage_topic {
        pairs.retain(|(k, _)| k != "offset.storage.topic");
        pairs.push(("offset.storage.topic".into(), topic.to_string()));
    }
    if !pairs.iter().any(|(k, _)| k == "offset.storage.topic") {
        pairs.push(("offset.storage.topic".into(), STRIMZI_OFFSETS_TOPIC.into()));
    }

    let mut mirrors = Vec::new();
    for (at, source, mirror) in &layout.mirrors {
        let flow = format!("{source}->{}", target.alias);
        ignored.extend(mirror.other.keys().map(|k| format!("{at}.{k}")));
        for (field, present) in [
            (
                "sourceCluster",
                mirror.source.is_some() && mirror.source_cluster.is_some(),
            ),
            ("targetCluster", mirror.target_cluster.is_some() && v1),
        ] {
            if present {
                ignored.push(format!("{at}.{field}"));
            }
        }
        pairs.push((format!("{flow}.enabled"), "true".into()));
        // The deprecated blacklist fields count only when the exclude field is not set, and
        // are gone from v1 (Strimzi's `prepareMirrorMaker2ConnectorConfig`).
        let old = |exclude: &Option<String>, blacklist: &Option<String>, name: &str| match (
            exclude, blacklist,
        ) {
            (_, Some(_)) if v1 => (None, Some(format!("{at}.{name}"))),
            (Some(_), Some(_)) => (
                None,
                Some(format!("{at}.{name} (the exclude pattern wins)")),
            ),
            (None, Some(b)) => (Some(b.clone()), None),
            _ => (None, None),
        };
        let (topics_exclude, said) = old(
            &mirror.topics_exclude_pattern,
            &mirror.topics_blacklist_pattern,
            "topicsBlacklistPattern",
        );
        ignored.extend(said);
        let (groups_exclude, said) = old(
            &mirror.groups_exclude_pattern,
            &mirror.groups_blacklist_pattern,
            "groupsBlacklistPattern",
        );
        ignored.extend(said);
        for (key, v) in [
            ("topics", &mirror.topics_pattern),
            (
                "topics.exclude",
                &mirror.topics_exclude_pattern.clone().or(topics_exclude),
            ),
            ("groups", &mirror.groups_pattern),
            (
                "groups.exclude",
                &mirror.groups_exclude_pattern.clone().or(groups_exclude),
            ),
        ] {
            if let Some(v) = v {
                pairs.push((format!("{flow}.{key}"), v.clone()));
            }
        }
        for (name, connector) in [
            ("sourceConnector", &mirror.source_connector),
            ("checkpointConnector", &mirror.checkpoint_connector),
            ("heartbeatConnector", &mirror.heartbeat_connector),
        ] {
            let Some(connector) = connector else { continue };
            if name == "heartbeatConnector" && v1 {
                ignored.push(format!("{at}.{name} (not in {V1})"));
                continue;
            }
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
            for (key, v) in &connector.config {
                pairs.push((
                    format!("{flow}.{key}"),
                    value(&format!("{at}.{name}.config.{key}"), v)?,
                ));
            }
        }
        mirrors.push((source.to_string(), target.alias.clone()));
    }
    let raw = RawProperties::from_pairs(path, pairs)?;
    Ok(Translated {
        raw,
        ignored,
        mirrors,
    })
}

/// The plain values of a `config` map (for the providers it declares).
fn plain_values(
    at: &str,
    config: &BTreeMap<String, Value>,
) -> Result<BTreeMap<String, String>, FieldError> {
    config
        .iter()
        .map(|(k, v)| {
            scalar(v)
                .map(|v| (k.clone(), v))
                .ok_or_else(|| (format!("{at}.config.{k}"), "is not a plain value".into()))
        })
        .collect()
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
        assert_eq!(
            get("instances.group.enabled").as_deref(),
            Some("false"),
            "one replica runs alone"
        );
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
        assert_eq!(err.key, "spec.mirrors[0].targetCluster");
        assert!(err.message.contains("one resource per target region"));
    }

    #[test]
    fn unknown_aliases_and_authentication_types_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let text = RESOURCE.replace("targetCluster: northamerica", "targetCluster: asia");
        assert_eq!(
            translate_text(&text, dir.path()).unwrap_err().key,
            "spec.mirrors[0].targetCluster"
        );
        let text = RESOURCE.replace("type: scram-sha-512", "type: kerberos");
        assert_eq!(
            translate_text(&text, dir.path()).unwrap_err().key,
            "spec.clusters[0].authentication.type"
        );
        let text = RESOURCE.replace("kind: KafkaMirrorMaker2", "kind: KafkaConnect");
        assert_eq!(translate_text(&text, dir.path()).unwrap_err().key, "kind");
    }

    const V1_RESOURCE: &str = r#"
apiVersion: kafka.strimzi.io/v1
kind: KafkaMirrorMaker2
metadata:
  name: mm2-na
spec:
  version: 4.1.0
  replicas: 2
  target:
    alias: northamerica
    bootstrapServers: na:9093
    groupId: mm2-na-group
    configStorageTopic: mm2-na-configs
    offsetStorageTopic: mm2-na-offsets
    statusStorageTopic: mm2-na-status
    tls:
      trustedCertificates:
        - secretName: na-cluster-ca
          pattern: "*.crt"
    authentication:
      type: tls
      certificateAndKey:
        secretName: mm2-na-user
        certificate: user.crt
        key: user.key
    config:
      config.providers: secrets
      config.providers.secrets.class: io.strimzi.kafka.KubernetesSecretConfigProvider
      producer.linger.ms: "${secrets:mirror/tuning:linger}"
  mirrors:
    - source:
        alias: europe
        bootstrapServers: eu:9093
        tls:
          trustedCertificates:
            - secretName: eu-cluster-ca
              certificate: ca.crt
        authentication:
          type: custom
          sasl: true
          config:
            sasl.mechanism: SCRAM-SHA-512
            sasl.jaas.config: org.apache.kafka.common.security.scram.ScramLoginModule required username="mm2" password="${strimzisecrets:mirror/mm2-eu:password}";
            ssl.truststore.type: PEM
      topicsPattern: "LH.*"
      topicsBlacklistPattern: "secret.*"
      heartbeatConnector:
        config:
          emit.heartbeats.interval.seconds: 5
      sourceConnector:
        tasksMax: 3
"#;

    /// A secrets directory with the files `V1_RESOURCE` names (as Kubernetes mounts them).
    fn v1_secrets() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (secret, file, text) in [
            ("na-cluster-ca", "ca.crt", "CA-1"),
            ("na-cluster-ca", "ca-2023.crt", "CA-2"),
            ("na-cluster-ca", "ca.password", "not a certificate"),
            ("eu-cluster-ca", "ca.crt", "EU-CA"),
            ("mm2-na-user", "user.crt", "CERT"),
            ("mm2-na-user", "user.key", "KEY"),
            ("tuning", "linger", "25"),
            ("mm2-eu", "password", "eu-s3cret"),
        ] {
            std::fs::create_dir_all(dir.path().join(secret)).unwrap();
            std::fs::write(dir.path().join(secret).join(file), text).unwrap();
        }
        dir
    }

    #[test]
    fn a_strimzi_v1_resource_becomes_mm2_properties() {
        let secrets = v1_secrets();
        let t = translate_text(V1_RESOURCE, secrets.path()).unwrap();
        let get = |k: &str| t.raw.get(k).map(|e| e.value.clone());
        assert_eq!(get("clusters").as_deref(), Some("europe, northamerica"));
        assert_eq!(get("europe->northamerica.enabled").as_deref(), Some("true"));
        assert_eq!(get("europe->northamerica.tasks.max").as_deref(), Some("3"));
        assert_eq!(get("instances.group.enabled").as_deref(), Some("true"));
        assert_eq!(
            get("offset.storage.topic").as_deref(),
            Some("mm2-na-offsets")
        );
        // The pattern's files, sorted and joined, as the operator builds the truststore.
        assert_eq!(
            get("northamerica.ssl.truststore.certificates").as_deref(),
            Some("CA-2\nCA-1")
        );
        assert_eq!(
            get("northamerica.security.protocol").as_deref(),
            Some("SSL"),
            "mutual TLS"
        );
        assert_eq!(
            get("northamerica.ssl.keystore.certificate.chain").as_deref(),
            Some("CERT")
        );
        assert_eq!(get("northamerica.ssl.keystore.key").as_deref(), Some("KEY"));
        assert!(t
            .raw
            .get("northamerica.ssl.keystore.key")
            .unwrap()
            .reference
            .is_some());
        assert_eq!(
            get("northamerica.producer.linger.ms").as_deref(),
            Some("25"),
            "a declared Kubernetes secret provider, read as mounted"
        );
        assert_eq!(get("europe.security.protocol").as_deref(), Some("SASL_SSL"));
        assert_eq!(
            get("europe.sasl.mechanism").as_deref(),
            Some("SCRAM-SHA-512")
        );
        assert!(get("europe.sasl.jaas.config")
            .unwrap()
            .contains("eu-s3cret"));
        assert!(get("europe.ssl.truststore.location").is_some());
        assert_eq!(
            get("europe->northamerica.topics.exclude"),
            None,
            "not in v1"
        );
        assert_eq!(
            get("europe->northamerica.emit.heartbeats.interval.seconds"),
            None
        );
        for said in [
            "spec.version",
            "spec.target.groupId",
            "spec.target.configStorageTopic",
            "spec.target.statusStorageTopic",
            "spec.mirrors[0].source.authentication.config.ssl.truststore.type (custom \
             authentication takes only sasl.* and ssl.keystore.* keys, as Strimzi)",
            "spec.mirrors[0].topicsBlacklistPattern",
            "spec.mirrors[0].heartbeatConnector (not in kafka.strimzi.io/v1)",
        ] {
            assert!(
                t.ignored.iter().any(|i| i == said),
                "{said}: {:?}",
                t.ignored
            );
        }
    }

    #[test]
    fn v1_requires_what_strimzi_requires_and_refuses_what_it_removed() {
        let secrets = v1_secrets();
        let err = |text: String| translate_text(&text, secrets.path()).unwrap_err();
        assert_eq!(
            err(V1_RESOURCE.replace("  replicas: 2\n", "")).key,
            "spec.replicas"
        );
        let oauth = V1_RESOURCE.replace("type: custom", "type: oauth\n          clientId: mm2");
        let e = err(oauth);
        assert_eq!(e.key, "spec.mirrors[0].source.authentication.type");
        assert!(e.message.contains("custom"), "{}", e.message);
        let e = err(V1_RESOURCE.replace("pattern: \"*.crt\"", "pattern: \"*.pem\""));
        assert_eq!(e.key, "spec.target.tls.trustedCertificates[0].pattern");
        assert!(e.message.contains("matches no file"), "{}", e.message);
        let e = err(V1_RESOURCE.replace(
            "io.strimzi.kafka.KubernetesSecretConfigProvider",
            "com.example.Vault",
        ));
        assert_eq!(e.key, "spec.target.config.config.providers.secrets.class");
        let e = err(V1_RESOURCE.replace("alias: europe", "alias: northamerica"));
        assert!(e.message.contains("unique"), "{}", e.message);
        // mTLS without `tls`: the certificate has no TLS connection to go on, said.
        let plain = V1_RESOURCE.replace(
            "    tls:\n      trustedCertificates:\n        - secretName: na-cluster-ca\n          pattern: \"*.crt\"\n",
            "",
        );
        assert_ne!(plain, V1_RESOURCE);
        let t = translate_text(&plain, secrets.path()).unwrap();
        assert!(
            t.ignored
                .iter()
                .any(|i| i.starts_with("spec.target.authentication.certificateAndKey (no `tls`")),
            "{:?}",
            t.ignored
        );
    }

    #[test]
    fn v1beta2_defaults_to_three_replicas_and_honours_the_old_exclude_names() {
        let dir = tempfile::tempdir().unwrap();
        let text = RESOURCE.replace("  replicas: 1\n", "").replace(
            "      topicsPattern: LH.*",
            "      topicsPattern: LH.*\n      topicsBlacklistPattern: secret.*\n      \
                 groupsExcludePattern: batch.*\n      groupsBlacklistPattern: old.*",
        );
        let t = translate(Path::new("mm2-na.yaml"), &text, dir.path(), true).unwrap();
        let get = |k: &str| t.raw.get(k).map(|e| e.value.clone());
        assert_eq!(
            get("instances.group.enabled").as_deref(),
            Some("true"),
            "Strimzi runs 3 workers when replicas is not given"
        );
        assert_eq!(
            get("europe->northamerica.topics.exclude").as_deref(),
            Some("secret.*")
        );
        assert_eq!(
            get("europe->northamerica.groups.exclude").as_deref(),
            Some("batch.*"),
            "the exclude pattern wins over the blacklist one"
        );
        assert!(t
            .ignored
            .contains(&"spec.mirrors[0].groupsBlacklistPattern (the exclude pattern wins)".into()));
    }

    /// v1beta2 lets a resource mix layouts: `target` wins over `connectCluster`, and a mirror
    /// may name its source in `spec.clusters`.
    #[test]
    fn v1beta2_resources_may_mix_both_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let mixed = r#"
apiVersion: kafka.strimzi.io/v1beta2
kind: KafkaMirrorMaker2
spec:
  replicas: 1
  connectCluster: europe
  target:
    alias: southamerica
    bootstrapServers: sa:9092
    groupId: g
    configStorageTopic: c
    offsetStorageTopic: o
    statusStorageTopic: s
  clusters:
    - alias: europe
      bootstrapServers: eu:9092
    - alias: asia
      bootstrapServers: as:9092
  mirrors:
    - sourceCluster: europe
      targetCluster: southamerica
      topicsPattern: "LH.*"
"#;
        let t = translate(Path::new("mixed.yaml"), mixed, dir.path(), false).unwrap();
        let get = |k: &str| t.raw.get(k).map(|e| e.value.clone());
        assert_eq!(get("clusters").as_deref(), Some("europe, southamerica"));
        assert_eq!(get("europe->southamerica.topics").as_deref(), Some("LH.*"));
        assert!(t
            .ignored
            .iter()
            .any(|i| i.starts_with("spec.connectCluster")));
        assert!(t.ignored.iter().any(|i| i.starts_with("spec.clusters[1]")));
        let wrong = mixed.replace("targetCluster: southamerica", "targetCluster: europe");
        let err = translate(Path::new("mixed.yaml"), &wrong, dir.path(), false).unwrap_err();
        assert_eq!(err.key, "spec.mirrors[0].targetCluster");
    }

    /// Strimzi's `oauth` client-credentials login becomes Kafka's own OIDC login keys.
    #[test]
    fn v1beta2_oauth_client_credentials_become_kafkas_oidc_login() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("idp")).unwrap();
        std::fs::write(dir.path().join("idp/secret"), "client-s3cret").unwrap();
        let oauth = RESOURCE.replace(
            "        type: scram-sha-512\n        username: mm2-europe\n        passwordSecret:\n          secretName: mm2-europe\n          password: password\n",
            "        type: oauth\n        clientId: mm2\n        clientSecret:\n          secretName: idp\n          key: secret\n        tokenEndpointUri: https://idp/token\n        scope: kafka\n        readTimeoutSeconds: 10\n",
        );
        assert_ne!(oauth, RESOURCE);
        let t = translate_text(&oauth, dir.path()).unwrap();
        let get = |k: &str| t.raw.get(k).map(|e| e.value.clone());
        assert_eq!(get("europe.sasl.mechanism").as_deref(), Some("OAUTHBEARER"));
        assert_eq!(get("europe.security.protocol").as_deref(), Some("SASL_SSL"));
        assert_eq!(
            get("europe.sasl.oauthbearer.token.endpoint.url").as_deref(),
            Some("https://idp/token")
        );
        let jaas = get("europe.sasl.jaas.config").unwrap();
        assert!(
            jaas.contains("clientId=\"mm2\"")
                && jaas.contains("clientSecret=\"client-s3cret\"")
                && jaas.contains("scope=\"kafka\""),
            "{jaas}"
        );
        assert!(t
            .ignored
            .contains(&"spec.clusters[0].authentication.readTimeoutSeconds".into()));
        let refresh = oauth.replace("readTimeoutSeconds: 10", "refreshToken: {}");
        let err = translate_text(&refresh, dir.path()).unwrap_err();
        assert_eq!(err.key, "spec.clusters[0].authentication.refreshToken");
        let password_grant = oauth.replace(
            "readTimeoutSeconds: 10",
            "username: mm2\n        passwordSecret:\n          secretName: idp\n          password: secret",
        );
        let err = translate_text(&password_grant, dir.path()).unwrap_err();
        assert_eq!(err.key, "spec.clusters[0].authentication.username");
    }
}
