//! Consumer group offsets through the admin API (ListConsumerGroupOffsets,
//! AlterConsumerGroupOffsets), for many groups over one client: librdkafka takes one group per
//! request, so every group's request is in flight at once on one result queue (at most
//! [`IN_FLIGHT`]) and a round over thousands of groups costs a few round trips, not a client
//! and a metadata fetch per group.

use std::os::raw::c_void;
use std::time::Duration;

use rdkafka::client::Client;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::ClientContext;
use rdkafka_sys as rdsys;
use rdkafka_sys::bindings::{rd_kafka_admin_op_t, rd_kafka_resp_err_t};

use super::{admin_options, c_string, text, AdminExtError, Guard};

/// Requests in flight at once on one queue.
const IN_FLIGHT: usize = 128;

/// One partition's committed offset in a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// What the group committed with it (`""` when nothing).
    pub metadata: String,
}

/// Offsets to commit: (topic, partition, offset).
pub type Offsets = Vec<(String, i32, i64)>;

/// A group and what to commit into it.
pub type GroupCommit = (String, Offsets);

/// A group's answer.
pub type GroupAnswer<T> = (String, Result<T, AdminExtError>);

/// The committed offsets of each of `groups` (every partition the group committed). Each group
/// gets its own answer: one that fails leaves the others. Blocking, at most about `timeout`
/// per [`IN_FLIGHT`] groups.
pub fn list_group_offsets<C: ClientContext>(
    client: &Client<C>,
    groups: &[String],
    timeout: Duration,
) -> Vec<GroupAnswer<Vec<CommittedOffset>>> {
    let op = rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS;
    let mut answers = Vec::with_capacity(groups.len());
    for chunk in groups.chunks(IN_FLIGHT) {
        let requests: Vec<(&String, Offsets)> = chunk.iter().map(|g| (g, Vec::new())).collect();
        answers.extend(in_flight(client, op, &requests, timeout, |event| {
            // SAFETY: `event` is a live result event of this op; its groups are read before
            // the caller frees it.
            unsafe {
                let result = rdsys::rd_kafka_event_ListConsumerGroupOffsets_result(event);
                let mut count = 0usize;
                let groups =
                    rdsys::rd_kafka_ListConsumerGroupOffsets_result_groups(result, &mut count);
                first_group(groups, count).map(|group| partitions(group, true))
            }
        }));
    }
    answers
        .into_iter()
        .map(|(group, answer)| (group, answer.and_then(|partitions| partitions)))
        .collect()
}

/// Commits `offsets` (topic, partition, offset) into each group, as an admin (no member of
/// it): a group with members refuses it (`UnknownMemberId` and the like, per group). Blocking.
pub fn alter_group_offsets<C: ClientContext>(
    client: &Client<C>,
    commits: &[GroupCommit],
    timeout: Duration,
) -> Vec<GroupAnswer<()>> {
    let op = rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS;
    let mut answers = Vec::with_capacity(commits.len());
    for chunk in commits.chunks(IN_FLIGHT) {
        let requests: Vec<(&String, Offsets)> = chunk.iter().map(|(g, o)| (g, o.clone())).collect();
        answers.extend(in_flight(client, op, &requests, timeout, |event| {
            // SAFETY: as in `list_group_offsets`.
            unsafe {
                let result = rdsys::rd_kafka_event_AlterConsumerGroupOffsets_result(event);
                let mut count = 0usize;
                let groups =
                    rdsys::rd_kafka_AlterConsumerGroupOffsets_result_groups(result, &mut count);
                first_group(groups, count).map(|group| partitions(group, false).map(|_| ()))
            }
        }));
    }
    answers
        .into_iter()
        .map(|(group, answer)| (group, answer.and_then(|done| done)))
        .collect()
}

/// The first (only) group result of a result event.
///
/// # Safety
/// `groups` must point to `count` group results that outlive the returned pointer's use.
unsafe fn first_group(
    groups: *mut *const rdsys::rd_kafka_group_result_t,
    count: usize,
) -> Result<*const rdsys::rd_kafka_group_result_t, AdminExtError> {
    if groups.is_null() || count == 0 {
        return Err(AdminExtError::Invalid("a result without its group".into()));
    }
    Ok(*groups)
}

/// A group result's partitions, or its error (the group's, else the first partition's).
/// `with_offsets`: partitions with no committed offset are left out.
///
/// # Safety
/// `group` must be a live group result.
unsafe fn partitions(
    group: *const rdsys::rd_kafka_group_result_t,
    with_offsets: bool,
) -> Result<Vec<CommittedOffset>, AdminExtError> {
    let error = rdsys::rd_kafka_group_result_error(group);
    if !error.is_null() {
        return Err(AdminExtError::Broker {
            code: rdsys::rd_kafka_error_code(error).into(),
            message: text(rdsys::rd_kafka_error_string(error)),
        });
    }
    let list = rdsys::rd_kafka_group_result_partitions(group);
    if list.is_null() {
        return Ok(Vec::new());
    }
    let count = usize::try_from((*list).cnt).unwrap_or(0);
    let mut offsets = Vec::with_capacity(count);
    for i in 0..count {
        let element = &*(*list).elems.add(i);
        if element.err != rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            let code: RDKafkaErrorCode = element.err.into();
            return Err(AdminExtError::Broker {
                code,
                message: format!("{}[{}]: {code}", text(element.topic), element.partition),
            });
        }
        if with_offsets && element.offset < 0 {
            continue; // nothing committed
        }
        let metadata = if element.metadata.is_null() || element.metadata_size == 0 {
            String::new()
        } else {
            let bytes =
                std::slice::from_raw_parts(element.metadata as *const u8, element.metadata_size);
            String::from_utf8_lossy(bytes).into_owned()
        };
        offsets.push(CommittedOffset {
            topic: text(element.topic),
            partition: element.partition,
            offset: element.offset,
            metadata,
        });
    }
    Ok(offsets)
}

/// Sends one request of `op` per group of `requests` (with `offsets`, for an alter) on one
/// queue, each tagged with its index, then gathers every answer (`read` turns a result event
/// into the group's answer); a group without an answer in time gets a timeout.
fn in_flight<C: ClientContext, T>(
    client: &Client<C>,
    op: rd_kafka_admin_op_t,
    requests: &[(&String, Offsets)],
    timeout: Duration,
    read: impl Fn(*mut rdsys::rd_kafka_event_t) -> Result<T, AdminExtError>,
) -> Vec<GroupAnswer<T>> {
    let rk = client.native_ptr();
    let mut answers: Vec<Option<Result<T, AdminExtError>>> =
        requests.iter().map(|_| None).collect();
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: every object created here is freed by its guard; librdkafka copies the request
    // and its options when it is sent, and each event is read by `read` before it is freed.
    unsafe {
        let queue = Guard {
            ptr: rdsys::rd_kafka_queue_new(rk),
            free: rdsys::rd_kafka_queue_destroy,
        };
        let mut sent = 0;
        for (index, (group, offsets)) in requests.iter().enumerate() {
            let name = match c_string(group) {
                Ok(name) => name,
                Err(e) => {
                    answers[index] = Some(Err(e));
                    continue;
                }
            };
            let options = admin_options(rk, op, timeout_ms);
            rdsys::rd_kafka_AdminOptions_set_opaque(options.ptr, index as *mut c_void);
            if op == rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS {
                let request = Guard {
                    ptr: rdsys::rd_kafka_ListConsumerGroupOffsets_new(
                        name.as_ptr(),
                        std::ptr::null(),
                    ),
                    free: rdsys::rd_kafka_ListConsumerGroupOffsets_destroy,
                };
                let mut one = [request.ptr];
                rdsys::rd_kafka_ListConsumerGroupOffsets(
                    rk,
                    one.as_mut_ptr(),
                    1,
                    options.ptr,
                    queue.ptr,
                );
            } else {
                let list = Guard {
                    ptr: rdsys::rd_kafka_topic_partition_list_new(
                        i32::try_from(offsets.len()).unwrap_or(i32::MAX),
                    ),
                    free: rdsys::rd_kafka_topic_partition_list_destroy,
                };
                let mut invalid = None;
                for (topic, partition, offset) in offsets {
                    match c_string(topic) {
                        Ok(topic) => {
                            let element = rdsys::rd_kafka_topic_partition_list_add(
                                list.ptr,
                                topic.as_ptr(),
                                *partition,
                            );
                            (*element).offset = *offset;
                        }
                        Err(e) => invalid = Some(e),
                    }
                }
                if let Some(e) = invalid {
                    answers[index] = Some(Err(e));
                    continue;
                }
                let request = Guard {
                    ptr: rdsys::rd_kafka_AlterConsumerGroupOffsets_new(name.as_ptr(), list.ptr),
                    free: rdsys::rd_kafka_AlterConsumerGroupOffsets_destroy,
                };
                let mut one = [request.ptr];
                rdsys::rd_kafka_AlterConsumerGroupOffsets(
                    rk,
                    one.as_mut_ptr(),
                    1,
                    options.ptr,
                    queue.ptr,
                );
            }
            sent += 1;
        }
        for _ in 0..sent {
            let event = Guard {
                ptr: rdsys::rd_kafka_queue_poll(queue.ptr, timeout_ms.saturating_add(1000)),
                free: rdsys::rd_kafka_event_destroy,
            };
            if event.ptr.is_null() {
                break; // the rest time out
            }
            let index = rdsys::rd_kafka_event_opaque(event.ptr) as usize;
            let Some(slot) = answers.get_mut(index) else {
                continue;
            };
            let code = rdsys::rd_kafka_event_error(event.ptr);
            *slot = Some(if code != rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                Err(AdminExtError::Broker {
                    code: code.into(),
                    message: text(rdsys::rd_kafka_event_error_string(event.ptr)),
                })
            } else {
                read(event.ptr)
            });
        }
    }
    requests
        .iter()
        .zip(answers)
        .map(|((group, _), answer)| {
            let answer = answer.unwrap_or(Err(AdminExtError::Timeout(timeout)));
            ((*group).clone(), answer)
        })
        .collect()
}
