//! Configuration: an MM2 dedicated-mode properties file resolved into clusters and flows.
//!
//! Two stages, as in MM2: [`properties`] reads keys with their line numbers; [`Config::resolve`]
//! (`resolve`) applies MM2's precedence and defaults into the `model`, and checks everything
//! that can be checked without a network. `load` reads a file (or a Strimzi resource,
//! [`resource`]) and applies the command line's changes; [`describe`] shows the result. Every
//! error (`error`) names the file, the line when there is one, and the key.

pub mod client;
mod describe;
mod error;
pub mod keys;
mod load;
mod model;
mod precedence;
pub mod properties;
pub(crate) mod providers;
mod resolve;
pub mod resource;

pub use client::{ClientSettings, Setting};
pub use describe::describe;
pub use error::{ConfigError, ConfigErrors};
pub use model::*;
pub use properties::RawProperties;
