//! What a running process serves over HTTP (`--http`): [`http`], the server (the page, the
//! metrics, the status, the browsing API); [`access`], who may use it; [`explore`], what it shows
//! of the clusters (topics, latest events), read through the cluster's own clients.
//!
//! Invariant: nothing here is on the copy's path; a slow or refused request never holds a flow.

pub mod access;
pub mod explore;
pub mod http;
