//! A Strimzi resource whose login names `${secrets:NAMESPACE/NAME:KEY}` (Strimzi's
//! `KubernetesSecretConfigProvider`) with no such mounted file, run "in a pod": the secret is
//! read from the Kubernetes API with the pod's service account (a local HTTPS API server with a
//! CA and token of the test's own, as Kubernetes mounts them), and replication runs over
//! SCRAM-SHA-512 with it. A token the API refuses fails `validate`, naming the secret and the
//! grant it needs.

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};

use crate::common::*;

const TOKEN: &str = "pod-token-of-mirrorcast";
const EUROPE_PASSWORD: &str = "eu-pass-from-the-api";

/// The API server: `GET /api/v1/namespaces/mirror/secrets/mm2-europe` with the pod's token.
struct FakeApi {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeApi {
    /// Serves over TLS with a certificate for 127.0.0.1 written into `dir` (`ca.crt`).
    fn start(dir: &Path) -> FakeApi {
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=kubernetes",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(dir.join("api.key"))
            .arg("-out")
            .arg(dir.join("ca.crt"))
            .output()
            .expect("openssl (the command) makes the API's certificate");
        assert!(out.status.success(), "{out:?}");
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
        acceptor
            .set_private_key_file(dir.join("api.key"), SslFiletype::PEM)
            .unwrap();
        acceptor
            .set_certificate_chain_file(dir.join("ca.crt"))
            .unwrap();
        let acceptor = Arc::new(acceptor.build());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        // Serves until the test binary ends (a thread blocked in accept holds no process).
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (acceptor, seen) = (acceptor.clone(), seen.clone());
                std::thread::spawn(move || {
                    if let Ok(stream) = acceptor.accept(stream) {
                        let _ = answer(stream, &seen);
                    }
                });
            }
        });
        FakeApi { port, requests }
    }
}

fn answer(
    stream: openssl::ssl::SslStream<std::net::TcpStream>,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let head = RequestHead::read(&mut reader)?;
    seen.lock().unwrap().push(head.line.clone());
    let wanted = head.line == "GET /api/v1/namespaces/mirror/secrets/mm2-europe HTTP/1.1";
    let (status, body) = if head.header("authorization") != format!("Bearer {TOKEN}") {
        (
            "403 Forbidden",
            r#"{"kind":"Status","code":403}"#.to_string(),
        )
    } else if wanted {
        let password = openssl::base64::encode_block(EUROPE_PASSWORD.as_bytes());
        (
            "200 OK",
            format!(r#"{{"kind":"Secret","data":{{"password":"{password}"}}}}"#),
        )
    } else {
        (
            "404 Not Found",
            r#"{"kind":"Status","code":404}"#.to_string(),
        )
    };
    let stream = reader.get_mut();
    write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

fn resource(europe: &str, north: &str) -> String {
    format!(
        r#"apiVersion: kafka.strimzi.io/v1beta2
kind: KafkaMirrorMaker2
metadata:
  name: mm2
  namespace: mirror
spec:
  replicas: 1
  connectCluster: northamerica
  clusters:
    - alias: europe
      bootstrapServers: {europe}
      tls:
        trustedCertificates:
          - secretName: eu-cluster-ca-cert
            pattern: "*.crt"
      authentication:
        type: custom
        sasl: true
        config:
          sasl.mechanism: SCRAM-SHA-512
          sasl.jaas.config: org.apache.kafka.common.security.scram.ScramLoginModule required username="mm2-europe" password="${{secrets:mirror/mm2-europe:password}}";
    - alias: northamerica
      bootstrapServers: {north}
      tls:
        trustedCertificates:
          - secretName: na-cluster-ca-cert
            certificate: ca.crt
      authentication:
        type: scram-sha-512
        username: mm2-northamerica
        passwordSecret:
          secretName: mm2-northamerica
          password: password
      config:
        config.providers: secrets
        config.providers.secrets.class: io.strimzi.kafka.KubernetesSecretConfigProvider
        offset.storage.replication.factor: 1
  mirrors:
    - sourceCluster: europe
      targetCluster: northamerica
      topicsPattern: "LH.*"
      sourceConnector:
        config:
          replication.factor: 1
          offset-syncs.topic.replication.factor: 1
          replication.policy.class: org.apache.kafka.connect.mirror.IdentityReplicationPolicy
          sync.topic.acls.enabled: false
      checkpointConnector:
        config:
          checkpoints.topic.replication.factor: 1
      heartbeatConnector:
        config:
          heartbeats.topic.replication.factor: 1
"#
    )
}

#[test]
fn a_strimzi_secret_reference_is_read_from_the_kubernetes_api_in_a_pod() {
    let users = vec![
        ("mm2-europe".to_string(), EUROPE_PASSWORD.to_string()),
        ("mm2-northamerica".to_string(), "na-pass".to_string()),
    ];
    let options = localcluster::KafkaOptions {
        security: localcluster::Security::SaslSsl { users },
        ..localcluster::KafkaOptions::default()
    };
    let clusters = start_kafka_clusters(&["europe", "northamerica"], &options);
    let europe = clusters.get("europe");
    let north = clusters.get("northamerica");
    create_topic(&europe.plaintext_bootstrap(), "LH.ORDERS", 3, &[]);
    produce(
        &europe.plaintext_bootstrap(),
        "LH.ORDERS",
        &numbered_records("k8s", 3, 0, 300),
    );

    let dir = tempfile::tempdir().unwrap();
    // Mounted: the CAs and the target's password; not mounted: mm2-europe.
    let secrets = dir.path().join("secrets");
    for (secret, cluster) in [
        ("eu-cluster-ca-cert", europe),
        ("na-cluster-ca-cert", north),
    ] {
        std::fs::create_dir_all(secrets.join(secret)).unwrap();
        let ca = cluster
            .ca_certificate()
            .expect("a SASL_SSL cluster has a CA");
        std::fs::copy(ca, secrets.join(secret).join("ca.crt")).unwrap();
    }
    std::fs::create_dir_all(secrets.join("mm2-northamerica")).unwrap();
    std::fs::write(secrets.join("mm2-northamerica/password"), "na-pass").unwrap();
    // The pod's service account, as Kubernetes mounts it.
    let account = dir.path().join("serviceaccount");
    std::fs::create_dir_all(&account).unwrap();
    let api = FakeApi::start(&account);
    std::fs::write(account.join("token"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(account.join("namespace"), "mirror").unwrap();
    let yaml = dir.path().join("mm2.yaml");
    std::fs::write(&yaml, resource(&europe.bootstrap(), &north.bootstrap())).unwrap();

    let port = api.port.to_string();
    let account_dir = account.display().to_string();
    let pod = [
        ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
        ("KUBERNETES_SERVICE_PORT", port.as_str()),
        (
            "MIRRORCAST_KUBERNETES_SERVICE_ACCOUNT",
            account_dir.as_str(),
        ),
    ];
    let secrets_arg = format!("--secrets-dir={}", secrets.display());
    let validate = |env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_mirrorcast"))
            .args(["validate", &yaml.display().to_string(), &secrets_arg])
            // Whatever pod this test itself runs in.
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !shown.contains(EUROPE_PASSWORD),
            "the password shown:\n{shown}"
        );
        (out.status.code(), shown)
    };

    // Outside a pod: the reference says where it was looked for.
    let (code, shown) = validate(&[]);
    assert_eq!(code, Some(2), "{shown}");
    assert!(
        shown.contains("secret mirror/mm2-europe") && shown.contains("KUBERNETES_SERVICE_HOST"),
        "{shown}"
    );
    // In the pod.
    let (code, shown) = validate(&pod);
    assert_eq!(code, Some(0), "{shown}");
    let asked = api.requests.lock().unwrap().clone();
    assert!(
        asked
            .iter()
            .all(|r| r == "GET /api/v1/namespaces/mirror/secrets/mm2-europe HTTP/1.1"),
        "{asked:?}"
    );

    let mut replicator = Replicator::start_with_env(&yaml, &[&secrets_arg], &pod);
    let source = read_all(&europe.plaintext_bootstrap(), "LH.ORDERS");
    assert!(
        wait_until(Duration::from_secs(60), || read_all(
            &north.plaintext_bootstrap(),
            "LH.ORDERS"
        ) == source),
        "LH.ORDERS not copied with the password from the API\n{}",
        replicator.log()
    );
    replicator.terminate_cleanly(Duration::from_secs(30));
    let log = replicator.log();
    assert!(
        !log.contains(EUROPE_PASSWORD),
        "the password in the log:\n{log}"
    );

    // A token the API refuses: the grant it needs is named.
    std::fs::write(account.join("token"), "another-token").unwrap();
    let (code, shown) = validate(&pod);
    assert_eq!(code, Some(2), "{shown}");
    assert!(
        shown.contains("may not read secret mirror/mm2-europe (HTTP 403)")
            && shown.contains("grant it `get` on secrets in mirror"),
        "{shown}"
    );
}
