//! Everything that speaks to Kafka through librdkafka, apart from the copier's hot path:
//! client settings and logs ([`clients`]), what topic management needs from a cluster
//! ([`cluster`], the seam) and the admin client doing it ([`admin`]), the librdkafka calls rust-rdkafka does not wrap
//! ([`ffi`], the only `unsafe` of the crate), and reading a compacted topic to its end
//! (`log_reader`: progress, created-topic marks, offset syncs); why a broker's certificate is
//! refused ([`tls_check`]).

pub mod admin;
pub mod clients;
pub mod cluster;
#[allow(unsafe_code)]
pub mod ffi;
pub(crate) mod log_reader;
pub mod record_batch;
pub mod tls_check;
pub mod wire;
