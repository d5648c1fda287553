//! Secrets and config maps read from the Kubernetes API, as Strimzi's config providers
//! (`KubernetesSecretConfigProvider`, `KubernetesConfigMapConfigProvider`) read them in a pod:
//! with the pod's service account (its token and the cluster's CA, mounted by Kubernetes) from
//! `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`. A resource's reference that no
//! mounted file answers comes here (`${kubernetes:secrets/NAMESPACE/NAME:KEY}`).
//!
//! Invariant: a value read is only ever returned, never shown: errors name the object and the
//! key, the HTTP status and what to grant, never a body.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where Kubernetes mounts a pod's service account.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Another directory holding `token`, `ca.crt` and `namespace` (e.g. a token projected
/// elsewhere).
pub const SERVICE_ACCOUNT_ENV: &str = "MIRRORCAST_KUBERNETES_SERVICE_ACCOUNT";

/// How long one API request may take: a config is loaded once, at start.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What a reference reads: a secret's keys are base64 in `data`, a config map's are text in
/// `data` (Strimzi's provider reads no `binaryData`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ObjectKind {
    Secret,
    ConfigMap,
}

impl ObjectKind {
    fn resource(self) -> &'static str {
        match self {
            ObjectKind::Secret => "secrets",
            ObjectKind::ConfigMap => "configmaps",
        }
    }
}

/// One key of one object: `secrets/NAMESPACE/NAME:KEY` (no namespace: the pod's).
#[derive(Debug, PartialEq, Eq)]
struct Reference {
    kind: ObjectKind,
    namespace: Option<String>,
    name: String,
    key: String,
}

impl Reference {
    fn parse(text: &str) -> Result<Reference, String> {
        let malformed = || format!("`{text}` is not `secrets|configmaps/NAMESPACE/NAME:KEY`");
        let (object, key) = text.rsplit_once(':').ok_or_else(malformed)?;
        let (kind, object) = object.split_once('/').ok_or_else(malformed)?;
        let kind = match kind {
            "secrets" => ObjectKind::Secret,
            "configmaps" => ObjectKind::ConfigMap,
            _ => return Err(malformed()),
        };
        let (namespace, name) = match object.split_once('/') {
            Some((namespace, name)) => (Some(namespace.to_string()), name),
            None => (None, object),
        };
        // As Strimzi's provider takes them: names are DNS names, keys Kubernetes's data keys;
        // nothing that would change the URL.
        let dns_name = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
        };
        let data_key = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !dns_name(name) || !data_key || !namespace.as_deref().is_none_or(dns_name) {
            return Err(malformed());
        }
        Ok(Reference {
            kind,
            namespace,
            name: name.to_string(),
            key: key.to_string(),
        })
    }

    fn shown(&self, namespace: &str) -> String {
        let kind = match self.kind {
            ObjectKind::Secret => "secret",
            ObjectKind::ConfigMap => "config map",
        };
        format!("{kind} {namespace}/{}", self.name)
    }
}

/// The value of `reference` (`secrets/NAMESPACE/NAME:KEY`), read from the API with the pod's
/// service account. `env` reads the environment.
pub fn read(reference: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let reference = Reference::parse(reference)?;
    let account = ServiceAccount::of_pod(env, &reference)?;
    let namespace = reference
        .namespace
        .clone()
        .unwrap_or_else(|| account.namespace.clone());
    let shown = reference.shown(&namespace);
    let url = format!(
        "{}/api/v1/namespaces/{namespace}/{}/{}",
        account.api,
        reference.kind.resource(),
        reference.name
    );
    let body = account.get(&url).map_err(|problem| match problem {
        Problem::Status(status @ (401 | 403)) => format!(
            "the pod's service account may not read {shown} (HTTP {status}): grant it `get` on \
             {} in {namespace} (a Role and RoleBinding), or mount it under the secrets directory",
            reference.kind.resource()
        ),
        Problem::Status(404) => format!("there is no {shown}"),
        Problem::Status(status) => format!("reading {shown}: the API answered HTTP {status}"),
        Problem::Transport(e) => format!("reading {shown} from {}: {e}", account.api),
    })?;
    value_of(reference.kind, &body, &reference.key).map_err(|problem| format!("{shown}: {problem}"))
}

/// The value of `key` in an object's JSON as the API returns it.
fn value_of(kind: ObjectKind, body: &str, key: &str) -> Result<String, String> {
    let object: serde_json::Value =
        serde_json::from_str(body).map_err(|_| "the API's answer is not JSON".to_string())?;
    let value = object
        .get("data")
        .and_then(|d| d.get(key))
        .and_then(|v| v.as_str())
        .ok_or_else(|| format!("it has no key `{key}`"))?;
    let encoded = match kind {
        ObjectKind::Secret => value,
        ObjectKind::ConfigMap => return Ok(value.to_string()),
    };
    let bytes =
        openssl::base64::decode_block(encoded).map_err(|_| format!("key `{key}` is not base64"))?;
    String::from_utf8(bytes).map_err(|_| format!("key `{key}` is not UTF-8 text"))
}

/// Why a request failed.
enum Problem {
    Status(u16),
    Transport(String),
}

/// The pod's way to the API.
struct ServiceAccount {
    /// `https://host:port`.
    api: String,
    token: String,
    namespace: String,
    agent: ureq::Agent,
}

impl ServiceAccount {
    fn of_pod(
        env: &dyn Fn(&str) -> Option<String>,
        reference: &Reference,
    ) -> Result<ServiceAccount, String> {
        let (Some(host), Some(port)) = (
            env("KUBERNETES_SERVICE_HOST"),
            env("KUBERNETES_SERVICE_PORT"),
        ) else {
            let namespace = reference.namespace.as_deref().unwrap_or("(the pod's)");
            return Err(format!(
                "{} is not mounted under the secrets directory (`--secrets-dir`), and \
                 mirrorcast is not in a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set) to \
                 read it from the API",
                reference.shown(namespace)
            ));
        };
        let dir = env(SERVICE_ACCOUNT_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(SERVICE_ACCOUNT_DIR));
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read(&path).map_err(|e| {
                format!(
                    "reading the pod's service account ({}): {e}; is \
                     `automountServiceAccountToken` off?",
                    path.display()
                )
            })
        };
        let token = String::from_utf8(read("token")?)
            .map_err(|_| "the service account token is not text".to_string())?
            .trim()
            .to_string();
        let namespace = match reference.namespace {
            Some(_) => String::new(),
            None => String::from_utf8_lossy(&read("namespace")?)
                .trim()
                .to_string(),
        };
        let agent = agent(&read("ca.crt")?, &dir)?;
        // An IPv6 address goes in brackets.
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        Ok(ServiceAccount {
            api: format!("https://{host}:{}", port.trim()),
            token,
            namespace,
            agent,
        })
    }

    fn get(&self, url: &str) -> Result<String, Problem> {
        let mut response = self
            .agent
            .get(url)
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Accept", "application/json")
            .call()
            .map_err(|e| Problem::Transport(e.to_string()))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(Problem::Status(status));
        }
        response
            .body_mut()
            .read_to_string()
            .map_err(|e| Problem::Transport(e.to_string()))
    }
}

/// An HTTPS client trusting only the cluster's CA.
fn agent(ca_pem: &[u8], dir: &Path) -> Result<ureq::Agent, String> {
    use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
    let ca = Certificate::from_pem(ca_pem).map_err(|e| {
        format!(
            "{}: not a PEM certificate: {e}",
            dir.join("ca.crt").display()
        )
    })?;
    let tls = TlsConfig::builder()
        .provider(TlsProvider::NativeTls)
        .root_certs(RootCerts::Specific(Arc::new(vec![ca])))
        .build();
    Ok(ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(REQUEST_TIMEOUT))
        // A status is ours to read (to say what to grant), not an error.
        .http_status_as_error(false)
        .build()
        .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_a_kind_an_object_and_a_key() {
        assert_eq!(
            Reference::parse("secrets/mirror/mm2-user:password"),
            Ok(Reference {
                kind: ObjectKind::Secret,
                namespace: Some("mirror".into()),
                name: "mm2-user".into(),
                key: "password".into(),
            })
        );
        assert_eq!(
            Reference::parse("configmaps/settings:linger.ms").map(|r| r.namespace),
            Ok(None)
        );
        for bad in [
            "secrets/ns/name",
            "pods/ns/name:key",
            "secrets/ns/../x:key",
            "secrets/ns/name:a/b",
            "secrets/ns/name?watch=1:key",
            "secrets/ns/Upper:key",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_are_read_as_the_api_returns_them() {
        let secret = r#"{"kind":"Secret","data":{"password":"czNjcmV0"}}"#;
        assert_eq!(
            value_of(ObjectKind::Secret, secret, "password"),
            Ok("s3cret".into())
        );
        assert!(value_of(ObjectKind::Secret, secret, "user")
            .unwrap_err()
            .contains("no key `user`"));
        let map = r#"{"data":{"linger.ms":"5"},"binaryData":{"ca.crt":"UEVN"}}"#;
        assert_eq!(
            value_of(ObjectKind::ConfigMap, map, "linger.ms"),
            Ok("5".into())
        );
        // As Strimzi's provider: `data` only.
        assert!(value_of(ObjectKind::ConfigMap, map, "ca.crt").is_err());
    }

    #[test]
    fn outside_a_pod_the_reference_says_where_it_was_looked_for() {
        let err = read("secrets/mirror/mm2-user:password", &|_| None).unwrap_err();
        assert!(
            err.contains("secret mirror/mm2-user")
                && err.contains("--secrets-dir")
                && err.contains("KUBERNETES_SERVICE_HOST"),
            "{err}"
        );
    }
}
