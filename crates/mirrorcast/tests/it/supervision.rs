//! A flow whose copier cannot run is shown failed, restarts with backoff and, when it keeps
//! failing, ends the process with an error. Here the target producer cannot be created (its
//! CA file holds no certificate, which `validate` does not check): the topic manager still reaches both
//! clusters, which once showed the flow `running` while nothing was copied.

use std::time::Duration;

use crate::common::*;
use localcluster::Storage;

#[test]
fn a_copier_that_cannot_run_fails_its_flow_visibly_and_the_process_exits_non_zero() {
    let clusters = start_clusters(&["europe", "northamerica"], Storage::Memory);
    let europe = clusters.bootstrap("europe");
    create_topic(&europe, "events", 1, &[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken-ca.pem"), "not a certificate\n").unwrap();
    let config = write_config(
        dir.path(),
        &one_flow_config(
            &clusters,
            &format!(
                "northamerica.producer.security.protocol = SSL\n\
                 northamerica.producer.ssl.ca.location = {}/broken-ca.pem\n",
                dir.path().display()
            ),
        ),
    );
    let port = localcluster::free_port().unwrap();
    let http = format!("127.0.0.1:{port}");
    let mut replicator = Replicator::start(&config, &["--http", &http]);

    let failed = wait_until(Duration::from_secs(60), || {
        http_get(port, "/api/status").is_some_and(|(_, body)| {
            let status: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            status["flows"][0]["state"] == "failed"
        })
    });
    assert!(failed, "never shown failed\n{}", replicator.log());
    let (code, _) = http_get(port, "/readyz").unwrap_or((0, String::new()));
    assert_eq!(code, 503, "{}", replicator.log());

    let exit = replicator.exit_within(Duration::from_secs(120));
    let log = replicator.log();
    assert!(exit.is_some_and(|s| !s.success()), "exit {exit:?}\n{log}");
    assert!(
        log.contains("cannot create the target producer") && log.contains("giving up"),
        "{log}"
    );
    assert_eq!(
        log.matches("restarting the flows of europe in").count(),
        4,
        "one line per restart, then one to give up\n{log}"
    );
}
