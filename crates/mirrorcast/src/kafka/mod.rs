//! Everything that speaks to Kafka through librdkafka, apart from the copier's hot path:
//! client settings and logs ([`clients`]), the admin client behind
//! [`crate::topics::ClusterAdmin`] ([`admin`]), the librdkafka calls rust-rdkafka does not wrap
//! ([`ffi`], the only `unsafe` of the crate), and reading a compacted topic to its end
//! (`log_reader`: progress, created-topic marks, offset syncs); why a broker's certificate is
//! refused ([`tls_check`]).

pub mod admin;
pub mod clients;
#[allow(unsafe_code)]
pub mod ffi;
pub(crate) mod log_reader;
pub mod tls_check;
