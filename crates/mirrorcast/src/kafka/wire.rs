//! Kafka's wire protocol over our own connections, for the batch data plane
//! (`crate::copy::batches`): the messages are `kafka-protocol`'s (sans I/O, its fetch and
//! produce keep record batches as raw bytes); connections, versions, metadata and leaders are
//! ours. Blocking sockets with timeouts: each copier thread is one sequence of requests.
//!
//! Invariant: a request is answered by the response with its correlation id or the connection
//! is dropped; an error never leaves a half-read response behind for the next request.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiVersionsRequest, BrokerId, MetadataRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// Why a request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{broker}: {error}")]
    Io {
        broker: String,
        #[source]
        error: std::io::Error,
    },
    #[error("{broker}: {what}")]
    Protocol { broker: String, what: String },
    #[error("{broker} does not serve {api} v{version} (it serves v{min} to v{max})")]
    Version {
        broker: String,
        api: &'static str,
        version: i16,
        min: i16,
        max: i16,
    },
    #[error("no broker of {bootstrap} answers")]
    Unreachable { bootstrap: String },
    #[error("{0}")]
    Broker(String),
}

/// The name of a Kafka error code, for messages.
pub fn error_name(code: i16) -> String {
    let name = match code {
        0 => "NONE",
        1 => "OFFSET_OUT_OF_RANGE",
        2 => "CORRUPT_MESSAGE",
        3 => "UNKNOWN_TOPIC_OR_PARTITION",
        5 => "LEADER_NOT_AVAILABLE",
        6 => "NOT_LEADER_OR_FOLLOWER",
        7 => "REQUEST_TIMED_OUT",
        10 => "MESSAGE_TOO_LARGE",
        18 => "RECORD_LIST_TOO_LARGE",
        19 => "NOT_ENOUGH_REPLICAS",
        20 => "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
        29 => "TOPIC_AUTHORIZATION_FAILED",
        31 => "CLUSTER_AUTHORIZATION_FAILED",
        32 => "INVALID_TIMESTAMP",
        45 => "OUT_OF_ORDER_SEQUENCE_NUMBER",
        46 => "DUPLICATE_SEQUENCE_NUMBER",
        47 => "INVALID_PRODUCER_EPOCH",
        59 => "UNKNOWN_PRODUCER_ID",
        74 => "FENCED_LEADER_EPOCH",
        75 => "UNKNOWN_LEADER_EPOCH",
        87 => "INVALID_RECORD",
        _ => return format!("error {code}"),
    };
    name.to_string()
}

/// The API versions this client speaks (each broker from Kafka 3.0 to 4.x serves them).
pub mod versions {
    pub const API_VERSIONS: i16 = 3;
    pub const METADATA: i16 = 12;
    pub const FETCH: i16 = 12;
    pub const PRODUCE: i16 = 9;
    pub const INIT_PRODUCER_ID: i16 = 4;
    pub const LIST_OFFSETS: i16 = 7;
}

/// How to reach a cluster.
#[derive(Debug, Clone)]
pub struct WireConfig {
    pub bootstrap: Vec<String>,
    pub client_id: String,
    /// Connect, read and write timeout of each request.
    pub timeout: Duration,
}

/// One connection to one broker.
pub struct Connection {
    stream: TcpStream,
    broker: String,
    client_id: StrBytes,
    correlation: i32,
    /// The broker's (min, max) version by API key.
    served: HashMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects and asks which versions the broker serves.
    pub fn open(address: &str, config: &WireConfig) -> Result<Self, WireError> {
        let io = |error| WireError::Io {
            broker: address.to_string(),
            error,
        };
        let socket = address
            .to_socket_addrs()
            .map_err(io)?
            .next()
            .ok_or_else(|| WireError::Protocol {
                broker: address.to_string(),
                what: "resolves to no address".to_string(),
            })?;
        let stream = TcpStream::connect_timeout(&socket, config.timeout).map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        stream.set_read_timeout(Some(config.timeout)).map_err(io)?;
        stream.set_write_timeout(Some(config.timeout)).map_err(io)?;
        let mut connection = Connection {
            stream,
            broker: address.to_string(),
            client_id: StrBytes::from_string(config.client_id.clone()),
            correlation: 0,
            served: HashMap::new(),
        };
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("mirrorcast"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let response = connection.send(&request, versions::API_VERSIONS)?;
        if response.error_code != 0 {
            return Err(
                connection.protocol(format!("ApiVersions: {}", error_name(response.error_code)))
            );
        }
        connection.served = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(connection)
    }

    pub fn broker(&self) -> &str {
        &self.broker
    }

    fn protocol(&self, what: String) -> WireError {
        WireError::Protocol {
            broker: self.broker.clone(),
            what,
        }
    }

    /// Sends `request` at `version` (which the broker must serve) and reads its response.
    pub fn call<R: Request>(
        &mut self,
        request: &R,
        api: &'static str,
        version: i16,
    ) -> Result<R::Response, WireError> {
        let (min, max) = self.served.get(&R::KEY).copied().unwrap_or((0, -1));
        if version < min || version > max {
            return Err(WireError::Version {
                broker: self.broker.clone(),
                api,
                version,
                min,
                max,
            });
        }
        self.send(request, version)
    }

    fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response, WireError> {
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(self.client_id.clone()));
        let encode = |e: anyhow::Error| self.protocol(format!("cannot encode a request: {e}"));
        let header_version = R::header_version(version);
        let size = header
            .compute_size(header_version)
            .and_then(|h| request.compute_size(version).map(|b| h + b))
            .map_err(encode)?;
        let mut out = BytesMut::with_capacity(4 + size);
        out.put_i32(size as i32);
        header.encode(&mut out, header_version).map_err(encode)?;
        request.encode(&mut out, version).map_err(encode)?;
        let broker = self.broker.clone();
        let io = |error| WireError::Io {
            broker: broker.clone(),
            error,
        };
        self.stream.write_all(&out).map_err(io)?;
        let mut length = [0u8; 4];
        self.stream.read_exact(&mut length).map_err(io)?;
        let length = i32::from_be_bytes(length);
        let length = usize::try_from(length)
            .map_err(|_| self.protocol(format!("response length {length}")))?;
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).map_err(io)?;
        let mut body = Bytes::from(body);
        let decode = |e: anyhow::Error| WireError::Protocol {
            broker: broker.clone(),
            what: format!("cannot decode a response: {e}"),
        };
        let response_header_version = R::Response::header_version(version);
        let response_header =
            kafka_protocol::messages::ResponseHeader::decode(&mut body, response_header_version)
                .map_err(decode)?;
        if response_header.correlation_id != self.correlation {
            return Err(self.protocol(format!(
                "answer {} to request {}",
                response_header.correlation_id, self.correlation
            )));
        }
        let response = R::Response::decode(&mut body, version).map_err(decode)?;
        if body.has_remaining() {
            return Err(self.protocol(format!("{} bytes after the response", body.remaining())));
        }
        Ok(response)
    }
}

/// Where a partition's leader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leader {
    pub broker: i32,
    pub epoch: i32,
}

/// A cluster as one client sees it: its brokers, the leaders of the partitions asked about,
/// and a connection to each broker spoken to (opened when first needed, dropped on error).
pub struct Cluster {
    config: WireConfig,
    brokers: HashMap<i32, String>,
    leaders: HashMap<(String, i32), Leader>,
    partitions: HashMap<String, i32>,
    topic_ids: HashMap<String, [u8; 16]>,
    connections: HashMap<i32, Connection>,
}

impl Cluster {
    pub fn new(config: WireConfig) -> Self {
        Cluster {
            config,
            brokers: HashMap::new(),
            leaders: HashMap::new(),
            partitions: HashMap::new(),
            topic_ids: HashMap::new(),
            connections: HashMap::new(),
        }
    }

    /// Asks any broker for these topics' partitions and leaders.
    pub fn refresh(&mut self, topics: &[String]) -> Result<(), WireError> {
        let request = MetadataRequest::default()
            .with_topics(Some(
                topics
                    .iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect(),
            ))
            .with_allow_auto_topic_creation(false);
        let mut last = None;
        let known: Vec<i32> = self.connections.keys().copied().collect();
        // A broker already connected first, then the bootstrap list.
        for broker in known {
            match self.metadata_from(broker, &request) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.connections.remove(&broker);
                    last = Some(e);
                }
            }
        }
        for address in self.config.bootstrap.clone() {
            let answer = Connection::open(&address, &self.config).and_then(|mut c| {
                let response = c.call(&request, "Metadata", versions::METADATA)?;
                Ok((c, response))
            });
            match answer {
                Ok((connection, response)) => {
                    self.take_metadata(response);
                    // Kept under the id the broker has, if it says which it is.
                    if let Some((&id, _)) =
                        self.brokers.iter().find(|(_, a)| **a == connection.broker)
                    {
                        self.connections.insert(id, connection);
                    }
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(WireError::Unreachable {
            bootstrap: self.config.bootstrap.join(","),
        }))
    }

    fn metadata_from(&mut self, broker: i32, request: &MetadataRequest) -> Result<(), WireError> {
        let connection = self.connection(broker)?;
        let response = connection.call(request, "Metadata", versions::METADATA)?;
        self.take_metadata(response);
        Ok(())
    }

    fn take_metadata(&mut self, response: kafka_protocol::messages::MetadataResponse) {
        for broker in &response.brokers {
            self.brokers.insert(
                broker.node_id.0,
                format!("{}:{}", broker.host.as_str(), broker.port),
            );
        }
        for topic in &response.topics {
            let Some(name) = &topic.name else { continue };
            let name = name.0.to_string();
            if topic.error_code != 0 {
                self.partitions.remove(&name);
                self.leaders.retain(|(t, _), _| *t != name);
                continue;
            }
            self.topic_ids
                .insert(name.clone(), *topic.topic_id.as_bytes());
            self.partitions
                .insert(name.clone(), topic.partitions.len() as i32);
            for partition in &topic.partitions {
                let key = (name.clone(), partition.partition_index);
                if partition.error_code == 0 && partition.leader_id.0 >= 0 {
                    self.leaders.insert(
                        key,
                        Leader {
                            broker: partition.leader_id.0,
                            epoch: partition.leader_epoch,
                        },
                    );
                } else {
                    self.leaders.remove(&key);
                }
            }
        }
    }

    pub fn leader(&self, topic: &str, partition: i32) -> Option<Leader> {
        self.leaders.get(&(topic.to_string(), partition)).copied()
    }

    /// The topic's partition count, as last seen.
    pub fn partition_count(&self, topic: &str) -> Option<i32> {
        self.partitions.get(topic).copied()
    }

    /// The topic's ID, as last seen.
    pub fn topic_id(&self, topic: &str) -> Option<[u8; 16]> {
        self.topic_ids.get(topic).copied()
    }

    /// Forgets what is known of a partition's leader (it moved): the next refresh says.
    pub fn leader_moved(&mut self, topic: &str, partition: i32) {
        self.leaders.remove(&(topic.to_string(), partition));
    }

    /// The connection to `broker`, opened if need be.
    pub fn connection(&mut self, broker: i32) -> Result<&mut Connection, WireError> {
        if !self.connections.contains_key(&broker) {
            let address = self
                .brokers
                .get(&broker)
                .cloned()
                .ok_or_else(|| WireError::Broker(format!("broker {broker} is not known")))?;
            let connection = Connection::open(&address, &self.config)?;
            self.connections.insert(broker, connection);
        }
        self.connections
            .get_mut(&broker)
            .ok_or_else(|| WireError::Broker(format!("broker {broker} is not known")))
    }

    /// Drops the connection to `broker` after an error on it.
    pub fn disconnect(&mut self, broker: i32) {
        self.connections.remove(&broker);
    }

    /// Sends `request` to `broker`; an I/O or protocol error drops the connection.
    pub fn call<R: Request>(
        &mut self,
        broker: i32,
        request: &R,
        api: &'static str,
        version: i16,
    ) -> Result<R::Response, WireError> {
        let answer = self.connection(broker)?.call(request, api, version);
        if matches!(
            answer,
            Err(WireError::Io { .. } | WireError::Protocol { .. })
        ) {
            self.disconnect(broker);
        }
        answer
    }

    /// Any broker's id (for requests any broker answers), connecting if need be.
    pub fn any_broker(&mut self) -> Result<i32, WireError> {
        if let Some(&id) = self.connections.keys().next() {
            return Ok(id);
        }
        if self.brokers.is_empty() {
            self.refresh(&[])?;
        }
        let mut last = None;
        let ids: Vec<i32> = self.brokers.keys().copied().collect();
        for id in ids {
            match self.connection(id) {
                Ok(_) => return Ok(id),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(WireError::Unreachable {
            bootstrap: self.config.bootstrap.join(","),
        }))
    }
}

/// `BrokerId` as the messages want it.
pub fn broker_id(id: i32) -> BrokerId {
    BrokerId(id)
}
