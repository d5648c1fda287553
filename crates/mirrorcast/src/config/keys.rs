//! Every key of an MM2 dedicated-mode file and what mirrorcast does with it, so that none is
//! silently ignored: honoured (read by [`super::resolve`]), client settings (checked by
//! librdkafka), refused with what to write instead (a config error), or accepted with a warning
//! that says what it means here. A key nobody knows is warned about with the closest known key.
//!
//! Pure: the table below is docs/configuration.md's "what is read from the properties file" in
//! code.

use super::client;
use super::properties::RawProperties;
use super::ConfigError;

/// What becomes of a key (without its `<alias>.` or `<src>-><tgt>.` prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Read and applied.
    Honoured,
    /// Accepted; it has no effect in mirrorcast, for the reason given (a warning).
    NoEffect(&'static str),
    /// Only MM2's default behaviour exists here: any value but these is refused with the
    /// message (a config error).
    OnlyValues(&'static [&'static str], &'static str),
}

const NO_CONNECT: &str = "mirrorcast runs no Kafka Connect worker";

/// The keys of MM2's `MirrorMakerConfig`, its connectors' configs and the Connect worker of
/// dedicated mode.
pub const KEYS: &[(&str, Rule)] = &[
    ("clusters", Rule::Honoured),
    ("topics", Rule::Honoured),
    ("topics.exclude", Rule::Honoured),
    ("topics.blacklist", Rule::Honoured),
    ("groups", Rule::Honoured),
    ("groups.exclude", Rule::Honoured),
    ("groups.blacklist", Rule::Honoured),
    ("config.properties.exclude", Rule::Honoured),
    ("config.properties.blacklist", Rule::Honoured),
    ("replication.policy.class", Rule::Honoured),
    ("replication.policy.separator", Rule::Honoured),
    (
        "replication.policy.internal.topic.separator.enabled",
        Rule::Honoured,
    ),
    ("replication.factor", Rule::Honoured),
    ("refresh.topics.enabled", Rule::Honoured),
    ("refresh.topics.interval.seconds", Rule::Honoured),
    ("sync.topic.configs.enabled", Rule::Honoured),
    ("sync.topic.configs.interval.seconds", Rule::Honoured),
    ("sync.topic.acls.enabled", Rule::Honoured),
    ("sync.topic.acls.interval.seconds", Rule::Honoured),
    ("sync.topic.deletions.enabled", Rule::Honoured),
    ("heartbeats.replication.enabled", Rule::Honoured),
    (
        "connector.client.config.override.policy",
        Rule::NoEffect(
            "MM2's dedicated mode allows every client override whatever it says, and so does \
             mirrorcast (`<src>-><tgt>.producer.override.*`)",
        ),
    ),
    ("use.defaults.from", Rule::Honoured),
    ("emit.heartbeats.enabled", Rule::Honoured),
    ("emit.heartbeats.interval.seconds", Rule::Honoured),
    ("emit.checkpoints.enabled", Rule::Honoured),
    ("emit.checkpoints.interval.seconds", Rule::Honoured),
    ("emit.offset-syncs.enabled", Rule::Honoured),
    ("sync.group.offsets.enabled", Rule::Honoured),
    ("sync.group.offsets.interval.seconds", Rule::Honoured),
    ("offset.lag.max", Rule::Honoured),
    ("offset-syncs.topic.location", Rule::Honoured),
    ("offset-syncs.topic.replication.factor", Rule::Honoured),
    ("checkpoints.topic.replication.factor", Rule::Honoured),
    ("heartbeats.topic.replication.factor", Rule::Honoured),
    ("offset.storage.topic", Rule::Honoured),
    ("offset.storage.partitions", Rule::Honoured),
    ("offset.storage.replication.factor", Rule::Honoured),
    ("offset.flush.interval.ms", Rule::Honoured),
    ("errors.tolerance", Rule::Honoured),
    ("errors.deadletterqueue.topic.name", Rule::Honoured),
    (
        "errors.deadletterqueue.topic.replication.factor",
        Rule::Honoured,
    ),
    (
        "topic.filter.class",
        Rule::OnlyValues(
            &[
                "org.apache.kafka.connect.mirror.DefaultTopicFilter",
                "DefaultTopicFilter",
            ],
            "a custom topic filter class cannot run in mirrorcast (no JVM): express it with \
             `topics` and `topics.exclude` (whole-name regexes), or remove the key",
        ),
    ),
    (
        "group.filter.class",
        Rule::OnlyValues(
            &[
                "org.apache.kafka.connect.mirror.DefaultGroupFilter",
                "DefaultGroupFilter",
            ],
            "a custom group filter class cannot run in mirrorcast (no JVM): express it with \
             `groups` and `groups.exclude`, or remove the key",
        ),
    ),
    (
        "config.property.filter.class",
        Rule::OnlyValues(
            &[
                "org.apache.kafka.connect.mirror.DefaultConfigPropertyFilter",
                "DefaultConfigPropertyFilter",
            ],
            "a custom config property filter class cannot run in mirrorcast (no JVM): express \
             it with `config.properties.exclude`, or remove the key",
        ),
    ),
    (
        "forwarding.admin.class",
        Rule::OnlyValues(
            &[
                "org.apache.kafka.clients.admin.ForwardingAdmin",
                "ForwardingAdmin",
            ],
            "a custom forwarding admin (KIP-787) cannot run in mirrorcast (no JVM): create \
             topics and ACLs outside MM2's flow (e.g. with the Strimzi operator) and set \
             `sync.topic.acls.enabled = false`, or remove the key",
        ),
    ),
    ("exactly.once.source.support", Rule::Honoured),
    ("exactly.once.support", Rule::Honoured),
    (
        "transaction.boundary",
        Rule::OnlyValues(
            &["poll", "interval"],
            "a connector-defined transaction boundary needs a Connect connector: mirrorcast \
             commits every `transaction.boundary.interval.ms` (remove the key, or set `interval`)",
        ),
    ),
    ("transaction.boundary.interval.ms", Rule::Honoured),
    ("tasks.max", Rule::Honoured),
    ("instances.group.enabled", Rule::Honoured),
    ("data.plane", Rule::Honoured),
    ("instances.group.id", Rule::Honoured),
    (
        "refresh.groups.enabled",
        Rule::NoEffect("groups are listed again at every checkpoint round"),
    ),
    (
        "refresh.groups.interval.seconds",
        Rule::NoEffect("groups are listed again at every checkpoint round"),
    ),
    (
        "consumer.poll.timeout.ms",
        Rule::NoEffect("the copier polls continuously"),
    ),
    (
        "admin.timeout.ms",
        Rule::NoEffect("admin calls time out after 10 s and are retried with backoff"),
    ),
    (
        "use.incremental.alter.configs",
        Rule::NoEffect("topic configs are always synced with IncrementalAlterConfigs"),
    ),
    (
        "add.source.alias.to.metrics",
        Rule::NoEffect("every metric is labelled with its source"),
    ),
    (
        "offset.flush.timeout.ms",
        Rule::NoEffect("progress waits for the target's acknowledgements"),
    ),
    (
        "key.converter",
        Rule::NoEffect("records are copied as bytes"),
    ),
    (
        "value.converter",
        Rule::NoEffect("records are copied as bytes"),
    ),
    (
        "header.converter",
        Rule::NoEffect("records are copied as bytes"),
    ),
    ("config.storage.topic", Rule::NoEffect(NO_CONNECT)),
    (
        "config.storage.replication.factor",
        Rule::NoEffect(NO_CONNECT),
    ),
    ("status.storage.topic", Rule::NoEffect(NO_CONNECT)),
    (
        "status.storage.replication.factor",
        Rule::NoEffect(NO_CONNECT),
    ),
    ("status.storage.partitions", Rule::NoEffect(NO_CONNECT)),
    ("group.id", Rule::NoEffect(NO_CONNECT)),
    ("plugin.path", Rule::NoEffect(NO_CONNECT)),
    (
        "listeners",
        Rule::NoEffect("serve the HTTP side with `--http ADDR`"),
    ),
    (
        "dedicated.mode.enable.internal.rest",
        Rule::NoEffect(NO_CONNECT),
    ),
    (
        "task.shutdown.graceful.timeout.ms",
        Rule::NoEffect(NO_CONNECT),
    ),
    (
        "metric.reporters",
        Rule::NoEffect("metrics are served for Prometheus at /metrics (`--http`)"),
    ),
];

/// Keys whose names start with these are families of MM2 or Connect settings with the same
/// treatment (`config.providers.file.class`, ...).
const FAMILIES: &[(&str, Rule)] = &[
    (
        "config.providers",
        Rule::NoEffect("the file, directory and env providers are built in"),
    ),
    ("rest.", Rule::NoEffect(NO_CONNECT)),
    ("worker.", Rule::NoEffect(NO_CONNECT)),
];

/// The rule of a key (without prefix), if MM2 or mirrorcast knows it.
pub fn rule(key: &str) -> Option<Rule> {
    KEYS.iter()
        .find(|(k, _)| *k == key)
        .map(|(_, rule)| *rule)
        .or_else(|| {
            FAMILIES
                .iter()
                .find(|(prefix, _)| key.starts_with(prefix))
                .map(|(_, rule)| *rule)
        })
}

/// What the keys of `raw` say beyond their values: errors for refused values and for
/// flow-level client settings MM2 gives to something else, warnings for keys without effect and unknown keys.
pub fn check(raw: &RawProperties, aliases: &[String]) -> (Vec<ConfigError>, Vec<ConfigError>) {
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    for (key, entry) in raw.iter() {
        let (scope, bare) = split_scope(key, aliases);
        if let Some(why) = override_without_effect(&scope, bare) {
            warnings.push(raw.error(key, format!("has no effect: {why}")));
            continue;
        }
        match scope {
            Scope::Flow => {
                if bare == "enabled" {
                    continue;
                }
                match flow_client_key(bare) {
                    FlowClientKey::Read => continue, // checked by librdkafka per flow
                    FlowClientKey::Refused(message) => {
                        errors.push(raw.error(key, message));
                        continue;
                    }
                    FlowClientKey::NotClient => {}
                }
            }
            Scope::Cluster => {
                if client::is_connection_key(bare) || is_client_prefix(bare) {
                    continue; // checked by librdkafka with the cluster's settings
                }
            }
            Scope::TopLevel => {
                if client::is_connection_key(bare) {
                    continue;
                }
            }
        }
        match rule(bare) {
            Some(Rule::Honoured) => {}
            Some(Rule::NoEffect(why)) => {
                warnings.push(raw.error(key, format!("has no effect: {why}")));
            }
            Some(Rule::OnlyValues(accepted, message)) => {
                let value = entry.value.trim();
                if !accepted.iter().any(|a| a.eq_ignore_ascii_case(value)) {
                    errors.push(raw.error(key, message));
                }
            }
            None => {
                let hint = closest_known(bare)
                    .map(|k| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default();
                warnings.push(raw.error(
                    key,
                    format!("is not an MM2 key mirrorcast knows: ignored{hint}"),
                ));
            }
        }
    }
    (errors, warnings)
}

/// Why a Connect connector client override (`producer.override.*`, `consumer.override.*`,
/// `admin.override.*`) has no effect where it is written, as in MM2; `None` for other keys and
/// for `<src>-><tgt>.producer.override.*`, which the producer of the flow's records reads.
fn override_without_effect(scope: &Scope, key: &str) -> Option<&'static str> {
    let side = ["source.", "target."]
        .iter()
        .find_map(|p| key.strip_prefix(p));
    let overridden = [
        "producer.override.",
        "consumer.override.",
        "admin.override.",
    ]
    .into_iter()
    .find(|p| side.unwrap_or(key).starts_with(p))?;
    Some(match (scope, side, overridden) {
        (Scope::Flow, None, "producer.override.") => return None,
        (Scope::Flow, None, "consumer.override.") => {
            "Connect gives it only to its own offsets consumer (exactly once), which MM2's              copy does not read through and mirrorcast does not have"
        }
        (Scope::Flow, None, _) => {
            "Connect gives it only to its own admin client (topic creation, exactly once),              never to MM2's admin clients; set `<alias>.admin.*` for those"
        }
        (Scope::Flow, Some(_), _) => {
            "MM2 passes it to its own clients as an unknown `override.` setting, which they              ignore; `<src>-><tgt>.producer.override.*` reaches the producer of the records"
        }
        (Scope::Cluster, _, _) => {
            "MM2 passes it to the cluster's clients as an unknown `override.` setting, which              they ignore; `<src>-><tgt>.producer.override.*` reaches the producer of a flow's              records"
        }
        (Scope::TopLevel, _, _) => {
            "MM2 keeps only connector keys of the top level for its connectors;              `<src>-><tgt>.producer.override.*` reaches the producer of a flow's records"
        }
    })
}

#[derive(Debug, PartialEq, Eq)]
enum Scope {
    TopLevel,
    /// `<alias>.<key>`
    Cluster,
    /// `<src>-><tgt>.<key>`
    Flow,
}

/// Splits the `<src>-><tgt>.` or `<alias>.` prefix off a key.
fn split_scope<'a>(key: &'a str, aliases: &[String]) -> (Scope, &'a str) {
    if let Some((_, rest)) = key.split_once("->") {
        if let Some((_, bare)) = rest.split_once('.') {
            return (Scope::Flow, bare);
        }
    }
    for alias in aliases {
        if let Some(bare) = key
            .strip_prefix(alias.as_str())
            .and_then(|r| r.strip_prefix('.'))
        {
            return (Scope::Cluster, bare);
        }
    }
    (Scope::TopLevel, key)
}

/// What a flow-level (`<src>-><tgt>.`) key means for the flow's clients.
enum FlowClientKey {
    /// Read into the flow's clients ([`super::precedence`]).
    Read,
    Refused(&'static str),
    NotClient,
}

fn flow_client_key(key: &str) -> FlowClientKey {
    if key.starts_with("target.producer.") {
        return FlowClientKey::Refused(
            "MM2 gives this only to the producer of offset syncs kept on the target, which \
             mirrorcast does not have apart (they go with the records): set \
             `<src>-><tgt>.producer.*` for the producer that writes to the target",
        );
    }
    let side_cluster = ["source.cluster.", "target.cluster."]
        .iter()
        .find_map(|p| key.strip_prefix(p));
    if side_cluster.is_some_and(client::is_connection_key) {
        return FlowClientKey::Read;
    }
    let bare = ["source.", "target."]
        .iter()
        .find_map(|p| key.strip_prefix(p))
        .unwrap_or(key);
    if is_client_prefix(bare) {
        return FlowClientKey::Read;
    }
    if client::is_connection_key(key) {
        return FlowClientKey::Refused(
            "a connection setting of one flow is not read: set it on the cluster \
             (`<alias>.<key>`), or for one flow's clients as \
             `<src>-><tgt>.source.cluster.<key>` / `<src>-><tgt>.target.cluster.<key>`",
        );
    }
    FlowClientKey::NotClient
}

fn is_client_prefix(key: &str) -> bool {
    ["consumer.", "producer.", "admin."]
        .iter()
        .any(|p| key.starts_with(p))
}

/// The known key nearest to a misspelt one, if it is near enough to be what was meant.
fn closest_known(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|(k, _)| (*k, strsim::levenshtein(k, key)))
        .filter(|(_, distance)| *distance <= 3)
        .min_by_key(|(_, distance)| *distance)
        .map(|(k, _)| k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn check_text(text: &str) -> (Vec<String>, Vec<String>) {
        let raw = RawProperties::parse(Path::new("mm2.properties"), text.as_bytes()).unwrap();
        let aliases = vec!["europe".to_string(), "na".to_string()];
        let (errors, warnings) = check(&raw, &aliases);
        let show = |v: Vec<ConfigError>| v.iter().map(ToString::to_string).collect();
        (show(errors), show(warnings))
    }

    #[test]
    fn honoured_and_client_keys_pass_silently() {
        let (errors, warnings) = check_text(
            "clusters = europe, na\n\
             europe.bootstrap.servers = e:9092\n\
             europe.consumer.fetch.min.bytes = 1\n\
             na.offset.storage.topic = x\n\
             security.protocol = SSL\n\
             europe->na.enabled = true\n\
             europe->na.topics = LH.*\n\
             topic.filter.class = org.apache.kafka.connect.mirror.DefaultTopicFilter\n\
             exactly.once.source.support = disabled\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn a_custom_class_or_connector_boundary_is_refused_with_what_to_do() {
        let (errors, _) = check_text(
            "topic.filter.class = com.example.MyFilter\n\
             europe->na.group.filter.class = com.example.Groups\n\
             transaction.boundary = connector\n",
        );
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors
                .iter()
                .any(|e| e.contains("`topic.filter.class`") && e.contains("`topics.exclude`")),
            "{errors:?}"
        );
        assert!(errors
            .iter()
            .any(|e| e.contains("`europe->na.group.filter.class`")));
        assert!(errors
            .iter()
            .any(|e| e.contains("`transaction.boundary`") && e.contains("interval")));
    }

    #[test]
    fn keys_without_effect_and_unknown_keys_are_warned_about() {
        let (errors, warnings) = check_text(
            "consumer.poll.timeout.ms = 4\n\
             key.converter = org.apache.kafka.connect.converters.ByteArrayConverter\n\
             refresh.topic.interval.seconds = 5\n\
             europe->na.sync.topic.acl.enabled = false\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(warnings
            .iter()
            .any(|w| w.contains("`consumer.poll.timeout.ms`") && w.contains("polls")));
        assert!(warnings
            .iter()
            .any(|w| w.contains("did you mean `refresh.topics.interval.seconds`")));
        assert!(warnings
            .iter()
            .any(|w| w.contains("did you mean `sync.topic.acls.enabled`")));
    }

    #[test]
    fn flow_level_client_settings_are_read_except_those_mm2_gives_elsewhere() {
        let (errors, warnings) = check_text(
            "europe->na.producer.linger.ms = 5\n\
             europe->na.consumer.fetch.min.bytes = 5\n\
             europe->na.source.consumer.fetch.min.bytes = 5\n\
             europe->na.target.admin.request.timeout.ms = 5\n\
             europe->na.source.cluster.security.protocol = SSL\n\
             europe->na.target.producer.linger.ms = 5\n\
             europe->na.sasl.mechanism = PLAIN\n",
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors
            .iter()
            .any(|e| e.contains("`europe->na.target.producer.linger.ms`")));
        assert!(errors
            .iter()
            .any(|e| e.contains("`europe->na.sasl.mechanism`") && e.contains("source.cluster")));
    }
}

#[cfg(test)]
mod readme {
    /// docs/configuration.md's account of the keys stays complete: every key of the table is
    /// named there.
    #[test]
    fn every_key_of_the_table_is_in_the_readme() {
        let readme = include_str!("../../../../docs/configuration.md");
        let missing: Vec<&str> = super::KEYS
            .iter()
            .map(|(key, _)| *key)
            .filter(|key| !readme.contains(&format!("`{key}`")))
            .collect();
        assert!(missing.is_empty(), "not in the README: {missing:?}");
    }
}
