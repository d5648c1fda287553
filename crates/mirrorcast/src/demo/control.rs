//! The demo controls for a second terminal: change a topic config, describe a region, take a
//! region down and up, and clean up what an interrupted demo left behind.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};

use super::scenario::{self, process_alive, DemoState};
use super::DemoError;
use crate::kafka::admin::TopicAdmin;
use crate::topic_configs::ConfigOp;
use crate::topics::ClusterAdmin;

fn admin(port: u16) -> Result<TopicAdmin, DemoError> {
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", format!("127.0.0.1:{port}"));
    Ok(TopicAdmin::new(&config, "demo control")?)
}

/// `demo topic-config --region R --topic T key=value...`
pub fn topic_config(
    dir: &Path,
    region: &str,
    topic: &str,
    settings: &[String],
) -> Result<(), DemoError> {
    let state = DemoState::read(dir)?;
    let region = state.region(region)?;
    let mut ops = Vec::new();
    for setting in settings {
        let Some((name, value)) = setting.split_once('=') else {
            return Err(DemoError::Other(format!("`{setting}` is not KEY=VALUE")));
        };
        ops.push(ConfigOp::Set {
            name: name.trim().to_string(),
            value: value.trim().to_string(),
        });
    }
    admin(region.port)?.alter_configs(topic, &ops)?;
    println!("set {} on {topic} in {}", settings.join(", "), region.name);
    Ok(())
}

/// `demo describe --region R`: each topic's partitions, end offsets and configs.
pub fn describe(dir: &Path, region: &str) -> Result<(), DemoError> {
    let state = DemoState::read(dir)?;
    let region = state.region(region)?;
    let mut out = std::io::stdout().lock();
    if !region.broker_pid.is_some_and(process_alive) {
        let _ = writeln!(
            out,
            "{} is down (`{} demo start-region {}` brings it back)",
            region.name,
            super::program(),
            region.name
        );
        return Ok(());
    }
    let admin = admin(region.port)?;
    let topics = admin.list_topics()?;
    let names: Vec<&str> = topics.keys().map(String::as_str).collect();
    let configs = admin.describe_configs(&names)?;
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", format!("127.0.0.1:{}", region.port));
    let consumer: BaseConsumer = config.create()?;
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = writeln!(out, "{} (127.0.0.1:{})", region.name, region.port);
    for (topic, partitions) in &topics {
        let ends: Vec<String> = (0..*partitions)
            .map(|p| {
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(5))
                    .map(|(_, high)| format!("{p}:{high}"))
                    .unwrap_or_else(|_| format!("{p}:?"))
            })
            .collect();
        let set: Vec<String> = configs
            .get(topic)
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| !e.is_default)
                    .map(|e| format!("{}={}", e.name, e.value.as_deref().unwrap_or("")))
                    .collect()
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {topic}: {partitions} partition(s), end offsets [{}], configs [{}]",
            ends.join(" "),
            set.join(", ")
        );
    }
    Ok(())
}

/// `demo stop-region R` / `demo start-region R`: asks the demo and waits until it is done.
pub fn region_up_down(dir: &Path, region: &str, up: bool) -> Result<(), DemoError> {
    let state = DemoState::read(dir)?;
    let name = state.region(region)?.name.clone();
    scenario::request(dir, if up { "start" } else { "stop" }, &name)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let state = DemoState::read(dir)?;
        let is_up = state.region(&name)?.broker_pid.is_some_and(process_alive);
        if is_up == up {
            println!("{name} is {}", if up { "up" } else { "down" });
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(DemoError::Other(format!(
        "the demo did not {} {name} within a minute",
        if up { "start" } else { "stop" }
    )))
}

/// `demo cleanup`: kills what an interrupted demo left running and removes its files.
pub fn cleanup(dir: &Path) -> Result<(), DemoError> {
    if let Ok(state) = DemoState::read(dir) {
        for region in &state.regions {
            if let Some(pid) = region.broker_pid {
                kill_if_nisshi(pid);
            }
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
        println!("removed {}", dir.display());
    }
    Ok(())
}

/// Kills `pid` only if it is a nisshi broker: a PID may have been reused since.
fn kill_if_nisshi(pid: u32) {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if String::from_utf8_lossy(&cmdline).contains("nisshi") {
        let pid = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}
