//! Loading a configuration file (properties or a `KafkaMirrorMaker2` resource) and the command
//! line's changes to it (`--bootstrap`, `--clusters`, `--strip-security`).
//!
//! Invariant: every refusal names the file and the option or key at fault.

use std::path::Path;

use super::client::{self, ClientSettings, Setting};
use super::properties::RawProperties;
use super::resource;
use super::{ClusterConfig, Config, ConfigError, ConfigErrors};

impl Config {
    /// Reads and resolves a properties file, or a `KafkaMirrorMaker2` resource (`.yaml`,
    /// `.yml`) with its secrets under [`resource::DEFAULT_SECRETS_DIR`].
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        Self::load_with(path, Path::new(resource::DEFAULT_SECRETS_DIR), false).map(|(c, _)| c)
    }

    /// As [`Config::load`], with the secrets of a resource under `secrets_dir`, and without any
    /// TLS or SASL setting if `strip_security`. Also returns the fields of a resource that were
    /// ignored.
    pub fn load_with(
        path: &Path,
        secrets_dir: &Path,
        strip_security: bool,
    ) -> Result<(Self, Vec<String>), ConfigErrors> {
        if !resource::is_resource_file(path) {
            let raw = RawProperties::read(path).map_err(|e| ConfigErrors(vec![e]))?;
            let mut config = Self::resolve(&raw)?;
            if strip_security {
                config.strip_security();
            }
            return Ok((config, Vec::new()));
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: None,
                key: String::new(),
                message: format!("cannot read the file: {e}"),
            }])
        })?;
        let translated = resource::translate(path, &text, secrets_dir, strip_security)
            .map_err(|e| ConfigErrors(vec![e]))?;
        let mut config = Self::resolve(&translated.raw)?;
        // Strimzi runs connectors for its mirrors only: no heartbeats for other pairs.
        config.heartbeat_pairs.clear();
        // Strimzi runs each mirror's source connector under its own name.
        for flow in &mut config.flows {
            flow.progress.connector =
                format!("{}->{}.MirrorSourceConnector", flow.source, flow.target);
        }
        Ok((config, translated.ignored))
    }

    /// Drops every security setting (`security.protocol`, `ssl.*`, `sasl.*`) of every cluster:
    /// for running a production file against local plaintext clusters.
    pub fn strip_security(&mut self) {
        for cluster in self.client_configs_mut(None) {
            for settings in [
                &mut cluster.consumer,
                &mut cluster.producer,
                &mut cluster.admin,
            ] {
                settings.retain(|key| !client::is_security_key(key));
            }
        }
    }

    /// Points cluster `alias` at other brokers (`--bootstrap ALIAS=HOST:PORT`).
    pub fn override_bootstrap(&mut self, alias: &str, servers: &str) -> Result<(), ConfigErrors> {
        if self.cluster(alias).is_none() {
            return Err(ConfigErrors(vec![ConfigError {
                file: self.file.clone(),
                line: None,
                key: "--bootstrap".into(),
                message: format!("`{alias}` is not one of the file's clusters"),
            }]));
        }
        for cluster in self.client_configs_mut(Some(alias)) {
            for settings in [
                &mut cluster.consumer,
                &mut cluster.producer,
                &mut cluster.admin,
            ] {
                let setting = Setting {
                    value: servers.to_string(),
                    origin: "--bootstrap".into(),
                    line: None,
                    reference: None,
                };
                settings.set("bootstrap.servers", setting);
            }
        }
        Ok(())
    }

    /// Every set of client settings for cluster `alias` (all clusters if `None`): the
    /// cluster's own and those of each flow's clients on it.
    fn client_configs_mut<'a>(
        &'a mut self,
        alias: Option<&'a str>,
    ) -> impl Iterator<Item = &'a mut ClusterConfig> + 'a {
        let flows = self
            .flows
            .iter_mut()
            .flat_map(|f| [&mut f.clients.source, &mut f.clients.target]);
        let heartbeats = self
            .heartbeat_pairs
            .iter_mut()
            .map(|p| &mut p.target_clients);
        self.clusters
            .iter_mut()
            .chain(flows)
            .chain(heartbeats)
            .filter(move |c| alias.is_none_or(|a| c.alias == a))
    }

    /// Flows from one source are read once for all their targets, by one consumer: their
    /// consumer settings must agree. Checked after `--clusters`, so that a process per target
    /// may give each flow its own.
    pub fn check_shared_readers(&self) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        for (i, flow) in self.flows.iter().enumerate() {
            let first = &self.flows[..i].iter().find(|f| f.source == flow.source);
            let Some(first) = first else { continue };
            let (ours, theirs) = (
                &flow.clients.source.consumer,
                &first.clients.source.consumer,
            );
            if ours.values() == theirs.values() {
                continue;
            }
            // Where each differing setting was written, on either flow.
            let differs =
                |a: &ClientSettings, b: &ClientSettings| -> Vec<(String, Option<usize>)> {
                    a.iter()
                        .filter(|(k, s)| b.get(k) != Some(s.value.as_str()))
                        .map(|(_, s)| (s.origin.clone(), s.line))
                        .collect()
                };
            let mut differing = differs(ours, theirs);
            differing.extend(differs(theirs, ours));
            differing.sort();
            differing.dedup();
            let (key, line) = differing.first().cloned().unwrap_or_default();
            let keys: Vec<String> = differing.iter().map(|(k, _)| format!("`{k}`")).collect();
            errors.push(ConfigError {
                file: self.file.clone(),
                line,
                key,
                message: format!(
                    "{} and {} read {} once, with one consumer, so their consumer settings \
                     must agree; these differ: {}. Set them on the cluster \
                     (`{}.consumer.*`), the same on every flow from it, or run a process per \
                     target (`--clusters`)",
                    first.name(),
                    flow.name(),
                    flow.source,
                    keys.join(", "),
                    flow.source
                ),
            });
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }

    pub fn cluster(&self, alias: &str) -> Option<&ClusterConfig> {
        self.clusters.iter().find(|c| c.alias == alias)
    }

    /// Keeps only the flows whose target is one of `targets` (`--clusters`).
    pub fn retain_targets(&mut self, targets: &[String]) -> Result<(), ConfigErrors> {
        let unknown: Vec<ConfigError> = targets
            .iter()
            .filter(|t| self.cluster(t).is_none())
            .map(|t| ConfigError {
                file: self.file.clone(),
                line: None,
                key: "--clusters".into(),
                message: format!("`{t}` is not one of the file's `clusters`"),
            })
            .collect();
        if !unknown.is_empty() {
            return Err(ConfigErrors(unknown));
        }
        self.flows.retain(|f| targets.contains(&f.target));
        // As MM2's `--clusters`: only the heartbeats written into those clusters (a process
        // may write nothing else: MM2's heartbeats into a source, for its targets to see).
        self.heartbeat_pairs.retain(|p| targets.contains(&p.target));
        if self.flows.is_empty() && self.heartbeat_pairs.is_empty() {
            return Err(ConfigErrors(vec![ConfigError {
                file: self.file.clone(),
                line: None,
                key: "--clusters".into(),
                message: format!(
                    "no enabled flow, and no heartbeats, has {} as its target",
                    targets.join(" or ")
                ),
            }]));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{resolve, BROADCAST};
    use super::*;

    #[test]
    fn a_resource_writes_heartbeats_for_its_mirrors_only_as_strimzi_runs_them() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/mm2-na.yaml");
        let (config, _) = Config::load_with(&example, Path::new("/nonexistent"), true).unwrap();
        assert_eq!(config.flows.len(), 1);
        assert!(config.flows[0].heartbeats.is_some());
        assert!(config.heartbeat_pairs.is_empty());
    }

    #[test]
    fn flows_reading_one_source_must_agree_on_its_consumer_unless_run_apart() {
        let text = format!("{BROADCAST}europe->southamerica.consumer.fetch.min.bytes = 7\n");
        let config = resolve(&text).unwrap();
        let refused = config.check_shared_readers().unwrap_err().0;
        assert_eq!(refused.len(), 1);
        let message = refused[0].to_string();
        assert!(
            message.contains("mm2.properties:")
                && message.contains("`europe->southamerica.consumer.fetch.min.bytes`")
                && message.contains("read europe once"),
            "{message}"
        );
        let mut apart = config.clone();
        apart.retain_targets(&["southamerica".into()]).unwrap();
        assert!(apart.check_shared_readers().is_ok());
        let same = format!(
            "{BROADCAST}europe->southamerica.consumer.fetch.min.bytes = 7\n\
             europe->northamerica.consumer.fetch.min.bytes = 7\n"
        );
        assert!(resolve(&same).unwrap().check_shared_readers().is_ok());
    }

    #[test]
    fn clusters_option_keeps_flows_to_that_target() {
        let mut config = resolve(BROADCAST).unwrap();
        config.retain_targets(&["southamerica".into()]).unwrap();
        assert_eq!(config.flows.len(), 1);
        assert_eq!(config.flows[0].target, "southamerica");
        assert!(config.retain_targets(&["asia".into()]).is_err());
    }
}
