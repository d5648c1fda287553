//! Keeps the threads of a source's flows alive. One attempt is the copier of a source with the
//! topic managers and checkpoint tasks of its flows, all under one child [`Shutdown`]. When
//! any of them ends before shutdown (a panic, an error, or a plain return), the attempt is
//! stopped (the copier flushes and stores its progress), the flows are shown `failed` (status,
//! page, `mirrorcast_flow_state`, `/readyz` 503), the cause is logged once, and after a backoff
//! a fresh attempt starts from the stored progress. After [`Policy::max_failures`] failed
//! attempts in a row, none of which ran [`Policy::healthy_run`], it gives up: the process
//! stops and exits non-zero, so that an orchestrator sees it.
//!
//! Invariant: no thread of a flow ends before shutdown without its flow being shown failed.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{error, info};

use crate::backoff::Backoff;
use crate::observe::Observability;
use crate::shutdown::Shutdown;

/// When to restart and when to give up.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub first_delay: Duration,
    pub max_delay: Duration,
    pub max_failures: u32,
    /// An attempt that ran this long counts as healthy: the failure count starts over.
    pub healthy_run: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            max_failures: 5,
            healthy_run: Duration::from_secs(300),
        }
    }
}

/// How the threads of one attempt report their end.
#[derive(Clone)]
pub(crate) struct Watch {
    attempt: Shutdown,
    ends: Sender<String>,
}

impl Watch {
    /// The attempt's stop signal: what every thread of the attempt watches.
    pub fn shutdown(&self) -> Shutdown {
        self.attempt.clone()
    }

    /// Runs `job` on a thread of its own (see [`Watch::run`]).
    pub fn spawn<E: std::fmt::Display>(
        &self,
        name: String,
        job: impl FnOnce() -> Result<(), E> + Send + 'static,
    ) -> std::io::Result<JoinHandle<()>> {
        let watch = self.clone();
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || watch.run(&name, job))
    }

    /// Runs `job` here. If it panics, fails, or returns before the attempt was stopped, the
    /// attempt fails with that cause and is stopped.
    pub fn run<E: std::fmt::Display>(&self, name: &str, job: impl FnOnce() -> Result<(), E>) {
        let cause = match panic::catch_unwind(AssertUnwindSafe(job)) {
            Ok(Ok(())) if self.attempt.is_triggered() => return,
            Ok(Ok(())) => format!("{name} stopped by itself"),
            Ok(Err(e)) => format!("{name} failed: {e}"),
            Err(panic) => format!("{name} panicked: {}", panic_message(panic.as_ref())),
        };
        let _ = self.ends.send(cause);
        self.attempt.trigger();
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        text.to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_string()
    }
}

/// A source's flows failed too often in a row: the process gives up on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the flows of {source_cluster} failed {failures} times in a row, last: {last}; giving up")]
pub(crate) struct GaveUp {
    pub source_cluster: String,
    pub failures: u32,
    pub last: String,
}

/// Runs attempts of `attempt` for the flows `flows` (source, target) of `source` until
/// `shutdown`. `attempt` starts the threads of one attempt through the [`Watch`] and returns
/// when its main job (the copier) has ended. `Err` when it gave up (shutdown is triggered then).
pub(crate) fn supervise(
    source: &str,
    flows: &[(String, String)],
    observe: &Observability,
    shutdown: &Shutdown,
    policy: &Policy,
    mut attempt: impl FnMut(&Watch),
) -> Result<(), GaveUp> {
    let mut backoff = Backoff::new(policy.first_delay, policy.max_delay);
    let mut failures = 0;
    loop {
        let (ends, causes) = mpsc::channel();
        let watch = Watch {
            attempt: shutdown.child(),
            ends,
        };
        let started = Instant::now();
        attempt(&watch);
        // The main job has ended: whatever of the attempt still runs stops now.
        watch.attempt.trigger();
        drop(watch);
        let causes: Vec<String> = causes.try_iter().collect();
        if shutdown.is_triggered() || causes.is_empty() {
            return Ok(());
        }
        let cause = causes.join("; ");
        for (source, target) in flows {
            let state = observe.status.failed(source, target, &cause);
            observe.metrics.set_flow_state(source, target, state);
        }
        if started.elapsed() >= policy.healthy_run {
            failures = 0;
            backoff.reset();
        }
        failures += 1;
        if failures >= policy.max_failures {
            let gave_up = GaveUp {
                source_cluster: source.to_string(),
                failures,
                last: cause,
            };
            error!(source, "{gave_up}");
            shutdown.trigger();
            return Err(gave_up);
        }
        let delay = backoff.next_delay();
        error!(
            source,
            "{cause}; restarting the flows of {source} in {:.1} s (failure {failures} of {})",
            delay.as_secs_f64(),
            policy.max_failures
        );
        if shutdown.sleep(delay) {
            return Ok(());
        }
        for (source, target) in flows {
            let state = observe.status.restarted(source, target);
            observe.metrics.set_flow_state(source, target, state);
        }
        info!(source, "restarting the flows of {source}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::status::FlowState;
    use std::sync::{Arc, Mutex};

    fn quick(max_failures: u32) -> Policy {
        Policy {
            first_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(10),
            max_failures,
            healthy_run: Duration::from_secs(60),
        }
    }

    fn flows() -> Vec<(String, String)> {
        vec![("eu".into(), "na".into())]
    }

    fn state(observe: &Observability) -> FlowState {
        observe.status.snapshot()[0].state
    }

    #[test]
    fn a_panicking_copier_fails_its_flows_then_restarts_and_runs_until_shutdown() {
        let observe = Observability::new();
        observe.status.update("eu", "na", |s| {
            s.source_reachable = true;
            s.target_reachable = true;
        });
        let shutdown = Shutdown::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut attempts = 0;
        let outcome = supervise("eu", &flows(), &observe, &shutdown, &quick(5), |watch| {
            attempts += 1;
            seen.lock()
                .unwrap()
                .push((state(&observe), observe.status.ready()));
            if attempts < 3 {
                watch.run("copy eu", || -> Result<(), String> {
                    panic!("boom {attempts}")
                });
            } else {
                shutdown.trigger();
                watch.run("copy eu", || Ok::<(), String>(()));
            }
        });
        assert_eq!(outcome, Ok(()));
        assert_eq!(attempts, 3);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen[0], (FlowState::Running, true));
        // A restarted flow is not ready until its new threads try its clusters again, and its error
        // stays current until it works.
        assert_eq!(seen[1], (FlowState::Degraded, false));
        let last_error = observe.status.snapshot()[0].last_error.clone().unwrap();
        assert_eq!(last_error.message, "copy eu panicked: boom 2");
    }

    #[test]
    fn a_thread_that_ends_by_itself_fails_the_attempt_and_stops_the_others() {
        let observe = Observability::new();
        let shutdown = Shutdown::new();
        let outcome = supervise("eu", &flows(), &observe, &shutdown, &quick(1), |watch| {
            let manager = watch.spawn("topics eu->na".into(), || Err("lost")).unwrap();
            manager.join().unwrap();
            // The copier sees the attempt stopped and ends cleanly.
            let copier = watch.shutdown();
            watch.run("copy eu", || {
                copier.wait();
                Ok::<(), String>(())
            });
        });
        assert_eq!(
            outcome.map_err(|gave_up| gave_up.to_string()),
            Err("the flows of eu failed 1 times in a row, last: topics eu->na failed: lost; giving up".into())
        );
        assert!(shutdown.is_triggered(), "giving up stops the process");
        assert_eq!(state(&observe), FlowState::Failed);
        assert!(!observe.status.ready());
    }

    #[test]
    fn failures_keep_counting_until_it_gives_up() {
        let observe = Observability::new();
        let shutdown = Shutdown::new();
        let mut attempts = 0;
        let outcome = supervise("eu", &flows(), &observe, &shutdown, &quick(3), |watch| {
            attempts += 1;
            watch.run("copy eu", || Ok::<(), String>(()));
        });
        assert!(outcome.is_err());
        assert_eq!(attempts, 3);
        let text = serde_json::to_value(observe.status.snapshot()).unwrap();
        assert_eq!(text[0]["state"], "failed");
        assert_eq!(
            text[0]["last_error"]["message"],
            "copy eu stopped by itself"
        );
    }
}
