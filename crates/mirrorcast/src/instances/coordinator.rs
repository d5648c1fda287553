//! The coordinator's word on this process's membership: a probe that asks the group's
//! coordinator whether it still counts this process's member, and renews the [`Lease`] from
//! each answer that does (see [`super::lease`] for why that bounds a member cut off from it).
//!
//! Invariant: the lease is renewed only from an answer of the coordinator that lists the
//! member id this process holds, counted from when the question was sent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::Client;
use rdkafka::ClientContext;
use tracing::{info, warn};

use super::lease::Lease;
use crate::clock::Clock;
use crate::kafka::ffi;

/// How often the probe looks at the clock.
const POLL: Duration = Duration::from_millis(100);

/// Asks the group's coordinator, every heartbeat interval (at least three times a lease
/// term), whether it still counts this process's member in the group; each answer that does
/// renews the lease from when it was asked (see [`Lease`]). A process whose heartbeats cannot
/// reach the coordinator gets no answer either, so it stops writing before the coordinator can
/// give its partitions away.
pub(super) struct CoordinatorProbe<'a, C: ClientContext> {
    pub client: &'a Client<C>,
    pub group: &'a str,
    pub source: &'a str,
    /// How often to ask: the heartbeat interval, or more often for a short session.
    pub every: Duration,
    /// A classic group (not KIP-848's): asked without librdkafka's admin API, whose
    /// coordinator lookup can crash the process when the coordinator stays unreachable
    /// (librdkafka#4605, `kafka::ffi::classic_group_members`).
    pub classic: bool,
}

/// How often the coordinator is asked while it has not confirmed the member.
const PROBE_UNCONFIRMED: Duration = Duration::from_millis(500);
/// How long a member that was never confirmed (joining, or refused: no rights to describe the
/// group, a coordinator that does not answer) waits before it says it writes nothing.
const FIRST_CONFIRMATION: Duration = Duration::from_secs(30);

impl<C: ClientContext> CoordinatorProbe<'_, C> {
    pub fn confirm(&self, clock: &Clock, lease: &Mutex<Lease>, ticking: &AtomicBool) {
        let started = clock.now();
        let (mut asked_at, mut ever_confirmed, mut said): (Option<Instant>, bool, bool) =
            (None, false, false);
        let mut why = String::from("no answer yet");
        let lock = || lease.lock().unwrap_or_else(|p| p.into_inner());
        while ticking.load(Ordering::Acquire) {
            let now = clock.now();
            let unconfirmed = lock().unconfirmed(now);
            let every = if unconfirmed {
                PROBE_UNCONFIRMED
            } else {
                self.every
            };
            if asked_at.is_none_or(|at| now.saturating_duration_since(at) >= every) {
                asked_at = Some(now);
                match self.ask() {
                    Ok(()) => {
                        lock().confirmed(now);
                        if said {
                            info!(
                                source = self.source,
                                group = self.group,
                                "the coordinator confirms this member again: writing resumes"
                            );
                        }
                        (ever_confirmed, said) = (true, false);
                    }
                    Err(e) => why = e,
                }
            }
            let now = clock.now();
            let overdue =
                ever_confirmed || now.saturating_duration_since(started) >= FIRST_CONFIRMATION;
            if overdue && !said && lock().unconfirmed(now) {
                said = true;
                let since = if ever_confirmed {
                    "for half a session"
                } else {
                    "since this process started"
                };
                warn!(source = self.source, group = self.group, "the coordinator of group {} has not confirmed this member {since} ({why}): nothing is written until it does (it may be giving the partitions to another member)", self.group);
            }
            std::thread::sleep(POLL);
        }
    }

    /// `Ok` when the coordinator lists this process's member; else why not.
    fn ask(&self) -> Result<(), String> {
        let Some(id) = ffi::member_id(self.client) else {
            return Err("not a member of the group yet".to_string());
        };
        let timeout = self
            .every
            .clamp(Duration::from_secs(1), Duration::from_secs(5));
        let members = if self.classic {
            ffi::classic_group_members(self.client, self.group, timeout)
        } else {
            ffi::group_members(self.client, self.group, timeout)
        };
        match members {
            Ok(members) if members.contains(&id) => Ok(()),
            Ok(members) => Err(format!("it lists {} member(s), not {id}", members.len())),
            Err(e) => Err(format!("asking it failed: {e}")),
        }
    }
}
