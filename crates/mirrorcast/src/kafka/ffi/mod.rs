//! librdkafka calls that rust-rdkafka does not wrap, behind a small safe API: admin calls
//! (incremental alter configs, ACLs, topic IDs, consumer group offsets in
//! [`group_offsets`], group members in [`group_members`], cached watermarks) and record headers whose keys are any
//! bytes. All the `unsafe` of the crate lives here: each admin call builds its request, waits
//! on its own result queue, and frees every librdkafka object it created on every path (RAII
//! guards); one unsafe block per foreign call.

mod group_members;
mod group_offsets;

pub use group_members::{classic_group_members, group_members, member_id};
pub use group_offsets::{
    alter_group_offsets, list_group_offsets, CommittedOffset, GroupAnswer, GroupCommit, Offsets,
};

use std::ffi::{CStr, CString};
use std::time::Duration;

use rdkafka::client::Client;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{BorrowedHeaders, BorrowedMessage, OwnedHeaders};
use rdkafka::ClientContext;
use rdkafka_sys as rdsys;
use rdkafka_sys::bindings::{
    rd_kafka_AclOperation_t, rd_kafka_AclPermissionType_t, rd_kafka_AlterConfigOpType_t,
    rd_kafka_ResourcePatternType_t, rd_kafka_ResourceType_t, rd_kafka_admin_op_t,
    rd_kafka_resp_err_t,
};

use crate::acls::{AclOperation, AclPermission, TopicAcl};
use crate::topic_configs::ConfigOp;

/// What a librdkafka admin call rust-rdkafka does not wrap can report.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AdminExtError {
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{code}: {message}")]
    Broker {
        code: RDKafkaErrorCode,
        message: String,
    },
}

/// Frees a librdkafka object when dropped.
struct Guard<T> {
    ptr: *mut T,
    free: unsafe extern "C" fn(*mut T),
}

impl<T> Drop for Guard<T> {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: `ptr` came from the matching librdkafka constructor and is freed once.
            unsafe { (self.free)(self.ptr) }
        }
    }
}

fn c_string(s: &str) -> Result<CString, AdminExtError> {
    CString::new(s).map_err(|_| AdminExtError::Invalid(format!("`{s}` contains a NUL byte")))
}

/// A C string from librdkafka, or "" for NULL.
///
/// # Safety
/// `ptr` must be NULL or point to a NUL-terminated string that outlives the call.
unsafe fn text(ptr: *const std::os::raw::c_char) -> String {
    if ptr.is_null() {
        String::new()
    } else {
        CStr::from_ptr(ptr).to_string_lossy().into_owned()
    }
}

/// Options of an admin request of type `op` that waits `timeout_ms` for its answer.
///
/// # Safety
/// `rk` must be a live client handle.
unsafe fn admin_options(
    rk: *mut rdsys::rd_kafka_t,
    op: rd_kafka_admin_op_t,
    timeout_ms: i32,
) -> Guard<rdsys::rd_kafka_AdminOptions_t> {
    let options = Guard {
        ptr: rdsys::rd_kafka_AdminOptions_new(rk, op),
        free: rdsys::rd_kafka_AdminOptions_destroy,
    };
    let mut errstr = [0 as std::os::raw::c_char; 256];
    // Refused only for a timeout out of range, which an `i32` of milliseconds is not.
    rdsys::rd_kafka_AdminOptions_set_request_timeout(
        options.ptr,
        timeout_ms,
        errstr.as_mut_ptr(),
        errstr.len(),
    );
    options
}

/// Sends one admin request (`send` is given the options and the result queue) and waits for
/// its result event, which is returned only when the request as a whole succeeded.
///
/// # Safety
/// `rk` must be a live client handle and `send` must issue exactly one admin request of type
/// `op` on the queue it is given.
unsafe fn request(
    rk: *mut rdsys::rd_kafka_t,
    op: rd_kafka_admin_op_t,
    timeout: Duration,
    send: impl FnOnce(*mut rdsys::rd_kafka_AdminOptions_t, *mut rdsys::rd_kafka_queue_t),
) -> Result<Guard<rdsys::rd_kafka_event_t>, AdminExtError> {
    let queue = Guard {
        ptr: rdsys::rd_kafka_queue_new(rk),
        free: rdsys::rd_kafka_queue_destroy,
    };
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let options = admin_options(rk, op, timeout_ms);
    send(options.ptr, queue.ptr);
    let event = Guard {
        ptr: rdsys::rd_kafka_queue_poll(queue.ptr, timeout_ms.saturating_add(1000)),
        free: rdsys::rd_kafka_event_destroy,
    };
    if event.ptr.is_null() {
        return Err(AdminExtError::Timeout(timeout));
    }
    let code = rdsys::rd_kafka_event_error(event.ptr);
    if code != rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Err(AdminExtError::Broker {
            code: code.into(),
            message: text(rdsys::rd_kafka_event_error_string(event.ptr)),
        });
    }
    Ok(event)
}

/// Applies `ops` to the configs of `topic` with IncrementalAlterConfigs (what MM2 uses since
/// Kafka 3.5; the legacy AlterConfigs would replace the whole config). Blocking.
pub fn incremental_alter_topic_configs<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    ops: &[ConfigOp],
    timeout: Duration,
) -> Result<(), AdminExtError> {
    if ops.is_empty() {
        return Ok(());
    }
    let rk = client.native_ptr();
    let topic_c = c_string(topic)?;
    // SAFETY: every pointer below is created here, checked for NULL where librdkafka may return
    // it, freed by its guard, and used only while its owner is alive.
    unsafe {
        let resource = Guard {
            ptr: rdsys::rd_kafka_ConfigResource_new(
                rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
                topic_c.as_ptr(),
            ),
            free: rdsys::rd_kafka_ConfigResource_destroy,
        };
        for op in ops {
            let (name, op_type, value) = match op {
                ConfigOp::Set { name, value } => (
                    c_string(name)?,
                    rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
                    Some(c_string(value)?),
                ),
                ConfigOp::Delete { name } => (
                    c_string(name)?,
                    rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_DELETE,
                    None,
                ),
            };
            let value_ptr = value.as_ref().map_or(std::ptr::null(), |v| v.as_ptr());
            let error = Guard {
                ptr: rdsys::rd_kafka_ConfigResource_add_incremental_config(
                    resource.ptr,
                    name.as_ptr(),
                    op_type,
                    value_ptr,
                ),
                free: rdsys::rd_kafka_error_destroy,
            };
            if !error.ptr.is_null() {
                return Err(AdminExtError::Invalid(text(rdsys::rd_kafka_error_string(
                    error.ptr,
                ))));
            }
        }
        let mut resources = [resource.ptr];
        let event = request(
            rk,
            rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS,
            timeout,
            |options, queue| {
                // librdkafka copies the resources; ours are freed by their guard.
                rdsys::rd_kafka_IncrementalAlterConfigs(
                    rk,
                    resources.as_mut_ptr(),
                    1,
                    options,
                    queue,
                )
            },
        )?;
        let result = rdsys::rd_kafka_event_IncrementalAlterConfigs_result(event.ptr);
        if result.is_null() {
            return Err(AdminExtError::Invalid("unexpected result event".into()));
        }
        let mut count = 0usize;
        let results = rdsys::rd_kafka_IncrementalAlterConfigs_result_resources(result, &mut count);
        for i in 0..count {
            let resource = *results.add(i);
            let code = rdsys::rd_kafka_ConfigResource_error(resource);
            if code != rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                return Err(AdminExtError::Broker {
                    code: code.into(),
                    message: text(rdsys::rd_kafka_ConfigResource_error_string(resource)),
                });
            }
        }
        Ok(())
    }
}

fn to_c_operation(operation: AclOperation) -> rd_kafka_AclOperation_t {
    use rdkafka_sys::rd_kafka_AclOperation_t::*;
    match operation {
        AclOperation::Unknown => RD_KAFKA_ACL_OPERATION_UNKNOWN,
        AclOperation::Any => RD_KAFKA_ACL_OPERATION_ANY,
        AclOperation::All => RD_KAFKA_ACL_OPERATION_ALL,
        AclOperation::Read => RD_KAFKA_ACL_OPERATION_READ,
        AclOperation::Write => RD_KAFKA_ACL_OPERATION_WRITE,
        AclOperation::Create => RD_KAFKA_ACL_OPERATION_CREATE,
        AclOperation::Delete => RD_KAFKA_ACL_OPERATION_DELETE,
        AclOperation::Alter => RD_KAFKA_ACL_OPERATION_ALTER,
        AclOperation::Describe => RD_KAFKA_ACL_OPERATION_DESCRIBE,
        AclOperation::ClusterAction => RD_KAFKA_ACL_OPERATION_CLUSTER_ACTION,
        AclOperation::DescribeConfigs => RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS,
        AclOperation::AlterConfigs => RD_KAFKA_ACL_OPERATION_ALTER_CONFIGS,
        AclOperation::IdempotentWrite => RD_KAFKA_ACL_OPERATION_IDEMPOTENT_WRITE,
    }
}

fn from_c_operation(operation: rd_kafka_AclOperation_t) -> AclOperation {
    use rdkafka_sys::rd_kafka_AclOperation_t::*;
    match operation {
        RD_KAFKA_ACL_OPERATION_ANY => AclOperation::Any,
        RD_KAFKA_ACL_OPERATION_ALL => AclOperation::All,
        RD_KAFKA_ACL_OPERATION_READ => AclOperation::Read,
        RD_KAFKA_ACL_OPERATION_WRITE => AclOperation::Write,
        RD_KAFKA_ACL_OPERATION_CREATE => AclOperation::Create,
        RD_KAFKA_ACL_OPERATION_DELETE => AclOperation::Delete,
        RD_KAFKA_ACL_OPERATION_ALTER => AclOperation::Alter,
        RD_KAFKA_ACL_OPERATION_DESCRIBE => AclOperation::Describe,
        RD_KAFKA_ACL_OPERATION_CLUSTER_ACTION => AclOperation::ClusterAction,
        RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS => AclOperation::DescribeConfigs,
        RD_KAFKA_ACL_OPERATION_ALTER_CONFIGS => AclOperation::AlterConfigs,
        RD_KAFKA_ACL_OPERATION_IDEMPOTENT_WRITE => AclOperation::IdempotentWrite,
        _ => AclOperation::Unknown,
    }
}

fn to_c_permission(permission: AclPermission) -> rd_kafka_AclPermissionType_t {
    use rdkafka_sys::rd_kafka_AclPermissionType_t::*;
    match permission {
        AclPermission::Unknown => RD_KAFKA_ACL_PERMISSION_TYPE_UNKNOWN,
        AclPermission::Any => RD_KAFKA_ACL_PERMISSION_TYPE_ANY,
        AclPermission::Deny => RD_KAFKA_ACL_PERMISSION_TYPE_DENY,
        AclPermission::Allow => RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW,
    }
}

fn from_c_permission(permission: rd_kafka_AclPermissionType_t) -> AclPermission {
    use rdkafka_sys::rd_kafka_AclPermissionType_t::*;
    match permission {
        RD_KAFKA_ACL_PERMISSION_TYPE_ANY => AclPermission::Any,
        RD_KAFKA_ACL_PERMISSION_TYPE_DENY => AclPermission::Deny,
        RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW => AclPermission::Allow,
        _ => AclPermission::Unknown,
    }
}

/// Every literal ACL on a named topic (DescribeAcls). A broker without an authorizer answers
/// with [`RDKafkaErrorCode::SecurityDisabled`]. Blocking.
pub fn describe_topic_acls<C: ClientContext>(
    client: &Client<C>,
    timeout: Duration,
) -> Result<Vec<TopicAcl>, AdminExtError> {
    let rk = client.native_ptr();
    // SAFETY: as in `incremental_alter_topic_configs`; the bindings of the result belong to
    // the event and are copied out before it is freed.
    unsafe {
        let mut errstr = [0 as std::os::raw::c_char; 256];
        let filter = Guard {
            ptr: rdsys::rd_kafka_AclBindingFilter_new(
                rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
                std::ptr::null(),
                rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_LITERAL,
                std::ptr::null(),
                std::ptr::null(),
                rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_ANY,
                rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ANY,
                errstr.as_mut_ptr(),
                errstr.len(),
            ),
            free: rdsys::rd_kafka_AclBinding_destroy,
        };
        if filter.ptr.is_null() {
            return Err(AdminExtError::Invalid(text(errstr.as_ptr())));
        }
        let event = request(
            rk,
            rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBEACLS,
            timeout,
            |options, queue| rdsys::rd_kafka_DescribeAcls(rk, filter.ptr, options, queue),
        )?;
        let result = rdsys::rd_kafka_event_DescribeAcls_result(event.ptr);
        if result.is_null() {
            return Err(AdminExtError::Invalid("unexpected result event".into()));
        }
        let mut count = 0usize;
        let bindings = rdsys::rd_kafka_DescribeAcls_result_acls(result, &mut count);
        let mut acls = Vec::with_capacity(count);
        for i in 0..count {
            let binding = *bindings.add(i);
            acls.push(TopicAcl {
                topic: text(rdsys::rd_kafka_AclBinding_name(binding)),
                principal: text(rdsys::rd_kafka_AclBinding_principal(binding)),
                host: text(rdsys::rd_kafka_AclBinding_host(binding)),
                operation: from_c_operation(rdsys::rd_kafka_AclBinding_operation(binding)),
                permission: from_c_permission(rdsys::rd_kafka_AclBinding_permission_type(binding)),
            });
        }
        Ok(acls)
    }
}

/// The topic ID of each of `topics` (DescribeTopics), base64 as Kafka's tools print it (URL
/// safe, unpadded: librdkafka's own text is standard base64); a topic the cluster does not
/// know or cannot describe now, or a broker too old to have topic IDs, is left out.
/// Blocking.
pub fn describe_topic_ids<C: ClientContext>(
    client: &Client<C>,
    topics: &[&str],
    timeout: Duration,
) -> Result<Vec<(String, String)>, AdminExtError> {
    if topics.is_empty() {
        return Ok(Vec::new());
    }
    let rk = client.native_ptr();
    let names = topics
        .iter()
        .map(|t| c_string(t))
        .collect::<Result<Vec<_>, _>>()?;
    let mut pointers: Vec<*const std::os::raw::c_char> = names.iter().map(|n| n.as_ptr()).collect();
    // SAFETY: as in `incremental_alter_topic_configs`; `names` outlive the collection (it
    // copies them), and the descriptions belong to the event and are copied out before it is
    // freed.
    unsafe {
        let collection = Guard {
            ptr: rdsys::rd_kafka_TopicCollection_of_topic_names(
                pointers.as_mut_ptr(),
                pointers.len(),
            ),
            free: rdsys::rd_kafka_TopicCollection_destroy,
        };
        let event = request(
            rk,
            rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS,
            timeout,
            |options, queue| rdsys::rd_kafka_DescribeTopics(rk, collection.ptr, options, queue),
        )?;
        let result = rdsys::rd_kafka_event_DescribeTopics_result(event.ptr);
        if result.is_null() {
            return Err(AdminExtError::Invalid("unexpected result event".into()));
        }
        let mut count = 0usize;
        let descriptions = rdsys::rd_kafka_DescribeTopics_result_topics(result, &mut count);
        let mut ids = Vec::with_capacity(count);
        for i in 0..count {
            let description = *descriptions.add(i);
            if !rdsys::rd_kafka_TopicDescription_error(description).is_null() {
                continue;
            }
            let uuid = rdsys::rd_kafka_TopicDescription_topic_id(description);
            if uuid.is_null()
                || (rdsys::rd_kafka_Uuid_most_significant_bits(uuid) == 0
                    && rdsys::rd_kafka_Uuid_least_significant_bits(uuid) == 0)
            {
                continue;
            }
            ids.push((
                text(rdsys::rd_kafka_TopicDescription_name(description)),
                text(rdsys::rd_kafka_Uuid_base64str(uuid))
                    .replace('+', "-")
                    .replace('/', "_"),
            ));
        }
        Ok(ids)
    }
}

/// Creates literal topic ACLs (CreateAcls); existing ones are left as they are. Blocking.
pub fn create_topic_acls<C: ClientContext>(
    client: &Client<C>,
    acls: &[TopicAcl],
    timeout: Duration,
) -> Result<(), AdminExtError> {
    if acls.is_empty() {
        return Ok(());
    }
    let rk = client.native_ptr();
    // SAFETY: as in `incremental_alter_topic_configs`; librdkafka copies the bindings.
    unsafe {
        let mut guards = Vec::with_capacity(acls.len());
        for acl in acls {
            let (topic, principal, host) = (
                c_string(&acl.topic)?,
                c_string(&acl.principal)?,
                c_string(&acl.host)?,
            );
            let mut errstr = [0 as std::os::raw::c_char; 256];
            let binding = Guard {
                ptr: rdsys::rd_kafka_AclBinding_new(
                    rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
                    topic.as_ptr(),
                    rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_LITERAL,
                    principal.as_ptr(),
                    host.as_ptr(),
                    to_c_operation(acl.operation),
                    to_c_permission(acl.permission),
                    errstr.as_mut_ptr(),
                    errstr.len(),
                ),
                free: rdsys::rd_kafka_AclBinding_destroy,
            };
            if binding.ptr.is_null() {
                return Err(AdminExtError::Invalid(text(errstr.as_ptr())));
            }
            guards.push(binding);
        }
        let mut pointers: Vec<*mut rdsys::rd_kafka_AclBinding_t> =
            guards.iter().map(|g| g.ptr).collect();
        let event = request(
            rk,
            rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATEACLS,
            timeout,
            |options, queue| {
                rdsys::rd_kafka_CreateAcls(
                    rk,
                    pointers.as_mut_ptr(),
                    pointers.len(),
                    options,
                    queue,
                )
            },
        )?;
        let result = rdsys::rd_kafka_event_CreateAcls_result(event.ptr);
        if result.is_null() {
            return Err(AdminExtError::Invalid("unexpected result event".into()));
        }
        let mut count = 0usize;
        let results = rdsys::rd_kafka_CreateAcls_result_acls(result, &mut count);
        for i in 0..count {
            let error = rdsys::rd_kafka_acl_result_error(*results.add(i));
            if !error.is_null() {
                return Err(AdminExtError::Broker {
                    code: rdsys::rd_kafka_error_code(error).into(),
                    message: text(rdsys::rd_kafka_error_string(error)),
                });
            }
        }
        Ok(())
    }
}

/// The low and high watermarks of a partition as the client last saw them in a fetch response
/// (no request is made; -1 when not known): where the log starts (for records retention
/// deleted before they were copied) and where it ends (for lag).
pub fn cached_watermarks<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    partition: i32,
) -> Option<(Option<i64>, Option<i64>)> {
    let topic = c_string(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: a live client handle, a NUL-terminated topic name and two out-parameters.
    let code = unsafe {
        rdsys::rd_kafka_get_watermark_offsets(
            client.native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    let known = |o: i64| (o >= 0).then_some(o);
    (code == rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR).then_some((known(low), known(high)))
}

/// Delivers the log lines and error events waiting on a client's main queue to its context.
/// rust-rdkafka forwards librdkafka's logs to that queue, which its consumers and producers
/// serve when polled, but its admin client never serves: without this, an admin client's
/// "SASL authentication error" or "certificate verify failed" is never seen (and its events
/// pile up). Returns how many events were served. Never blocks.
pub fn serve_main_queue<C: ClientContext>(client: &Client<C>) -> usize {
    let queue = Guard {
        // SAFETY: a live client handle; the main queue reference is released by the guard.
        ptr: unsafe { rdsys::rd_kafka_queue_get_main(client.native_ptr()) },
        free: rdsys::rd_kafka_queue_destroy,
    };
    if queue.ptr.is_null() {
        return 0;
    }
    let mut served = 0;
    loop {
        let event = Guard {
            // SAFETY: a live queue; a timeout of 0 returns at once, NULL when empty.
            ptr: unsafe { rdsys::rd_kafka_queue_poll(queue.ptr, 0) },
            free: rdsys::rd_kafka_event_destroy,
        };
        if event.ptr.is_null() {
            return served;
        }
        served += 1;
        // SAFETY: a live event.
        let kind = unsafe { rdsys::rd_kafka_event_type(event.ptr) };
        if kind == rdsys::RD_KAFKA_EVENT_LOG {
            let mut facility: *const std::os::raw::c_char = std::ptr::null();
            let mut message: *const std::os::raw::c_char = std::ptr::null();
            let mut level: std::os::raw::c_int = 0;
            // SAFETY: a live log event and three out-parameters; the strings live as long as
            // the event, which the guard frees after they are copied.
            let found = unsafe {
                rdsys::rd_kafka_event_log(event.ptr, &mut facility, &mut message, &mut level)
            };
            if found == 0 {
                // SAFETY: NULL or NUL-terminated strings owned by the live event.
                let (facility, message) = unsafe { (text(facility), text(message)) };
                client.context().log(log_level(level), &facility, &message);
            }
        } else if kind == rdsys::RD_KAFKA_EVENT_ERROR {
            // SAFETY: a live error event.
            let code = unsafe { rdsys::rd_kafka_event_error(event.ptr) };
            // SAFETY: a NUL-terminated string owned by the live event.
            let reason = unsafe { text(rdsys::rd_kafka_event_error_string(event.ptr)) };
            client
                .context()
                .error(rdkafka::error::KafkaError::Global(code.into()), &reason);
        }
    }
}

/// librdkafka's syslog level as rust-rdkafka's.
fn log_level(level: std::os::raw::c_int) -> rdkafka::config::RDKafkaLogLevel {
    use rdkafka::config::RDKafkaLogLevel as Level;
    match level {
        0 => Level::Emerg,
        1 => Level::Alert,
        2 => Level::Critical,
        3 => Level::Error,
        4 => Level::Warning,
        5 => Level::Notice,
        6 => Level::Info,
        _ => Level::Debug,
    }
}

// Record headers with any bytes as keys. rust-rdkafka's header accessors turn each key into a
// `&str` with `unwrap()` (a key that is not UTF-8 panics), and `OwnedHeaders::insert` takes
// `&str` keys; Kafka's headers are bytes. (The copier itself copies header lists whole with
// `BorrowedHeaders::detach`, which never looks at the keys.)

/// A header list: (key, value) in order, duplicates and null values included.
pub type RawHeaders = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// What the broker said of a produced record that failed (KIP-467 record errors), or the text
/// librdkafka gives it; `None` when it says nothing.
pub fn produce_error_text(message: &BorrowedMessage<'_>) -> Option<String> {
    // SAFETY: a live message of a delivery report; the text belongs to it (or is static).
    let ptr = unsafe { rdsys::rd_kafka_message_produce_errstr(message.ptr()) };
    // SAFETY: NULL or a NUL-terminated string that outlives this call.
    (!ptr.is_null()).then(|| unsafe { text(ptr) })
}

/// The headers of a consumed record, keys as bytes.
pub fn raw_headers(message: &BorrowedMessage<'_>) -> RawHeaders {
    let mut headers: *mut rdsys::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: a live message; librdkafka points `headers` at a list the message owns.
    let code = unsafe { rdsys::rd_kafka_message_headers(message.ptr(), &mut headers) };
    if code != rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || headers.is_null() {
        return RawHeaders::new();
    }
    read_header_list(headers)
}

/// The headers of an [`OwnedHeaders`], keys as bytes.
pub fn owned_raw_headers(headers: &OwnedHeaders) -> RawHeaders {
    read_header_list(native_header_list(headers))
}

/// Headers for a producer, keys as bytes.
pub fn raw_owned_headers(pairs: &[(&[u8], Option<&[u8]>)]) -> OwnedHeaders {
    let headers = OwnedHeaders::new_with_capacity(pairs.len());
    let list = native_header_list(&headers);
    for (key, value) in pairs {
        let (value_ptr, value_len) = match value {
            Some(v) => (v.as_ptr().cast::<std::ffi::c_void>(), v.len() as isize),
            None => (std::ptr::null(), 0),
        };
        // SAFETY: a live, writable list (new above); librdkafka copies name and value.
        unsafe {
            rdsys::rd_kafka_header_add(
                list,
                key.as_ptr().cast(),
                key.len() as isize,
                value_ptr,
                value_len,
            )
        };
    }
    headers
}

/// rust-rdkafka lends a header list as a `&BorrowedHeaders` placed at the native list's address
/// (its own `as_native_ptr` reads it back the same way); `OwnedHeaders` keeps the native
/// pointer to itself.
fn native_header_list(headers: &OwnedHeaders) -> *mut rdsys::rd_kafka_headers_t {
    let borrowed: &BorrowedHeaders = headers.as_borrowed();
    borrowed as *const BorrowedHeaders as *mut rdsys::rd_kafka_headers_t
}

fn read_header_list(list: *const rdsys::rd_kafka_headers_t) -> RawHeaders {
    let mut out = RawHeaders::new();
    for index in 0.. {
        let mut name: *const std::ffi::c_char = std::ptr::null();
        let mut value: *const std::ffi::c_void = std::ptr::null();
        let mut size = 0usize;
        // SAFETY: a live list; the out-parameters are set to memory the list owns.
        let code = unsafe {
            rdsys::rd_kafka_header_get_all(list, index, &mut name, &mut value, &mut size)
        };
        if code != rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            break;
        }
        // SAFETY: librdkafka keeps header names NUL-terminated; it outlives this copy.
        let key = unsafe { CStr::from_ptr(name) }.to_bytes().to_vec();
        let value = (!value.is_null()).then(|| {
            // SAFETY: `size` bytes at `value`, owned by the list, copied here.
            unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) }.to_vec()
        });
        out.push((key, value));
    }
    out
}

#[cfg(test)]
mod header_tests {
    use super::*;

    #[test]
    fn header_keys_and_values_of_any_bytes_round_trip_in_order() {
        let pairs: [(&[u8], Option<&[u8]>); 4] = [
            (b"\xff\xfe not utf-8", Some(b"\x00\x01")),
            (b"trace-id", None),
            (b"trace-id", Some(b"")),
            (b"\xc3\x28", Some(b"v")),
        ];
        let headers = raw_owned_headers(&pairs);
        let expected: RawHeaders = pairs
            .iter()
            .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
            .collect();
        assert_eq!(owned_raw_headers(&headers), expected);
        // A whole-list copy (what the copier sends) keeps them too.
        assert_eq!(owned_raw_headers(&headers.as_borrowed().detach()), expected);
    }
}
