//! A resource cluster's `tls` and `authentication` as the MM2 client keys Strimzi's operator
//! writes for them (`KafkaMirrorMaker2Connectors`, `KafkaConnectConfigurationBuilder`): the
//! security protocol, the CAs to trust, the client certificate, the SASL login.
//!
//! Invariant: every secret becomes a `${directory:<secrets dir>/<secret>:<key>}` reference,
//! resolved when the properties are read and never shown; an authentication that cannot be
//! honoured is refused naming its field.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_norway::Value;

use super::scalar;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Authentication {
    #[serde(rename = "type")]
    kind: String,
    username: Option<String>,
    password_secret: Option<PasswordSecret>,
    certificate_and_key: Option<CertificateAndKey>,
    /// `custom`: whether the login is SASL.
    #[serde(default)]
    sasl: bool,
    /// `custom`: client keys, `sasl.*` and `ssl.keystore.*` only.
    #[serde(default)]
    config: BTreeMap<String, Value>,
    // `oauth` (v1beta2 only).
    client_id: Option<String>,
    client_secret: Option<KeySecret>,
    token_endpoint_uri: Option<String>,
    scope: Option<String>,
    tls_trusted_certificates: Option<Vec<CertSecret>>,
    sasl_extensions: Option<BTreeMap<String, Value>>,
    grant_type: Option<String>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PasswordSecret {
    secret_name: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeySecret {
    secret_name: String,
    key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CertificateAndKey {
    secret_name: String,
    certificate: String,
    key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Tls {
    #[serde(default)]
    trusted_certificates: Vec<CertSecret>,
}

/// A CA in a secret: one file (`certificate`) or every file matching a glob (`pattern`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CertSecret {
    secret_name: String,
    certificate: Option<String>,
    pattern: Option<String>,
}

/// `oauth` fields that only tune Strimzi's own OAuth client: said to be ignored.
const OAUTH_TUNING: [&str; 8] = [
    "connectTimeoutSeconds",
    "readTimeoutSeconds",
    "httpRetries",
    "httpRetryPauseMs",
    "maxTokenExpirySeconds",
    "accessTokenIsJwt",
    "enableMetrics",
    "includeAcceptHeader",
];

/// The declared fields `oauth` uses.
const OAUTH_FIELDS: [&str; 7] = [
    "clientId",
    "clientSecret",
    "tokenEndpointUri",
    "scope",
    "tlsTrustedCertificates",
    "saslExtensions",
    "grantType",
];

impl Authentication {
    /// The declared fields the resource sets (not `type`, not unknown ones).
    fn present_fields(&self) -> Vec<&'static str> {
        [
            ("username", self.username.is_some()),
            ("passwordSecret", self.password_secret.is_some()),
            ("certificateAndKey", self.certificate_and_key.is_some()),
            ("sasl", self.sasl),
            ("config", !self.config.is_empty()),
            ("clientId", self.client_id.is_some()),
            ("clientSecret", self.client_secret.is_some()),
            ("tokenEndpointUri", self.token_endpoint_uri.is_some()),
            ("scope", self.scope.is_some()),
            (
                "tlsTrustedCertificates",
                self.tls_trusted_certificates.is_some(),
            ),
            ("saslExtensions", self.sasl_extensions.is_some()),
            ("grantType", self.grant_type.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| name)
        .collect()
    }
}

/// What a cluster's security settings became.
pub(super) struct Security {
    pub pairs: Vec<(String, String)>,
    /// Fields read but without effect here (said, never dropped in silence).
    pub ignored: Vec<String>,
}

/// An error about the field `at` (e.g. `spec.target.authentication.type`).
pub(super) type FieldError = (String, String);

/// The client keys of cluster `alias` (`at` is its place in the resource).
pub(super) fn cluster_security(
    at: &str,
    alias: &str,
    authentication: Option<&Authentication>,
    tls: Option<&Tls>,
    secrets_dir: &Path,
    v1: bool,
) -> Result<Security, FieldError> {
    let mut pairs = Vec::new();
    let mut ignored = Vec::new();
    let key = |k: &str| format!("{alias}.{k}");
    let secret = |name: &str, file: &str| {
        format!("${{directory:{}:{file}}}", secrets_dir.join(name).display())
    };
    if let Some(tls) = tls {
        let at = format!("{at}.tls.trustedCertificates");
        let files = certificate_files(&at, &tls.trusted_certificates, secrets_dir)?;
        match files.as_slice() {
            [] => {}
            [(dir, file)] => {
                pairs.push((key("ssl.truststore.type"), "PEM".into()));
                pairs.push((
                    key("ssl.truststore.location"),
                    Path::new(dir).join(file).display().to_string(),
                ));
            }
            many => {
                let pems: Vec<String> = many
                    .iter()
                    .map(|(dir, file)| format!("${{directory:{dir}:{file}}}"))
                    .collect();
                pairs.push((key("ssl.truststore.certificates"), pems.join("\n")));
            }
        }
    }
    let sasl = match authentication {
        None => false,
        Some(auth) => {
            let at = format!("{at}.authentication");
            if auth.kind != "oauth" {
                ignored.extend(auth.other.keys().map(|field| format!("{at}.{field}")));
            }
            // Fields of another type than the one given: unused, so said.
            let used: &[&str] = match auth.kind.as_str() {
                "scram-sha-512" | "scram-sha-256" | "plain" => &["username", "passwordSecret"],
                "tls" => &["certificateAndKey"],
                "custom" => &["sasl", "config"],
                _ => &OAUTH_FIELDS,
            };
            for field in auth.present_fields() {
                if used.contains(&field) {
                    continue;
                }
                if auth.kind == "oauth" && matches!(field, "username" | "passwordSecret") {
                    return Err((
                        format!("{at}.{field}"),
                        "Strimzi's password grant: librdkafka's OIDC login takes a client id \
                         and secret (client credentials) only, so it would log in as another \
                         identity"
                            .into(),
                    ));
                }
                ignored.push(format!(
                    "{at}.{field} (not used by `{}` authentication)",
                    auth.kind
                ));
            }
            if auth.kind == "tls" && tls.is_none() {
                ignored.push(format!(
                    "{at}.certificateAndKey (no `tls`: a client certificate needs a TLS \
                     connection, as Strimzi warns)"
                ));
            }
            let mechanism = match auth.kind.as_str() {
                "scram-sha-512" => Some("SCRAM-SHA-512"),
                "scram-sha-256" => Some("SCRAM-SHA-256"),
                "plain" => Some("PLAIN"),
                _ => None,
            };
            match (auth.kind.as_str(), mechanism) {
                (_, Some(mechanism)) => {
                    let (Some(username), Some(password)) = (&auth.username, &auth.password_secret)
                    else {
                        return Err((at, "needs `username` and `passwordSecret`".into()));
                    };
                    pairs.push((key("sasl.mechanism"), mechanism.into()));
                    pairs.push((key("sasl.username"), username.clone()));
                    pairs.push((
                        key("sasl.password"),
                        secret(&password.secret_name, &password.password),
                    ));
                    true
                }
                ("tls", _) => {
                    let Some(pair) = &auth.certificate_and_key else {
                        return Err((
                            format!("{at}.certificateAndKey"),
                            "is required for `tls` authentication".into(),
                        ));
                    };
                    pairs.push((key("ssl.keystore.type"), "PEM".into()));
                    pairs.push((
                        key("ssl.keystore.certificate.chain"),
                        secret(&pair.secret_name, &pair.certificate),
                    ));
                    pairs.push((
                        key("ssl.keystore.key"),
                        secret(&pair.secret_name, &pair.key),
                    ));
                    false
                }
                ("custom", _) => {
                    for (name, value) in &auth.config {
                        let lower = name.to_ascii_lowercase();
                        // As the operator: other keys are dropped with a warning.
                        if lower.starts_with("sasl.") || lower.starts_with("ssl.keystore.") {
                            let value = scalar(value).ok_or_else(|| {
                                (format!("{at}.config.{name}"), "is not a plain value".into())
                            })?;
                            pairs.push((key(name), value));
                        } else {
                            ignored.push(format!(
                                "{at}.config.{name} (custom authentication takes only sasl.* \
                                 and ssl.keystore.* keys, as Strimzi)"
                            ));
                        }
                    }
                    auth.sasl
                }
                ("oauth", _) if v1 => {
                    return Err((
                        format!("{at}.type"),
                        "`oauth` is not in kafka.strimzi.io/v1: use `custom` authentication \
                         with the OAUTHBEARER keys (sasl.mechanism, sasl.jaas.config, \
                         sasl.oauthbearer.token.endpoint.url)"
                            .into(),
                    ))
                }
                ("oauth", _) => {
                    let login = oauth(&at, alias, auth, secrets_dir)?;
                    pairs.extend(login.pairs);
                    ignored.extend(login.ignored);
                    true
                }
                (other, None) => {
                    return Err((
                        format!("{at}.type"),
                        format!(
                            "`{other}` is not one of tls, scram-sha-256, scram-sha-512, plain, \
                             oauth, custom"
                        ),
                    ))
                }
            }
        }
    };
    let protocol = match (sasl, tls.is_some()) {
        (true, true) => Some("SASL_SSL"),
        (true, false) => Some("SASL_PLAINTEXT"),
        (false, true) => Some("SSL"),
        (false, false) => None,
    };
    if let Some(protocol) = protocol {
        pairs.push((key("security.protocol"), protocol.into()));
    }
    Ok(Security { pairs, ignored })
}

/// The files of `certificates` as (secret directory, file name): each `certificate`, and the
/// files of the secret matching each `pattern`, sorted (as the operator joins them).
fn certificate_files(
    at: &str,
    certificates: &[CertSecret],
    secrets_dir: &Path,
) -> Result<Vec<(String, String)>, FieldError> {
    let mut files = Vec::new();
    for (i, cert) in certificates.iter().enumerate() {
        let at = format!("{at}[{i}]");
        let dir = secrets_dir.join(&cert.secret_name);
        let shown = dir.display().to_string();
        match (&cert.certificate, &cert.pattern) {
            (Some(file), None) => files.push((shown, file.clone())),
            (None, Some(pattern)) => {
                let glob = glob::Pattern::new(pattern)
                    .map_err(|e| (format!("{at}.pattern"), format!("is not a glob: {e}")))?;
                let entries = std::fs::read_dir(&dir).map_err(|e| {
                    (
                        format!("{at}.secretName"),
                        format!("cannot list the secret's files in `{shown}`: {e}"),
                    )
                })?;
                let mut matched: Vec<String> = entries
                    .filter_map(|entry| entry.ok())
                    .filter(|entry| entry.path().is_file())
                    .filter_map(|entry| entry.file_name().to_str().map(str::to_string))
                    .filter(|name| glob.matches(name))
                    .collect();
                if matched.is_empty() {
                    return Err((
                        format!("{at}.pattern"),
                        format!("`{pattern}` matches no file in `{shown}`"),
                    ));
                }
                matched.sort();
                files.extend(matched.into_iter().map(|name| (shown.clone(), name)));
            }
            _ => {
                return Err((
                    at,
                    "needs exactly one of `certificate` and `pattern`".into(),
                ))
            }
        }
    }
    Ok(files)
}

/// Strimzi's `oauth` client-credentials login as the MM2 keys of Kafka's own OIDC login
/// (KIP-768), which mirrorcast maps to librdkafka's. The grants librdkafka has no counterpart
/// for are refused; `OAUTH_TUNING` fields are said to be ignored.
fn oauth(
    at: &str,
    alias: &str,
    auth: &Authentication,
    secrets_dir: &Path,
) -> Result<Security, FieldError> {
    let key = |k: &str| format!("{alias}.{k}");
    let mut ignored = Vec::new();
    for field in auth.other.keys() {
        if OAUTH_TUNING.contains(&field.as_str()) {
            ignored.push(format!("{at}.{field}"));
        } else {
            return Err((
                format!("{at}.{field}"),
                "librdkafka's OIDC login takes a client id and secret (client credentials) \
                 only: access or refresh tokens, passwords, client assertions, audiences and \
                 hostname settings cannot be honoured"
                    .into(),
            ));
        }
    }
    if let Some(grant) = auth
        .grant_type
        .as_deref()
        .filter(|g| *g != "client_credentials")
    {
        return Err((
            format!("{at}.grantType"),
            format!("`{grant}`: librdkafka's OIDC login uses client_credentials"),
        ));
    }
    let (Some(client_id), Some(client_secret), Some(endpoint)) = (
        &auth.client_id,
        &auth.client_secret,
        &auth.token_endpoint_uri,
    ) else {
        return Err((
            at.to_string(),
            "needs `clientId`, `clientSecret` and `tokenEndpointUri` (client credentials)".into(),
        ));
    };
    let quoted = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    let mut jaas = format!(
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
         clientId=\"{}\" clientSecret=\"${{directory:{}:{}}}\"",
        quoted(client_id),
        secrets_dir.join(&client_secret.secret_name).display(),
        client_secret.key
    );
    if let Some(scope) = &auth.scope {
        jaas.push_str(&format!(" scope=\"{}\"", quoted(scope)));
    }
    for (name, value) in auth.sasl_extensions.iter().flatten() {
        let value = scalar(value).ok_or_else(|| {
            (
                format!("{at}.saslExtensions.{name}"),
                "is not a plain value".to_string(),
            )
        })?;
        jaas.push_str(&format!(" extension_{name}=\"{}\"", quoted(&value)));
    }
    jaas.push(';');
    let mut pairs = vec![
        (key("sasl.mechanism"), "OAUTHBEARER".to_string()),
        (key("sasl.oauthbearer.token.endpoint.url"), endpoint.clone()),
        (key("sasl.jaas.config"), jaas),
    ];
    if let Some(cas) = &auth.tls_trusted_certificates {
        let files = certificate_files(&format!("{at}.tlsTrustedCertificates"), cas, secrets_dir)?;
        let pems: Vec<String> = files
            .iter()
            .map(|(dir, file)| format!("${{directory:{dir}:{file}}}"))
            .collect();
        if !pems.is_empty() {
            pairs.push((key("https.ca.pem"), pems.join("\n")));
        }
    }
    Ok(Security { pairs, ignored })
}
