//! The Python peer: a confluent-kafka copy loop in a virtualenv of its own.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// The pinned confluent-kafka (its wheel bundles librdkafka) in a virtualenv under
/// `target/bench`, made on first use.
pub(super) fn python_env(out_dir: &Path) -> Result<std::path::PathBuf> {
    const CONFLUENT_KAFKA: &str = "confluent-kafka==2.12.1";
    let venv = out_dir.join("venv");
    let python = venv.join("bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import confluent_kafka"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ready {
        return Ok(python);
    }
    println!("installing {CONFLUENT_KAFKA} into {}", venv.display());
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .context("python3 -m venv (the Python peer needs CPython 3 with venv)")?;
    if !made.success() {
        bail!("python3 -m venv {} failed", venv.display());
    }
    let installed = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", CONFLUENT_KAFKA])
        .status()
        .context("pip install confluent-kafka")?;
    if !installed.success() {
        bail!("pip install {CONFLUENT_KAFKA} failed");
    }
    Ok(python)
}

/// The Python peer copies `count` records of `topic` from `source` into `target_topic` on
/// `target`; returns the seconds it took.
pub(super) fn python_copy(
    python: &Path,
    root: &Path,
    source: &str,
    target: &str,
    topic: &str,
    target_topic: &str,
    count: u64,
) -> Result<f64> {
    let output = Command::new(python)
        .arg(root.join("xtask/bench/python_copy.py"))
        .args([source, target, topic, target_topic, &count.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .context("running the Python peer")?;
    if !output.status.success() {
        bail!("the Python peer failed ({})", output.status);
    }
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "Python peer output: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    result["seconds"]
        .as_f64()
        .context("the Python peer printed no seconds")
}
