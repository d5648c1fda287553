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
