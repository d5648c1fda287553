//! Settings another setting makes pointless: said as warnings against the key that has no
//! effect, rather than ignored (MM2 ignores some and refuses to start with others).
//!
//! Invariant: only warnings, never errors: the flows run as resolved; each warning names the
//! key as written and the flow it concerns.

use super::lookup::{parse_bool, FlowLookup};
use super::properties::RawProperties;
use super::{ConfigError, FlowConfig};

/// Every pointless setting of `flows`, in the order the checks run.
pub(super) fn pointless_settings(raw: &RawProperties, flows: &[FlowConfig]) -> Vec<ConfigError> {
    let mut warnings = without_syncs(raw, flows);
    warnings.extend(group_id_without_group(raw, flows));
    warnings
}

/// What `emit.offset-syncs.enabled = false` turns off beyond the syncs, said rather than
/// ignored: checkpoints and group offset sync (made from syncs; MM2's checkpoint connector
/// refuses to start), and the syncs topic's own settings (with which MM2's source connector
/// refuses to start at all: mirrorcast copies anyway).
fn without_syncs(raw: &RawProperties, flows: &[FlowConfig]) -> Vec<ConfigError> {
    let mut warnings = Vec::new();
    for flow in flows.iter().filter(|f| f.offset_syncs.is_none()) {
        let look = FlowLookup::new(raw, &flow.source, &flow.target);
        for key in [
            "offset-syncs.topic.location",
            "offset-syncs.topic.replication.factor",
        ] {
            if let Some((key, _)) = look.get(key) {
                warnings.push(raw.error(
                    &key,
                    "has no effect with `emit.offset-syncs.enabled = false` (MM2 does not \
                     start its source connector with both: nothing would be copied)",
                ));
            }
        }
        let explicitly_on = |key: &str| {
            look.get(key)
                .filter(|(_, v)| parse_bool(v) == Some(true))
                .map(|(k, _)| k)
        };
        let checkpoints = explicitly_on("emit.checkpoints.enabled");
        let group_sync = explicitly_on("sync.group.offsets.enabled");
        let (key, what) = match (checkpoints, group_sync) {
            (_, Some(key)) => (key, "group offsets are not synced"),
            (Some(key), None) => (key, "no checkpoints are written"),
            // Checkpoints are on by default: said against the key that turned the syncs off,
            // unless checkpoints are off too.
            (None, None) => match look.get("emit.offset-syncs.enabled") {
                Some((key, _)) if flow.groups.checkpoint_interval.is_some() => {
                    (key, "no checkpoints are written")
                }
                _ => continue,
            },
        };
        warnings.push(raw.error(
            &key,
            format!(
                "{what} for {}: they are made from offset syncs, which \
                 `emit.offset-syncs.enabled = false` turns off (MM2's checkpoint connector does \
                 not start either)",
                flow.name()
            ),
        ));
    }
    warnings
}

/// `instances.group.id` only names the group that `instances.group.enabled = false` turns off:
/// beside it, it would be ignored.
fn group_id_without_group(raw: &RawProperties, flows: &[FlowConfig]) -> Vec<ConfigError> {
    flows
        .iter()
        .filter(|f| f.instances_group.is_none())
        .filter_map(|flow| {
            let look = FlowLookup::new(raw, &flow.source, &flow.target);
            let (key, _) = look.get("instances.group.id")?;
            Some(raw.error(
                &key,
                format!(
                    "has no effect for {} with `instances.group.enabled = false`: this \
                     process copies every partition itself",
                    flow.name()
                ),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::{resolve, BROADCAST};

    #[test]
    fn a_group_id_without_the_group_is_said_and_with_it_used() {
        let alone = resolve(&format!(
            "{BROADCAST}instances.group.id = regional\ninstances.group.enabled = false\n"
        ))
        .unwrap();
        let said: Vec<String> = alone.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(said.len(), 2, "one per flow: {said:?}");
        assert!(said[0].contains("`instances.group.id`: has no effect for europe->"));
        assert!(alone.flows.iter().all(|f| f.instances_group.is_none()));
        let grouped = resolve(&format!("{BROADCAST}instances.group.id = regional\n")).unwrap();
        assert!(grouped.warnings.is_empty(), "{:?}", grouped.warnings);
        assert!(grouped
            .flows
            .iter()
            .all(|f| f.instances_group == Some(Some("regional".to_string()))));
    }

    #[test]
    fn what_turning_offset_syncs_off_turns_off_too_is_said() {
        let said = |extra: &str| -> Vec<String> {
            let config = resolve(&format!("{BROADCAST}{extra}")).unwrap();
            config.warnings.iter().map(ToString::to_string).collect()
        };
        let warnings =
            said("emit.offset-syncs.enabled = false\noffset-syncs.topic.replication.factor = 1\n");
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[0].contains("`offset-syncs.topic.replication.factor`: has no effect"));
        assert!(warnings.iter().any(|w| w.contains(
            "`emit.offset-syncs.enabled`: no checkpoints are written for europe->northamerica"
        )));
        let group_sync = said(
            "europe->southamerica.emit.offset-syncs.enabled = false\n\
             sync.group.offsets.enabled = true\n",
        );
        assert_eq!(group_sync.len(), 1, "{group_sync:?}");
        assert!(group_sync[0].contains(
            "`sync.group.offsets.enabled`: group offsets are not synced for europe->southamerica"
        ));
        assert!(
            !group_sync[0].contains("  "),
            "one sentence: {group_sync:?}"
        );
        let quiet = said("emit.offset-syncs.enabled = false\nemit.checkpoints.enabled = false\n");
        assert!(quiet.is_empty(), "{quiet:?}");
    }
}
