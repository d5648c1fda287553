//! Configuration: an MM2 dedicated-mode properties file resolved into clusters and flows.
//!
//! Two stages, as in MM2: [`properties`] reads keys with their line numbers; [`Config::resolve`]
//! (`resolve`) applies MM2's precedence and defaults into the `model`, and checks everything
//! that can be checked without a network: each flow's settings are read through `lookup` by
//! `flow`, `internal_topics` and `exactly_once`; `combinations` warns of settings that others
//! make pointless. `load` reads a file (or a Strimzi resource,
//! [`resource`]) and applies the command line's changes; [`describe`] shows the result. Every
//! error (`error`) names the file, the line when there is one, and the key.

pub mod client;
mod combinations;
mod describe;
mod error;
mod exactly_once;
mod flow;
mod internal_topics;
mod kerberos;
pub mod keys;
mod keystores;
mod kubernetes;
mod load;
mod lookup;
mod model;
mod precedence;
pub mod properties;
pub(crate) mod providers;
mod resolve;
pub mod resource;
#[cfg(test)]
mod testing;

pub use client::{ClientSettings, Setting};
pub use describe::describe;
pub use error::{ConfigError, ConfigErrors};
pub use model::*;
pub use properties::RawProperties;
