//! The manager's schedule once it is set up: at each pass, which of its rounds (refresh, config
//! sync, ACL sync) are due, what a refresh's outcome does to the others, and how long to sleep
//! until the next one. Time is read from the manager's [`crate::clock::Clock`], so unit tests
//! move it forward instead of sleeping.
//!
//! Invariant: the copier hears the routes after every refresh, worked or not; a failed refresh
//! is retried with backoff; the config and ACL rounds start after the first refresh that worked,
//! and run at once when this instance takes over leadership.

use std::time::Duration;

use super::manager::{Known, TopicManager};
use super::schedule::Every;
use super::ClusterAdmin;
use crate::backoff::Backoff;
use crate::health::Health;

/// The longest sleep of a manager with nothing due (all jobs off).
const IDLE_WAKE: Duration = Duration::from_secs(3600);
/// With instances sharing the source: how often leadership changes and topics the leader is
/// to create are looked at.
const LEADER_WAKE: Duration = Duration::from_secs(1);

/// The timers of a manager's rounds and what the loop carries from one pass to the next.
pub(super) struct Rounds {
    refresh: Every,
    config_sync: Every,
    acl_sync: Every,
    /// Whether this instance led at the last pass.
    led: bool,
    /// Leadership was taken since the last refresh that worked.
    took_over: bool,
    health: Health,
    backoff: Backoff,
}

impl Rounds {
    /// The first refresh due at once; `health` and `backoff` carry on from the set-up steps.
    pub(super) fn new(manager: &TopicManager, health: Health, backoff: Backoff) -> Self {
        let flow = &manager.flow;
        Rounds {
            refresh: Every::due_now(flow.refresh_topics_interval, manager.clock.now()),
            config_sync: Every::new(flow.config_sync_interval),
            acl_sync: Every::new(flow.acl_sync_interval),
            // Alone, this process always leads.
            led: !manager.standing.is_grouped(),
            took_over: false,
            health,
            backoff,
        }
    }
}

impl TopicManager {
    /// Runs the rounds due now; how long to sleep before the next pass, or `None` when the
    /// copier is gone.
    pub(super) fn pass(
        &self,
        rounds: &mut Rounds,
        source: &impl ClusterAdmin,
        target: &impl ClusterAdmin,
        known: &mut Known,
    ) -> Option<Duration> {
        let name = self.flow.name();
        let now = self.clock.now();
        let leads = self.standing.leads();
        if leads && !rounds.led {
            // Taking over: create what is missing, then repair drift, at once.
            rounds.refresh.retry_after(now, Duration::ZERO);
            rounds.took_over = true;
        }
        rounds.led = leads;
        if rounds.refresh.is_due(now) {
            match self.refresh(source, target, known) {
                Ok(()) => {
                    rounds.health.say_recovered(&name, "topic management");
                    self.observe
                        .status
                        .update(&self.flow.source, &self.flow.target, |s| {
                            s.source_reachable = true;
                            s.target_reachable = true;
                            s.topics_failing = false;
                            s.last_reached_at_ms = Some(crate::observe::status::now_ms());
                        });
                    rounds.backoff.reset();
                    if known.awaiting_leader {
                        rounds.refresh.retry_after(now, LEADER_WAKE);
                    } else {
                        rounds.refresh.done(now);
                    }
                    // The first syncs right away: a restart repairs drift at once.
                    rounds.config_sync.start(now);
                    rounds.acl_sync.start(now);
                    if std::mem::take(&mut rounds.took_over) {
                        if self.flow.config_sync_interval.is_some() {
                            rounds.config_sync.retry_after(now, Duration::ZERO);
                        }
                        if self.flow.acl_sync_interval.is_some() && !known.acls_unsupported {
                            rounds.acl_sync.retry_after(now, Duration::ZERO);
                        }
                    }
                }
                Err(e) => {
                    rounds.health.warn_failed(&name, "topic management", &e);
                    self.observe
                        .status
                        .error(&self.flow.source, &self.flow.target, &e.to_string());
                    self.observe
                        .status
                        .update(&self.flow.source, &self.flow.target, |s| {
                            s.topics_failing = true;
                        });
                    rounds.refresh.retry_after(now, rounds.backoff.next_delay());
                }
            }
            if self.commands.send(self.routes_command(known)).is_err() {
                return None;
            }
        }
        if rounds.config_sync.is_due(now) {
            if self.standing.leads() {
                self.sync_configs(source, target, known);
            }
            rounds.config_sync.done(now);
        }
        if rounds.acl_sync.is_due(now) {
            if self.standing.leads() {
                self.sync_acls(source, target, known);
            }
            rounds.acl_sync.done(now);
            if known.acls_unsupported {
                rounds.acl_sync = Every::new(None);
            }
        }
        let wake = [
            rounds.refresh.next(),
            rounds.config_sync.next(),
            rounds.acl_sync.next(),
        ]
        .into_iter()
        .flatten()
        .min();
        // Read again: the rounds themselves take time.
        let pause = wake.map_or(IDLE_WAKE, |at| {
            at.saturating_duration_since(self.clock.now())
        });
        let most = if self.standing.is_grouped() {
            LEADER_WAKE
        } else {
            IDLE_WAKE
        };
        Some(pause.min(most))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::Receiver;
    use std::time::{Duration, Instant};

    use super::super::fake::{manager, FakeCluster};
    use super::*;
    use crate::clock::ManualClock;
    use crate::ownership::Standing;
    use crate::plan::Command;
    use crate::topic_configs::ConfigOp;

    /// A manager timed by `clock` (backoff 1 s ± 20 %), its rounds, and the copier's end of
    /// its commands (kept, or the manager stops: the copier is gone).
    fn timed(
        extra: &str,
        clock: &ManualClock,
    ) -> (TopicManager, Rounds, Receiver<crate::plan::ToCopier>) {
        let (mut manager, commands) = manager(extra);
        manager.clock = clock.clock();
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
        let rounds = Rounds::new(&manager, Health::default(), backoff);
        (manager, rounds, commands)
    }

    #[test]
    fn a_config_sync_round_comes_due_one_interval_after_the_last() {
        let clock = ManualClock::new();
        let (manager, mut rounds, _commands) =
            timed("sync.topic.configs.interval.seconds = 60\n", &clock);
        let source = FakeCluster::with(&[("orders", 1, &[("retention.ms", "1000")])]);
        let target = FakeCluster::default();
        let mut known = Known::default();
        let mut pass = || manager.pass(&mut rounds, &source, &target, &mut known);
        // The first pass refreshes and syncs at once, then sleeps until the next sync.
        assert_eq!(pass(), Some(Duration::from_secs(60)));
        let retention = || target.config("orders", "retention.ms");
        assert_eq!(retention().as_deref(), Some("1000"));
        let longer = ConfigOp::Set {
            name: "retention.ms".into(),
            value: "2000".into(),
        };
        source.alter_configs("orders", &[longer]).unwrap();
        clock.advance(Duration::from_secs(59));
        assert_eq!(pass(), Some(Duration::from_secs(1)));
        assert_eq!(retention().as_deref(), Some("1000"), "not due yet");
        clock.advance(Duration::from_secs(1));
        assert_eq!(pass(), Some(Duration::from_secs(60)));
        assert_eq!(retention().as_deref(), Some("2000"));
    }

    #[test]
    fn a_failed_refresh_is_retried_after_its_backoff_then_every_interval() {
        let clock = ManualClock::new();
        let (manager, mut rounds, commands) = timed("", &clock);
        let source = FakeCluster::with(&[("orders", 2, &[])]);
        *source.unreachable.borrow_mut() = true;
        let target = FakeCluster::default();
        let mut known = Known::default();
        let Some(backoff) = manager.pass(&mut rounds, &source, &target, &mut known) else {
            panic!("the copier is there");
        };
        assert!(
            (Duration::from_millis(800)..=Duration::from_millis(1200)).contains(&backoff),
            "{backoff:?}"
        );
        assert!(rounds.health.is_failing());
        assert!(
            matches!(commands.try_recv(), Ok(crate::plan::ToCopier::Topics(Command::Routes(routes))) if routes.is_empty()),
            "the copier hears the routes after a failed refresh too"
        );
        *source.unreachable.borrow_mut() = false;
        clock.advance(backoff / 2);
        manager.pass(&mut rounds, &source, &target, &mut known);
        assert_eq!(target.partitions("orders"), None, "not due yet");
        clock.advance(backoff - backoff / 2);
        let pause = manager.pass(&mut rounds, &source, &target, &mut known);
        assert_eq!(target.partitions("orders"), Some(2));
        assert!(!rounds.health.is_failing());
        assert_eq!(
            pause,
            Some(Duration::from_secs(600)),
            "the refresh interval"
        );
    }

    /// With instances sharing the source: one that takes over leadership creates what the
    /// former leader left at once, not a refresh interval later.
    #[test]
    fn taking_over_leadership_refreshes_at_once() {
        let clock = ManualClock::new();
        let (mut manager, _, _commands) = timed("", &clock);
        let standing = Standing::in_group();
        // The lease is read from the machine's clock (`Standing`'s own).
        standing.set_lease(Some(Instant::now() + Duration::from_secs(600)));
        manager.standing = standing.clone();
        let mut rounds = Rounds::new(&manager, Health::default(), Backoff::default());
        let source = FakeCluster::with(&[("orders", 2, &[])]);
        let target = FakeCluster::default();
        let mut known = Known::default();
        let pause = manager.pass(&mut rounds, &source, &target, &mut known);
        assert_eq!(pause, Some(LEADER_WAKE), "a follower looks again soon");
        assert_eq!(target.partitions("orders"), None, "left to the leader");
        standing.set_leads(true);
        manager.pass(&mut rounds, &source, &target, &mut known);
        assert_eq!(target.partitions("orders"), Some(2), "without time passing");
    }
}
