//! A SASL/GSSAPI (Kerberos) login written as MM2 users write it (`Krb5LoginModule` with a
//! keytab and principal, `sasl.kerberos.service.name`) against Apache Kafka clusters whose
//! listeners take only GSSAPI, with a KDC of the test's own (Debian's MIT `krb5kdc`); genuine
//! MM2 runs the same file after mirrorcast and continues from its progress.

use std::time::Duration;

use crate::common::*;
use localcluster::{Clusters, KafkaOptions, Kdc, MirrorMaker};

const REALM: &str = "MIRRORCAST.TEST";
const CLIENT: &str = "mirrorcast";

/// The options of a keytab login.
fn keytab_login(keytab: &str, principal: &str) -> String {
    format!("useKeyTab=true storeKey=true keyTab=\"{keytab}\" principal=\"{principal}\"")
}

/// Both clusters log in with `Krb5LoginModule required <login>;`.
fn config(europe: &str, north: &str, login: &str) -> String {
    let login = |cluster: &str| {
        format!(
            "{cluster}.security.protocol = SASL_PLAINTEXT\n\
             {cluster}.sasl.mechanism = GSSAPI\n\
             {cluster}.sasl.kerberos.service.name = kafka\n\
             {cluster}.sasl.jaas.config = com.sun.security.auth.module.Krb5LoginModule required \
             {login};\n"
        )
    };
    format!(
        "clusters = europe, northamerica\n\
         europe.bootstrap.servers = {europe}\n{}\
         northamerica.bootstrap.servers = {north}\n{}{}",
        login("europe"),
        login("northamerica"),
        // MM2 takes the policy's class name only in full.
        europe_lh_flow("northamerica").replace(
            "= IdentityReplicationPolicy",
            "= org.apache.kafka.connect.mirror.IdentityReplicationPolicy"
        )
    ) + MM2_WORKER
}

/// The Connect worker's own topics, at factor 1 on single-node clusters (MM2 reads them;
/// mirrorcast has none).
const MM2_WORKER: &str = "config.storage.replication.factor = 1\n\
                          status.storage.replication.factor = 1\n\
                          offset.flush.interval.ms = 1000\n";

#[test]
fn keytab_and_ticket_cache_logins_written_for_mm2_replicate_between_kafka_clusters_that_take_only_gssapi(
) {
    let kdc = match Kdc::start(REALM, &[CLIENT]) {
        Ok(kdc) => kdc,
        Err(e) => panic!("cannot start the test's KDC: {e}"),
    };
    let kerberos = KafkaOptions {
        security: kdc.broker_security(),
        ..KafkaOptions::default()
    };
    let clusters = match Clusters::start_kafka(&["europe", "northamerica"], &kerberos) {
        Ok(c) => c,
        Err(e) => panic!("cannot start GSSAPI Kafka clusters: {e}\n{}", kdc.log()),
    };
    let europe = clusters.get("europe");
    let north = clusters.get("northamerica");
    let dir = tempfile::tempdir().unwrap();
    let keytab = kdc.keytab(CLIENT).display().to_string();
    let principal = kdc.principal(CLIENT);
    let path = write_config(
        dir.path(),
        &config(
            &europe.bootstrap(),
            &north.bootstrap(),
            &keytab_login(&keytab, &principal),
        ),
    );

    let (valid, shown) = validate(&path);
    assert!(valid, "validate refused the login:\n{shown}");
    for expected in [
        format!("sasl.kerberos.keytab={keytab}"),
        format!("sasl.kerberos.principal={principal}"),
        "sasl.kerberos.service.name=kafka".to_string(),
        "sasl.mechanisms=GSSAPI".to_string(),
        "sasl.kerberos.kinit.cmd=kinit -t".to_string(),
    ] {
        assert!(shown.contains(&expected), "no `{expected}` in:\n{shown}");
    }

    create_topic(&europe.plaintext_bootstrap(), "LH.ORDERS", 3, &[]);
    produce(
        &europe.plaintext_bootstrap(),
        "LH.ORDERS",
        &numbered_records("krb", 3, 0, 300),
    );
    let env = kdc.client_env(dir.path());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut replicator = Replicator::start_with_env(&path, &[], &env);
    let records = read_all(&europe.plaintext_bootstrap(), "LH.ORDERS");
    assert!(
        wait_until(Duration::from_secs(90), || read_all(
            &north.plaintext_bootstrap(),
            "LH.ORDERS"
        ) == records),
        "LH.ORDERS not copied through the GSSAPI logins\n{}\n{}",
        replicator.log(),
        kdc.log()
    );
    replicator.terminate_cleanly(Duration::from_secs(30));

    // Genuine MM2 with the same file: its Java client logs in with the same line and
    // continues from the progress mirrorcast stored.
    produce(
        &europe.plaintext_bootstrap(),
        "LH.ORDERS",
        &numbered_records("krb-mm2", 3, 300, 300),
    );
    let java_options = kdc.java_client_options().unwrap();
    let java_options: Vec<&str> = java_options.iter().map(String::as_str).collect();
    let mut mm2 = MirrorMaker::start_with_jvm_options(
        &path,
        &["northamerica"],
        &dir.path().join("mm2.log"),
        &java_options,
    )
    .unwrap_or_else(|e| panic!("cannot start MM2: {e}"));
    let records = read_all(&europe.plaintext_bootstrap(), "LH.ORDERS");
    assert!(
        wait_until(Duration::from_secs(180), || read_all(
            &north.plaintext_bootstrap(),
            "LH.ORDERS"
        ) == records),
        "MM2 did not continue through its GSSAPI logins with the same file\n{}",
        mm2.log()
    );
    assert!(mm2.stop(Duration::from_secs(60)), "MM2 did not stop");

    // A ticket-cache login: kinit run beforehand (as a sidecar or cron job would), no keytab
    // in the file; mirrorcast only renews the ticket, as Java's login thread does.
    let cache = tempfile::tempdir().unwrap();
    let env = kdc.client_env(cache.path());
    let kinit = std::process::Command::new("kinit")
        .args(["-t", &keytab, "-k", &principal])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(kinit.status.success(), "{kinit:?}");
    let from_cache = write_config(
        dir.path(),
        &config(
            &europe.bootstrap(),
            &north.bootstrap(),
            "useTicketCache=true",
        ),
    );
    let (valid, shown) = validate(&from_cache);
    assert!(
        valid && shown.contains("sasl.kerberos.kinit.cmd=kinit -R"),
        "{shown}"
    );
    produce(
        &europe.plaintext_bootstrap(),
        "LH.ORDERS",
        &numbered_records("krb-cache", 3, 600, 300),
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut replicator = Replicator::start_with_env(&from_cache, &[], &env);
    let ends = end_offsets(&europe.plaintext_bootstrap(), "LH.ORDERS");
    assert!(
        wait_until(Duration::from_secs(90), || progress_reached(
            &north.plaintext_bootstrap(),
            "europe",
            "LH.ORDERS",
            &ends
        )),
        "LH.ORDERS not copied with the ticket cache's tickets\n{}",
        replicator.log()
    );
    // MM2's last progress may be behind what it copied: at least once, in order.
    assert_complete_in_order(
        &read_all(&europe.plaintext_bootstrap(), "LH.ORDERS"),
        &read_all(&north.plaintext_bootstrap(), "LH.ORDERS"),
        "LH.ORDERS",
    );
    // Each client renewed the cache's ticket (`kinit -R`) as it started.
    let log = replicator.log();
    assert!(!log.contains("refresh failed"), "a renewal failed:\n{log}");
    replicator.terminate_cleanly(Duration::from_secs(30));

    // A principal whose keys the keytab does not hold: kinit fails, and the flow says so.
    let wrong = write_config(
        dir.path(),
        &config(
            &europe.bootstrap(),
            &north.bootstrap(),
            &keytab_login(&keytab, &kdc.principal("someone-else")),
        ),
    );
    let port = localcluster::free_port().unwrap();
    let http = format!("127.0.0.1:{port}");
    // A credential cache of its own: the first run's still holds valid tickets.
    let other_cache = tempfile::tempdir().unwrap();
    let env = kdc.client_env(other_cache.path());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut refused = Replicator::start_with_env(&wrong, &["--http", &http], &env);
    let mut status = None;
    let said = wait_until(Duration::from_secs(60), || {
        status = http_get(port, "/api/status").map(|(_, body)| body);
        status.as_deref().is_some_and(|s| {
            s.contains("\"state\":\"degraded\"") || s.contains("\"state\":\"failed\"")
        })
    });
    assert!(
        said,
        "a refused login not shown: {status:?}\n{}",
        refused.log()
    );
    refused.terminate_cleanly(Duration::from_secs(30));
}
