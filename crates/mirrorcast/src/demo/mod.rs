//! The broadcast scenario on one machine: the event producer (`datagen`), the regional
//! consumers (`consume`) and `mirrorcast demo`, which runs three local clusters, replication
//! from Europe to the two other regions, the producer and the consumers, and removes it all.

pub mod consume;
pub mod datagen;
pub mod events;
