//! Kafka client settings: MM2 files name them as the Java client does; librdkafka has its own
//! names. This module maps one to the other, rejects Java-only settings with the fix, and
//! redacts secrets for display.

use std::collections::BTreeMap;
use std::fmt;

use super::kerberos;
use super::keystores::{self, StoreType};

/// One librdkafka setting and where in the user's file it came from.
#[derive(Clone, PartialEq, Eq)]
pub struct Setting {
    pub value: String,
    /// The key as the user wrote it (e.g. `europe.sasl.jaas.config`).
    pub origin: String,
    pub line: Option<usize>,
    /// The text with a `${provider:...}` reference that the value was resolved from; such a
    /// value is never shown.
    pub reference: Option<String>,
}

/// librdkafka settings for one client (consumer, producer or admin) of one cluster.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientSettings(BTreeMap<String, Setting>);

impl ClientSettings {
    pub fn set(&mut self, key: &str, setting: Setting) {
        self.0.insert(key.to_string(), setting);
    }

    /// Keeps only the settings whose librdkafka name passes `keep`.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.0.retain(|k, _| keep(k));
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|s| s.value.as_str())
    }

    /// The setting `key` with where it came from.
    pub fn setting(&self, key: &str) -> Option<&Setting> {
        self.0.get(key)
    }

    /// The settings' names and values, without where they came from.
    pub fn values(&self) -> BTreeMap<&str, &str> {
        self.0
            .iter()
            .map(|(k, s)| (k.as_str(), s.value.as_str()))
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Setting)> {
        self.0.iter().map(|(k, s)| (k.as_str(), s))
    }

    /// Settings with secret values replaced, for display.
    pub fn redacted(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|(k, s)| {
                let value = if is_secret(k) {
                    "[redacted]".to_string()
                } else if let Some(certificates) = k
                    .ends_with(".pem")
                    .then(|| keystores::describe_certificates(&s.value))
                    .flatten()
                {
                    // Read from a store or inlined: whose certificates, not pages of base64.
                    certificates
                } else if s.reference.is_some() {
                    // The reference text may sit next to a literal secret (a JAAS line).
                    "[from a config provider]".to_string()
                } else {
                    s.value.clone()
                };
                (k.clone(), value)
            })
            .collect()
    }

    /// An `rdkafka` config with these settings.
    pub fn to_client_config(&self) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        for (k, s) in &self.0 {
            config.set(k, &s.value);
        }
        config
    }
}

impl fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.redacted()).finish()
    }
}

/// `message` about the setting `key` = `value`, with the value masked when it may be a secret:
/// by its key, or because a config provider resolved it (librdkafka's "not accepted" errors,
/// for one, repeat the value).
pub fn mask_value(message: &str, key: &str, value: &str, from_provider: bool) -> String {
    if value.is_empty() || !(from_provider || is_secret(key)) {
        return message.to_string();
    }
    message.replace(value, "[redacted]")
}

/// Whether a setting's value must never be shown.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "jaas",
        "ssl.key.pem",
        "token",
        "credentials",
        // Schema Registry's `user:password`.
        "user.info",
        "oauthbearer.config",
    ]
    .iter()
    .any(|needle| key.contains(needle))
}

/// Settings that secure a connection (librdkafka names).
pub fn is_security_key(key: &str) -> bool {
    key == "security.protocol" || key.starts_with("ssl.") || key.starts_with("sasl.")
}

/// Keys that connect to a cluster: set on `<alias>.` (or top level) they reach every client
/// of that cluster, as in MM2's `MirrorMakerConfig.clusterProps`.
pub fn is_connection_key(key: &str) -> bool {
    matches!(
        key,
        "bootstrap.servers" | "security.protocol" | "client.dns.lookup"
    ) || key.starts_with("ssl.")
        || key.starts_with("sasl.")
        // librdkafka's CA for an OIDC token endpoint.
        || key.starts_with("https.")
}

/// Why the file a librdkafka `*.location` setting (or a Kerberos keytab) names cannot be read,
/// if it cannot. `ssl.ca.location` may also be a directory of certificates, or `probe` (the
/// system's).
pub fn unreadable_location(key: &str, path: &str) -> Option<String> {
    let names_a_file =
        (key.starts_with("ssl.") && key.ends_with(".location")) || key == "sasl.kerberos.keytab";
    if !names_a_file {
        return None;
    }
    if key == "ssl.ca.location" && path == "probe" {
        return None;
    }
    match std::fs::metadata(path) {
        Err(e) => Some(format!("cannot read `{path}`: {e}")),
        Ok(meta) if meta.is_dir() && key == "ssl.ca.location" => None,
        Ok(meta) if !meta.is_file() => Some(format!("`{path}` is not a file")),
        Ok(_) => std::fs::File::open(path)
            .err()
            .map(|e| format!("cannot read `{path}`: {e}")),
    }
}

/// The result of mapping one Java setting.
#[derive(Debug, PartialEq, Eq)]
pub enum Mapped {
    /// Set these librdkafka keys.
    Set(Vec<(String, String)>),
    /// Consumed together with another key (e.g. a truststore type); nothing to set by itself.
    Nothing,
}

/// Maps one Java client setting to librdkafka. `all` holds the other settings of the same
/// client (Java names), for keys whose meaning depends on a sibling, like the store types.
/// `Err` is the message telling the user what to write instead.
pub fn map_java_setting(
    key: &str,
    value: &str,
    all: &BTreeMap<String, String>,
) -> Result<Mapped, String> {
    let one = |k: &str, v: &str| Ok(Mapped::Set(vec![(k.to_string(), v.to_string())]));
    let store_type = |k: &str| {
        all.get(k)
            .map(|t| t.trim().to_ascii_uppercase())
            .unwrap_or_else(|| "JKS".to_string())
    };
    if let Some(mapped) = kerberos::map_setting(key, value) {
        return mapped;
    }
    let gssapi = kerberos::uses_gssapi(all);
    match key {
        "sasl.mechanism" | "sasl.mechanisms" | "security.protocol"
            if gssapi && !kerberos::gssapi_built_in() =>
        {
            Err(kerberos::without_gssapi())
        }
        // Java would read a JAAS file (`java.security.auth.login.config`), which mirrorcast
        // does not: librdkafka would log in with a made-up principal.
        "sasl.mechanism" | "sasl.mechanisms" | "security.protocol"
            if gssapi && !all.contains_key("sasl.jaas.config") =>
        {
            Err("a GSSAPI (Kerberos) login needs `sasl.jaas.config = \
                 com.sun.security.auth.module.Krb5LoginModule required ...;`: mirrorcast reads \
                 no JAAS file"
                .into())
        }
        "sasl.mechanism" => one("sasl.mechanisms", value),
        "sasl.jaas.config" => map_jaas(value, all),
        "sasl.login.callback.handler.class"
            if value
                .trim()
                .ends_with(".oauthbearer.OAuthBearerLoginCallbackHandler")
                || value
                    .trim()
                    .ends_with(".oauthbearer.secured.OAuthBearerLoginCallbackHandler") =>
        {
            // Kafka's OIDC login, which the OAuthBearerLoginModule line maps to librdkafka's.
            Ok(Mapped::Nothing)
        }
        "sasl.oauthbearer.jwt.retriever.class"
            if value
                .trim()
                .ends_with(".oauthbearer.ClientCredentialsJwtRetriever") =>
        {
            Ok(Mapped::Nothing)
        }
        // Claims Kafka's client reads from its own token; librdkafka reads `sub` and `scope`,
        // so only those names mean the same here.
        "sasl.oauthbearer.sub.claim.name" | "sasl.oauthbearer.scope.claim.name" => {
            let default = if key.contains(".sub.") {
                "sub"
            } else {
                "scope"
            };
            if value.trim() == default {
                Ok(Mapped::Nothing)
            } else {
                Err(format!(
                    "librdkafka's OIDC login reads the `{default}` claim of its token and cannot \
                     be told another: remove the key (the broker validates the token with its \
                     own settings)"
                ))
            }
        }
        "ssl.truststore.location" => {
            let kind = store_type("ssl.truststore.type");
            match StoreType::parse(&kind) {
                Some(format) => {
                    let password = all.get("ssl.truststore.password").map(String::as_str);
                    one(
                        "ssl.ca.pem",
                        &keystores::trusted_certificates(value, format, password)?,
                    )
                }
                None if kind == "PEM" => one("ssl.ca.location", value),
                None => Err(unknown_store_type("ssl.truststore.type", &kind)),
            }
        }
        "ssl.truststore.certificates" => one("ssl.ca.pem", value),
        "ssl.truststore.password" | "ssl.truststore.type" | "ssl.keystore.type" => {
            Ok(Mapped::Nothing)
        }
        "ssl.keystore.location" => {
            let kind = store_type("ssl.keystore.type");
            match StoreType::parse(&kind) {
                Some(format) => {
                    let store_password = all.get("ssl.keystore.password").map(String::as_str);
                    let key_password = all.get("ssl.key.password").map(String::as_str);
                    let pair = keystores::key_pair(value, format, store_password, key_password)?;
                    Ok(Mapped::Set(vec![
                        ("ssl.certificate.pem".into(), pair.certificate_chain),
                        ("ssl.key.pem".into(), pair.private_key),
                    ]))
                }
                None if kind == "PEM" => Ok(Mapped::Set(vec![
                    ("ssl.certificate.location".into(), value.into()),
                    ("ssl.key.location".into(), value.into()),
                ])),
                None => Err(unknown_store_type("ssl.keystore.type", &kind)),
            }
        }
        // Read with the store (above), or of no use without one.
        "ssl.keystore.password" => Ok(Mapped::Nothing),
        // The password of a key in a JKS/PKCS12 store (read with it), else of a PEM key.
        "ssl.key.password" => {
            let in_store = all.contains_key("ssl.keystore.location")
                && StoreType::parse(&store_type("ssl.keystore.type")).is_some();
            if in_store {
                Ok(Mapped::Nothing)
            } else {
                one(key, value)
            }
        }
        "ssl.keystore.certificate.chain" => one("ssl.certificate.pem", value),
        "ssl.keystore.key" => one("ssl.key.pem", value),
        "ssl.endpoint.identification.algorithm" => match value.trim() {
            "" => one(key, "none"),
            v => one(key, &v.to_ascii_lowercase()),
        },
        "ssl.protocol" => tls_protocol(value).map(|_| Mapped::Nothing),
        "ssl.enabled.protocols" => {
            let versions: Vec<&str> = value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect();
            // OpenSSL negotiates TLS 1.3 or 1.2, whichever both ends have: the same as Java
            // with a list holding 1.2 (older versions OpenSSL refuses here, which can only
            // fail loudly). A list without 1.2 would ask to refuse 1.2, which librdkafka
            // cannot be told.
            for version in &versions {
                tls_protocol(version)?;
            }
            if versions.contains(&"TLSv1.2") {
                Ok(Mapped::Nothing)
            } else {
                Err(format!(
                    "librdkafka negotiates TLS 1.2 or 1.3 with no setting to refuse TLS 1.2, so \
                     `{value}` cannot be enforced: add TLSv1.2 (and make the brokers refuse it \
                     if they must), or remove the key"
                ))
            }
        }
        "ssl.keymanager.algorithm" | "ssl.trustmanager.algorithm"
            if matches!(value.trim(), "SunX509" | "PKIX") =>
        {
            // Java's defaults: what OpenSSL does too (the certificate chain checked to a CA).
            Ok(Mapped::Nothing)
        }
        "ssl.provider"
        | "ssl.keymanager.algorithm"
        | "ssl.trustmanager.algorithm"
        | "ssl.secure.random.implementation"
        | "ssl.engine.factory.class" => Err(
            "a Java TLS setting with no librdkafka equivalent: remove it (OpenSSL negotiates the \
             TLS version; restrict ciphers with `ssl.cipher.suites` in OpenSSL syntax)"
                .into(),
        ),
        "key.serializer" | "value.serializer" | "key.deserializer" | "value.deserializer" => {
            Err("not needed: mirrorcast copies keys and values as raw bytes; remove it".into())
        }
        "partitioner.class"
        | "interceptor.classes"
        | "metric.reporters"
        | "security.providers"
        | "sasl.login.callback.handler.class"
        | "sasl.client.callback.handler.class"
        | "sasl.login.class" => {
            Err("a Java class cannot be loaded by mirrorcast (librdkafka); remove it".into())
        }
        "max.poll.records" => Err(
            "librdkafka fetches by size, not by record count: remove it and, if needed, set \
             `max.partition.fetch.bytes` or `fetch.max.bytes`"
                .into(),
        ),
        "max.request.size" => one("message.max.bytes", value),
        "buffer.memory" => {
            let bytes: u64 = value
                .trim()
                .parse()
                .map_err(|_| format!("`{value}` is not a number of bytes"))?;
            one(
                "queue.buffering.max.kbytes",
                &(bytes / 1024).max(1).to_string(),
            )
        }
        "receive.buffer.bytes" => one("socket.receive.buffer.bytes", value),
        "send.buffer.bytes" => one("socket.send.buffer.bytes", value),
        "delivery.timeout.ms" => one("message.timeout.ms", value),
        "fetch.max.wait.ms" => one("fetch.wait.max.ms", value),
        "acks" => match value.trim() {
            "all" | "-1" => one("acks", "all"),
            _ => Err(
                "mirrorcast always produces with `acks = all` so that no acknowledged \
                      record can be lost; remove this setting"
                    .into(),
            ),
        },
        "enable.idempotence" => match value.trim() {
            "true" => Ok(Mapped::Nothing),
            _ => Err(
                "mirrorcast always uses an idempotent producer (no duplicates from \
                      retries, order kept); remove this setting"
                    .into(),
            ),
        },
        _ => one(key, value),
    }
}

/// A store type mirrorcast cannot read.
fn unknown_store_type(key: &str, kind: &str) -> String {
    format!("`{key}` is `{kind}`: mirrorcast reads JKS, PKCS12 and PEM stores")
}

/// A Java TLS protocol name OpenSSL negotiates here (`Err` for the ones it refuses).
fn tls_protocol(name: &str) -> Result<(), String> {
    match name.trim() {
        "TLSv1.3" | "TLSv1.2" | "TLS" => Ok(()),
        other => Err(format!(
            "`{other}`: librdkafka's OpenSSL negotiates TLSv1.2 or TLSv1.3 only (older versions \
             are refused as insecure); use TLSv1.2 or TLSv1.3"
        )),
    }
}

/// A client config for the tools (`datagen`, `consume`): `bootstrap` and `KEY=VALUE`
/// settings in Java or librdkafka names, mapped as in an MM2 file. `Err` names the setting.
pub fn tool_client_config(
    bootstrap: &str,
    properties: &[String],
) -> Result<rdkafka::ClientConfig, String> {
    let mut java = BTreeMap::new();
    for property in properties {
        let (key, value) = property
            .split_once('=')
            .ok_or_else(|| format!("`{property}` is not KEY=VALUE"))?;
        java.insert(key.trim().to_string(), value.trim().to_string());
    }
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    for (key, value) in &java {
        match map_java_setting(key, value, &java).map_err(|e| format!("`{key}`: {e}"))? {
            Mapped::Set(pairs) => {
                for (k, v) in pairs {
                    config.set(k, v);
                }
            }
            Mapped::Nothing => {}
        }
    }
    Ok(config)
}

/// `sasl.jaas.config` carries the user name and password of PLAIN and SCRAM logins; librdkafka
/// takes them as `sasl.username` / `sasl.password`. An OAUTHBEARER login with a token endpoint
/// (Kafka's OIDC client credentials, KIP-768) becomes librdkafka's OIDC login, a
/// Krb5LoginModule one its GSSAPI login.
fn map_jaas(value: &str, all: &BTreeMap<String, String>) -> Result<Mapped, String> {
    let module = value.split_whitespace().next().unwrap_or_default();
    let plain_or_scram =
        module.ends_with("PlainLoginModule") || module.ends_with("ScramLoginModule");
    let oauth = module.ends_with("OAuthBearerLoginModule");
    let kerberos = kerberos::is_krb5_module(module);
    if !(plain_or_scram || oauth || kerberos) {
        // The value holds a password: echo its first word only if it is a class name.
        let found = if module.ends_with("LoginModule")
            && module
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '$')
        {
            format!("found `{module}`")
        } else {
            "its first word is not a login module class".to_string()
        };
        return Err(format!(
            "only PlainLoginModule, ScramLoginModule, OAuthBearerLoginModule and Krb5LoginModule \
             logins can be mapped ({found})"
        ));
    }
    let options = jaas_options(value)?;
    let option = |name: &str| {
        options
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if oauth {
        return map_oidc_login(&options, all);
    }
    if kerberos {
        return kerberos::map_login(&options, all);
    }
    let mut mapped = Vec::new();
    for (name, target) in [("username", "sasl.username"), ("password", "sasl.password")] {
        match option(name) {
            Some(v) => mapped.push((target.to_string(), v)),
            None => return Err(format!("the login has no {name}=\"...\" option")),
        }
    }
    Ok(Mapped::Set(mapped))
}

/// Kafka's OIDC login (`OAuthBearerLoginModule` with `clientId`, `clientSecret`, `scope`,
/// `extension_*` options and `sasl.oauthbearer.token.endpoint.url`) as librdkafka's.
fn map_oidc_login(
    options: &[(String, String)],
    all: &BTreeMap<String, String>,
) -> Result<Mapped, String> {
    if !all.contains_key("sasl.oauthbearer.token.endpoint.url") {
        return Err(
            "an OAuthBearerLoginModule login is mapped to librdkafka's OIDC login (client \
             credentials), which needs `sasl.oauthbearer.token.endpoint.url`; Kafka's unsecured \
             development tokens (unsecuredLoginStringClaim_*) are not mapped"
                .into(),
        );
    }
    let mut mapped = vec![("sasl.oauthbearer.method".to_string(), "oidc".to_string())];
    let mut extensions = Vec::new();
    for (name, value) in options {
        match name.as_str() {
            "clientId" => mapped.push(("sasl.oauthbearer.client.id".into(), value.clone())),
            "clientSecret" => mapped.push(("sasl.oauthbearer.client.secret".into(), value.clone())),
            "scope" => mapped.push(("sasl.oauthbearer.scope".into(), value.clone())),
            extension if extension.starts_with("extension_") => {
                if value.contains([',', '=']) {
                    // librdkafka's list is `name=value,...`: such a value would be cut.
                    return Err(format!(
                        "the value of {} holds `,` or `=`, which librdkafka's \
                         `sasl.oauthbearer.extensions` list cannot carry",
                        shown_option(extension)
                    ));
                }
                extensions.push(format!("{}={value}", &extension["extension_".len()..]))
            }
            other => {
                return Err(format!(
                    "the OAuthBearerLoginModule {} has no librdkafka counterpart (it takes \
                     clientId, clientSecret, scope and extension_*)",
                    shown_option(other)
                ))
            }
        }
    }
    // Kafka 4.1 (KIP-1139) may give the credentials as client keys instead (same names in
    // librdkafka, passed on as they are).
    for (option, key) in [
        ("clientId", "sasl.oauthbearer.client.credentials.client.id"),
        (
            "clientSecret",
            "sasl.oauthbearer.client.credentials.client.secret",
        ),
    ] {
        if !options.iter().any(|(k, _)| k == option) && !all.contains_key(key) {
            return Err(format!(
                "the OIDC login needs `{option}` (or `{key}`): librdkafka logs in with client \
                 credentials"
            ));
        }
    }
    if !extensions.is_empty() {
        mapped.push(("sasl.oauthbearer.extensions".into(), extensions.join(",")));
    }
    Ok(Mapped::Set(mapped))
}

/// A JAAS option's name as an error may show it: only names Kafka's login modules know, since
/// a broken line can make part of a secret look like a name.
fn shown_option(name: &str) -> String {
    let known = matches!(
        name,
        "username" | "password" | "clientId" | "clientSecret" | "scope"
    ) || ["unsecuredLogin", "extension_"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if known {
        format!("option `{name}`")
    } else {
        "an option (its name is not shown: it may be part of a secret)".to_string()
    }
}

/// The options of a JAAS line, `Module flag name="value" name=value ...;` (a backslash escapes
/// the next character of a quoted value). `Err` never repeats the line: it holds secrets.
pub(super) fn jaas_options(jaas: &str) -> Result<Vec<(String, String)>, String> {
    let malformed = |what: &str| {
        format!("the login line is not `LoginModule flag name=\"value\" ...;` ({what})")
    };
    let mut chars = jaas.trim().chars().peekable();
    let word = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut out = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=' && *c != ';') {
            out.push(c);
        }
        out
    };
    word(&mut chars); // the module
    let flag = word(&mut chars);
    if !matches!(
        flag.as_str(),
        "required" | "requisite" | "sufficient" | "optional"
    ) {
        return Err(malformed(
            "no control flag such as `required` after the module",
        ));
    }
    let mut options = Vec::new();
    loop {
        let name = word(&mut chars);
        if name.is_empty() {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            return match chars.next() {
                None | Some(';') => Ok(options),
                Some(_) => Err(malformed("an option without a name")),
            };
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            // The "name" may be the rest of a secret written without quotes: not shown.
            return Err(malformed("a word that is not `name=value`"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let value = if chars.next_if_eq(&'"').is_some() {
            let mut out = String::new();
            let value = loop {
                match chars.next() {
                    Some('\\') => out.extend(chars.next()),
                    Some('"') => break out,
                    Some(c) => out.push(c),
                    None => {
                        return Err(malformed(&format!(
                            "the value of {} is not closed",
                            shown_option(&name)
                        )))
                    }
                }
            };
            // A closing quote inside a value (`"ab"cd"`) would make the rest a name.
            if chars
                .peek()
                .is_some_and(|c| !c.is_whitespace() && *c != ';')
            {
                return Err(malformed(&format!(
                    "the quoted value of {} is followed by more text",
                    shown_option(&name)
                )));
            }
            value
        } else {
            word(&mut chars)
        };
        options.push((name, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(key: &str, value: &str) -> Result<Mapped, String> {
        map_java_setting(key, value, &BTreeMap::new())
    }

    fn set(pairs: &[(&str, &str)]) -> Mapped {
        Mapped::Set(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn scram_jaas_becomes_username_and_password() {
        let jaas = r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="s3c\"ret";"#;
        assert_eq!(
            map("sasl.jaas.config", jaas).unwrap(),
            set(&[("sasl.username", "alice"), ("sasl.password", "s3c\"ret")])
        );
    }

    #[test]
    fn a_kerberos_keytab_login_becomes_librdkafkas_gssapi_login() {
        // Test builds have GSSAPI (the dev-dependency's feature).
        assert!(kerberos::gssapi_built_in());
        let jaas = r#"com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true storeKey=true keyTab="/etc/mm2.keytab" principal="mm2/eu.example.com@EXAMPLE.COM" serviceName="kafka";"#;
        let mut all = BTreeMap::new();
        all.insert("security.protocol".to_string(), "SASL_SSL".to_string());
        assert_eq!(
            map_java_setting("sasl.jaas.config", jaas, &all).unwrap(),
            set(&[
                ("sasl.kerberos.service.name", "kafka"),
                (
                    "sasl.kerberos.kinit.cmd",
                    "kinit -t \"%{sasl.kerberos.keytab}\" -k %{sasl.kerberos.principal}"
                ),
                ("sasl.kerberos.keytab", "/etc/mm2.keytab"),
                ("sasl.kerberos.principal", "mm2/eu.example.com@EXAMPLE.COM"),
            ])
        );
        // Without a login line Java would read a JAAS file, which is not read here.
        let err = map_java_setting("security.protocol", "SASL_SSL", &all).unwrap_err();
        assert!(err.contains("JAAS"), "{err}");
        all.insert("sasl.mechanism".to_string(), "PLAIN".to_string());
        assert!(map_java_setting("sasl.jaas.config", jaas, &all)
            .unwrap_err()
            .contains("GSSAPI"));
    }

    #[test]
    fn an_oidc_login_becomes_librdkafkas_and_one_without_a_token_endpoint_is_refused() {
        let jaas = r#"org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required clientId="mm2" clientSecret="s3c\"ret" scope=kafka extension_traceId="7";"#;
        let err = map("sasl.jaas.config", jaas).unwrap_err();
        assert!(err.contains("sasl.oauthbearer.token.endpoint.url"), "{err}");
        assert!(!err.contains("s3c"), "{err}");
        let mut all = BTreeMap::new();
        all.insert(
            "sasl.oauthbearer.token.endpoint.url".to_string(),
            "https://idp/token".to_string(),
        );
        assert_eq!(
            map_java_setting("sasl.jaas.config", jaas, &all).unwrap(),
            set(&[
                ("sasl.oauthbearer.method", "oidc"),
                ("sasl.oauthbearer.client.id", "mm2"),
                ("sasl.oauthbearer.client.secret", "s3c\"ret"),
                ("sasl.oauthbearer.scope", "kafka"),
                ("sasl.oauthbearer.extensions", "traceId=7"),
            ])
        );
        let unsecured = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule \
                         required unsecuredLoginStringClaim_sub=\"alice\";";
        let err = map_java_setting("sasl.jaas.config", unsecured, &all).unwrap_err();
        assert!(err.contains("unsecuredLoginStringClaim_sub"), "{err}");
        let no_secret = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule \
                         required clientId=\"mm2\";";
        let err = map_java_setting("sasl.jaas.config", no_secret, &all).unwrap_err();
        assert!(err.contains("clientSecret"), "{err}");
        assert_eq!(
            map(
                "sasl.login.callback.handler.class",
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler"
            )
            .unwrap(),
            Mapped::Nothing
        );
        assert!(map("sasl.login.callback.handler.class", "com.example.Login").is_err());
        assert_eq!(
            map("sasl.oauthbearer.sub.claim.name", "sub").unwrap(),
            Mapped::Nothing
        );
        assert!(map("sasl.oauthbearer.sub.claim.name", "azp")
            .unwrap_err()
            .contains("`sub` claim"));
    }

    #[test]
    fn jaas_lines_that_are_not_jaas_are_refused_without_their_values() {
        for line in [
            r#"org.apache.kafka.common.security.scram.ScramLoginModule username="u" password="hunter2";"#,
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password="hunter2"#,
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username "hunter2";"#,
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password="ab"hunter2";"#,
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password=my hunter2;"#,
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required password=my hunter2="x";"#,
        ] {
            let err = map("sasl.jaas.config", line).unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn a_jaas_line_that_cannot_be_mapped_is_not_echoed() {
        let err = map("sasl.jaas.config", "hunter2 required;").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        let err = map(
            "sasl.jaas.config",
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;",
        )
        .unwrap_err();
        assert!(err.contains("OAuthBearerLoginModule"), "{err}");
    }

    #[test]
    fn stores_are_read_by_their_type_and_pem_is_mapped() {
        let err = map("ssl.truststore.location", "/etc/ts.jks").unwrap_err();
        assert!(
            err.contains("cannot read `/etc/ts.jks`"),
            "a JKS by default: {err}"
        );
        let mut all = BTreeMap::new();
        all.insert("ssl.truststore.type".to_string(), "PEM".to_string());
        assert_eq!(
            map_java_setting("ssl.truststore.location", "/etc/ca.pem", &all).unwrap(),
            set(&[("ssl.ca.location", "/etc/ca.pem")])
        );
        all.insert("ssl.truststore.type".to_string(), "BKS".to_string());
        let err = map_java_setting("ssl.truststore.location", "/etc/ca.bks", &all).unwrap_err();
        assert!(err.contains("JKS, PKCS12 and PEM"), "{err}");
    }

    #[test]
    fn tls_versions_are_accepted_where_openssl_negotiates_them() {
        assert_eq!(map("ssl.protocol", "TLSv1.3").unwrap(), Mapped::Nothing);
        assert_eq!(map("ssl.protocol", "TLSv1.2").unwrap(), Mapped::Nothing);
        assert!(map("ssl.protocol", "TLSv1.1")
            .unwrap_err()
            .contains("TLSv1.1"));
        assert_eq!(
            map("ssl.enabled.protocols", "TLSv1.2, TLSv1.3").unwrap(),
            Mapped::Nothing
        );
        let err = map("ssl.enabled.protocols", "TLSv1.3").unwrap_err();
        assert!(err.contains("cannot be enforced"), "{err}");
        assert!(map("ssl.enabled.protocols", "TLSv1.2,SSLv3").is_err());
        assert_eq!(
            map("ssl.trustmanager.algorithm", "PKIX").unwrap(),
            Mapped::Nothing
        );
        assert!(map("ssl.trustmanager.algorithm", "Custom").is_err());
    }

    #[test]
    fn a_key_password_goes_with_its_store_or_to_a_pem_key() {
        let mut all = BTreeMap::new();
        all.insert("ssl.keystore.location".to_string(), "/k.p12".to_string());
        all.insert("ssl.keystore.type".to_string(), "PKCS12".to_string());
        assert_eq!(
            map_java_setting("ssl.key.password", "kp", &all).unwrap(),
            Mapped::Nothing
        );
        assert_eq!(
            map("ssl.key.password", "kp").unwrap(),
            set(&[("ssl.key.password", "kp")])
        );
    }

    #[test]
    fn renamed_keys_are_mapped() {
        assert_eq!(
            map("sasl.mechanism", "SCRAM-SHA-512").unwrap(),
            set(&[("sasl.mechanisms", "SCRAM-SHA-512")])
        );
        assert_eq!(
            map("buffer.memory", "33554432").unwrap(),
            set(&[("queue.buffering.max.kbytes", "32768")])
        );
        assert_eq!(map("linger.ms", "5").unwrap(), set(&[("linger.ms", "5")]));
        assert_eq!(
            map("ssl.endpoint.identification.algorithm", "").unwrap(),
            set(&[("ssl.endpoint.identification.algorithm", "none")])
        );
    }

    #[test]
    fn settings_that_would_weaken_delivery_are_rejected() {
        assert!(map("acks", "1").is_err());
        assert!(map("enable.idempotence", "false").is_err());
        assert_eq!(map("acks", "-1").unwrap(), set(&[("acks", "all")]));
    }

    #[test]
    fn secrets_are_redacted() {
        let mut settings = ClientSettings::default();
        let setting = |v: &str| Setting {
            value: v.into(),
            origin: "k".into(),
            line: None,
            reference: None,
        };
        settings.set("sasl.password", setting("hunter2"));
        settings.set("ssl.keystore.password", setting("hunter3"));
        settings.set("bootstrap.servers", setting("h:1"));
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(shown.contains("h:1"));
    }
}
