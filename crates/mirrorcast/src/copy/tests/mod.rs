//! The copier's transitions, driven through fakes ([`super::fakes`]): sharing one reader,
//! leaving and rejoining it, rewinding after a failed delivery, replacing a failed producer,
//! skipping records below a lane's position, a full target queue, refused records, instances
//! and exactly once; time-driven corners on a [`ManualClock`] ([`clock`]). No broker.

mod clock;
mod copying;
mod exactly_once;
mod limits;
mod members;
mod refusals;

use std::rc::Rc;
use std::sync::mpsc::{self, SendError, Sender};
use std::time::{Duration, Instant};

use super::backpressure::Backpressure;
use super::fakes::{FakeReader, FakeSource, FakeTarget};
use super::lane::{Lane, LaneSetup};
use super::partitions::Mode;
use super::readers::Readers;
use super::report::FlowReporter;
use super::source_copy::SourceCopy;
use super::transaction::Transactions;
use crate::clock::Clock;
use crate::config::properties::RawProperties;
use crate::config::{Config, ErrorsConfig, ExactlyOnceConfig, FlowConfig};
use crate::kafka::cluster::TopicId;
use crate::observe::Observability;
use crate::ownership::{Shard, Standing};
use crate::plan::{Command, FenceAnswer, GroupCommand, LostUnits, Reply, Route, ToCopier};
use crate::progress::{Progress, Stored};
use crate::shutdown::Shutdown;

const TARGETS: [&str; 2] = ["na", "sa"];

/// What a test says to one lane.
struct Line(Sender<ToCopier>);

impl Line {
    fn send(&self, command: impl Into<ToCopier>) -> Result<(), SendError<ToCopier>> {
        self.0.send(command.into())
    }
}

struct Harness {
    source: Rc<FakeSource>,
    targets: Vec<FakeTarget>,
    commands: Vec<Line>,
    copy: SourceCopy<FakeTarget, FakeReader>,
    observe: Observability,
    /// Units the lanes said were fenced from under them.
    lost: LostUnits,
}

/// How a test's copier is made: a source `eu` copied by `targets` lanes (`na`, then `sa`).
struct Setup {
    targets: usize,
    /// Records each target's producer holds at most.
    capacity: usize,
    /// After this long of silence the target counts as failing.
    delivery_timeout: Duration,
    errors: ErrorsConfig,
    tune: Box<dyn Fn(&mut FlowConfig)>,
    shard: Shard,
    standing: Standing,
    clock: Clock,
}

impl Setup {
    fn new(targets: usize) -> Self {
        Setup {
            targets,
            capacity: 1000,
            delivery_timeout: Duration::from_secs(120),
            errors: ErrorsConfig::StopPartition,
            tune: Box::new(|_| {}),
            shard: Shard::ALONE,
            standing: Standing::alone(),
            clock: Clock::system(),
        }
    }

    fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }

    fn errors(mut self, errors: ErrorsConfig) -> Self {
        self.errors = errors;
        self
    }

    /// Changes each lane's flow before it starts.
    fn tune(mut self, tune: impl Fn(&mut FlowConfig) + 'static) -> Self {
        self.tune = Box::new(tune);
        self
    }

    /// Exactly once, committing every `commit_interval`.
    fn exactly_once(self, commit_interval: Duration) -> Self {
        self.tune(move |flow| flow.exactly_once = Some(ExactlyOnceConfig { commit_interval }))
    }

    /// As copier thread `shard` of its source.
    fn shard(mut self, shard: Shard) -> Self {
        self.shard = shard;
        self
    }

    /// For a process whose `standing` says when it may write.
    fn standing(mut self, standing: Standing) -> Self {
        self.standing = standing;
        self
    }

    /// Time from `clock` (a `ManualClock`'s, to move it by hand).
    fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn build(self) -> Harness {
        let text =
            "clusters = eu, na, sa\neu.bootstrap.servers = h:1\nna.bootstrap.servers = h:2\n\
                    sa.bootstrap.servers = h:3\neu->na.enabled = true\neu->sa.enabled = true\n\
                    replication.policy.class = IdentityReplicationPolicy\n";
        let raw = RawProperties::parse(std::path::Path::new("t"), text.as_bytes()).unwrap();
        let flows = Config::resolve(&raw).unwrap().flows;
        let source = Rc::new(FakeSource::default());
        let observe = Observability::new();
        let shutdown = Shutdown::new();
        let (mut lanes, mut fakes, mut lines, mut own) = (vec![], vec![], vec![], vec![]);
        let lost = LostUnits::default();
        for (index, name) in TARGETS.iter().take(self.targets).enumerate() {
            let mut flow = flows.iter().find(|f| f.target == *name).unwrap().clone();
            flow.progress.interval = Duration::from_millis(20);
            flow.heartbeats = None;
            flow.errors = self.errors.clone();
            (self.tune)(&mut flow);
            let (sender, commands) = mpsc::channel();
            let target = FakeTarget::new(self.capacity, self.clock.clone());
            target.state().transaction.enabled = flow.exactly_once.is_some();
            let transactions = flow
                .exactly_once
                .as_ref()
                .map(|e| Transactions::new(e.commit_interval, self.clock.now()).standing_by());
            lanes.push(Lane::new(LaneSetup {
                index,
                shard: self.shard,
                flow,
                commands,
                target: target.clone(),
                syncs: None,
                reporter: FlowReporter::new(observe.clone(), "eu", name),
                read_own: Default::default(),
                queue: Backpressure::new(1 << 40, self.capacity as u64),
                delivery_timeout: self.delivery_timeout,
                standing: self.standing.clone(),
                transactions,
                shutdown: shutdown.clone(),
                clock: self.clock.clone(),
                lost: lost.clone(),
            }));
            fakes.push(target);
            lines.push(Line(sender));
            own.push(FakeReader::new(&source));
        }
        let readers = Readers {
            shared: FakeReader::new(&source),
            own,
        };
        let copy = SourceCopy::new(
            "eu",
            lanes,
            readers,
            Default::default(),
            self.standing,
            shutdown,
        );
        Harness {
            source,
            targets: fakes,
            commands: lines,
            copy,
            observe,
            lost,
        }
    }
}

/// A source `eu` copied to `targets` lanes, each target's producer holding at most `capacity`
/// records.
fn harness(targets: usize, capacity: usize) -> Harness {
    Setup::new(targets).capacity(capacity).build()
}

impl Harness {
    /// Lane `lane` resumes from `stored` and copies topic `t` with `partitions` partitions.
    fn start(&self, lane: usize, stored: &[(i32, i64)], partitions: i32) {
        self.start_identified(lane, stored, None, None, partitions);
    }

    /// [`Harness::start`] where the progress was stored for topic ID `stored_id` and the
    /// topic has ID `id` now.
    fn start_identified(
        &self,
        lane: usize,
        stored: &[(i32, i64)],
        stored_id: Option<&str>,
        id: Option<&str>,
        partitions: i32,
    ) {
        let progress: Progress = stored
            .iter()
            .map(|&(p, offset)| {
                let topic_id = stored_id.map(|id| TopicId(id.into()));
                (("t".into(), p), Stored { offset, topic_id })
            })
            .collect();
        self.fence_alone(lane);
        self.commands[lane].send(Command::Resume(progress)).unwrap();
        self.route(lane, partitions, id);
    }

    /// Exactly once without a group: the topic manager's fence of the lane's unit before it
    /// reads the progress (its answer is not awaited).
    fn fence_alone(&self, lane: usize) {
        if self.lane(lane).transactions.is_none() || self.lane(lane).ctx.standing.is_grouped() {
            return;
        }
        drop(self.fence(lane));
    }

    /// Asks lane `lane` to register its unit's transactional id; the answer comes on the
    /// returned line.
    fn fence(&self, lane: usize) -> std::sync::mpsc::Receiver<FenceAnswer> {
        let (done, answers) = Reply::channel();
        let units = vec![self.lane(lane).book.shard().index];
        self.commands[lane]
            .send(GroupCommand::Fence { units, done })
            .unwrap();
        answers
    }

    /// The topic manager's progress for lane `lane`'s unit after it registered again: topic
    /// `t`'s partition 0 stored at `offset`.
    fn refenced(&self, lane: usize, offset: i64) {
        let stored = Stored {
            offset,
            topic_id: None,
        };
        let progress: Progress = [(("t".to_string(), 0), stored)].into();
        let unit = self.lane(lane).book.shard().index;
        self.commands[lane]
            .send(Command::Refenced { unit, progress })
            .unwrap();
    }

    /// The topic manager's routes for topic `t`, whose ID is `id`.
    fn route(&self, lane: usize, partitions: i32, id: Option<&str>) {
        self.route_limited(lane, partitions, id, None);
    }

    /// [`Harness::start`] from no progress, where the remote topic's `max.message.bytes` is
    /// `limit`.
    fn start_limited(&self, lane: usize, partitions: i32, limit: u32) {
        self.fence_alone(lane);
        self.commands[lane]
            .send(Command::Resume(Progress::new()))
            .unwrap();
        self.route_limited(lane, partitions, None, Some(limit));
    }

    fn route_limited(&self, lane: usize, partitions: i32, id: Option<&str>, limit: Option<u32>) {
        let route = Route {
            source_topic: "t".into(),
            remote_topic: "t".into(),
            partitions,
            topic_id: id.map(|id| TopicId(id.into())),
            max_message_bytes: limit,
        };
        self.commands[lane]
            .send(Command::Routes(vec![route]))
            .unwrap();
    }

    /// Runs rounds of the copy loop until `done`, for at most 20 s.
    fn run_until(&mut self, what: &str, done: impl Fn(&Harness) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            assert!(self.copy.round(), "the copy loop stopped");
        }
    }

    fn lane(&self, index: usize) -> &Lane<FakeTarget> {
        &self.copy.lanes()[index]
    }

    fn mode(&self, lane: usize, slot: usize) -> Option<Mode> {
        Some(self.lane(lane).book.get(slot)?.mode)
    }

    fn has(&self, target: usize, partition: i32, count: usize) -> bool {
        self.targets[target].log("t", partition).len() >= count
    }
}

/// `t/<partition>/<offset>` for the offsets of `range`, as the target must hold them.
fn expected(partition: i32, range: std::ops::Range<i64>) -> Vec<String> {
    range.map(|o| format!("t/{partition}/{o}")).collect()
}

/// `t/0/<offset>#1` for the offsets of `range`: records of the topic's second life.
fn expected_recreated(range: std::ops::Range<i64>) -> Vec<String> {
    range.map(|o| format!("t/0/{o}#1")).collect()
}

/// One lane (of `setup`) whose target acknowledged t[0]'s first ten records and holds the next
/// ten.
fn ten_acknowledged_and_ten_in_flight(setup: Setup) -> Harness {
    let mut h = setup.build();
    h.source.produce("t", 0, 10);
    h.start(0, &[], 1);
    h.run_until("the first records", |h| h.has(0, 0, 10));
    h.targets[0].state().acknowledging = false;
    h.source.produce("t", 0, 10);
    h.run_until("ten records in flight", |h| {
        h.targets[0].0.borrow().in_flight_len() == 10
    });
    h
}
