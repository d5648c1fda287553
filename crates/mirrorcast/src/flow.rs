//! The flows (`source->target`) at run time, in bootstrap order: per flow a topic manager
//! thread (internal topics, then the stored progress and `Resume`, then routes) and a
//! checkpoint thread; per source one copier that reads the source once for all its flows. A
//! stalled or unreachable target only ever holds back its own flow: its lane leaves the shared
//! reader (see `copy`). Each source's threads run under a supervisor (`supervise`): a thread
//! that dies fails its flows visibly and they restart.

use std::thread::JoinHandle;

use crate::clock::Clock;
use crate::config::{ClientRole, Config, FlowConfig};
use crate::copy::report::FlowShards;
use crate::copy::{self, CopierSetup};
use crate::instances::membership::{default_group_id, Membership};
use crate::instances::units::{ensure_units, units_topic, Units};
use crate::instances::MemberFlow;
use crate::kafka::admin::TopicAdmin;
use crate::kafka::clients::{client_config, member_config};
use crate::observe::Observability;
use crate::offsets::checkpoints::CheckpointTask;
use crate::ownership::shard::Shard;
use crate::ownership::Standing;
use crate::plan::Commands;
use crate::shutdown::Shutdown;
use crate::supervise::{supervise, GaveUp, Policy, Watch};
use crate::topics::manager::TopicManager;

/// The running flows, and the supervisors to wait for at shutdown.
pub struct Running {
    pub flows: Vec<String>,
    supervisors: Vec<JoinHandle<Result<(), GaveUp>>>,
}

impl Running {
    /// Waits until every copier has flushed and stored its progress after shutdown. The topic
    /// managers are not waited for: they hold no state, and one may be inside a metadata
    /// request to an unreachable cluster. `Err` names the sources whose flows kept failing
    /// until the process gave up.
    pub fn join(self) -> Result<(), String> {
        let mut gave_up = Vec::new();
        for supervisor in self.supervisors {
            match supervisor.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => gave_up.push(e.to_string()),
                Err(_) => gave_up.push("a supervisor thread panicked".to_string()),
            }
        }
        if gave_up.is_empty() {
            Ok(())
        } else {
            Err(gave_up.join("; "))
        }
    }
}

/// One source with the flows that read it (whose source consumer settings agree:
/// [`Config::check_shared_readers`]).
struct SourceFlows {
    alias: String,
    flows: Vec<FlowConfig>,
    /// Copier threads, each with some of the source's partitions.
    threads: usize,
}

/// Starts every flow of `config`, one supervised copier per source cluster.
pub fn start_all(
    config: &Config,
    shutdown: &Shutdown,
    observe: &Observability,
) -> std::io::Result<Running> {
    let mut by_source: Vec<SourceFlows> = Vec::new();
    let mut names = Vec::new();
    for flow in &config.flows {
        names.push(flow.name());
        match by_source.iter_mut().find(|s| s.alias == flow.source) {
            Some(group) => group.flows.push(flow.clone()),
            None => by_source.push(SourceFlows {
                alias: flow.source.clone(),
                flows: vec![flow.clone()],
                threads: 1,
            }),
        }
    }
    for group in &mut by_source {
        group.threads = copier_threads(&group.flows);
    }
    // Not waited for at shutdown: they hold no state.
    crate::heartbeats::start(&config.heartbeat_pairs, shutdown, observe)?;
    let mut supervisors = Vec::new();
    // One clock for every thread of the process: leases, deadlines and schedules agree.
    let clock = Clock::system();
    for group in by_source {
        let (observe, shutdown, clock) = (observe.clone(), shutdown.clone(), clock.clone());
        let pairs: Vec<(String, String)> = group
            .flows
            .iter()
            .map(|f| (f.source.clone(), f.target.clone()))
            .collect();
        supervisors.push(
            std::thread::Builder::new()
                .name(format!("supervise {}", group.alias))
                .spawn(move || {
                    supervise(
                        &group.alias,
                        &pairs,
                        &observe,
                        &shutdown,
                        &Policy::default(),
                        |watch| attempt(&group, &observe, watch, &clock),
                    )
                })?,
        );
    }
    Ok(Running {
        flows: names,
        supervisors,
    })
}

/// One attempt at a source's flows: their topic managers and checkpoint tasks, the group
/// member when instances share the source, then the source's copier threads until the attempt
/// stops.
fn attempt(group: &SourceFlows, observe: &Observability, watch: &Watch, clock: &Clock) {
    let alias = &group.alias;
    let group_id = group.flows.iter().find_map(|f| f.instances_group.clone());
    let standing = match group_id {
        Some(_) => Standing::in_group_on(clock.clone()),
        None => Standing::alone(),
    };
    let targets: Vec<&str> = group.flows.iter().map(|f| f.target.as_str()).collect();
    let group_id = group_id.map(|id| id.unwrap_or_else(|| default_group_id(alias, &targets)));
    let Some(first) = group.flows.first() else {
        return;
    };
    let mut threads = group.threads;
    let mut units = None;
    let exactly_once = group.flows.iter().any(|f| f.exactly_once.is_some());
    if let (Some(id), true) = (&group_id, exactly_once) {
        match copy_units(first, group.flows.len(), id, threads) {
            Ok(found) => {
                threads = found.count;
                units = Some(found);
            }
            Err(e) => return watch.run("preparing the copy units", || Err(e)),
        }
    }
    let mut per_thread: Vec<Vec<CopierSetup>> = (0..threads).map(|_| Vec::new()).collect();
    let mut members = Vec::new();
    for flow in &group.flows {
        match start(
            flow.clone(),
            threads,
            watch,
            observe.clone(),
            &standing,
            clock,
        ) {
            Ok((setups, member)) => {
                for (thread, setup) in per_thread.iter_mut().zip(setups) {
                    thread.push(setup);
                }
                members.push(member);
            }
            Err(e) => {
                let name = flow.name();
                return watch.run(&format!("starting {name}"), || Err(e.to_string()));
            }
        }
    }
    let reader = client_config(
        &first.clients.source,
        ClientRole::Consumer,
        &format!("mirrorcast-{alias}"),
    );
    let mut copiers = Vec::new();
    for (index, setups) in per_thread.into_iter().enumerate() {
        let (batches, setups): (Vec<_>, Vec<_>) = setups
            .into_iter()
            .partition(|s| s.flow.data_plane == crate::config::DataPlane::Batch);
        if !batches.is_empty() {
            let (alias, shutdown) = (alias.clone(), watch.shutdown());
            let spawned = watch.spawn(format!("batches{index} {alias}"), move || {
                copy::batches::run(&alias, batches, shutdown)
            });
            match spawned {
                Ok(copier) => copiers.push(copier),
                Err(e) => {
                    watch.run("starting a copier thread", || Err(e.to_string()));
                    break;
                }
            }
        }
        if setups.is_empty() {
            continue;
        }
        let (alias, reader, observe) = (alias.clone(), reader.clone(), observe.clone());
        let shutdown = watch.shutdown();
        // Short: Linux shows 15 characters of a thread's name.
        let spawned = watch.spawn(format!("copier{index} {alias}"), move || {
            copy::run(&alias, reader, setups, &observe, shutdown)
        });
        match spawned {
            Ok(copier) => copiers.push(copier),
            Err(e) => {
                watch.run("starting a copier thread", || Err(e.to_string()));
                break;
            }
        }
    }
    let (leave, copiers_done) = std::sync::mpsc::channel::<()>();
    let mut member = None;
    if let Some(id) = group_id {
        let membership = Membership {
            source: alias.clone(),
            group_id: id,
            consumer: member_config(&first.clients.source, &format!("mirrorcast-{alias}")),
            flows: members,
            standing,
            observe: observe.clone(),
            leave: copiers_done,
            shutdown: watch.shutdown(),
            clock: clock.clone(),
            started: clock.now(),
            units,
        };
        match watch.spawn(format!("member {alias}"), move || membership.run()) {
            Ok(thread) => member = Some(thread),
            Err(e) => watch.run("starting the group member", || Err(e.to_string())),
        }
    }
    // The attempt lasts as long as its copiers: each stores its progress before it ends.
    for copier in copiers {
        let _ = copier.join();
    }
    // Only now may the group hand this process's partitions on.
    drop(leave);
    if let Some(member) = member {
        let _ = member.join();
    }
}

/// Why the copy units of a source could not be prepared.
#[derive(Debug, thiserror::Error)]
enum UnitsError {
    #[error("cannot create an admin client for {source_cluster}: {error}")]
    Admin {
        source_cluster: String,
        #[source]
        error: Box<crate::topics::TopicError>,
    },
    #[error(
        "exactly once with instances needs topic {topic} on {source_cluster} (one partition per \
         copy unit; its principal needs CREATE on it, or create it with {wanted} partitions): \
         {error}"
    )]
    Topic {
        topic: String,
        source_cluster: String,
        wanted: usize,
        #[source]
        error: Box<crate::topics::TopicError>,
    },
}

/// Exactly once with instances sharing a source: the group's units topic on the source
/// (created with `wanted` partitions by the first instance), whose partition count is the unit
/// count, and so the copier thread count, of every instance.
fn copy_units(
    first: &FlowConfig,
    flows: usize,
    group_id: &str,
    wanted: usize,
) -> Result<Units, UnitsError> {
    let topic = units_topic(group_id);
    let config = client_config(
        &first.clients.source,
        ClientRole::Admin,
        &format!("mirrorcast-{}", first.source),
    );
    let admin = TopicAdmin::new(&config, &format!("{} units", first.source)).map_err(|error| {
        UnitsError::Admin {
            source_cluster: first.source.clone(),
            error: Box::new(error),
        }
    })?;
    let count = ensure_units(&admin, &topic, wanted).map_err(|error| UnitsError::Topic {
        topic: topic.clone(),
        source_cluster: first.source.clone(),
        wanted,
        error: Box::new(error),
    })?;
    if count != wanted {
        tracing::info!(source = %first.source, "{topic} has {count} partition(s): this instance runs {count} copy unit(s) as the others of its group do (not the {wanted} of its own settings)");
    }
    Ok(Units::new(topic, count, flows))
}

/// Copier threads for a source: the most any of its flows asks for with `tasks.max`, else one
/// per core.
fn copier_threads(flows: &[FlowConfig]) -> usize {
    flows
        .iter()
        .filter_map(|f| f.tasks_max)
        .max()
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Starts a flow's topic manager and checkpoint threads; returns what the flow's lane on each
/// of its source's `threads` copier threads needs.
fn start(
    flow: FlowConfig,
    threads: usize,
    watch: &Watch,
    observe: Observability,
    standing: &Standing,
    clock: &Clock,
) -> std::io::Result<(Vec<CopierSetup>, MemberFlow)> {
    let name = flow.name();
    let (source, target) = (&flow.clients.source, &flow.clients.target);
    // Shown from the start (`starting`), so a flow that cannot reach its clusters is seen.
    observe.status.update(&flow.source, &flow.target, |_| {});
    let shutdown: Shutdown = watch.shutdown();
    let client_id = format!("mirrorcast-{}", name.replace("->", "-to-"));
    let (commands, receivers) = Commands::to_threads(threads);
    let lost = crate::plan::LostUnits::default();
    let taken_over = crate::plan::TakenOver::default();
    let reported_together = FlowShards::new(threads);
    let setups = Shard::all(threads)
        .zip(receivers)
        .map(|(shard, receiver)| {
            let mut flow = flow.clone();
            // Once per flow.
            if !shard.is_first() {
                flow.heartbeats = None;
            }
            CopierSetup {
                flow,
                shard,
                shards: reported_together.clone(),
                source_consumer: client_config(source, ClientRole::Consumer, &client_id),
                target_producer: client_config(target, ClientRole::Producer, &client_id),
                source_producer: client_config(source, ClientRole::Producer, &client_id),
                observe: observe.clone(),
                commands: receiver,
                standing: standing.clone(),
                clock: clock.clone(),
                lost: lost.clone(),
            }
        })
        .collect();
    let syncs_on_source = flow.offset_syncs.as_ref().is_some_and(|s| s.on_source);
    let checkpoints = CheckpointTask {
        flow: flow.clone(),
        source_consumer: client_config(source, ClientRole::Consumer, &client_id),
        target_consumer: client_config(target, ClientRole::Consumer, &client_id),
        target_producer: client_config(target, ClientRole::Producer, &client_id),
        standing: standing.clone(),
        meters: crate::offsets::checkpoints::CheckpointMeters::new(
            &observe.metrics,
            crate::observe::metrics::FlowLabels {
                source: flow.source.clone(),
                target: flow.target.clone(),
            },
        ),
        syncs_consumer: if syncs_on_source {
            client_config(source, ClientRole::Consumer, &client_id)
        } else {
            client_config(target, ClientRole::Consumer, &client_id)
        },
        shutdown: shutdown.clone(),
        taken_over: taken_over.clone(),
    };
    let manager = TopicManager {
        source_admin: client_config(source, ClientRole::Admin, &client_id),
        target_admin: client_config(target, ClientRole::Admin, &client_id),
        target_consumer: client_config(target, ClientRole::Consumer, &client_id),
        target_producer: client_config(target, ClientRole::Producer, &client_id),
        flow: flow.clone(),
        commands: commands.clone(),
        standing: standing.clone(),
        shutdown,
        observe,
        clock: clock.clone(),
        lost: lost.clone(),
        taken_over,
    };
    let member = MemberFlow {
        target_consumer: client_config(target, ClientRole::Consumer, &client_id),
        flow,
        commands,
        lost,
    };
    watch.spawn(format!("topics {name}"), move || {
        manager.run();
        Ok::<(), std::convert::Infallible>(())
    })?;
    // Checkpoints hold no state worth waiting for at shutdown: each round flushes its own.
    // They need offset syncs to translate with; with either off there is no task to run.
    let checkpointing = checkpoints.flow.groups.checkpoint_interval.is_some()
        && checkpoints.flow.offset_syncs.is_some();
    if checkpointing {
        watch.spawn(format!("checkpoints {name}"), move || checkpoints.run())?;
    }
    Ok((setups, member))
}
