//! The HTTP side locked down: each refusal (Host, token, browsing off, a topic not replicated)
//! with its status and body, the limits (a slow or idle client is dropped, a request that asks
//! the clusters too long gets 504, too many at once get 503). The server runs in the test
//! process against clusters that are unreachable or black-holed (a listener that never
//! answers): no request here needs a record.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mirrorcast::config::{Config, RawProperties};
use mirrorcast::observe::Observability;
use mirrorcast::serve::access::{AccessPolicy, Token};
use mirrorcast::serve::explore::Explorer;
use mirrorcast::serve::http::{serve, Limits};
use mirrorcast::shutdown::Shutdown;

/// A port that accepts connections (the kernel completes them) and never answers.
struct BlackHole {
    listener: TcpListener,
}

impl BlackHole {
    fn new() -> Self {
        BlackHole {
            listener: TcpListener::bind("127.0.0.1:0").unwrap(),
        }
    }
    fn address(&self) -> String {
        self.listener.local_addr().unwrap().to_string()
    }
}

struct Server {
    port: u16,
    shutdown: Shutdown,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

fn start(source_bootstrap: &str, access: AccessPolicy, limits: Limits) -> Server {
    let text = format!(
        "clusters = europe, northamerica\n\
         europe.bootstrap.servers = {source_bootstrap}\n\
         northamerica.bootstrap.servers = 127.0.0.1:1\n\
         europe->northamerica.enabled = true\n\
         europe->northamerica.topics = LH.*\n"
    );
    let raw = RawProperties::parse(std::path::Path::new("http.properties"), text.as_bytes())
        .expect("the test's properties parse");
    let config = Config::resolve(&raw).expect("the test's config resolves");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let shutdown = Shutdown::new();
    let explorer = Arc::new(Explorer::new(&config));
    serve(
        listener,
        Observability::new(),
        Some(explorer),
        access,
        limits,
        &shutdown,
    )
    .unwrap();
    Server { port, shutdown }
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

fn request(port: u16, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut text = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(name, _)| *name == "Host") {
        text.push_str("Host: 127.0.0.1\r\n");
    }
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn assert_answer(answer: &Answer, status: u16, body_has: &str) {
    assert_eq!(answer.status, status, "{}\n\n{}", answer.head, answer.body);
    assert!(
        answer.body.contains(body_has),
        "expected `{body_has}` in: {}",
        answer.body
    );
}

#[test]
fn each_refusal_of_the_http_side_has_its_status_and_says_why() {
    let access = AccessPolicy {
        token: Token::from_file_text("tok3n\n"),
        allowed_hosts: vec!["mirrorcast.example".into()],
        browse: false,
    };
    let server = start("127.0.0.1:1", access, Limits::default());
    let port = server.port;
    let bearer = [("Authorization", "Bearer tok3n")];

    // Probes and the page need no token.
    assert_answer(&request(port, "/healthz", &[]), 200, "ok");
    assert_answer(&request(port, "/", &[]), 200, "<html");
    assert_eq!(
        request(port, "/readyz", &[]).status,
        503,
        "no flow runs here"
    );

    // Everything else does.
    for path in ["/metrics", "/api/status", "/api/regions"] {
        let refused = request(port, path, &[]);
        assert_answer(&refused, 401, "Authorization: Bearer");
        assert!(
            refused
                .head
                .contains("www-authenticate: Bearer realm=\"mirrorcast\""),
            "{}",
            refused.head
        );
        let wrong = request(port, path, &[("Authorization", "Bearer nope")]);
        assert_answer(&wrong, 401, "token");
        assert!(!wrong.body.contains("tok3n"), "the token is never shown");
    }
    let metrics = request(port, "/metrics", &bearer);
    assert_answer(&metrics, 200, "# EOF");
    // The body is OpenMetrics, and says so (Prometheus parses it by its content type).
    assert!(
        metrics
            .head
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{}",
        metrics.head
    );
    assert_answer(&request(port, "/api/status", &bearer), 200, "flows");

    // Another host's name is refused before anything else, probes included.
    for path in ["/healthz", "/api/status"] {
        let rebound = request(port, path, &[("Host", "attacker.example:8080"), bearer[0]]);
        assert_answer(&rebound, 403, "--http-allow-host attacker.example:8080");
    }
    let allowed = request(port, "/healthz", &[("Host", "MirrorCast.example:8080")]);
    assert_answer(&allowed, 200, "ok");
    assert_answer(
        &request(port, "/healthz", &[("Host", "localhost:1")]),
        200,
        "ok",
    );

    // Browsing records is off unless asked for.
    let events = request(port, "/api/regions/europe/topics/LH.ORDERS/events", &bearer);
    assert_answer(&events, 403, "--http-browse");
}

#[test]
fn browsing_shows_only_the_topics_this_process_replicates() {
    let access = AccessPolicy {
        browse: true,
        ..AccessPolicy::default()
    };
    let limits = Limits {
        request_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let hole = BlackHole::new();
    let server = start(&hole.address(), access, limits);
    let port = server.port;
    let events = |alias: &str, topic: &str| {
        request(
            port,
            &format!("/api/regions/{alias}/topics/{topic}/events"),
            &[],
        )
    };
    for (alias, topic) in [
        ("europe", "__consumer_offsets"),
        ("europe", "connect-configs"),
        ("europe", "mm2-offsets.northamerica.internal"),
        ("europe", "payments"),
        ("northamerica", "LH.ORDERS"),
        ("northamerica", "europe.checkpoints.internal"),
    ] {
        assert_answer(
            &events(alias, topic),
            403,
            "is not a topic this process replicates",
        );
    }
    assert_answer(&events("asia", "LH.ORDERS"), 404, "no cluster `asia`");
    // Replicated topics pass the check and go to the clusters, which do not answer here.
    for (alias, topic) in [
        ("europe", "LH.ORDERS"),
        ("northamerica", "europe.LH.ORDERS"),
    ] {
        let answer = events(alias, topic);
        assert!(
            answer.status == 504 || answer.status == 502,
            "{alias} {topic}: {} {}",
            answer.status,
            answer.body
        );
    }
}

#[test]
fn a_slow_or_idle_client_is_dropped_and_the_server_keeps_answering() {
    let limits = Limits {
        header_read_timeout: Duration::from_secs(1),
        max_connections: 2,
        ..Limits::default()
    };
    let server = start("127.0.0.1:1", AccessPolicy::default(), limits);
    let port = server.port;
    // Two clients take every slot: one sends half a request head, one finishes a request and
    // then keeps its connection open, silent.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    // A third client is served once the header-read timeout has dropped one of them.
    let answer = request(port, "/healthz", &[]);
    assert_answer(&answer, 200, "ok");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    for (name, mut stream) in [("slow", slow), ("idle", idle)] {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut rest = Vec::new();
        let closed = stream.read_to_end(&mut rest);
        assert!(
            closed.is_ok(),
            "the {name} client's connection is closed: {closed:?}"
        );
    }
}

#[test]
fn requests_that_wait_on_the_clusters_are_bounded_in_time_and_number() {
    let limits = Limits {
        request_timeout: Duration::from_secs(2),
        max_cluster_requests: 1,
        ..Limits::default()
    };
    let hole = BlackHole::new();
    let server = start(&hole.address(), AccessPolicy::default(), limits);
    let port = server.port;
    // Three at once: one gets the turn and waits on the black hole until the request timeout,
    // the others are refused at once rather than queued behind it.
    let requests: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(move || {
                let started = Instant::now();
                (request(port, "/api/regions", &[]), started.elapsed())
            })
        })
        .collect();
    let answers: Vec<_> = requests.into_iter().map(|r| r.join().unwrap()).collect();
    let with = |status| answers.iter().filter(move |(a, _)| a.status == status);
    assert_eq!(with(504).count(), 1, "one waits until its timeout");
    assert_eq!(with(503).count(), 2, "the others are refused");
    for (answer, took) in with(504) {
        assert_answer(answer, 504, "no answer within 2s");
        assert!(*took < Duration::from_secs(10), "{took:?}");
    }
    for (answer, took) in with(503) {
        assert_answer(
            answer,
            503,
            "busy: 1 requests are asking the clusters already",
        );
        assert!(
            *took < Duration::from_secs(2),
            "refused at once, not queued: {took:?}"
        );
    }
    // The probes never wait on a cluster.
    assert_answer(&request(port, "/healthz", &[]), 200, "ok");
}
