//! The nisshi backend: the demo's embedded Kafka-compatible broker, installed with
//! `cargo install` (see `shared/reference/test-broker.md`), one process per cluster.

use std::path::PathBuf;
use std::process::Command;

use crate::{Error, Result, NISSHI_VERSION};

/// Finds an installed `nisshi` of the pinned version: `$NISSHI_BIN`, then `PATH`, then the cargo
/// bin directory (where `cargo install` puts it even when that directory is not on `PATH`).
pub fn find_nisshi() -> Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(explicit) = std::env::var_os("NISSHI_BIN") {
        candidates.push(PathBuf::from(explicit));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join("nisshi")));
    }
    candidates.push(cargo_bin_dir().join("nisshi"));

    let mut seen = Vec::new();
    for candidate in candidates {
        if !candidate.is_file() {
            continue;
        }
        match Command::new(&candidate).arg("--version").output() {
            Ok(out) if String::from_utf8_lossy(&out.stdout).contains(NISSHI_VERSION) => {
                return Ok(candidate)
            }
            Ok(out) => seen.push(format!(
                "{} is version `{}`",
                candidate.display(),
                String::from_utf8_lossy(&out.stdout).trim()
            )),
            Err(e) => seen.push(format!("{} does not run: {e}", candidate.display())),
        }
    }
    let detail = if seen.is_empty() {
        "not found on PATH or in the cargo bin directory".to_string()
    } else {
        seen.join("; ")
    };
    Err(Error::BrokerMissing { detail })
}

/// Returns the pinned `nisshi`, installing it with `cargo install` first when it is missing.
/// A cold install compiles for about 14 minutes; cargo's own progress goes to stderr.
pub fn ensure_nisshi() -> Result<PathBuf> {
    if let Ok(path) = find_nisshi() {
        return Ok(path);
    }
    eprintln!(
        "installing the test broker nisshi {NISSHI_VERSION} (about 14 minutes the first time) ..."
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["install", "nisshi", "--version", NISSHI_VERSION, "--locked"])
        // One dependency declares a newer rustc than this machine has; it compiles fine.
        .arg("--ignore-rust-version")
        .args(["--no-default-features", "--features", "dynostore,libsql"])
        .status()?;
    if !status.success() {
        return Err(Error::Install(format!(
            "cargo install nisshi {NISSHI_VERSION} exited with {status}"
        )));
    }
    find_nisshi()
}

fn cargo_bin_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        return PathBuf::from(home).join("bin");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cargo").join("bin")
}
