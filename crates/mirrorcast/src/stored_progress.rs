//! `mirrorcast offsets list | reset | alter`: a flow's stored progress beside the source's log,
//! and moving it while the flow is stopped (the library's `progress::edit` decides, and
//! `progress::store` reads and writes the clusters).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context};
use mirrorcast::config::{ClientRole, Config, FlowConfig};
use mirrorcast::instances::membership::default_group_id;
use mirrorcast::kafka::clients::client_config;
use mirrorcast::observe::status::now_ms;
use mirrorcast::progress::edit::{self, Destination, Move, Position, SourceLog};
use mirrorcast::progress::{store, Progress};

use crate::cli::{FlowArgs, OffsetsAlterArgs, OffsetsListArgs, OffsetsResetArgs, WriteArgs};

/// The enabled flow `--source`->`--target` of `config`.
pub(crate) fn find_flow<'a>(
    config: &'a Config,
    source: &str,
    target: &str,
) -> anyhow::Result<&'a FlowConfig> {
    config
        .flows
        .iter()
        .find(|f| f.source == source && f.target == target)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no enabled flow {source}->{target} in {}",
                config.file.display()
            )
        })
}

/// A flow and the client settings the command uses.
struct Flow<'a> {
    flow: &'a FlowConfig,
    source_consumer: rdkafka::ClientConfig,
    target_consumer: rdkafka::ClientConfig,
}

impl<'a> Flow<'a> {
    fn of(config: &'a Config, args: &FlowArgs) -> anyhow::Result<Self> {
        let flow = find_flow(config, &args.source, &args.target)?;
        let (source, target) = (&flow.clients.source, &flow.clients.target);
        Ok(Flow {
            flow,
            source_consumer: client_config(source, ClientRole::Consumer, "mirrorcast-offsets"),
            target_consumer: client_config(target, ClientRole::Consumer, "mirrorcast-offsets"),
        })
    }

    /// What is stored now; `None` while the progress topic does not exist.
    fn stored(&self) -> anyhow::Result<Option<Progress>> {
        Ok(store::stored(self.flow, &self.target_consumer)?)
    }

    /// Every partition of each chosen topic (TOPIC, or TOPIC:P,Q) on the source.
    fn partitions_of(&self, choices: &[String]) -> anyhow::Result<Vec<(String, i32)>> {
        let mut chosen = Vec::new();
        for choice in choices {
            let (topic, partitions) =
                edit::parse_topic_choice(choice).map_err(anyhow::Error::msg)?;
            let partitions = match partitions {
                Some(partitions) => partitions,
                None => store::partitions(&self.source_consumer, &topic)?,
            };
            chosen.extend(partitions.into_iter().map(|p| (topic.clone(), p)));
        }
        Ok(chosen)
    }
}

pub(crate) fn list(config: &Config, args: &OffsetsListArgs) -> anyhow::Result<()> {
    let flow = Flow::of(config, &args.flow)?;
    let (source, target) = (&flow.flow.source, &flow.flow.target);
    let Some(stored) = flow.stored()? else {
        println!(
            "{source}->{target}: nothing stored ({} does not exist on {target}: the flow never ran)",
            flow.flow.progress.topic
        );
        return Ok(());
    };
    let mut chosen: BTreeSet<(String, i32)> =
        flow.partitions_of(&args.topics)?.into_iter().collect();
    if args.topics.is_empty() {
        chosen.extend(stored.keys().cloned());
    }
    let chosen: Vec<(String, i32)> = chosen.into_iter().collect();
    let logs = store::source_logs(&flow.source_consumer, &chosen, None)?;
    let topics: BTreeSet<&str> = chosen.iter().map(|(t, _)| t.as_str()).collect();
    let source_admin = client_config(
        &flow.flow.clients.source,
        ClientRole::Admin,
        "mirrorcast-offsets",
    );
    let ids = store::topic_ids(&source_admin, &topics.into_iter().collect::<Vec<_>>())?;
    println!(
        "{source}->{target}: progress in {} on {target} (the next source offset to copy)",
        flow.flow.progress.topic
    );
    println!(
        "{:<40} {:>9} {:>12} {:>12} {:>12} {:>12}  NOTE",
        "TOPIC", "PARTITION", "NEXT", "LOG-START", "LOG-END", "BEHIND"
    );
    for (topic, partition) in &chosen {
        let stored = stored.get(&(topic.clone(), *partition));
        let next = stored.map(|s| s.offset + 1);
        let log = logs.get(&(topic.clone(), *partition));
        let mut notes = Vec::new();
        let show = |n: Option<i64>| n.map_or("-".to_string(), |n| n.to_string());
        match (next, log) {
            (_, None) => notes.push("the source has no such partition".to_string()),
            (Some(next), Some(log)) if next < log.start => notes.push(format!(
                "before the log's start: {} record(s) gone from the source",
                log.start - next
            )),
            (Some(next), Some(log)) if next > log.end => {
                notes.push("past the log's end (the topic was re-created?)".to_string())
            }
            (None, Some(_)) => notes.push(if flow.flow.start_at_end {
                "nothing stored: starts at the end".to_string()
            } else {
                "nothing stored: starts at the log's start".to_string()
            }),
            _ => {}
        }
        if let (Some(stored_id), Some(id)) =
            (stored.and_then(|s| s.topic_id.as_ref()), ids.get(topic))
        {
            if stored_id != id {
                notes.push("stored for an earlier topic of this name".to_string());
            }
        }
        let behind = match (next, log) {
            (Some(next), Some(log)) => Some(log.end - next.max(log.start)),
            (None, Some(log)) if !flow.flow.start_at_end => Some(log.end - log.start),
            _ => None,
        };
        println!(
            "{:<40} {:>9} {:>12} {:>12} {:>12} {:>12}  {}",
            topic,
            partition,
            show(next),
            show(log.map(|l| l.start)),
            show(log.map(|l| l.end)),
            show(behind),
            notes.join("; ")
        );
    }
    Ok(())
}

pub(crate) fn reset(config: &Config, args: &OffsetsResetArgs) -> anyhow::Result<()> {
    let flow = Flow::of(config, &args.flow)?;
    let stored = flow.stored()?;
    let (destination, time) = if args.to_earliest {
        (Destination::Earliest, None)
    } else if args.to_latest {
        (Destination::Latest, None)
    } else if let Some(offset) = args.to_offset {
        (
            Destination::parse(&offset.to_string()).map_err(anyhow::Error::msg)?,
            None,
        )
    } else if let Some(text) = &args.to_datetime {
        let at = chrono::DateTime::parse_from_rfc3339(text)
            .with_context(|| format!("--to-datetime `{text}` is not an RFC 3339 time"))?
            .timestamp_millis();
        (Destination::Time(at), Some(at))
    } else {
        (Destination::Forget, None)
    };
    let partitions = if args.all_topics {
        let topics: BTreeSet<String> = stored
            .iter()
            .flat_map(|s| s.keys().map(|(topic, _)| topic.clone()))
            .collect();
        if topics.is_empty() {
            bail!("--all-topics: the flow has no stored progress; name the topics with --topic");
        }
        flow.partitions_of(&topics.into_iter().collect::<Vec<_>>())?
    } else {
        flow.partitions_of(&args.topics)?
    };
    let chosen: Vec<(String, i32, Destination)> = partitions
        .into_iter()
        .map(|(topic, partition)| (topic, partition, destination))
        .collect();
    move_progress(&flow, stored, &chosen, time, &args.write)
}

pub(crate) fn alter(config: &Config, args: &OffsetsAlterArgs) -> anyhow::Result<()> {
    let flow = Flow::of(config, &args.flow)?;
    let stored = flow.stored()?;
    let chosen = args
        .assignments
        .iter()
        .map(|a| edit::parse_assignment(a))
        .collect::<Result<Vec<_>, String>>()
        .map_err(anyhow::Error::msg)?;
    move_progress(&flow, stored, &chosen, None, &args.write)
}

/// Plans the moves, prints them, and with `--execute` writes them once the flow is seen
/// stopped.
fn move_progress(
    flow: &Flow<'_>,
    stored: Option<Progress>,
    chosen: &[(String, i32, Destination)],
    time: Option<i64>,
    write: &WriteArgs,
) -> anyhow::Result<()> {
    let (source, target, topic) = (
        &flow.flow.source,
        &flow.flow.target,
        &flow.flow.progress.topic,
    );
    let Some(stored) = stored else {
        bail!(
            "{topic} does not exist on {target}: run the flow once (it creates the topic), stop \
             it, then move its progress"
        );
    };
    let keys: Vec<(String, i32)> = chosen.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
    let logs: BTreeMap<(String, i32), SourceLog> =
        store::source_logs(&flow.source_consumer, &keys, time)?;
    let moves = match edit::plan(chosen, &logs, &stored, flow.flow.start_at_end) {
        Ok(moves) => moves,
        Err(errors) => {
            for error in &errors {
                eprintln!("mirrorcast: {error}");
            }
            bail!("nothing written: {} partition(s) cannot move", errors.len());
        }
    };
    println!("{source}->{target}: progress in {topic} on {target}");
    print_moves(&moves, flow.flow.start_at_end);
    if !write.execute {
        println!("dry run: nothing written (add --execute to write)");
        return Ok(());
    }
    ensure_stopped(flow, write.assume_stopped)?;
    let topics: BTreeSet<&str> = moves.iter().map(|m| m.topic.as_str()).collect();
    let source_admin = client_config(
        &flow.flow.clients.source,
        ClientRole::Admin,
        "mirrorcast-offsets",
    );
    let ids = store::topic_ids(&source_admin, &topics.into_iter().collect::<Vec<_>>())?;
    let records: Vec<_> = moves
        .iter()
        .map(|m| edit::record(&flow.flow.progress.connector, source, m, ids.get(&m.topic)))
        .collect();
    let target_producer = client_config(
        &flow.flow.clients.target,
        ClientRole::Producer,
        "mirrorcast-offsets",
    );
    store::write(&target_producer, topic, &records)?;
    println!(
        "wrote {} progress record(s): the flow resumes there when it starts",
        records.len()
    );
    Ok(())
}

fn print_moves(moves: &[Move], start_at_end: bool) {
    let show = |p: Position| match p {
        Position::Next(n) => n.to_string(),
        Position::Unset => "none".to_string(),
    };
    println!(
        "{:<40} {:>9} {:>12} {:>12}  EFFECT",
        "TOPIC", "PARTITION", "FROM", "TO"
    );
    for m in moves {
        println!(
            "{:<40} {:>9} {:>12} {:>12}  {}",
            m.topic,
            m.partition,
            show(m.from),
            show(m.to),
            m.effect(start_at_end)
        );
    }
}

/// Refuses while anything runs the flow, or when that cannot be told and the user did not
/// say it is stopped.
fn ensure_stopped(flow: &Flow<'_>, assume_stopped: bool) -> anyhow::Result<()> {
    let name = flow.flow.name();
    if flow.flow.heartbeats.is_none() && flow.flow.instances_group.is_none() && !assume_stopped {
        bail!(
            "nothing written: whether {name} runs cannot be told (emit.heartbeats.enabled and \
             instances.group.enabled are both false); stop every process of it, then add \
             --assume-stopped"
        );
    }
    // The instances' default group ids: `<prefix><targets joined by +>`.
    let group_prefix = default_group_id(&flow.flow.source, &[]);
    let evidence = store::running_evidence(
        flow.flow,
        &group_prefix,
        &flow.source_consumer,
        &flow.target_consumer,
        now_ms(),
    )?;
    if !evidence.is_empty() {
        bail!(
            "nothing written: {name} runs ({}); stop it first: a running copy would overwrite \
             the moved progress",
            evidence.join("; ")
        );
    }
    Ok(())
}
