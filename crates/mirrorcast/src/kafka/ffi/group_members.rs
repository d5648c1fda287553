//! Who the group's coordinator counts as members of a group (DescribeConsumerGroups, which
//! librdkafka sends as KIP-848's ConsumerGroupDescribe and falls back to the classic
//! DescribeGroups), and the member id a consumer of this process holds: how a member learns
//! that the coordinator still has it, from the coordinator itself.

use std::os::raw::c_void;
use std::time::Duration;

use rdkafka::client::Client;
use rdkafka::ClientContext;
use rdkafka_sys as rdsys;
use rdkafka_sys::bindings::rd_kafka_admin_op_t;

use super::{c_string, request, text, AdminExtError};

/// The member id the coordinator gave `consumer`'s group membership; `None` before it joined.
pub fn member_id<C: ClientContext>(consumer: &Client<C>) -> Option<String> {
    let rk = consumer.native_ptr();
    // SAFETY: `rk` is a live handle; the string librdkafka returns is ours to free, once.
    let id = unsafe { rdsys::rd_kafka_memberid(rk) };
    if id.is_null() {
        return None;
    }
    // SAFETY: `id` is a NUL-terminated string librdkafka just allocated.
    let text = unsafe { text(id) };
    // SAFETY: `id` came from `rd_kafka_memberid` on `rk` and is freed once, after it was read.
    unsafe { rdsys::rd_kafka_mem_free(rk, id as *mut c_void) };
    Some(text).filter(|id| !id.is_empty())
}

/// The member ids of `group` as its coordinator has them now. Blocking, at most `timeout`.
pub fn group_members<C: ClientContext>(
    client: &Client<C>,
    group: &str,
    timeout: Duration,
) -> Result<Vec<String>, AdminExtError> {
    let rk = client.native_ptr();
    let name = c_string(group)?;
    // SAFETY: the request copies the group name; the result event and everything read from it
    // live until the event's guard frees it, after the member ids were copied out.
    unsafe {
        let mut groups = [name.as_ptr()];
        let event = request(
            rk,
            rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS,
            timeout,
            |options, queue| {
                rdsys::rd_kafka_DescribeConsumerGroups(rk, groups.as_mut_ptr(), 1, options, queue)
            },
        )?;
        let result = rdsys::rd_kafka_event_DescribeConsumerGroups_result(event.ptr);
        if result.is_null() {
            return Err(AdminExtError::Invalid("unexpected result event".into()));
        }
        let mut count = 0usize;
        let descriptions = rdsys::rd_kafka_DescribeConsumerGroups_result_groups(result, &mut count);
        if descriptions.is_null() || count == 0 {
            return Err(AdminExtError::Invalid("a result without its group".into()));
        }
        let description = *descriptions;
        let error = rdsys::rd_kafka_ConsumerGroupDescription_error(description);
        if !error.is_null() {
            return Err(AdminExtError::Broker {
                code: rdsys::rd_kafka_error_code(error).into(),
                message: text(rdsys::rd_kafka_error_string(error)),
            });
        }
        let members = rdsys::rd_kafka_ConsumerGroupDescription_member_count(description);
        Ok((0..members)
            .map(|index| {
                let member = rdsys::rd_kafka_ConsumerGroupDescription_member(description, index);
                if member.is_null() {
                    String::new()
                } else {
                    text(rdsys::rd_kafka_MemberDescription_consumer_id(member))
                }
            })
            .filter(|id| !id.is_empty())
            .collect())
    }
}

/// The member ids of classic group `group`, as the broker that coordinates it lists them
/// (librdkafka's `rd_kafka_list_groups`: ListGroups to every broker, then DescribeGroups to the
/// one that lists the group). Unlike [`group_members`] it makes no coordinator lookup, which
/// librdkafka's admin API can crash on when the coordinator stays unreachable past the
/// request's timeout (`rd_kafka_enq_once_del_source_return` assertion, librdkafka#4605, seen
/// here when a source broker restarted under the probe). Brokers that do not answer in time
/// are left out: only the group's own entry matters.
pub fn classic_group_members<C: ClientContext>(
    client: &Client<C>,
    group: &str,
    timeout: Duration,
) -> Result<Vec<String>, AdminExtError> {
    let rk = client.native_ptr();
    let name = c_string(group)?;
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let mut list: *const rdsys::rd_kafka_group_list = std::ptr::null();
    // SAFETY: `name` outlives the call; librdkafka sets `list` (or leaves it NULL on error).
    let code = unsafe { rdsys::rd_kafka_list_groups(rk, name.as_ptr(), &mut list, timeout_ms) };
    if list.is_null() {
        return Err(AdminExtError::Broker {
            code: code.into(),
            message: "listing the group failed".into(),
        });
    }
    // SAFETY: the list and everything it points to live until it is destroyed below, once;
    // counts come from librdkafka with their arrays.
    let result = unsafe {
        let groups = (*list).groups;
        let mut found = Ok(Vec::new());
        for index in 0..usize::try_from((*list).group_cnt).unwrap_or(0) {
            let info = &*groups.add(index);
            if text(info.group) != group {
                continue;
            }
            if info.err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                found = Err(AdminExtError::Broker {
                    code: info.err.into(),
                    message: "describing the group failed".into(),
                });
                break;
            }
            let count = usize::try_from(info.member_cnt).unwrap_or(0);
            found = Ok((0..count)
                .map(|member| text((*info.members.add(member)).member_id))
                .collect());
        }
        found
    };
    // SAFETY: `list` came from `rd_kafka_list_groups` and is not used after this.
    unsafe { rdsys::rd_kafka_group_list_destroy(list) };
    result
}
