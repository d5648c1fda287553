//! Why a broker's TLS certificate is refused. librdkafka says only "certificate verify failed:
//! ... verify that ssl.ca.location is correctly configured", whether the certificate expired,
//! was signed by a CA the client does not trust, or names another host. When it says so, a
//! client's log ([`super::clients::ClientLog`]) asks [`TlsTrust::explain`], which makes one TLS
//! handshake of its own to that broker with the same trust (OpenSSL, as librdkafka) and reads
//! the verification result.
//!
//! Invariant: only the certificate's public facts are shown (subject, issuer, validity); no
//! credential is sent (the handshake stops before any Kafka or SASL exchange).

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use openssl::ssl::{HandshakeError, SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::{X509VerifyResult, X509};
use rdkafka::ClientConfig;

const TIMEOUT: Duration = Duration::from_secs(5);

/// The certificates a client trusts and whether it checks the broker's host name, as its
/// librdkafka settings say.
#[derive(Debug, Clone)]
pub struct TlsTrust {
    ca_location: Option<String>,
    ca_pem: Option<String>,
    verify_hostname: bool,
}

impl TlsTrust {
    /// The trust of a client config; `None` without TLS.
    pub fn of(config: &ClientConfig) -> Option<Self> {
        let protocol = config
            .get("security.protocol")
            .unwrap_or("plaintext")
            .to_ascii_lowercase();
        if !protocol.ends_with("ssl") {
            return None;
        }
        Some(TlsTrust {
            ca_location: config.get("ssl.ca.location").map(str::to_string),
            ca_pem: config.get("ssl.ca.pem").map(str::to_string),
            verify_hostname: config
                .get("ssl.endpoint.identification.algorithm")
                .is_none_or(|a| a.eq_ignore_ascii_case("https")),
        })
    }

    /// Why the broker at `address` (`host:port`) presents a certificate this trust refuses;
    /// `None` if the handshake succeeds now or fails for another reason.
    pub fn explain(&self, address: &str) -> Option<String> {
        let (host, _) = address.rsplit_once(':')?;
        let mut builder = SslConnector::builder(SslMethod::tls_client()).ok()?;
        match (&self.ca_location, &self.ca_pem) {
            (Some(location), _) if location != "probe" => {
                if std::path::Path::new(location).is_dir() {
                    builder
                        .load_verify_locations(None, Some(location.as_ref()))
                        .ok()?;
                } else {
                    builder.set_ca_file(location).ok()?;
                }
            }
            (_, Some(pem)) => {
                for certificate in X509::stack_from_pem(pem.as_bytes()).ok()? {
                    builder.cert_store_mut().add_cert(certificate).ok()?;
                }
            }
            _ => builder.set_default_verify_paths().ok()?,
        }
        builder.set_verify(SslVerifyMode::PEER);
        let connector = builder.build();
        let mut config = connector.configure().ok()?;
        config.set_verify_hostname(self.verify_hostname);
        let socket = address.to_socket_addrs().ok()?.next()?;
        let stream = TcpStream::connect_timeout(&socket, TIMEOUT).ok()?;
        stream.set_read_timeout(Some(TIMEOUT)).ok()?;
        stream.set_write_timeout(Some(TIMEOUT)).ok()?;
        let failed = match config.connect(host.trim_matches(['[', ']']), stream) {
            Ok(_) => return None,
            Err(HandshakeError::Failure(failed)) => failed,
            Err(_) => return None,
        };
        let ssl = failed.ssl();
        let result = ssl.verify_result();
        if result == X509VerifyResult::OK {
            return None;
        }
        let about = ssl
            .peer_certificate()
            .map(|certificate| describe(&certificate))
            .unwrap_or_default();
        Some(format!(
            "the broker's certificate is refused: {}{about}{}",
            result.error_string(),
            hint(result.as_raw())
        ))
    }
}

/// What to do about the commonest verification errors (OpenSSL's `X509_V_ERR_*` codes).
fn hint(code: i32) -> &'static str {
    match code {
        // CERT_NOT_YET_VALID, CERT_HAS_EXPIRED
        9 | 10 => "; renew the broker's certificate (or check this machine's clock)",
        // DEPTH_ZERO_SELF_SIGNED_CERT, SELF_SIGNED_CERT_IN_CHAIN, UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        18..=20 => {
            "; it is signed by a CA this client does not trust: set `ssl.truststore.location` \
             (type PEM) or `ssl.ca.location` to the cluster's CA certificate"
        }
        // HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH
        62 | 64 => {
            "; it does not name the address connected to: use the name the certificate has in \
             `bootstrap.servers`, or fix the broker's advertised listeners"
        }
        _ => "",
    }
}

/// Subject, issuer and validity of a certificate, for a message.
fn describe(certificate: &X509) -> String {
    let name = |entries: &openssl::x509::X509NameRef| {
        entries
            .entries()
            .filter_map(|e| {
                let key = e.object().nid().short_name().ok()?;
                let value = e.data().to_string().ok()?;
                Some(format!("{key}={value}"))
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        " (subject {}, issued by {}, valid from {} until {})",
        name(certificate.subject_name()),
        name(certificate.issuer_name()),
        certificate.not_before(),
        certificate.not_after()
    )
}

/// The `host:port` of the broker a librdkafka message is about (`sasl_ssl://h:p/bootstrap: ...`
/// or `ssl://h:p/1: ...`).
pub fn broker_address(message: &str) -> Option<&str> {
    let start = message.find("ssl://")? + "ssl://".len();
    let rest = &message[start..];
    let end = rest.find('/')?;
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_is_found_in_librdkafkas_message() {
        let message = "sasl_ssl://127.0.0.1:44561/bootstrap: SSL handshake failed: \
                       error:0A000086:SSL routines::certificate verify failed";
        assert_eq!(broker_address(message), Some("127.0.0.1:44561"));
        assert_eq!(
            broker_address("ssl://kafka-1.example:9093/1: SSL handshake failed"),
            Some("kafka-1.example:9093")
        );
        assert_eq!(broker_address("no broker here"), None);
    }

    #[test]
    fn only_tls_clients_have_a_trust() {
        let mut config = ClientConfig::new();
        assert!(TlsTrust::of(&config).is_none());
        config.set("security.protocol", "SASL_SSL");
        config.set("ssl.ca.location", "/ca.pem");
        let trust = TlsTrust::of(&config).unwrap();
        assert!(trust.verify_hostname);
        config.set("ssl.endpoint.identification.algorithm", "none");
        assert!(!TlsTrust::of(&config).unwrap().verify_hostname);
    }
}
