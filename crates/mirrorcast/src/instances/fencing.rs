//! Exactly once with instances: per flow, the rounds in which the copier threads register the
//! transactional ids of the copy units the group gave this process (`Command::Fence`), which
//! fences the units' previous owners. A round never blocks the member: it polls the group
//! meanwhile and gathers the answers as they come.
//!
//! Invariant: a unit's partitions are handed to a flow for acquiring (their progress read)
//! only after that flow's lane of the unit answered that it registered the id, in a round
//! asked after the group's last revocation; anything else is asked again.

use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::units::Units;
use super::MemberFlow;
use crate::clock::Clock;
use crate::health::Health;
use crate::plan::{FenceAnswer, GroupCommand, Reply};

/// How long a round waits for the copier threads' answers (each lane tries for 20 s).
const FENCE_ANSWERS: Duration = Duration::from_secs(30);
/// After a round that left a unit unfenced, the next one.
const RETRY: Duration = Duration::from_secs(1);

/// Every flow's fencing, and whether it works.
pub(super) struct Fences {
    flows: Vec<Fencing>,
    health: Health,
    /// Round deadlines and retries are measured by it.
    clock: Clock,
}

/// A flow's fencing of the units the group gave.
#[derive(Default)]
struct Fencing {
    round: Option<Round>,
    /// After a round that did not fence every unit: the next one, not before.
    retry_at: Option<Instant>,
}

/// One `Fence` sent to a flow's copier threads, and their answers so far.
struct Round {
    answers: Receiver<FenceAnswer>,
    /// Every copier thread answers (those not concerned at once).
    expected: usize,
    answered: usize,
    units: Vec<usize>,
    fenced: Vec<usize>,
    refusals: Vec<String>,
    deadline: Instant,
    /// The group's assignment when asked ([`Units::generation`]).
    generation: u64,
}

impl Fences {
    pub fn new(flows: usize, clock: Clock) -> Self {
        Fences {
            flows: (0..flows).map(|_| Fencing::default()).collect(),
            health: Health::default(),
            clock,
        }
    }

    /// One step: starts the rounds due, gathers answers, and returns per flow the partitions of
    /// the units it fenced, to acquire. Never waits.
    pub fn advance(
        &mut self,
        members: &[MemberFlow],
        units: &mut Units,
    ) -> Vec<(usize, Vec<(String, i32)>)> {
        let mut acquire = Vec::new();
        let now = self.clock.now();
        for (flow, (fencing, member)) in self.flows.iter_mut().zip(members).enumerate() {
            let Some(round) = &mut fencing.round else {
                if fencing.retry_at.is_none_or(|at| now >= at) {
                    let (to_fence, generation) = (units.to_fence(flow), units.generation());
                    fencing.round = Round::start(member, to_fence, generation, now);
                }
                continue;
            };
            if !round.finished(now) {
                continue;
            }
            let Some(round) = fencing.round.take() else {
                continue;
            };
            match units.fenced(flow, &round.fenced, round.generation) {
                // A revocation came meanwhile: what was given again is asked again now.
                None => continue,
                Some(partitions) if !partitions.is_empty() => acquire.push((flow, partitions)),
                Some(_) => {}
            }
            // Units the group took back meanwhile are no one's concern here.
            let still = units.to_fence(flow);
            if round.units.iter().any(|u| still.contains(u)) {
                let reasons = if round.refusals.is_empty() {
                    format!("no answer in {FENCE_ANSWERS:?}")
                } else {
                    round.refusals.join("; ")
                };
                if self.health.failed() {
                    warn!(flow = %member.flow.name(), "copy unit(s) cannot be taken over yet ({reasons}); nothing of theirs is copied to {} here until they are (asked again every {RETRY:?})", member.flow.target);
                }
                fencing.retry_at = Some(now + RETRY);
            } else if self.health.recovered() {
                info!(flow = %member.flow.name(), "copy units are taken over again");
            }
        }
        acquire
    }
}

impl Round {
    /// Asks `member`'s copier threads to fence `units`; `None` when there are none, or the
    /// threads are gone.
    fn start(
        member: &MemberFlow,
        units: Vec<usize>,
        generation: u64,
        now: Instant,
    ) -> Option<Round> {
        if units.is_empty() {
            return None;
        }
        let (done, answers) = Reply::channel();
        let fence = GroupCommand::Fence {
            units: units.clone(),
            done,
        };
        member.commands.send(fence).ok()?;
        Some(Round {
            answers,
            expected: member.commands.threads(),
            answered: 0,
            units,
            fenced: Vec::new(),
            refusals: Vec::new(),
            deadline: now + FENCE_ANSWERS,
            generation,
        })
    }

    /// Takes the answers that came; whether every thread answered (or time is up).
    /// Whether every thread answered, or `now` is past the round's deadline.
    fn finished(&mut self, now: Instant) -> bool {
        loop {
            match self.answers.try_recv() {
                Ok((unit, answer)) => {
                    self.answered += 1;
                    match answer {
                        Ok(()) if self.units.contains(&unit) => self.fenced.push(unit),
                        Ok(()) => {}
                        Err(refused) => self.refusals.push(refused.to_string()),
                    }
                }
                Err(TryRecvError::Empty) => {
                    return self.answered >= self.expected || now >= self.deadline
                }
                Err(TryRecvError::Disconnected) => return true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::{Config, RawProperties};
    use crate::plan::{Commands, FenceRefused, ToCopier};
    use std::sync::mpsc;

    fn member(threads: usize) -> (MemberFlow, Vec<mpsc::Receiver<ToCopier>>) {
        let text = "clusters = eu, na\neu.bootstrap.servers = h:1\nna.bootstrap.servers = h:2\n\
                    eu->na.enabled = true\n";
        let raw = RawProperties::parse(std::path::Path::new("t"), text.as_bytes()).unwrap();
        let flow = Config::resolve(&raw).unwrap().flows.remove(0);
        let (commands, receivers) = Commands::to_threads(threads);
        let member = MemberFlow {
            flow,
            commands,
            target_consumer: rdkafka::ClientConfig::new(),
            lost: Default::default(),
        };
        (member, receivers)
    }

    /// Answers every `Fence` on `threads`: Ok for its own unit, unless `refuse`.
    fn answer(threads: &[mpsc::Receiver<ToCopier>], refuse: &[usize]) {
        for (thread, receiver) in threads.iter().enumerate() {
            while let Ok(command) = receiver.try_recv() {
                if let ToCopier::Group(GroupCommand::Fence { done, .. }) = command {
                    let answer = if refuse.contains(&thread) {
                        Err(FenceRefused(format!("unit {thread} refused")))
                    } else {
                        Ok(())
                    };
                    done.send((thread, answer));
                }
            }
        }
    }

    #[test]
    fn partitions_are_acquired_only_after_their_unit_answered_in_a_round_after_any_revocation() {
        let (member, threads) = member(2);
        let members = [member];
        let mut units = Units::new("units".into(), 2, 1);
        units.listed([("t".to_string(), 4)].into());
        units.assigned(&[0, 1]);
        let clock = ManualClock::new();
        let mut fences = Fences::new(1, clock.clock());
        assert!(fences.advance(&members, &mut units).is_empty(), "asked");
        assert!(
            fences.advance(&members, &mut units).is_empty(),
            "no answer yet"
        );
        // Unit 1's target refuses: unit 0's partitions go on, unit 1 is asked again later.
        answer(&threads, &[1]);
        let acquired = fences.advance(&members, &mut units);
        assert_eq!(acquired.len(), 1);
        assert_eq!(acquired[0].1.len(), 2, "unit 0's half of t: {acquired:?}");
        assert_eq!(units.to_fence(0), vec![1]);
        assert!(
            fences.advance(&members, &mut units).is_empty(),
            "not before the retry"
        );
        clock.advance(RETRY);
        assert!(
            fences.advance(&members, &mut units).is_empty(),
            "asked again"
        );
        // A revocation while the round is out: its answers count for nothing, it is asked
        // again.
        units.revoked(&[1]);
        units.assigned(&[1]);
        answer(&threads, &[]);
        assert!(fences.advance(&members, &mut units).is_empty());
        assert!(
            fences.advance(&members, &mut units).is_empty(),
            "asked again at once"
        );
        answer(&threads, &[]);
        let acquired = fences.advance(&members, &mut units);
        assert_eq!(acquired.len(), 1);
        assert_eq!(acquired[0].1.len(), 2, "unit 1's half of t: {acquired:?}");
        assert!(units.to_fence(0).is_empty());
    }

    #[test]
    fn a_round_nobody_answers_ends_at_its_deadline_and_is_asked_again_after_the_retry() {
        let (member, threads) = member(1);
        let members = [member];
        let mut units = Units::new("units".into(), 1, 1);
        units.listed([("t".to_string(), 2)].into());
        units.assigned(&[0]);
        let clock = ManualClock::new();
        let mut fences = Fences::new(1, clock.clock());
        assert!(fences.advance(&members, &mut units).is_empty(), "asked");
        let asked = |threads: &[mpsc::Receiver<ToCopier>]| threads[0].try_iter().count();
        assert_eq!(asked(&threads), 1);
        clock.advance(FENCE_ANSWERS - Duration::from_millis(1));
        fences.advance(&members, &mut units);
        assert_eq!(asked(&threads), 0, "the round is still out");
        clock.advance(Duration::from_millis(1));
        assert!(
            fences.advance(&members, &mut units).is_empty(),
            "nothing fenced"
        );
        assert_eq!(units.to_fence(0), vec![0]);
        fences.advance(&members, &mut units);
        assert_eq!(asked(&threads), 0, "not before the retry");
        clock.advance(RETRY);
        fences.advance(&members, &mut units);
        assert_eq!(asked(&threads), 1, "asked again");
    }
}
