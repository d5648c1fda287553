//! Raw properties resolved into a [`Config`] by MM2's precedence (top level < `<alias>.` <
//! `<alias>.<client>.`, and `<src>-><tgt>.` over everything for that flow) and defaults,
//! checking everything that can be checked without a network. This file reads the file as a
//! whole: the cluster aliases and their clusters, which flows are enabled, which pairs of
//! clusters only get heartbeats. Each flow's settings are read by [`super::flow`].
//!
//! Invariant: every mistake of the file is collected (not only the first), each naming its
//! line and key.

use std::collections::BTreeSet;

use super::combinations;
use super::flow::resolve_flow;
use super::lookup::{parse_bool, FlowLookup};
use super::precedence::{self, Side};
use super::properties::RawProperties;
use super::{ClusterConfig, Config, ConfigError, ConfigErrors, FlowConfig, HeartbeatPair};

impl Config {
    pub fn resolve(raw: &RawProperties) -> Result<Self, ConfigErrors> {
        let mut errors = Vec::new();
        let aliases = match raw.get("clusters") {
            None => {
                errors.push(raw.error(
                    "clusters",
                    "missing: list the cluster aliases, e.g. `clusters = europe, northamerica`",
                ));
                Vec::new()
            }
            Some(entry) => {
                let aliases: Vec<String> = entry
                    .value
                    .split(',')
                    .map(|a| a.trim().to_string())
                    .filter(|a| !a.is_empty())
                    .collect();
                if aliases.is_empty() {
                    errors.push(raw.error("clusters", "lists no cluster alias"));
                }
                aliases
            }
        };

        let (refused, warnings) = super::keys::check(raw, &aliases);
        errors.extend(refused);

        let clusters: Vec<ClusterConfig> = aliases
            .iter()
            .filter_map(|alias| resolve_cluster(raw, alias, &mut errors))
            .collect();

        let mut flows = Vec::new();
        let mut seen_pairs = BTreeSet::new();
        for (key, entry) in raw.iter() {
            // `<src>-><tgt>.enabled` turns a flow on; `<src>-><tgt>.sync.topic.acls.enabled` and
            // the like are settings of that flow.
            let Some((source, rest)) = key.split_once("->") else {
                continue;
            };
            let Some((target, "enabled")) = rest.split_once('.') else {
                continue;
            };
            let (source, target) = (source.trim(), target.trim());
            for alias in [source, target] {
                if !aliases.iter().any(|a| a == alias) {
                    errors.push(raw.error(
                        key,
                        format!(
                            "`{alias}` is not one of the aliases in `clusters` ({})",
                            aliases.join(", ")
                        ),
                    ));
                }
            }
            if source == target {
                errors.push(raw.error(key, "a cluster cannot replicate to itself"));
            }
            match parse_bool(&entry.value) {
                Some(true) => {}
                Some(false) => continue,
                None => {
                    errors.push(raw.error(key, format!("`{}` is not true or false", entry.value)));
                    continue;
                }
            }
            if seen_pairs.insert((source.to_string(), target.to_string())) {
                if let Some(flow) = resolve_flow(raw, source, target, &mut errors) {
                    flows.push(flow);
                }
            }
        }
        let mut warnings = warnings;
        warnings.extend(combinations::pointless_settings(raw, &flows));
        let mut seen = BTreeSet::new();
        warnings.retain(|w| seen.insert(w.to_string()));
        let mut heartbeat_pairs = Vec::new();
        for source in &aliases {
            for target in aliases.iter().filter(|t| *t != source) {
                if flows
                    .iter()
                    .any(|f: &FlowConfig| f.source == *source && f.target == *target)
                {
                    continue; // its copier emits them
                }
                let look = FlowLookup::new(raw, source, target);
                if let Some(heartbeats) = look.heartbeats(&mut errors) {
                    let side = Side::Target;
                    heartbeat_pairs.push(HeartbeatPair {
                        source: source.clone(),
                        target: target.clone(),
                        heartbeats,
                        target_clients: precedence::flow_side(
                            raw,
                            (source, target),
                            side,
                            &mut errors,
                        ),
                    });
                }
            }
        }
        let every_client = clusters
            .iter()
            .chain(
                flows
                    .iter()
                    .flat_map(|f: &FlowConfig| [&f.clients.source, &f.clients.target]),
            )
            .chain(heartbeat_pairs.iter().map(|p| &p.target_clients))
            .flat_map(|c| [&c.consumer, &c.producer, &c.admin]);
        for (setting, message) in super::kerberos::other_identities(every_client) {
            errors.push(ConfigError {
                file: raw.file.clone(),
                line: setting.line,
                key: setting.origin.clone(),
                message,
            });
        }
        if errors.is_empty() && flows.is_empty() {
            errors.push(raw.error(
                "clusters",
                "no flow is enabled: add e.g. `europe->northamerica.enabled = true`",
            ));
        }
        if !errors.is_empty() {
            // A cluster's key is read again for each flow's clients: said once.
            let mut seen = BTreeSet::new();
            errors.retain(|e| seen.insert(e.to_string()));
            errors.sort_by_key(|e| e.line.unwrap_or(0));
            return Err(ConfigErrors(errors));
        }
        Ok(Config {
            file: raw.file.clone(),
            clusters,
            flows,
            heartbeat_pairs,
            warnings,
        })
    }
}

/// The clients of cluster `alias` ([`precedence`]), which must have brokers to connect to.
fn resolve_cluster(
    raw: &RawProperties,
    alias: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<ClusterConfig> {
    let bootstrap_key = format!("{alias}.bootstrap.servers");
    if raw.get(&bootstrap_key).is_none() && raw.get("bootstrap.servers").is_none() {
        errors.push(raw.error(
            &bootstrap_key,
            format!("missing: cluster `{alias}` needs `{bootstrap_key} = host:port`"),
        ));
        return None;
    }
    Some(precedence::cluster(raw, alias, errors))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing::{errors, resolve, BROADCAST};
    use super::*;
    use crate::policy::PolicyKind;

    #[test]
    fn broadcast_file_resolves_with_mm2_defaults() {
        let config = resolve(BROADCAST).unwrap();
        assert_eq!(config.flows.len(), 2);
        let na = &config.flows[0];
        assert_eq!(na.name(), "europe->northamerica");
        assert!(na.topics.accepts("LH.ORDERS") && !na.topics.accepts("other"));
        assert_eq!(na.policy.kind, PolicyKind::Identity);
        assert_eq!(na.replication_factor, 1);
        assert_eq!(na.refresh_topics_interval, Some(Duration::from_secs(600)));
        assert_eq!(na.progress_topic(), "mm2-offsets.europe.internal");
        let text = format!("{BROADCAST}replication.policy.separator = _\n");
        let underscore = resolve(&text).unwrap();
        assert_eq!(
            underscore.flows[0].progress_topic(),
            "mm2-offsets.europe.internal"
        );
        let sa = &config.flows[1];
        assert!(sa.topics.accepts("other"), "topics defaults to .*");
        assert!(!sa.topics.accepts("x.internal"));
    }

    #[test]
    fn missing_clusters_is_named() {
        let errs = errors("europe.bootstrap.servers = h:1\n");
        assert_eq!(errs[0].key, "clusters");
    }

    #[test]
    fn unknown_alias_in_a_flow_is_named_with_its_line() {
        let errs = errors(&format!("{BROADCAST}europe->asia.enabled = true\n"));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].key, "europe->asia.enabled");
        assert_eq!(errs[0].line, Some(10));
        assert!(errs[0]
            .to_string()
            .starts_with("mm2.properties:10: `europe->asia.enabled`"));
    }

    #[test]
    fn cluster_without_bootstrap_servers_is_named() {
        let text = BROADCAST.replace("southamerica.bootstrap.servers = 127.0.0.1:3\n", "");
        let errs = errors(&text);
        assert_eq!(errs[0].key, "southamerica.bootstrap.servers");
    }

    #[test]
    fn heartbeats_go_to_every_pair_without_a_flow_unless_turned_off_as_in_mm2() {
        let pairs = |config: &Config| -> Vec<String> {
            config.heartbeat_pairs.iter().map(|p| p.name()).collect()
        };
        let config = resolve(&format!(
            "{BROADCAST}northamerica->europe.enabled = false\n\
             southamerica->northamerica.emit.heartbeats.enabled = false\n\
             northamerica->southamerica.emit.heartbeats.interval.seconds = 7\n"
        ))
        .unwrap();
        // europe->northamerica and europe->southamerica are flows: their copiers write them.
        assert_eq!(
            pairs(&config),
            [
                "northamerica->europe",
                "northamerica->southamerica",
                "southamerica->europe"
            ]
        );
        assert_eq!(
            config.heartbeat_pairs[1].heartbeats.interval,
            Duration::from_secs(7)
        );
        let off = resolve(&format!(
            "{BROADCAST}emit.heartbeats.enabled = false\n\
             southamerica->europe.emit.heartbeats.enabled = true\n"
        ))
        .unwrap();
        assert_eq!(pairs(&off), ["southamerica->europe"]);
        // `--clusters europe`: a process that only writes heartbeats into europe.
        let mut into_europe = config.clone();
        into_europe.retain_targets(&["europe".into()]).unwrap();
        assert!(into_europe.flows.is_empty());
        assert_eq!(
            pairs(&into_europe),
            ["northamerica->europe", "southamerica->europe"]
        );
        let mut nothing = off.clone();
        assert!(nothing.retain_targets(&["northamerica".into()]).is_ok());
        let mut none_at_all =
            resolve(&format!("{BROADCAST}emit.heartbeats.enabled = false\n")).unwrap();
        assert!(none_at_all.retain_targets(&["europe".into()]).is_err());
    }

    #[test]
    fn flow_settings_ending_in_enabled_are_not_flows() {
        let text = format!(
            "{BROADCAST}europe->northamerica.sync.topic.acls.enabled = false\n\
             europe->northamerica.refresh.topics.enabled = false\n"
        );
        let config = resolve(&text).unwrap();
        assert_eq!(config.flows.len(), 2);
        assert_eq!(config.flows[0].acl_sync_interval, None);
        assert_eq!(config.flows[0].refresh_topics_interval, None);
        assert!(config.flows[1].acl_sync_interval.is_some());
    }

    #[test]
    fn disabled_flows_are_not_run() {
        let text = BROADCAST.replace(
            "europe->southamerica.enabled = true",
            "europe->southamerica.enabled = false",
        );
        assert_eq!(resolve(&text).unwrap().flows.len(), 1);
    }
}
