//! Whether a flow copies exactly once, and with which transaction boundary: MM2's worker key
//! `exactly.once.source.support` (per target cluster) and the connector's
//! `exactly.once.support` and `transaction.boundary.interval.ms`.
//!
//! Invariant: `exactly.once.support = required` is delivered or refused with an error (support
//! off for the target, or the source read uncommitted), and a transaction boundary the target
//! would abort at (past its `transaction.timeout.ms`) is an error.

use std::time::Duration;

use super::lookup::FlowLookup;
use super::{ConfigError, ExactlyOnceConfig, FlowClients};

/// `transaction.boundary.interval.ms` when unset: Kafka Streams' commit interval under exactly
/// once. A `read_committed` consumer sees a copied record up to this much later; shorter costs
/// a commit (a round trip to the transaction coordinator) more often.
const DEFAULT_COMMIT_INTERVAL_MS: u64 = 100;

impl FlowLookup<'_> {
    /// MM2 reads `exactly.once.source.support` per target cluster (`<target>.`, a worker key);
    /// the flow's own and a top-level one count too (MM2 would ignore those silently).
    pub(super) fn exactly_once(
        &self,
        target: &str,
        clients: &FlowClients,
        errors: &mut Vec<ConfigError>,
    ) -> Option<ExactlyOnceConfig> {
        const KEY: &str = "exactly.once.source.support";
        let found = [
            format!("{}{KEY}", self.prefix),
            format!("{target}.{KEY}"),
            KEY.to_string(),
        ]
        .into_iter()
        .find_map(|key| self.raw.get(&key).map(|e| (key, e.value.clone())));
        let enabled = match &found {
            None => false,
            Some((key, value)) => match value.trim() {
                "enabled" => true,
                // `preparing` readies Connect workers for a rolling switch; nothing to ready here.
                "disabled" | "preparing" => false,
                other => {
                    errors.push(self.raw.error(
                        key,
                        format!("`{other}` is not one of enabled, preparing, disabled"),
                    ));
                    false
                }
            },
        };
        let support = self.get("exactly.once.support");
        if let Some((key, value)) = &support {
            match value.trim() {
                "requested" => {}
                "required" if !enabled => errors.push(self.raw.error(
                    key,
                    format!(
                        "requires `{target}.{KEY} = enabled` (as Connect refuses a connector \
                         requiring exactly once on a worker without it)"
                    ),
                )),
                "required" => {
                    let committed = clients
                        .source
                        .consumer
                        .get("isolation.level")
                        .is_some_and(|l| l.trim() == "read_committed");
                    if !committed {
                        errors.push(self.raw.error(
                            key,
                            format!(
                                "exactly once can only be guaranteed when the source consumer \
                                 reads committed records: set `{}.consumer.isolation.level = \
                                 read_committed` (otherwise records of aborted and open \
                                 transactions on the source are copied, as MM2 says)",
                                clients.source.alias
                            ),
                        ));
                    }
                }
                other => errors.push(self.raw.error(
                    key,
                    format!("`{other}` is neither `requested` nor `required`"),
                )),
            }
        }
        if !enabled {
            return None;
        }
        let interval = self.positive(
            "transaction.boundary.interval.ms",
            DEFAULT_COMMIT_INTERVAL_MS,
            errors,
        );
        // The coordinator aborts a transaction open longer than this (librdkafka's default).
        let timeout = clients
            .target
            .producer
            .get("transaction.timeout.ms")
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(60_000);
        if interval >= timeout {
            if let Some((key, _)) = self.get("transaction.boundary.interval.ms") {
                errors.push(self.raw.error(
                    &key,
                    format!(
                        "must be below the target producer's `transaction.timeout.ms` \
                         ({timeout}): the target would abort every transaction before its commit"
                    ),
                ));
            }
        }
        Some(ExactlyOnceConfig {
            commit_interval: Duration::from_millis(interval),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{errors, resolve, BROADCAST};
    use super::*;

    #[test]
    fn exactly_once_is_read_per_target_cluster_as_mm2_does() {
        let text = format!(
            "{BROADCAST}northamerica.exactly.once.source.support = enabled\n\
             transaction.boundary.interval.ms = 250\n"
        );
        let config = resolve(&text).unwrap();
        let by_target = |t: &str| config.flows.iter().find(|f| f.target == t).unwrap();
        assert_eq!(
            by_target("northamerica").exactly_once,
            Some(ExactlyOnceConfig {
                commit_interval: Duration::from_millis(250)
            })
        );
        assert_eq!(by_target("southamerica").exactly_once, None);
        assert_eq!(
            by_target("northamerica").transactional_id(3),
            "mirrorcast.europe->northamerica.3"
        );
        let everywhere = resolve(&format!(
            "{BROADCAST}exactly.once.source.support = enabled\n"
        ));
        let everywhere = everywhere.unwrap();
        assert!(everywhere.flows.iter().all(|f| f.exactly_once
            == Some(ExactlyOnceConfig {
                commit_interval: Duration::from_millis(DEFAULT_COMMIT_INTERVAL_MS)
            })));
        let off = format!(
            "{BROADCAST}exactly.once.source.support = enabled\n\
             southamerica.exactly.once.source.support = preparing\n"
        );
        let off = resolve(&off).unwrap();
        assert!(off.flows.iter().any(|f| f.exactly_once.is_none()));
    }

    #[test]
    fn exactly_once_mistakes_name_their_key() {
        let bad_value = errors(&format!(
            "{BROADCAST}northamerica.exactly.once.source.support = yes\n"
        ));
        assert!(bad_value[0]
            .to_string()
            .contains("northamerica.exactly.once.source.support"));
        let required_off = errors(&format!("{BROADCAST}exactly.once.support = required\n"));
        assert!(required_off[0]
            .to_string()
            .contains("exactly.once.source.support = enabled"));
        let required_uncommitted = errors(&format!(
            "{BROADCAST}exactly.once.source.support = enabled\n\
             exactly.once.support = required\n"
        ));
        assert!(required_uncommitted[0]
            .to_string()
            .contains("europe.consumer.isolation.level = read_committed"));
        resolve(&format!(
            "{BROADCAST}exactly.once.source.support = enabled\n\
             exactly.once.support = required\n\
             europe.consumer.isolation.level = read_committed\n"
        ))
        .unwrap();
        resolve(&format!(
            "{BROADCAST}exactly.once.source.support = enabled\n\
             instances.group.enabled = true\n"
        ))
        .unwrap();
        let too_long = errors(&format!(
            "{BROADCAST}exactly.once.source.support = enabled\n\
             transaction.boundary.interval.ms = 60000\n"
        ));
        assert!(too_long[0].to_string().contains("transaction.timeout.ms"));
    }
}
