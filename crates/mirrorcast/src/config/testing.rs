//! What the configuration's unit tests share: a file of three clusters and two flows, and text
//! resolved as if it were that `mm2.properties`.

use std::path::Path;

use super::{Config, ConfigError, ConfigErrors, RawProperties};

pub(super) fn resolve(text: &str) -> Result<Config, ConfigErrors> {
    let raw = RawProperties::parse(Path::new("mm2.properties"), text.as_bytes()).unwrap();
    Config::resolve(&raw)
}

pub(super) fn errors(text: &str) -> Vec<ConfigError> {
    resolve(text).unwrap_err().0
}

pub(super) const BROADCAST: &str = "\
clusters = europe, northamerica, southamerica
europe.bootstrap.servers = 127.0.0.1:1
northamerica.bootstrap.servers = 127.0.0.1:2
southamerica.bootstrap.servers = 127.0.0.1:3
europe->northamerica.enabled = true
europe->southamerica.enabled = true
europe->northamerica.topics = LH.*
replication.policy.class = org.apache.kafka.connect.mirror.IdentityReplicationPolicy
replication.factor = 1
";
