//! Which topic configs follow the source, as MM2's `DefaultConfigPropertyFilter` decides:
//! never read-only, sensitive or excluded (`config.properties.exclude`) keys; values the source
//! has at their default follow only with `use.defaults.from = source`, and with `target` (the
//! default) they are reset to the target's own default. Pure: the topic manager describes both
//! sides and applies what this returns.

use crate::filter::{Match, PatternList};

/// One change of an incremental alter configs request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    Set {
        name: String,
        value: String,
    },
    /// Back to the broker's default.
    Delete {
        name: String,
    },
}

/// One config entry as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigValue {
    pub name: String,
    pub value: Option<String>,
    /// Not set on the topic: Kafka's default, or inherited from the broker's static or dynamic
    /// config (as a topic, only overrides are the source's own).
    pub is_default: bool,
    pub read_only: bool,
    pub sensitive: bool,
}

#[derive(Debug, Clone)]
pub struct ConfigFilter {
    pub exclude: PatternList,
    /// `use.defaults.from = source`.
    pub defaults_from_source: bool,
}

impl ConfigFilter {
    fn replicates(&self, entry: &ConfigValue) -> bool {
        !entry.read_only && !entry.sensitive && self.exclude.evaluate(&entry.name) == Match::No
    }

    /// The source's value that the target should have: `Some` to set, `None` for the target's
    /// own default.
    fn desired<'a>(&self, entry: &'a ConfigValue) -> Option<&'a str> {
        if entry.is_default && !self.defaults_from_source {
            None
        } else {
            entry.value.as_deref()
        }
    }

    /// Configs to create a remote topic with.
    pub fn creation_configs(&self, source: &[ConfigValue]) -> Vec<(String, String)> {
        source
            .iter()
            .filter(|e| self.replicates(e))
            .filter_map(|e| self.desired(e).map(|v| (e.name.clone(), v.to_string())))
            .collect()
    }

    /// What to change on the target so that it follows the source.
    pub fn sync_ops(&self, source: &[ConfigValue], target: &[ConfigValue]) -> Vec<ConfigOp> {
        let mut ops = Vec::new();
        for entry in source.iter().filter(|e| self.replicates(e)) {
            let current = target.iter().find(|t| t.name == entry.name);
            match self.desired(entry) {
                Some(value) => {
                    if current.and_then(|t| t.value.as_deref()) != Some(value) {
                        ops.push(ConfigOp::Set {
                            name: entry.name.clone(),
                            value: value.to_string(),
                        });
                    }
                }
                None => {
                    if current.is_some_and(|t| !t.is_default) {
                        ops.push(ConfigOp::Delete {
                            name: entry.name.clone(),
                        });
                    }
                }
            }
        }
        ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MM2_EXCLUDES: &str = r"follower\.replication\.throttled\.replicas, leader\.replication\.throttled\.replicas, message\.timestamp\.difference\.max\.ms, message\.timestamp\.type, unclean\.leader\.election\.enable, min\.insync\.replicas";

    fn filter(defaults_from_source: bool) -> ConfigFilter {
        ConfigFilter {
            exclude: PatternList::parse(MM2_EXCLUDES).unwrap(),
            defaults_from_source,
        }
    }

    fn set(name: &str, value: &str) -> ConfigValue {
        ConfigValue {
            name: name.into(),
            value: Some(value.into()),
            is_default: false,
            read_only: false,
            sensitive: false,
        }
    }

    fn default(name: &str, value: &str) -> ConfigValue {
        ConfigValue {
            is_default: true,
            ..set(name, value)
        }
    }

    #[test]
    fn new_topics_get_the_sources_set_configs_minus_excluded_ones() {
        let source = [
            set("retention.ms", "3600000"),
            set("min.insync.replicas", "2"),
            default("cleanup.policy", "delete"),
            ConfigValue {
                read_only: true,
                ..set("segment.index.bytes", "1")
            },
            ConfigValue {
                sensitive: true,
                ..set("secret.thing", "x")
            },
        ];
        assert_eq!(
            filter(false).creation_configs(&source),
            vec![("retention.ms".into(), "3600000".into())]
        );
        let with_defaults = filter(true).creation_configs(&source);
        assert!(with_defaults.contains(&("cleanup.policy".into(), "delete".into())));
    }

    #[test]
    fn only_changed_values_are_set_and_excluded_keys_are_never_touched() {
        let source = [
            set("retention.ms", "100"),
            set("retention.bytes", "5"),
            set("min.insync.replicas", "2"),
        ];
        let target = [
            set("retention.ms", "100"),
            set("retention.bytes", "7"),
            set("min.insync.replicas", "1"),
        ];
        assert_eq!(
            filter(false).sync_ops(&source, &target),
            vec![ConfigOp::Set {
                name: "retention.bytes".into(),
                value: "5".into()
            }]
        );
    }

    #[test]
    fn a_value_back_at_its_source_default_resets_the_target_unless_defaults_come_from_the_source() {
        let source = [default("retention.ms", "604800000")];
        let target = [set("retention.ms", "100")];
        assert_eq!(
            filter(false).sync_ops(&source, &target),
            vec![ConfigOp::Delete {
                name: "retention.ms".into()
            }]
        );
        assert_eq!(
            filter(true).sync_ops(&source, &target),
            vec![ConfigOp::Set {
                name: "retention.ms".into(),
                value: "604800000".into()
            }]
        );
        // Already at its default on the target: nothing to do.
        assert!(filter(false)
            .sync_ops(&source, &[default("retention.ms", "1")])
            .is_empty());
    }

    #[test]
    fn a_key_the_target_lacks_is_set() {
        let ops = filter(false).sync_ops(&[set("max.message.bytes", "2000000")], &[]);
        assert_eq!(
            ops,
            vec![ConfigOp::Set {
                name: "max.message.bytes".into(),
                value: "2000000".into()
            }]
        );
    }
}
