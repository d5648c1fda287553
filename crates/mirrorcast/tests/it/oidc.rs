//! An OAUTHBEARER/OIDC login written as MM2 users write it (KIP-768: `OAuthBearerLoginModule`
//! with clientId/clientSecret/scope, `sasl.oauthbearer.token.endpoint.url`, Kafka's login
//! callback handler) against Apache Kafka validating the tokens with its own OIDC validator,
//! and a local identity provider: a token endpoint that checks the client credentials and signs
//! RS256 JWTs, and the JWKS endpoint the broker fetches the key from.

use std::io::{BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;

use crate::common::*;
use localcluster::{Clusters, KafkaOptions, Security};

const CLIENT_ID: &str = "mirrorcast";
const CLIENT_SECRET: &str = "idp-S3cret-value";

/// URL-safe base64 without padding, as JWTs and JWKS write it.
fn base64url(bytes: &[u8]) -> String {
    openssl::base64::encode_block(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// The identity provider: `/token` (client credentials, HTTP basic) and `/jwks`.
struct IdentityProvider {
    port: u16,
    tokens_issued: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

impl IdentityProvider {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let tokens_issued = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let (issued, refusals) = (tokens_issued.clone(), refused.clone());
        // Serves until the test binary ends (a thread blocked in accept holds no process).
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = serve(stream, &key, &issued, &refusals);
            }
        });
        IdentityProvider {
            port,
            tokens_issued,
            refused,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

fn serve(
    stream: std::net::TcpStream,
    key: &PKey<Private>,
    issued: &AtomicUsize,
    refused: &AtomicUsize,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let head = RequestHead::read(&mut reader)?;
    let request_line = &head.line;
    let authorization = head.header("authorization");
    let length: usize = head.header("content-length").parse().unwrap_or(0);
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body);
    let rsa = key.rsa().unwrap();
    let (status, reply) = if request_line.starts_with("GET /jwks") {
        let jwks = serde_json::json!({"keys": [{
            "kty": "RSA", "kid": "test-key", "use": "sig", "alg": "RS256",
            "n": base64url(&rsa.n().to_vec()), "e": base64url(&rsa.e().to_vec()),
        }]});
        ("200 OK", jwks.to_string())
    } else if request_line.starts_with("POST /token") {
        let expected = format!(
            "Basic {}",
            openssl::base64::encode_block(format!("{CLIENT_ID}:{CLIENT_SECRET}").as_bytes())
        );
        if authorization == expected && body.contains("grant_type=client_credentials") {
            issued.fetch_add(1, Ordering::SeqCst);
            let now = now_ms() / 1000;
            let header = base64url(br#"{"alg":"RS256","typ":"JWT","kid":"test-key"}"#);
            let claims = serde_json::json!({
                "sub": CLIENT_ID, "iat": now, "exp": now + 3600, "scope": "kafka",
            });
            let payload = base64url(claims.to_string().as_bytes());
            let mut signer = Signer::new(MessageDigest::sha256(), key).unwrap();
            signer
                .update(format!("{header}.{payload}").as_bytes())
                .unwrap();
            let signature = base64url(&signer.sign_to_vec().unwrap());
            let token = format!("{header}.{payload}.{signature}");
            let reply = serde_json::json!({
                "access_token": token, "token_type": "bearer", "expires_in": 3600,
            });
            ("200 OK", reply.to_string())
        } else {
            refused.fetch_add(1, Ordering::SeqCst);
            (
                "401 Unauthorized",
                r#"{"error":"invalid_client"}"#.to_string(),
            )
        }
    } else {
        ("404 Not Found", "{}".to_string())
    };
    let mut stream = reader.into_inner();
    write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{reply}",
        reply.len()
    )?;
    stream.flush()
}

fn config(europe: &str, north: &str, secret: &str, token_url: &str) -> String {
    format!(
        "clusters = europe, northamerica\n\
         europe.bootstrap.servers = {europe}\n\
         europe.security.protocol = SASL_PLAINTEXT\n\
         europe.sasl.mechanism = OAUTHBEARER\n\
         europe.sasl.login.callback.handler.class = org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler\n\
         europe.sasl.oauthbearer.token.endpoint.url = {token_url}\n\
         europe.sasl.jaas.config = org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
         clientId=\"{CLIENT_ID}\" clientSecret=\"{secret}\" scope=\"kafka\";\n\
         northamerica.bootstrap.servers = {north}\n{}",
        europe_lh_flow("northamerica")
    )
}

#[test]
fn an_oidc_client_credentials_login_written_for_mm2_replicates_from_a_kafka_validating_tokens() {
    let idp = IdentityProvider::start();
    let oidc = KafkaOptions {
        security: Security::Oidc {
            jwks_url: idp.url("/jwks"),
        },
        ..KafkaOptions::default()
    };
    let source = match Clusters::start_kafka(&["europe"], &oidc) {
        Ok(c) => c,
        Err(e) => panic!("cannot start an OAUTHBEARER Kafka cluster: {e}"),
    };
    let target = start_kafka_clusters(&["northamerica"], &KafkaOptions::default());
    let europe = source.get("europe");
    let north = target.get("northamerica");
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        &europe.bootstrap(),
        &north.bootstrap(),
        CLIENT_SECRET,
        &idp.url("/token"),
    );
    let path = write_config(dir.path(), &text);

    let (valid, shown) = validate(&path);
    assert!(valid, "validate refused the login:\n{shown}");
    assert!(
        shown.contains("sasl.oauthbearer.method=oidc")
            && shown.contains(&format!("sasl.oauthbearer.client.id={CLIENT_ID}"))
            && shown.contains("sasl.oauthbearer.client.secret=[redacted]"),
        "{shown}"
    );
    assert!(!shown.contains(CLIENT_SECRET), "{shown}");

    create_topic(&europe.plaintext_bootstrap(), "LH.ORDERS", 3, &[]);
    produce(
        &europe.plaintext_bootstrap(),
        "LH.ORDERS",
        &numbered_records("oidc", 3, 0, 300),
    );
    let mut replicator = Replicator::start(&path, &[]);
    let records = read_all(&europe.plaintext_bootstrap(), "LH.ORDERS");
    assert!(
        wait_until(Duration::from_secs(90), || read_all(
            &north.bootstrap(),
            "LH.ORDERS"
        ) == records),
        "LH.ORDERS not copied through the OIDC login\n{}",
        replicator.log()
    );
    replicator.terminate_cleanly(Duration::from_secs(30));
    assert!(
        idp.tokens_issued.load(Ordering::SeqCst) > 0,
        "no token was asked for"
    );
    let log = replicator.log();
    assert!(
        !log.contains(CLIENT_SECRET),
        "the secret in the log:\n{log}"
    );

    // A wrong client secret: the identity provider refuses it, and the flow says so.
    let wrong = write_config(
        dir.path(),
        &config(
            &europe.bootstrap(),
            &north.bootstrap(),
            "not-the-S3cret",
            &idp.url("/token"),
        ),
    );
    let port = localcluster::free_port().unwrap();
    let http = format!("127.0.0.1:{port}");
    let mut refused = Replicator::start(&wrong, &["--http", &http]);
    let mut status = None;
    let said = wait_until(Duration::from_secs(60), || {
        status = http_get(port, "/api/status").map(|(_, body)| body);
        status.as_deref().is_some_and(|s| {
            s.contains("\"state\":\"degraded\"") || s.contains("\"state\":\"failed\"")
        }) && idp.refused.load(Ordering::SeqCst) > 0
    });
    assert!(
        said,
        "a refused login not shown: {status:?}\n{}",
        refused.log()
    );
    refused.terminate_cleanly(Duration::from_secs(30));
    let log = refused.log();
    assert!(
        !log.contains("not-the-S3cret"),
        "the secret in the log:\n{log}"
    );
}
