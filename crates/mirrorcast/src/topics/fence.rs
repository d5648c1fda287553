//! Exactly once without a group: the topic manager takes the flow's transactional ids over
//! before it reads the progress (as Kafka Connect fences every earlier task generation before
//! a connector's tasks start), and gives a copy unit back to its lane when the unit's id was
//! fenced from under it while no newer process took the flow over.
//!
//! Invariant: progress handed to the copier (`Resume`, `Refenced`) is read only after the
//! ids it covers are registered by this process, so it holds every commit made with them
//! before, and nothing more can be committed with them by anyone else.

use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use tracing::{error, info, warn};

use super::manager::TopicManager;
use super::schedule::Retry;
use crate::plan::{Command, CopierGone, FenceAnswer, GroupCommand, Reply};
use crate::progress::{self, writers};

/// How long registering one id of an earlier process may take (the coordinator aborts its
/// open transaction first); asked again after that.
const FENCE_EARLIER: Duration = Duration::from_secs(30);

/// Why the copier threads did not all register their ids.
#[derive(Debug, thiserror::Error)]
pub(super) enum FenceError {
    #[error("{0}")]
    Refused(String),
    #[error("the copier stopped")]
    Gone,
    #[error(transparent)]
    Read(#[from] crate::kafka::log_reader::LogReadError),
}

impl From<CopierGone> for FenceError {
    fn from(_: CopierGone) -> Self {
        FenceError::Gone
    }
}

impl TopicManager {
    /// Whether this flow's ids are taken over by the topic manager (exactly once, no group).
    pub(super) fn fences_alone(&self) -> bool {
        self.flow.exactly_once.is_some() && !self.standing.is_grouped()
    }

    /// Claims the flow's transactional ids for this process, fences any an earlier process
    /// with more copier threads held, and registers this process's own. `None`: stopping.
    pub(super) fn take_over_ids(&self, retry: &mut Retry<'_>) -> Option<()> {
        let threads = self.commands.threads();
        let topic = self.flow.progress_topic();
        let earlier = retry.until(&format!("reading the writers of {topic}"), || {
            writers::read(&self.target_consumer, &topic, &self.flow.source)
        })?;
        let ids = earlier.ids.max(threads);
        retry.until("claiming the flow's transactional ids", || {
            writers::claim(
                &self.target_consumer,
                &self.target_producer,
                &topic,
                &self.flow.source,
                ids,
            )
        })?;
        if ids > threads {
            let extra: Vec<String> = (threads..ids)
                .map(|unit| self.flow.transactional_id(unit))
                .collect();
            retry.until(
                "fencing the transactional ids of an earlier process",
                || writers::fence_ids(&self.target_producer, &extra, FENCE_EARLIER),
            )?;
            info!(
                flow = %self.flow.name(),
                "fenced transactional ids {}..{} on {}: an earlier process ran {ids} copier \
                 threads, this one runs {threads}; none of its transactions can commit now",
                self.flow.transactional_id(threads),
                self.flow.transactional_id(ids - 1),
                self.flow.target
            );
        }
        let units: Vec<usize> = (0..threads).collect();
        retry.until("registering the transactional ids", || {
            self.fence_units(&units)
        })?;
        if let Some(process) = earlier.latest.filter(|p| p != writers::this_process()) {
            info!(flow = %self.flow.name(), "took the flow's transactional ids over from {process}");
        }
        Some(())
    }

    /// Asks the copier threads to register the ids of `units` and waits for every answer (a
    /// lane waits as long as its target has no coordinator, and says so).
    fn fence_units(&self, units: &[usize]) -> Result<(), FenceError> {
        let (done, answers) = Reply::<FenceAnswer>::channel();
        self.commands.send(GroupCommand::Fence {
            units: units.to_vec(),
            done,
        })?;
        let mut refusals = Vec::new();
        // Every copier thread answers, those whose unit is not asked at once.
        let mut answered = 0;
        while answered < self.commands.threads() {
            match answers.recv_timeout(Duration::from_millis(200)) {
                Ok((_, Ok(()))) => answered += 1,
                Ok((unit, Err(refused))) => {
                    answered += 1;
                    refusals.push(format!("unit {unit}: {refused}"));
                }
                Err(RecvTimeoutError::Timeout) if !self.shutdown.is_triggered() => {}
                Err(_) => return Err(FenceError::Gone),
            }
        }
        if refusals.is_empty() {
            Ok(())
        } else {
            Err(FenceError::Refused(refusals.join("; ")))
        }
    }

    /// Units whose id was fenced from under their lane: if a newer process wrote the flow's
    /// writer record, it took the flow over and this process copies nothing more of it (said,
    /// and the flow fails); otherwise (a transaction outlived its timeout) each unit registers
    /// again and goes on from the progress read afterwards. `None`: stopping.
    pub(super) fn refence_lost(&self, retry: &mut Retry<'_>) -> Option<()> {
        let lost = self.lost.take();
        if lost.is_empty() || self.taken_over.is_marked() {
            return Some(());
        }
        let topic = self.flow.progress_topic();
        let writers = retry.until(&format!("reading the writers of {topic}"), || {
            writers::read(&self.target_consumer, &topic, &self.flow.source)
        })?;
        if writers.taken_over() {
            self.taken_over.mark();
            let message = format!(
                "another process ({}) took {} over: it fenced this process's transactional ids \
                 on {}, and this process copies nothing more of the flow (stop it, or start it \
                 again to take the flow back)",
                writers.latest.as_deref().unwrap_or("unknown"),
                self.flow.name(),
                self.flow.target
            );
            error!(flow = %self.flow.name(), "{message}");
            self.observe
                .status
                .failed(&self.flow.source, &self.flow.target, &message);
            return Some(());
        }
        warn!(
            flow = %self.flow.name(),
            "copy unit(s) {lost:?} lost their transactional ids on {} while no other process \
             took the flow over (a transaction outlived `transaction.timeout.ms`, or the target \
             aborted it): they register again and go on from the progress stored",
            self.flow.target
        );
        retry.until("registering the transactional ids again", || {
            self.fence_units(&lost)
        })?;
        let (mut lost, mut unfenced) = (lost, Vec::new());
        let progress = retry.until(&format!("reading progress from {topic}"), || {
            // The read waits for the transactions open on the topic to end: one of a unit
            // given up meanwhile (its abort unanswered) ends only once it is fenced too, before
            // the next attempt. Kept until fenced, so a failed fence is tried again.
            unfenced.extend(self.lost.take());
            if !unfenced.is_empty() {
                self.fence_units(&unfenced)?;
                lost.append(&mut unfenced);
            }
            progress::load(
                &self.target_consumer,
                &topic,
                &self.flow.progress.connector,
                &self.flow.source,
            )
            .map_err(FenceError::from)
        })?;
        lost.sort_unstable();
        lost.dedup();
        for unit in lost {
            let refenced = Command::Refenced {
                unit,
                progress: progress.clone(),
            };
            if self.commands.send(refenced).is_err() {
                return None;
            }
        }
        Some(())
    }
}
