//! Moving a stopped flow's stored progress (`mirrorcast offsets reset | alter`): where each
//! chosen partition goes, checked against the source's log, and the records that store it in
//! MM2's format. Pure: reading the logs and writing the records is the command's.
//!
//! Positions here are what a consumer group shows: the next source offset to copy. MM2 stores
//! the last copied one (next − 1) and takes a negative one as nothing stored, so next 0 is
//! stored as nothing (a tombstone), which starts the copy at the log's start — unless
//! `auto.offset.reset = latest`, where it would start at the end, so that is refused.
//!
//! Invariant: a position is stored only where the source's log has it (its start to its
//! end), and every refusal names the partition and why; nothing is written unless all of
//! the request can be.

use std::collections::BTreeMap;

use super::{codec, Progress};
use crate::kafka::cluster::TopicId;

/// Where a request moves the chosen partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// The log's first offset still there.
    Earliest,
    /// The log's end: what is there now is never copied.
    Latest,
    /// This next offset to copy.
    Offset(i64),
    /// The first record at or after this time (epoch ms); the end when there is none.
    Time(i64),
    /// Nothing stored: the copy starts as a new one would (`auto.offset.reset`).
    Forget,
}

impl Destination {
    /// `earliest`, `latest`, `none` or a number (a next offset to copy).
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "earliest" => Ok(Destination::Earliest),
            "latest" => Ok(Destination::Latest),
            "none" => Ok(Destination::Forget),
            number => match number.parse::<i64>() {
                Ok(offset) if offset >= 0 => Ok(Destination::Offset(offset)),
                _ => Err(format!(
                    "`{text}` is not an offset: use a number from 0, earliest, latest or none"
                )),
            },
        }
    }
}

/// What the source's log of a partition holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceLog {
    pub start: i64,
    pub end: i64,
    /// For [`Destination::Time`]: the first offset at or after the time (`None`: no record
    /// that late).
    pub at_time: Option<i64>,
}

/// A partition's position after the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Next(i64),
    /// Nothing stored.
    Unset,
}

impl Position {
    fn from_stored(stored: Option<i64>) -> Self {
        stored.map_or(Position::Unset, |last| Position::Next(last + 1))
    }
}

/// One partition's move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub topic: String,
    pub partition: i32,
    pub from: Position,
    pub to: Position,
    pub log: SourceLog,
}

impl Move {
    /// What the move does to the target, for people: records copied again, skipped, or
    /// nothing.
    pub fn effect(&self, start_at_end: bool) -> String {
        let resolve = |p: Position| match p {
            Position::Next(n) => n,
            Position::Unset if start_at_end => self.log.end,
            Position::Unset => self.log.start,
        };
        let (from, to) = (resolve(self.from), resolve(self.to));
        match to.cmp(&from) {
            std::cmp::Ordering::Equal => "unchanged".to_string(),
            std::cmp::Ordering::Less => format!("{} record(s) copied again", from - to),
            std::cmp::Ordering::Greater => format!("{} record(s) never copied", to - from),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("{topic}[{partition}]: offset {offset} is not in the source's log ({start} to {end})")]
    OutOfRange {
        topic: String,
        partition: i32,
        offset: i64,
        start: i64,
        end: i64,
    },
    #[error("{topic}[{partition}]: the source has no such partition")]
    NoSuchPartition { topic: String, partition: i32 },
    #[error(
        "{topic}[{partition}]: position 0 is stored as nothing (MM2's format has no offset \
         before 0), and with `auto.offset.reset = latest` a partition without progress starts \
         at its end ({end}); set the source consumer's auto.offset.reset to earliest first"
    )]
    StartNotStorable {
        topic: String,
        partition: i32,
        end: i64,
    },
}

/// Each chosen partition's move to `destination`. `logs` holds every chosen partition's
/// source log (a chosen partition missing from it is refused); `stored` is the flow's
/// progress now.
pub fn plan(
    chosen: &[(String, i32, Destination)],
    logs: &BTreeMap<(String, i32), SourceLog>,
    stored: &Progress,
    start_at_end: bool,
) -> Result<Vec<Move>, Vec<EditError>> {
    let mut moves = Vec::new();
    let mut errors = Vec::new();
    for (topic, partition, destination) in chosen {
        let (topic, partition) = (topic.clone(), *partition);
        let Some(&log) = logs.get(&(topic.clone(), partition)) else {
            errors.push(EditError::NoSuchPartition { topic, partition });
            continue;
        };
        let to = match *destination {
            Destination::Earliest => Position::Next(log.start),
            Destination::Latest => Position::Next(log.end),
            Destination::Time(_) => Position::Next(log.at_time.unwrap_or(log.end)),
            Destination::Forget => Position::Unset,
            Destination::Offset(offset) if (log.start..=log.end).contains(&offset) => {
                Position::Next(offset)
            }
            Destination::Offset(offset) => {
                errors.push(EditError::OutOfRange {
                    topic,
                    partition,
                    offset,
                    start: log.start,
                    end: log.end,
                });
                continue;
            }
        };
        if to == Position::Next(0) && start_at_end {
            errors.push(EditError::StartNotStorable {
                topic,
                partition,
                end: log.end,
            });
            continue;
        }
        let from = Position::from_stored(
            stored
                .get(&(topic.clone(), partition))
                .map(|stored| stored.offset),
        );
        moves.push(Move {
            topic,
            partition,
            from,
            to,
            log,
        });
    }
    if errors.is_empty() {
        Ok(moves)
    } else {
        Err(errors)
    }
}

/// The progress record that stores `to` for a partition of `topic_id` (the source topic's
/// ID now, so the copy does not take it for an earlier topic's): a key and a value, or no
/// value (a tombstone) for nothing stored.
pub fn record(
    connector: &str,
    source_alias: &str,
    moved: &Move,
    topic_id: Option<&TopicId>,
) -> (Vec<u8>, Option<Vec<u8>>) {
    let key = codec::encode_key(connector, source_alias, &moved.topic, moved.partition);
    let value = match moved.to {
        Position::Next(next) if next > 0 => Some(codec::encode_value(next - 1, topic_id)),
        Position::Next(_) | Position::Unset => None,
    };
    (key, value)
}

/// A `TOPIC:PARTITION=OFFSET` of `offsets alter` (OFFSET as in [`Destination::parse`]).
pub fn parse_assignment(text: &str) -> Result<(String, i32, Destination), String> {
    let shape = || format!("`{text}` is not TOPIC:PARTITION=OFFSET");
    let (partition, offset) = text.split_once('=').ok_or_else(shape)?;
    let (topic, partition) = partition.rsplit_once(':').ok_or_else(shape)?;
    let partition: i32 = partition
        .trim()
        .parse()
        .ok()
        .filter(|p| *p >= 0)
        .ok_or_else(shape)?;
    if topic.trim().is_empty() {
        return Err(shape());
    }
    Ok((
        topic.trim().to_string(),
        partition,
        Destination::parse(offset)?,
    ))
}

/// A `TOPIC` or `TOPIC:P,Q` of `--topic` (as kafka-consumer-groups takes it): the topic and
/// its chosen partitions (`None`: all of them).
pub fn parse_topic_choice(text: &str) -> Result<(String, Option<Vec<i32>>), String> {
    let Some((topic, partitions)) = text.split_once(':') else {
        return Ok((text.trim().to_string(), None));
    };
    let partitions = partitions
        .split(',')
        .map(|p| p.trim().parse::<i32>().ok().filter(|p| *p >= 0))
        .collect::<Option<Vec<i32>>>()
        .ok_or_else(|| format!("`{text}` is not TOPIC or TOPIC:PARTITION,PARTITION,..."))?;
    Ok((topic.trim().to_string(), Some(partitions)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Stored;

    fn logs() -> BTreeMap<(String, i32), SourceLog> {
        let log = |start, end, at_time| SourceLog {
            start,
            end,
            at_time,
        };
        BTreeMap::from([
            (("events".to_string(), 0), log(0, 100, Some(40))),
            (("events".to_string(), 1), log(20, 50, None)),
        ])
    }

    fn stored(last: i64) -> Progress {
        Progress::from([(
            ("events".to_string(), 0),
            Stored {
                offset: last,
                topic_id: None,
            },
        )])
    }

    fn both(destination: Destination) -> Vec<(String, i32, Destination)> {
        vec![
            ("events".to_string(), 0, destination),
            ("events".to_string(), 1, destination),
        ]
    }

    fn positions(moves: &[Move]) -> Vec<(Position, Position)> {
        moves.iter().map(|m| (m.from, m.to)).collect()
    }

    #[test]
    fn each_destination_resolves_against_the_source_log() {
        use Position::{Next, Unset};
        let now = stored(79);
        let plan = |d| plan(&both(d), &logs(), &now, false).unwrap();
        assert_eq!(
            positions(&plan(Destination::Earliest)),
            [(Next(80), Next(0)), (Unset, Next(20))]
        );
        assert_eq!(
            positions(&plan(Destination::Latest)),
            [(Next(80), Next(100)), (Unset, Next(50))]
        );
        assert_eq!(
            positions(&plan(Destination::Time(1_000))),
            [(Next(80), Next(40)), (Unset, Next(50))],
            "no record that late: the end"
        );
        assert_eq!(
            positions(&plan(Destination::Forget)),
            [(Next(80), Unset), (Unset, Unset)]
        );
        let moves = plan(Destination::Offset(30));
        assert_eq!(positions(&moves), [(Next(80), Next(30)), (Unset, Next(30))]);
        assert_eq!(moves[0].effect(false), "50 record(s) copied again");
        assert_eq!(moves[1].effect(false), "10 record(s) never copied");
        assert_eq!(moves[1].effect(true), "20 record(s) copied again");
    }

    #[test]
    fn positions_the_log_does_not_have_are_refused_all_at_once() {
        let errors = plan(&both(Destination::Offset(60)), &logs(), &stored(79), false)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>();
        assert_eq!(
            errors,
            ["events[1]: offset 60 is not in the source's log (20 to 50)"]
        );
        let chosen = [("events".to_string(), 7, Destination::Earliest)];
        assert_eq!(
            plan(&chosen, &logs(), &Progress::new(), false).unwrap_err(),
            [EditError::NoSuchPartition {
                topic: "events".into(),
                partition: 7
            }]
        );
        let start = [("events".to_string(), 0, Destination::Earliest)];
        assert!(plan(&start, &logs(), &Progress::new(), false).is_ok());
        assert!(matches!(
            plan(&start, &logs(), &Progress::new(), true).unwrap_err()[0],
            EditError::StartNotStorable { end: 100, .. }
        ));
    }

    #[test]
    fn records_store_the_last_copied_offset_in_mm2s_format_or_nothing() {
        let moves = plan(&both(Destination::Earliest), &logs(), &stored(79), false).unwrap();
        let id = TopicId("AAAAAAAAAAAAAAAAAAAAAQ".into());
        let (key, value) = record("MirrorSourceConnector", "europe", &moves[1], Some(&id));
        assert_eq!(
            String::from_utf8(key).unwrap(),
            r#"["MirrorSourceConnector",{"cluster":"europe","partition":1,"topic":"events"}]"#
        );
        assert_eq!(
            String::from_utf8(value.unwrap()).unwrap(),
            r#"{"offset":19,"topicId":"AAAAAAAAAAAAAAAAAAAAAQ"}"#
        );
        let (_, start) = record("MirrorSourceConnector", "europe", &moves[0], None);
        assert_eq!(start, None, "next 0 is nothing stored");
    }

    #[test]
    fn command_line_choices_parse_or_say_what_is_expected() {
        assert_eq!(
            parse_assignment("LH.orders:3=120"),
            Ok(("LH.orders".into(), 3, Destination::Offset(120)))
        );
        assert_eq!(
            parse_assignment("t:0=earliest").unwrap().2,
            Destination::Earliest
        );
        assert_eq!(parse_assignment("t:0=none").unwrap().2, Destination::Forget);
        assert!(parse_assignment("t=5")
            .unwrap_err()
            .contains("TOPIC:PARTITION=OFFSET"));
        assert!(parse_assignment("t:0=-3")
            .unwrap_err()
            .contains("not an offset"));
        assert_eq!(parse_topic_choice("t"), Ok(("t".into(), None)));
        assert_eq!(
            parse_topic_choice("t:0,2"),
            Ok(("t".into(), Some(vec![0, 2])))
        );
        assert!(parse_topic_choice("t:x").is_err());
    }
}
