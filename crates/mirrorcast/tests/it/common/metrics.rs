//! The replicator's HTTP endpoints: a plain GET and its parsed `/metrics`; and the head of a
//! request, for the tests' own small servers (identity provider, Kubernetes API).

use std::time::Duration;

/// A request's line (`GET /path HTTP/1.1`) and its headers, names in lower case.
pub struct RequestHead {
    pub line: String,
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    pub fn read(reader: &mut impl std::io::BufRead) -> std::io::Result<RequestHead> {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                return Ok(RequestHead {
                    line: line.trim_end().to_string(),
                    headers,
                });
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
            }
        }
    }

    /// The value of header `name` (lower case), or "".
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// A plain HTTP/1.1 GET: (status code, body), or `None` when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Ok::<_, ()>((code, body.to_string())).ok()
}

/// `/metrics` of a replicator started with `--http`, parsed.
pub fn scrape(port: u16) -> Option<prometheus_parse::Scrape> {
    let (code, body) = http_get(port, "/metrics")?;
    assert_eq!(code, 200);
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).ok()
}

/// The value of a sample, summed over every label set matching `labels`.
pub fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// `mirrorcast_source_records_read_total` of source `europe`, over every reader or for one.
pub fn europe_records_read(port: u16, reader: Option<&str>) -> Option<f64> {
    let scrape = scrape(port)?;
    let mut labels = vec![("source", "europe")];
    if let Some(reader) = reader {
        labels.push(("reader", reader));
    }
    Some(value(
        &scrape,
        "mirrorcast_source_records_read_total",
        &labels,
    ))
}
