//! librdkafka admin calls that rust-rdkafka does not wrap, behind a small safe API. All the
//! `unsafe` of the crate lives here: each call builds its request, waits on its own result
//! queue, and frees every librdkafka object it created on every path (RAII guards).

use std::ffi::{CStr, CString};
use std::time::Duration;

use rdkafka::client::Client;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::ClientContext;
use rdkafka_sys as rdsys;
use rdkafka_sys::bindings::{
    rd_kafka_AlterConfigOpType_t, rd_kafka_ResourceType_t, rd_kafka_admin_op_t, rd_kafka_resp_err_t,
};

/// One change of an incremental alter configs request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    Set {
        name: String,
        value: String,
    },
    /// Back to the broker's default.
    Delete {
        name: String,
    },
}

#[derive(Debug, thiserror::Error)]
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
        let queue = Guard {
            ptr: rdsys::rd_kafka_queue_new(rk),
            free: rdsys::rd_kafka_queue_destroy,
        };
        let options = Guard {
            ptr: rdsys::rd_kafka_AdminOptions_new(
                rk,
                rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS,
            ),
            free: rdsys::rd_kafka_AdminOptions_destroy,
        };
        let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let mut errstr = [0 as std::os::raw::c_char; 256];
        rdsys::rd_kafka_AdminOptions_set_request_timeout(
            options.ptr,
            timeout_ms,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        let mut resources = [resource.ptr];
        // librdkafka copies the resources; ours are freed by their guard.
        rdsys::rd_kafka_IncrementalAlterConfigs(
            rk,
            resources.as_mut_ptr(),
            1,
            options.ptr,
            queue.ptr,
        );
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
