//! The group member of one source in this process: a consumer in the replicator's group on
//! the source, subscribed to the topics the source's flows replicate, that never fetches (its
//! partitions stay paused). Its rebalances become the copier's commands: partitions given are
//! acquired once their progress is read from each flow's progress topic (on the flow's own
//! thread, [`super::acquisition`]); partitions asked back
//! are released (the callback returns only when every copier thread stored their progress, so
//! the cooperative protocol hands them on after that); partitions lost (session expired) are
//! abandoned. It keeps the process's [`Standing`]: the lease, and whether it leads the flows.
//!
//! Invariant: progress for a partition is read only after the group gave it to this process,
//! and a revocation is answered only after the copier stored the partition's progress or gave
//! up waiting for it (bounded, and said).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientConfig, ClientContext, TopicPartitionList};
use tracing::{debug, error, info, warn};

use super::acquisition::{Acquisitions, Pending};
use super::coordinator::CoordinatorProbe;
use super::fencing::Fences;
use super::lease::{Lease, Poll};
use super::units::{UnitCountChanged, Units};
use super::{leader_partition, MemberFlow, Standing};
use crate::clock::Clock;
use crate::health::Health;
use crate::kafka::clients::ClientLog;
use crate::observe::metrics::SourceLabels;
use crate::observe::Observability;
use crate::plan::{Commands, GroupCommand, Reply};
use crate::shutdown::Shutdown;
use crate::topics::replicated_topics;

/// How long a revocation waits for the copier threads to store the progress of what they hand
/// over (each waits at most 5 s for its target): far below `max.poll.interval.ms`.
const RELEASE_WAIT: Duration = Duration::from_secs(30);
/// How often the source's topics are listed for the subscription, at most.
const SUBSCRIPTION_REFRESH: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(100);
/// Everything the membership of a source needs.
pub struct Membership {
    pub source: String,
    pub group_id: String,
    /// The source's consumer settings (connection, security, `session.timeout.ms`, ...).
    pub consumer: ClientConfig,
    pub flows: Vec<MemberFlow>,
    pub standing: Standing,
    pub observe: Observability,
    /// Disconnected once the copier threads stored their final progress: only then does the
    /// member leave the group (else the next owner could read older progress).
    pub leave: Receiver<()>,
    pub shutdown: Shutdown,
    /// What leases, deadlines and refreshes are measured by.
    pub clock: Clock,
    pub started: Instant,
    /// Exactly once: the group hands out these copy units instead of partitions.
    pub units: Option<Units>,
}

/// The default group of a replicator's instances: one per source and selection of targets, so
/// processes started with the same `--clusters` share, and others do not.
pub fn default_group_id(source: &str, targets: &[&str]) -> String {
    let mut targets: Vec<&str> = targets.to_vec();
    targets.sort_unstable();
    targets.dedup();
    format!("mirrorcast.{source}.{}", targets.join("+"))
}

/// The member's state, shared between the polling thread and librdkafka's callbacks (which
/// run on the same thread, inside `poll`).
struct State {
    owned: BTreeSet<(String, i32)>,
    subscribed: BTreeSet<String>,
    /// Given by the group, progress not read yet.
    pending: Pending,
    leads: bool,
    /// Exactly once: the units the group gave, in place of partitions.
    units: Option<Units>,
}

struct MemberContext {
    log: ClientLog,
    source: String,
    flows: Vec<Commands>,
    standing: Standing,
    lease: Arc<Mutex<Lease>>,
    state: Mutex<State>,
    clock: Clock,
    /// `mirrorcast_group_leads`: set at each change at once (the member's loop can be busy
    /// reading progress for seconds), and kept in line with the lease by the loop.
    leads_gauge: Gauge,
}

impl ClientContext for MemberContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        self.log.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.log.error(error, reason);
    }
}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let mut partitions = partitions_of(list);
        if partitions.is_empty() {
            return;
        }
        let lost = consumer.assignment_lost();
        let mut units = Vec::new();
        {
            let mut state = self.lock();
            if let Some(held) = &mut state.units {
                units = held.of_assignment(&partitions);
                partitions = held.revoked(&units);
            }
            for partition in &partitions {
                state.owned.remove(partition);
            }
            state.pending.taken(&partitions);
            if lost {
                let mut lease = self.lease.lock().unwrap_or_else(|p| p.into_inner());
                lease.lost(self.clock.now());
                self.standing.set_lease(None);
            }
            self.update_leadership(&mut state);
        }
        if lost {
            warn!(source = %self.source, "the group took {} partition(s) from this process (its session expired): they are dropped without storing progress", partitions.len());
            for commands in &self.flows {
                let _ = commands.send(GroupCommand::Abandon(partitions.clone()));
            }
            self.yield_units(units);
            return;
        }
        let (done, answers) = Reply::channel();
        let mut expected = 0;
        for commands in &self.flows {
            let release = GroupCommand::Release {
                partitions: partitions.clone(),
                done: done.clone(),
            };
            if commands.send(release).is_ok() {
                expected += commands.threads();
            }
        }
        drop(done);
        let deadline = self.clock.now() + RELEASE_WAIT;
        for answered in 0..expected {
            let left = deadline.saturating_duration_since(self.clock.now());
            if answers.recv_timeout(left).is_err() {
                // Gone (stopping) or too slow: the group must not wait longer.
                warn!(source = %self.source, "handing {} partition(s) over after {answered} of {expected} copier answer(s): the next owner may copy some records again", partitions.len());
                break;
            }
        }
        self.yield_units(units);
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                // A member only: the copier reads these partitions with its own readers.
                if let Err(e) = consumer.pause(list) {
                    warn!(source = %self.source, "cannot pause the member's partitions ({e}): it may fetch records it does not use");
                }
                let partitions = partitions_of(list);
                if partitions.is_empty() {
                    return;
                }
                let mut state = self.lock();
                if let Some(units) = &mut state.units {
                    // Fenced by the member's loop first, then acquired.
                    let given = units.of_assignment(&partitions);
                    units.assigned(&given);
                    debug!(source = %self.source, "the group gave copy unit(s) {given:?}");
                    self.update_leadership(&mut state);
                    return;
                }
                state.owned.extend(partitions.iter().cloned());
                for flow in 0..self.flows.len() {
                    state.pending.given(flow, partitions.clone());
                }
                self.update_leadership(&mut state);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                warn!(source = %self.source, "the group's rebalance failed: {e}; librdkafka retries")
            }
        }
    }
}

impl MemberContext {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding it leaves plain data behind.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Exactly once: `units` left this process (after their partitions' release or abandon).
    fn yield_units(&self, units: Vec<usize>) {
        if units.is_empty() {
            return;
        }
        debug!(source = %self.source, "copy unit(s) {units:?} leave this process");
        for commands in &self.flows {
            let _ = commands.send(GroupCommand::Yield(units.clone()));
        }
    }

    /// Leads when it owns the leader partition (exactly once: the leader unit); said on every
    /// change.
    fn update_leadership(&self, state: &mut State) {
        let leads = match &state.units {
            Some(units) => units.leads(),
            None => leader_partition(&state.subscribed).is_some_and(|p| state.owned.contains(&p)),
        };
        if leads != state.leads {
            state.leads = leads;
            self.standing.set_leads(leads);
            self.leads_gauge.set(i64::from(self.standing.leads()));
            if leads {
                info!(source = %self.source, "this instance now leads the flows of {} (topic creation and sync, checkpoints, heartbeats)", self.source);
            } else {
                info!(source = %self.source, "this instance no longer leads the flows of {}", self.source);
            }
        }
    }
}

/// Ticks the lease every 100 ms while `ticking`: a gap means the whole process stood still
/// (the member's thread may be busy for long, in a rebalance; this one never is).
fn keep_time(
    clock: &Clock,
    source: &str,
    standing: &Standing,
    lease: &Mutex<Lease>,
    leads_gauge: &Gauge,
    ticking: &AtomicBool,
) {
    while ticking.load(Ordering::Acquire) {
        let mut lease = lease.lock().unwrap_or_else(|p| p.into_inner());
        if let Poll::AfterGap(gap) = lease.polled(clock.now()) {
            warn!(source, "this process did not run for {gap:?}: nothing is written until the group confirms its partitions");
        }
        standing.set_lease(lease.valid_until());
        drop(lease);
        leads_gauge.set(i64::from(standing.leads()));
        std::thread::sleep(POLL);
    }
}

fn partitions_of(list: &TopicPartitionList) -> Vec<(String, i32)> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

/// How long a listing of the source's topics may take (SIGTERM waits for one in progress).
const LISTING_TIMEOUT: Duration = Duration::from_secs(3);

/// The member's session when the source's consumer settings give none (classic protocol):
/// Kafka Connect's worker default.
const DEFAULT_SESSION_TIMEOUT_MS: u64 = 10_000;

/// Why a process's group member stopped.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The source refuses the group: sharing the work cannot work, and copying everything
    /// beside the other processes of this file would copy it twice.
    #[error(
        "the source {source_cluster} refuses group {group} ({error}), through which the \
         processes started with this config share its partitions (instances.group.enabled): \
         grant this principal READ on group {group}, or, if this process runs alone, set \
         `instances.group.enabled = false` (in a KafkaMirrorMaker2 resource, `spec.replicas: 1`)"
    )]
    Refused {
        source_cluster: String,
        group: String,
        /// The source's error, as said.
        error: String,
    },
    #[error("cannot create the group member of {source_cluster}: {source}")]
    Create {
        source_cluster: String,
        source: KafkaError,
    },
    #[error("cannot start the threads reading the progress of {source_cluster}'s flows: {source}")]
    Threads {
        source_cluster: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    ReaderStopped(#[from] super::acquisition::ReaderStopped),
    #[error(transparent)]
    UnitCountChanged(#[from] UnitCountChanged),
}

impl Membership {
    /// Runs until the copier threads are done (`leave`), then leaves the group.
    pub fn run(self) -> Result<(), MembershipError> {
        let mut config = self.consumer.clone();
        config.set("group.id", &self.group_id);
        config.set("client.id", format!("mirrorcast-{}-member", self.source));
        let classic = config
            .get("group.protocol")
            .is_none_or(|p| p.eq_ignore_ascii_case("classic"));
        if classic && config.get("partition.assignment.strategy").is_none() {
            // Incremental: a rebalance moves only the partitions that must move.
            config.set("partition.assignment.strategy", "cooperative-sticky");
        }
        if classic && config.get("session.timeout.ms").is_none() {
            // Connect's worker default (MM2's dedicated mode shares its tasks with it): a
            // process that died hands its partitions on after 10 s, not librdkafka's 45.
            config.set("session.timeout.ms", DEFAULT_SESSION_TIMEOUT_MS.to_string());
        }
        let millis = |key: &str, default: u64| {
            Duration::from_millis(
                config
                    .get(key)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(default),
            )
        };
        let (session, heartbeat) = (
            millis("session.timeout.ms", DEFAULT_SESSION_TIMEOUT_MS),
            millis("heartbeat.interval.ms", 3_000),
        );
        let lease = Arc::new(Mutex::new(Lease::new(session, heartbeat)));
        // Three questions at least per lease term (half a session), whatever the heartbeat.
        let probe_every = heartbeat.min(session / 6);
        if !classic {
            // KIP-848: the broker sets these (`group.consumer.session.timeout.ms`, 45 s by
            // default) and librdkafka refuses them; they still size the lease here.
            for key in [
                "session.timeout.ms",
                "heartbeat.interval.ms",
                "partition.assignment.strategy",
            ] {
                config.remove(key);
            }
        }
        let context = MemberContext {
            log: ClientLog::new(format!("{} member", self.source)).trusting(&config),
            source: self.source.clone(),
            flows: self.flows.iter().map(|f| f.commands.clone()).collect(),
            standing: self.standing.clone(),
            lease: lease.clone(),
            clock: self.clock.clone(),
            leads_gauge: self
                .observe
                .metrics
                .group_leads
                .get_or_create(&SourceLabels {
                    source: self.source.clone(),
                })
                .clone(),
            state: Mutex::new(State {
                owned: BTreeSet::new(),
                subscribed: BTreeSet::new(),
                pending: Pending::default(),
                leads: false,
                units: self.units.clone(),
            }),
        };
        let consumer: BaseConsumer<MemberContext> =
            config
                .create_with_context(context)
                .map_err(|source| MembershipError::Create {
                    source_cluster: self.source.clone(),
                    source,
                })?;
        match &self.units {
            None => {
                info!(source = %self.source, group = %self.group_id, "sharing the partitions of {} with the other instances in group {}", self.source, self.group_id)
            }
            Some(units) => {
                info!(source = %self.source, group = %self.group_id, "sharing the {} copy units of {} with the other instances in group {} (exactly once: a unit's transactional ids move with it; the group hands out the partitions of {})", units.count, self.source, self.group_id, units.topic)
            }
        }
        let labels = SourceLabels {
            source: self.source.clone(),
        };
        let mut health = Health::default();
        let mut acquisitions = Acquisitions::start(&self.flows, self.started).map_err(|e| {
            MembershipError::Threads {
                source_cluster: self.source.clone(),
                source: e,
            }
        })?;
        let ticking = AtomicBool::new(true);
        let taken = std::thread::scope(|scope| {
            let clock = std::thread::Builder::new()
                .name(format!("lease {}", self.source))
                .spawn_scoped(scope, || {
                    let gauge = &consumer.context().leads_gauge;
                    keep_time(
                        &self.clock,
                        &self.source,
                        &self.standing,
                        &lease,
                        gauge,
                        &ticking,
                    )
                });
            if let Err(e) = clock {
                error!(source = %self.source, "cannot start the lease clock ({e}): this process writes nothing");
            }
            let probe = std::thread::Builder::new()
                .name(format!("coordinator {}", self.source))
                .spawn_scoped(scope, || {
                    let probe = CoordinatorProbe {
                        client: consumer.client(),
                        group: &self.group_id,
                        source: &self.source,
                        every: probe_every,
                        classic,
                    };
                    probe.confirm(&self.clock, &lease, &ticking)
                });
            if let Err(e) = probe {
                error!(source = %self.source, "cannot start the coordinator probe ({e}): this process writes nothing");
            }
            let taken = self.take_part(&consumer, &labels, &mut health, &mut acquisitions);
            ticking.store(false, Ordering::Release);
            taken
        });
        self.standing.set_leads(false);
        self.standing.set_idle(false);
        consumer.context().leads_gauge.set(0);
        taken?;
        info!(source = %self.source, "leaving group {}", self.group_id);
        // Dropping the consumer closes it: the group hands its partitions on.
        Ok(())
    }

    /// Polls the member until the copier threads are done; `Err` when this process must start
    /// again (the units topic changed its count).
    fn take_part(
        &self,
        consumer: &BaseConsumer<MemberContext>,
        labels: &SourceLabels,
        health: &mut Health,
        acquisitions: &mut Acquisitions,
    ) -> Result<(), MembershipError> {
        // Listing the topics fails on its own, and is said on its own.
        let mut listing_health = Health::default();
        let mut fences = Fences::new(self.flows.len(), self.clock.clone());
        let mut last_listing: Option<Instant> = None;
        while let Err(TryRecvError::Empty) = self.leave.try_recv() {
            let now = self.clock.now();
            if last_listing
                .is_none_or(|at| now.saturating_duration_since(at) >= SUBSCRIPTION_REFRESH)
            {
                last_listing = Some(now);
                match self.subscribe(consumer) {
                    Ok(Err(changed)) => {
                        error!(source = %self.source, "{changed}");
                        return Err(changed.into());
                    }
                    Ok(Ok(())) => {
                        if listing_health.recovered() {
                            info!(source = %self.source, "listing the source's topics for the group works again");
                        }
                    }
                    Err(e) => {
                        // Unknown whether there is anything to share: only the partitions lead.
                        self.standing.set_idle(false);
                        if listing_health.failed() {
                            warn!(source = %self.source, "listing the source's topics for the group: {e}; retrying");
                        }
                    }
                }
            }
            match consumer.poll(POLL) {
                Some(Err(e))
                    if e.rdkafka_error_code()
                        == Some(RDKafkaErrorCode::GroupAuthorizationFailed) =>
                {
                    return Err(MembershipError::Refused {
                        source_cluster: self.source.clone(),
                        group: self.group_id.clone(),
                        error: e.to_string(),
                    });
                }
                Some(Err(e)) => {
                    if health.failed() {
                        let message = format!("the group member of {} in group {}: {e} (it needs READ on the group and DESCRIBE on the replicated topics); retrying", self.source, self.group_id);
                        error!(source = %self.source, "{message}");
                        // Shown on the flows, which copy nothing the group does not give.
                        for member in &self.flows {
                            self.observe.status.error(
                                &member.flow.source,
                                &member.flow.target,
                                &message,
                            );
                        }
                    }
                }
                Some(Ok(_)) | None => {
                    if health.recovered() {
                        info!(source = %self.source, "the group member works again");
                    }
                }
            }
            {
                // Only this thread takes the lock (the rebalance callbacks run inside `poll`).
                let mut state = consumer.context().lock();
                let state = &mut *state;
                if let Some(units) = &mut state.units {
                    for (flow, member) in self.flows.iter().enumerate() {
                        let lost = member.lost.take();
                        let still = units.lost(flow, &lost);
                        if !still.is_empty() {
                            // A read under way for them started before the coming fence.
                            state
                                .pending
                                .taken_from(flow, &units.partitions_of_units(&still));
                            warn!(flow = %member.flow.name(), "copy unit(s) {still:?} lost their transactional ids on {} while the group still gives them to this process (a transaction outlived `transaction.timeout.ms`, or another instance fenced them before the group moved them): they are fenced again and go on from the progress read then", member.flow.target);
                        }
                    }
                    let fenced = fences.advance(&self.flows, units);
                    for (flow, partitions) in fenced {
                        state.pending.given(flow, partitions);
                    }
                }
            }
            let owned = {
                let mut state = consumer.context().lock();
                let state = &mut *state;
                acquisitions.step(&self.flows, &mut state.pending, self.clock.now())?;
                match &state.units {
                    Some(units) => units.partitions(),
                    None => state.owned.len(),
                }
            };
            self.observe
                .metrics
                .group_partitions
                .get_or_create(labels)
                .set(owned as i64);
        }
        Ok(())
    }

    /// Subscribes to the source topics some flow replicates (when they changed); the inner
    /// `Err` when the units topic no longer has this process's unit count.
    fn subscribe(
        &self,
        consumer: &BaseConsumer<MemberContext>,
    ) -> Result<Result<(), UnitCountChanged>, KafkaError> {
        // Short: the member notices it must leave only between listings, and a failed one is
        // tried again at the next (every `SUBSCRIPTION_REFRESH`).
        let metadata = consumer.fetch_metadata(None, LISTING_TIMEOUT)?;
        let listing = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name().to_string(), t.partitions().len() as i32))
            .collect();
        let routes: Vec<_> = self
            .flows
            .iter()
            .flat_map(|f| replicated_topics(&f.flow, &listing))
            .collect();
        let context = consumer.context();
        let mut topics: BTreeSet<String> = BTreeSet::new();
        {
            let mut state = context.lock();
            let state = &mut *state;
            match &mut state.units {
                None => topics.extend(routes.into_iter().map(|route| route.source_topic)),
                Some(units) => {
                    if let Err(changed) = units.check_count(listing.get(&units.topic).copied()) {
                        return Ok(Err(changed));
                    }
                    // The group hands out units; the replicated partitions follow from them.
                    topics.insert(units.topic.clone());
                    let replicated = routes
                        .into_iter()
                        .map(|r| (r.source_topic, r.partitions))
                        .collect();
                    for (flow, partitions) in units.listed(replicated) {
                        state.pending.given(flow, partitions);
                    }
                }
            }
        }
        // Nothing to share, so no group to lead it: the duties left (deleting what the source
        // deleted, heartbeats, internal topics) are idempotent, and every instance does them.
        self.standing.set_idle(topics.is_empty());
        if context.lock().subscribed == topics {
            return Ok(Ok(()));
        }
        if topics.is_empty() {
            consumer.unsubscribe();
        } else {
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            consumer.subscribe(&names)?;
        }
        info!(source = %self.source, "the group member subscribes to {} topic(s)", topics.len());
        let mut state = context.lock();
        state.subscribed = topics;
        context.update_leadership(&mut state);
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_group_depends_on_the_source_and_the_set_of_targets() {
        assert_eq!(
            default_group_id("europe", &["southamerica", "northamerica"]),
            "mirrorcast.europe.northamerica+southamerica"
        );
        assert_eq!(
            default_group_id("europe", &["northamerica", "southamerica"]),
            default_group_id("europe", &["southamerica", "northamerica", "northamerica"])
        );
        assert_ne!(
            default_group_id("europe", &["northamerica"]),
            default_group_id("europe", &["southamerica"])
        );
    }
}
