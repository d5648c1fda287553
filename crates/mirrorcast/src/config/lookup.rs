//! How a flow's setting is looked up: `<src>-><tgt>.<key>`, else the top-level `<key>`, else
//! the default, and read as the kind of value MM2 expects there (a bool, a count, a
//! replication factor, a pattern list, one of two words).
//!
//! Invariant: a value that cannot be read is collected as an error naming the key as written
//! (the flow's or the top-level one) and the default stands in, so reading goes on and every
//! mistake of the file is found in one pass.

use std::time::Duration;

use super::properties::RawProperties;
use super::ConfigError;
use crate::filter::PatternList;

/// Looks a flow setting up: `<src>-><tgt>.<key>`, else the top-level `<key>`.
pub(super) struct FlowLookup<'a> {
    pub(super) raw: &'a RawProperties,
    /// `<src>-><tgt>.`
    pub(super) prefix: String,
    /// For a Connect worker key ([`FlowLookup::worker_keys`], [`FlowLookup::storage_keys`]):
    /// `<tgt>.`, looked at after the flow's key.
    worker: Option<String>,
    /// Whether the top-level key comes before `worker` (MM2's `offset.storage.*`).
    top_level_first: bool,
}

impl<'a> FlowLookup<'a> {
    pub(super) fn new(raw: &'a RawProperties, source: &str, target: &str) -> Self {
        FlowLookup {
            raw,
            prefix: format!("{source}->{target}."),
            worker: None,
            top_level_first: false,
        }
    }

    /// Looks up keys of the Connect worker a flow runs in, which MM2 reads only as
    /// `<target>.<key>` (its worker config is the target cluster's): that form, under the
    /// flow's own key and over the top-level one (both read by mirrorcast beyond MM2).
    pub(super) fn worker_keys(&self, target: &str) -> FlowLookup<'a> {
        FlowLookup {
            raw: self.raw,
            prefix: self.prefix.clone(),
            worker: Some(format!("{target}.")),
            top_level_first: false,
        }
    }

    /// Looks up `offset.storage.*`, which MM2 reads as keys of the target's worker but with the
    /// top-level key winning (`MirrorMakerConfig.workerConfig` copies those top-level keys over
    /// the cluster's): the flow's own key (beyond MM2), then the top-level one, then
    /// `<target>.<key>`.
    pub(super) fn storage_keys(&self, target: &str) -> FlowLookup<'a> {
        FlowLookup {
            raw: self.raw,
            prefix: self.prefix.clone(),
            worker: Some(format!("{target}.")),
            top_level_first: true,
        }
    }

    pub(super) fn get(&self, key: &str) -> Option<(String, String)> {
        let flow_key = format!("{}{key}", self.prefix);
        if let Some(e) = self.raw.get(&flow_key) {
            return Some((flow_key, e.value.clone()));
        }
        let top_level = || {
            self.raw
                .get(key)
                .map(|e| (key.to_string(), e.value.clone()))
        };
        if self.top_level_first {
            if let Some(found) = top_level() {
                return Some(found);
            }
        }
        if let Some(worker) = &self.worker {
            let worker_key = format!("{worker}{key}");
            if let Some(e) = self.raw.get(&worker_key) {
                return Some((worker_key, e.value.clone()));
            }
        }
        top_level()
    }

    pub(super) fn string(&self, key: &str, default: &str) -> (String, String) {
        self.get(key)
            .unwrap_or_else(|| (key.to_string(), default.to_string()))
    }

    pub(super) fn parse<T: std::str::FromStr>(
        &self,
        key: &str,
        default: T,
        what: &str,
        errors: &mut Vec<ConfigError>,
    ) -> T {
        match self.get(key) {
            None => default,
            Some((k, v)) => v.parse().unwrap_or_else(|_| {
                errors.push(self.raw.error(&k, format!("`{v}` is not {what}")));
                default
            }),
        }
    }

    /// A replication factor: at least 1, or -1 for the broker's `default.replication.factor`
    /// (KIP-464, as MM2 and the Strimzi and Event Streams examples write it).
    pub(super) fn replication_factor(
        &self,
        key: &str,
        default: i32,
        errors: &mut Vec<ConfigError>,
    ) -> i32 {
        let what = "a replication factor (a positive whole number, or -1 for the broker's default)";
        let value = self.parse(key, default, what, errors);
        if value == 0 || value < -1 {
            let (k, v) = self.string(key, "");
            errors.push(self.raw.error(&k, format!("`{v}` is not {what}")));
            return default;
        }
        value
    }

    /// A whole number of at least 1.
    pub(super) fn positive<T>(&self, key: &str, default: T, errors: &mut Vec<ConfigError>) -> T
    where
        T: std::str::FromStr + PartialOrd + Default + Copy,
    {
        let what = "a positive whole number";
        let value = self.parse(key, default, what, errors);
        if value <= T::default() {
            let (k, v) = self.string(key, "");
            errors.push(self.raw.error(&k, format!("`{v}` is not {what}")));
            return default;
        }
        value
    }

    pub(super) fn bool(&self, key: &str, default: bool, errors: &mut Vec<ConfigError>) -> bool {
        match self.get(key) {
            None => default,
            Some((k, v)) => parse_bool(&v).unwrap_or_else(|| {
                errors.push(self.raw.error(&k, format!("`{v}` is not true or false")));
                default
            }),
        }
    }

    pub(super) fn patterns(
        &self,
        key: &str,
        default: &str,
        errors: &mut Vec<ConfigError>,
    ) -> PatternList {
        let (k, v) = self.string(key, default);
        PatternList::parse(&v).unwrap_or_else(|message| {
            errors.push(self.raw.error(&k, message));
            PatternList::parse("").unwrap_or_else(|_| unreachable!("an empty list always parses"))
        })
    }

    pub(super) fn either(
        &self,
        key: &str,
        a: &str,
        b: &str,
        errors: &mut Vec<ConfigError>,
    ) -> bool {
        let (key, value) = self.string(key, a);
        match value.trim() {
            v if v == a => true,
            v if v == b => false,
            other => {
                errors.push(
                    self.raw
                        .error(&key, format!("`{other}` is neither `{a}` nor `{b}`")),
                );
                true
            }
        }
    }

    /// Every interval of `*.interval.seconds` that can be 0 to turn the job off.
    pub(super) fn seconds_or_off(
        &self,
        key: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Duration> {
        let seconds = self.parse(key, 60u64, "a whole number", errors);
        (seconds > 0).then(|| Duration::from_secs(seconds))
    }

    /// `new`, or MM2's name for it before 3.0 (`*.blacklist`) when only that is set.
    pub(super) fn key_or_old_name<'k>(&self, new: &'k str, old: &'k str) -> &'k str {
        if self.get(new).is_none() && self.get(old).is_some() {
            old
        } else {
            new
        }
    }
}

pub(super) fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{errors, resolve, BROADCAST};

    #[test]
    fn mm2s_old_blacklist_names_are_honoured_when_the_new_ones_are_absent() {
        let text = format!("{BROADCAST}topics.blacklist = secret.*\ngroups.blacklist = batch-.*\n");
        let config = resolve(&text).unwrap();
        let sa = &config.flows[1];
        assert!(!sa.topics.accepts("secret.payroll") && sa.topics.accepts("orders"));
        assert!(!sa.groups.filter.accepts("batch-7") && sa.groups.filter.accepts("shop"));
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        let both = format!("{text}topics.exclude = other\n");
        let config = resolve(&both).unwrap();
        assert!(
            config.flows[1].topics.accepts("secret.payroll"),
            "the new name wins"
        );
    }

    #[test]
    fn flow_keys_override_top_level_keys() {
        let text = format!(
            "{BROADCAST}europe->southamerica.replication.factor = 3\nrefresh.topics.enabled = false\n"
        );
        let config = resolve(&text).unwrap();
        assert_eq!(config.flows[0].replication_factor, 1);
        assert_eq!(config.flows[1].replication_factor, 3);
        assert_eq!(config.flows[1].refresh_topics_interval, None);
    }

    #[test]
    fn a_replication_factor_of_minus_one_means_the_brokers_default() {
        let text = format!(
            "{BROADCAST}replication.factor = -1\noffset.storage.replication.factor = -1\n\
             heartbeats.topic.replication.factor = -1\ncheckpoints.topic.replication.factor = -1\n\
             offset-syncs.topic.replication.factor = -1\n"
        );
        let config = resolve(&text).unwrap();
        assert_eq!(config.flows[0].replication_factor, -1);
        assert_eq!(config.flows[0].progress.replication_factor, -1);
        for bad in ["-2", "0"] {
            let errs = errors(&format!("{BROADCAST}replication.factor = {bad}\n"));
            assert!(
                errs[0].message.contains("-1 for the broker's default"),
                "{errs:?}"
            );
        }
    }

    /// MM2 reads `offset.flush.interval.ms` only as a key of the target's worker.
    #[test]
    fn the_progress_interval_is_read_from_the_targets_worker_key_too() {
        use std::time::Duration;
        let interval = |extra: &str| {
            let config = resolve(&format!("{BROADCAST}{extra}")).unwrap();
            let flow = config
                .flows
                .iter()
                .find(|f| f.target == "northamerica")
                .expect("a flow to northamerica");
            flow.progress.interval
        };
        assert_eq!(interval(""), Duration::from_secs(1));
        assert_eq!(
            interval("northamerica.offset.flush.interval.ms = 5000\n"),
            Duration::from_secs(5)
        );
        assert_eq!(
            interval(
                "offset.flush.interval.ms = 2000\nnorthamerica.offset.flush.interval.ms = 5000\n"
            ),
            Duration::from_secs(5),
            "the target's key over the top-level one"
        );
        assert_eq!(
            interval(
                "europe->northamerica.offset.flush.interval.ms = 3000\n\
                 northamerica.offset.flush.interval.ms = 5000\n"
            ),
            Duration::from_secs(3),
            "the flow's own key first"
        );
        let errs = errors(&format!(
            "{BROADCAST}northamerica.offset.flush.interval.ms = 0\n"
        ));
        assert_eq!(errs[0].key, "northamerica.offset.flush.interval.ms");
    }

    /// MM2 copies the top-level `offset.storage.*` keys over the target worker's own.
    #[test]
    fn progress_topic_settings_are_read_from_the_targets_worker_with_the_top_level_winning() {
        let progress = |extra: &str| {
            let config = resolve(&format!("{BROADCAST}{extra}")).unwrap();
            let flow = config
                .flows
                .iter()
                .find(|f| f.target == "northamerica")
                .expect("a flow to northamerica")
                .progress
                .clone();
            (flow.topic, flow.partitions, flow.replication_factor)
        };
        let by_target = "northamerica.offset.storage.topic = na-offsets
                         northamerica.offset.storage.partitions = 5
                         northamerica.offset.storage.replication.factor = 1
";
        assert_eq!(progress(by_target), ("na-offsets".to_string(), 5, 1));
        assert_eq!(
            progress(&format!(
                "{by_target}offset.storage.partitions = 7
offset.storage.topic = shared
"
            )),
            ("shared".to_string(), 7, 1),
            "the top-level keys win"
        );
        let errs = errors(&format!(
            "{BROADCAST}northamerica.offset.storage.partitions = 0
"
        ));
        assert_eq!(errs[0].key, "northamerica.offset.storage.partitions");
    }

    #[test]
    fn counts_must_be_positive() {
        for key in [
            "replication.factor",
            "heartbeats.topic.replication.factor",
            "offset.flush.interval.ms",
        ] {
            let errs = errors(&format!("{BROADCAST}europe->northamerica.{key} = 0\n"));
            assert_eq!(
                errs[0].key,
                format!("europe->northamerica.{key}"),
                "{errs:?}"
            );
            assert!(errs[0].message.contains("positive"));
        }
    }
}
