//! A human-readable account of a resolved configuration for `validate`, secrets redacted.

use super::{ClientRole, Config};

/// A human-readable account of a resolved configuration, secrets redacted (`validate`).
pub fn describe(config: &Config) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "config: {}", config.file.display());
    let _ = writeln!(out, "clusters:");
    for cluster in &config.clusters {
        let _ = writeln!(out, "  {} ({})", cluster.alias, cluster.bootstrap_servers());
        for role in ClientRole::ALL {
            let settings = cluster.client(role).redacted();
            let shown: Vec<String> = settings
                .iter()
                .filter(|(k, _)| k != "bootstrap.servers")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            if !shown.is_empty() {
                let _ = writeln!(out, "    {:?}: {}", role, shown.join(", "));
            }
        }
    }
    let _ = writeln!(out, "flows:");
    for flow in &config.flows {
        let _ = writeln!(out, "  {}", flow.name());
        let _ = writeln!(out, "    topics: {}", flow.topics.include.as_str());
        let _ = writeln!(out, "    topics.exclude: {}", flow.topics.exclude.as_str());
        let _ = writeln!(out, "    replication.policy: {}", flow.policy);
        let _ = writeln!(out, "    replication.factor: {}", flow.replication_factor);
        let refresh = match flow.refresh_topics_interval {
            Some(d) => format!("every {}s", d.as_secs()),
            None => "off".to_string(),
        };
        let _ = writeln!(out, "    refresh.topics: {refresh}");
        let config_sync = match flow.config_sync_interval {
            Some(d) => format!("every {}s", d.as_secs()),
            None => "off".to_string(),
        };
        let _ = writeln!(out, "    sync.topic.configs: {config_sync}");
        let _ = writeln!(
            out,
            "    config.properties.exclude: {}",
            flow.config_filter.exclude.as_str()
        );
        let defaults = if flow.config_filter.defaults_from_source {
            "source"
        } else {
            "target"
        };
        let _ = writeln!(out, "    use.defaults.from: {defaults}");
        let acl_sync = match flow.acl_sync_interval {
            Some(d) => format!("every {}s", d.as_secs()),
            None => "off".to_string(),
        };
        let _ = writeln!(out, "    sync.topic.acls: {acl_sync}");
        let _ = writeln!(out, "    sync.topic.deletions: {}", flow.sync_deletions);
        let _ = writeln!(
            out,
            "    heartbeats.replication: {}",
            flow.replicate_heartbeats
        );
        let _ = writeln!(
            out,
            "    progress: {} every {}ms",
            flow.progress_topic(),
            flow.progress.interval.as_millis()
        );
        if let Some(heartbeats) = &flow.heartbeats {
            let every = heartbeats.interval.as_secs();
            let _ = writeln!(out, "    heartbeats: every {every}s");
        }
        if let Some(exactly_once) = &flow.exactly_once {
            let _ = writeln!(
                out,
                "    exactly once: transactions on {} committed every {}ms, transactional ids \
                 {}<copier thread, or copy unit>",
                flow.target,
                exactly_once.commit_interval.as_millis(),
                flow.transactional_id_prefix()
            );
        }
        if let Some(group) = &flow.instances_group {
            let group = group
                .as_deref()
                .unwrap_or("default: mirrorcast.<source>.<targets>");
            let _ = writeln!(
                out,
                "    instances: share {}'s partitions with the other processes in group {group}{}",
                flow.source,
                if flow.exactly_once.is_some() {
                    " (exactly once: in whole copy units, one per partition of the group's units \
                     topic on the source; a unit's transactional ids move with it)"
                } else {
                    ""
                }
            );
        }
        // Only where the flow's own client keys change what its cluster says.
        for side in [&flow.clients.source, &flow.clients.target] {
            let Some(cluster) = config.cluster(&side.alias) else {
                continue;
            };
            for role in ClientRole::ALL {
                let (ours, theirs) = (side.client(role), cluster.client(role));
                if ours.values() == theirs.values() {
                    continue;
                }
                let shown: Vec<String> = ours
                    .redacted()
                    .into_iter()
                    .filter(|(k, _)| ours.get(k) != theirs.get(k))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let _ = writeln!(
                    out,
                    "    {} {:?} (this flow): {}",
                    side.alias,
                    role,
                    shown.join(", ")
                );
            }
        }
    }
    if !config.heartbeat_pairs.is_empty() {
        let _ = writeln!(out, "heartbeats only (no enabled flow, as MM2):");
        for pair in &config.heartbeat_pairs {
            let every = pair.heartbeats.interval.as_secs();
            let _ = writeln!(out, "  {} every {every}s", pair.name());
        }
    }
    out
}
