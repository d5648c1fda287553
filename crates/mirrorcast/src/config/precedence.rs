//! Which keys make each Kafka client's settings, in MM2's precedence, and their mapping to
//! librdkafka settings checked against librdkafka itself.
//!
//! A cluster's clients (tools, the HTTP explorer): top-level connection keys < `<alias>.`
//! connection keys < `<alias>.<client>.` keys (MM2's `clusterProps`).
//!
//! A flow's clients follow MM2's connector configs (`MirrorConnectorConfig`), in which the
//! cluster's keys arrive as `source.<client>.` / `target.<client>.` and the flow's own
//! `<src>-><tgt>.<client>.` keys as `<client>.`, which the former win over:
//! `<src>-><tgt>.source.cluster.` connection keys < `<src>-><tgt>.<client>.` < the cluster's
//! keys < `<src>-><tgt>.source.<client>.` (`target.` for the target side). The producer that
//! writes the records is the Connect worker's in MM2 (`workerConfig`: the target cluster's
//! keys), and only the flow's `<src>-><tgt>.producer.override.` keys (Connect's connector
//! client overrides) win over them; mirrorcast also reads the flow's `<src>-><tgt>.producer.`
//! keys there, between the two (beyond MM2, which gives those to its offset-syncs producer).
//!
//! Invariant: a later layer wins; every value passes through the same Java-to-librdkafka
//! mapping and librdkafka check, and every mistake names the key as the user wrote it.

use std::collections::BTreeMap;

use super::client::{self, ClientSettings, Setting};
use super::properties::{Entry, RawProperties};
use super::{ClientRole, ClusterConfig, ConfigError};

/// One source of keys for a client, under a prefix of the file.
enum Layer {
    /// Only connection keys (`bootstrap.servers`, security, timeouts) under the prefix.
    Connection(String),
    /// Every key under the prefix.
    Every(String),
}

/// Which end of a flow a client talks to.
#[derive(Clone, Copy)]
pub(super) enum Side {
    Source,
    Target,
}

impl Side {
    fn prefix(self) -> &'static str {
        match self {
            Side::Source => "source.",
            Side::Target => "target.",
        }
    }
}

fn cluster_layers(alias: &str, role: ClientRole) -> Vec<Layer> {
    vec![
        Layer::Connection(String::new()),
        Layer::Connection(format!("{alias}.")),
        Layer::Every(format!("{alias}.{}", role.prefix())),
    ]
}

/// MM2's connector-side precedence for one client of flow `flow_prefix` (`<src>-><tgt>.`).
fn flow_layers(flow_prefix: &str, side: Side, alias: &str, role: ClientRole) -> Vec<Layer> {
    let side_prefix = format!("{flow_prefix}{}", side.prefix());
    let mut layers = vec![
        Layer::Connection(format!("{side_prefix}cluster.")),
        Layer::Every(format!("{flow_prefix}{}", role.prefix())),
    ];
    layers.extend(cluster_layers(alias, role));
    layers.push(Layer::Every(format!("{side_prefix}{}", role.prefix())));
    layers
}

/// The clients of cluster `alias`.
pub(super) fn cluster(
    raw: &RawProperties,
    alias: &str,
    errors: &mut Vec<ConfigError>,
) -> ClusterConfig {
    let [consumer, producer, admin] =
        ClientRole::ALL.map(|role| settings(raw, &cluster_layers(alias, role), errors));
    ClusterConfig {
        alias: alias.to_string(),
        consumer,
        producer,
        admin,
    }
}

/// The clients flow `source->target` uses on one of its clusters.
pub(super) fn flow_side(
    raw: &RawProperties,
    (source, target): (&str, &str),
    side: Side,
    errors: &mut Vec<ConfigError>,
) -> ClusterConfig {
    let flow_prefix = format!("{source}->{target}.");
    let alias = match side {
        Side::Source => source,
        Side::Target => target,
    };
    let [consumer, producer, admin] = ClientRole::ALL.map(|role| {
        let layers = match (side, role) {
            (Side::Target, ClientRole::Producer) => {
                let mut layers = cluster_layers(alias, role);
                layers.push(Layer::Every(format!("{flow_prefix}{}", role.prefix())));
                // Connect's connector client overrides, over the worker's producer settings.
                layers.push(Layer::Every(format!("{flow_prefix}producer.override.")));
                layers
            }
            _ => flow_layers(&flow_prefix, side, alias, role),
        };
        settings(raw, &layers, errors)
    });
    ClusterConfig {
        alias: alias.to_string(),
        consumer,
        producer,
        admin,
    }
}

/// The librdkafka settings `layers` make, later layers winning.
fn settings(
    raw: &RawProperties,
    layers: &[Layer],
    errors: &mut Vec<ConfigError>,
) -> ClientSettings {
    // Java names first, keyed by the Java name, remembering which user key set each.
    let mut java: BTreeMap<String, (&Entry, String)> = BTreeMap::new();
    for layer in layers {
        let (prefix, connection_only) = match layer {
            Layer::Connection(prefix) => (prefix, true),
            Layer::Every(prefix) => (prefix, false),
        };
        for (key, entry) in raw.with_prefix(prefix) {
            // `<prefix>override.*` keys are Connect's client overrides: read as a layer of
            // their own where MM2 honours them, said to have no effect elsewhere (keys.rs).
            if key.starts_with("override.") {
                continue;
            }
            if !connection_only || client::is_connection_key(key) {
                java.insert(key.into(), (entry, format!("{prefix}{key}")));
            }
        }
    }
    let values: BTreeMap<String, String> = java
        .iter()
        .map(|(k, (entry, _))| (k.clone(), entry.value.clone()))
        .collect();
    let mut settings = ClientSettings::default();
    for (key, (entry, origin)) in &java {
        match client::map_java_setting(key, &entry.value, &values) {
            Ok(client::Mapped::Set(pairs)) => {
                for (k, v) in pairs {
                    let setting = Setting {
                        value: v,
                        origin: origin.clone(),
                        line: entry.line,
                        reference: entry.reference.clone(),
                    };
                    settings.set(&k, setting);
                }
            }
            Ok(client::Mapped::Nothing) => {}
            Err(message) => errors.push(ConfigError {
                file: raw.file.clone(),
                line: entry.line,
                key: origin.clone(),
                message: client::mask_value(&message, key, &entry.value, entry.reference.is_some()),
            }),
        }
    }
    // librdkafka itself knows which names and values it accepts; ask it now, without
    // connecting, so a typo is reported against the user's line.
    for (key, setting) in settings.iter() {
        let mut probe = rdkafka::ClientConfig::new();
        probe.set(key, &setting.value);
        if let Err(e) = probe.create_native_config() {
            // librdkafka's message repeats the value.
            let message = format!("not accepted by librdkafka as `{key}`: {e}");
            errors.push(ConfigError {
                file: raw.file.clone(),
                line: setting.line,
                key: setting.origin.clone(),
                message: client::mask_value(
                    &message,
                    key,
                    &setting.value,
                    setting.reference.is_some(),
                ),
            });
        }
        // librdkafka reads these only when a client starts: a missing file would
        // otherwise pass `validate` and fail every flow at run time.
        if let Some(problem) = client::unreadable_location(key, &setting.value) {
            errors.push(ConfigError {
                file: raw.file.clone(),
                line: setting.line,
                key: setting.origin.clone(),
                message: problem,
            });
        }
    }
    settings
}

#[cfg(test)]
mod tests {
    use super::super::describe;
    use super::super::testing::{errors, resolve, BROADCAST};

    #[test]
    fn client_settings_follow_mm2_precedence() {
        let text = format!(
            "{BROADCAST}security.protocol = SASL_PLAINTEXT\nsasl.mechanism = SCRAM-SHA-512\n\
             europe.security.protocol = PLAINTEXT\neurope.producer.linger.ms = 7\n\
             northamerica.sasl.jaas.config = org.apache.kafka.common.security.scram.ScramLoginModule required username=\"u\" password=\"p\";\n"
        );
        let config = resolve(&text).unwrap();
        let europe = config.cluster("europe").unwrap();
        assert_eq!(europe.producer.get("security.protocol"), Some("PLAINTEXT"));
        assert_eq!(europe.producer.get("linger.ms"), Some("7"));
        assert_eq!(europe.consumer.get("linger.ms"), None);
        let na = config.cluster("northamerica").unwrap();
        assert_eq!(na.admin.get("security.protocol"), Some("SASL_PLAINTEXT"));
        assert_eq!(na.admin.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(na.consumer.get("sasl.password"), Some("p"));
        assert!(!describe(&config).contains("password=p"));
    }

    /// Connect's connector client overrides: `<src>-><tgt>.producer.override.*` is the last word
    /// on the producer of the flow's records (and of its pair's heartbeats), as in MM2; the other
    /// `*.override.*` forms have no effect in MM2 and are said to have none here.
    #[test]
    fn connector_client_overrides_reach_the_records_producer_and_other_forms_are_warned_about() {
        let text = format!(
            "{BROADCAST}northamerica.producer.linger.ms = 10\n\
             europe->northamerica.producer.linger.ms = 50\n\
             europe->northamerica.producer.override.linger.ms = 70\n\
             europe->northamerica.producer.override.compression.type = lz4\n\
             europe->northamerica.consumer.override.fetch.min.bytes = 9\n\
             europe->northamerica.admin.override.retries = 9\n\
             europe->northamerica.source.producer.override.acks = 1\n\
             northamerica.producer.override.batch.size = 9\n\
             producer.override.batch.size = 9\n\
             connector.client.config.override.policy = All\n"
        );
        let config = resolve(&text).unwrap();
        let flow = &config.flows[0];
        let (source, target) = (&flow.clients.source, &flow.clients.target);
        assert_eq!(target.producer.get("linger.ms"), Some("70"));
        assert_eq!(target.producer.get("compression.type"), Some("lz4"));
        assert_eq!(
            source.producer.get("linger.ms"),
            Some("50"),
            "not the override"
        );
        assert_eq!(target.producer.get("batch.size"), None);
        assert_eq!(source.consumer.get("fetch.min.bytes"), None);
        assert_eq!(source.admin.get("retries"), None);
        assert_eq!(source.producer.get("acks"), None);
        let other = &config.flows[1].clients.target;
        assert_eq!(
            other.producer.get("linger.ms"),
            None,
            "one flow's override only"
        );
        let warned: Vec<&str> = config.warnings.iter().map(|w| w.key.as_str()).collect();
        for key in [
            "europe->northamerica.consumer.override.fetch.min.bytes",
            "europe->northamerica.admin.override.retries",
            "europe->northamerica.source.producer.override.acks",
            "northamerica.producer.override.batch.size",
            "producer.override.batch.size",
            "connector.client.config.override.policy",
        ] {
            assert!(warned.contains(&key), "{key} not warned about: {warned:?}");
        }
        assert!(
            !warned
                .iter()
                .any(|k| k.contains("producer.override.linger.ms")),
            "{warned:?}"
        );
        // Overrides pass the same checks as any producer key.
        let errs = errors(&format!(
            "{BROADCAST}europe->northamerica.producer.override.linger.msx = 1\n"
        ));
        assert_eq!(
            errs[0].key, "europe->northamerica.producer.override.linger.msx",
            "{errs:?}"
        );
        let errs = errors(&format!(
            "{BROADCAST}europe->northamerica.producer.override.acks = 1\n"
        ));
        assert_eq!(
            errs[0].key, "europe->northamerica.producer.override.acks",
            "an override cannot weaken what the copy needs: {errs:?}"
        );
    }

    #[test]
    fn a_flows_client_keys_follow_mm2s_connector_precedence() {
        let text = format!(
            "{BROADCAST}europe->northamerica.consumer.fetch.min.bytes = 7\n\
             europe.consumer.fetch.min.bytes = 3\n\
             europe->northamerica.consumer.fetch.wait.max.ms = 70\n\
             europe->northamerica.source.consumer.check.crcs = true\n\
             northamerica.producer.linger.ms = 10\n\
             europe->northamerica.producer.linger.ms = 50\n\
             europe->northamerica.admin.request.timeout.ms = 4000\n\
             northamerica.admin.request.timeout.ms = 5000\n\
             europe->northamerica.target.admin.retries = 4\n\
             europe->northamerica.source.cluster.security.protocol = SSL\n"
        );
        let config = resolve(&text).unwrap();
        let flow = &config.flows[0];
        let (source, target) = (&flow.clients.source, &flow.clients.target);
        // MM2's `source.consumer.` (the cluster's keys) wins over the flow's `consumer.`.
        assert_eq!(source.consumer.get("fetch.min.bytes"), Some("3"));
        assert_eq!(source.consumer.get("fetch.wait.max.ms"), Some("70"));
        assert_eq!(source.consumer.get("check.crcs"), Some("true"));
        assert_eq!(target.consumer.get("fetch.min.bytes"), Some("7"));
        assert_eq!(target.consumer.get("check.crcs"), None, "source side only");
        // The records' producer is the Connect worker's: the flow's keys win.
        assert_eq!(target.producer.get("linger.ms"), Some("50"));
        assert_eq!(source.producer.get("linger.ms"), Some("50"));
        assert_eq!(target.admin.get("request.timeout.ms"), Some("5000"));
        assert_eq!(source.admin.get("request.timeout.ms"), Some("4000"));
        assert_eq!(target.admin.get("retries"), Some("4"));
        assert_eq!(source.consumer.get("security.protocol"), Some("SSL"));
        assert_eq!(target.consumer.get("security.protocol"), None);
        // The other flow and the clusters themselves are untouched.
        let other = &config.flows[1].clients.source;
        assert_eq!(other.consumer.get("fetch.wait.max.ms"), None);
        assert_eq!(
            config
                .cluster("europe")
                .unwrap()
                .admin
                .get("request.timeout.ms"),
            None
        );
    }

    #[test]
    fn a_refused_setting_never_echoes_a_secret_or_a_resolved_value() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("mm2-secrets.properties");
        std::fs::write(&secrets, "info = user:s3cr3t-value\n").unwrap();
        let s = secrets.display();
        let text = format!(
            "{BROADCAST}config.providers = file\n\
             config.providers.file.class = org.apache.kafka.common.config.provider.FileConfigProvider\n\
             europe.consumer.basic.auth.user.info = ${{file:{s}:info}}\n\
             europe.consumer.schema.registry.basic.auth.user.info = plain:l1teral-secret\n"
        );
        let errs = errors(&text);
        assert_eq!(errs.len(), 2, "{errs:?}");
        let shown = format!("{errs:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("l1teral"),
            "{shown}"
        );
        assert!(shown.contains("[redacted]"), "{shown}");
        assert_eq!(errs[0].key, "europe.consumer.basic.auth.user.info");
    }

    #[test]
    fn unknown_librdkafka_setting_is_named() {
        let errs = errors(&format!("{BROADCAST}europe.consumer.no.such.setting = 1\n"));
        assert_eq!(errs[0].key, "europe.consumer.no.such.setting");
    }

    #[test]
    fn java_only_setting_is_rejected_with_the_fix() {
        let errs = errors(&format!("{BROADCAST}europe.ssl.provider = SunJSSE\n"));
        assert!(errs.iter().all(|e| e.key == "europe.ssl.provider"));
        assert!(errs[0].message.contains("ssl.cipher.suites"));
    }

    /// A JKS truststore (Java's default type) is read when the file is loaded: a store that
    /// cannot be read is named with its key and line, never its password.
    #[test]
    fn a_truststore_that_cannot_be_read_is_named_with_its_key() {
        let errs = errors(&format!(
            "{BROADCAST}europe.ssl.truststore.location = /ts.jks\n\
             europe.ssl.truststore.password = hunter22\n"
        ));
        assert!(errs
            .iter()
            .all(|e| e.key == "europe.ssl.truststore.location"));
        assert!(errs[0].message.contains("cannot read `/ts.jks`"));
        assert!(errs.iter().all(|e| !e.message.contains("hunter22")));
    }
}
