//! The config providers a resource's values may name, rewritten into mirrorcast's own
//! (`env`, `file`, `directory`, see `config::providers`): Strimzi's four, always there in its
//! pods (`strimzienv`, `strimzifile`, `strimzidir`, `strimzisecrets`), and those the connect
//! cluster's `config.providers` declares with a class mirrorcast knows.
//!
//! Kubernetes secrets and config maps are read as mounted, `<secrets dir>/<name>/<key>`, when
//! that file is there; otherwise from the Kubernetes API in a pod (`config::kubernetes`), as
//! Strimzi's providers read them.
//!
//! Invariant: a declared provider whose class cannot run here is refused naming its key; a
//! reference to an undeclared provider is left for the properties reader to refuse.

use std::collections::BTreeMap;
use std::path::Path;

/// What a provider reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Env,
    File,
    Directory,
    /// `namespace/name:key` of a Kubernetes object: `secrets` or `configmaps`.
    Kubernetes(&'static str),
}

/// The providers a resource's values can name.
pub(super) struct Providers {
    by_name: BTreeMap<String, Kind>,
    secrets_dir: String,
    /// `config.providers.<name>.param.*`: the providers here take none (said to be ignored).
    pub params: Vec<String>,
}

impl Providers {
    /// Strimzi's own providers, and those `config` (the connect cluster's) declares.
    /// `Err((key, message))` names a declaration that cannot be honoured.
    pub(super) fn declared(
        config: &BTreeMap<String, String>,
        secrets_dir: &Path,
    ) -> Result<Providers, (String, String)> {
        let mut by_name: BTreeMap<String, Kind> = [
            ("strimzienv", Kind::Env),
            ("strimzifile", Kind::File),
            ("strimzidir", Kind::Directory),
            ("strimzisecrets", Kind::Kubernetes("secrets")),
        ]
        .into_iter()
        .map(|(n, k)| (n.to_string(), k))
        .collect();
        let names = config.get("config.providers").map(String::as_str);
        for name in names.unwrap_or_default().split(',').map(str::trim) {
            if name.is_empty() {
                continue;
            }
            let key = format!("config.providers.{name}.class");
            let kind = match config.get(&key).map(|c| c.trim()) {
                Some("org.apache.kafka.common.config.provider.EnvVarConfigProvider") => Kind::Env,
                Some("org.apache.kafka.common.config.provider.FileConfigProvider") => Kind::File,
                Some("org.apache.kafka.common.config.provider.DirectoryConfigProvider") => {
                    Kind::Directory
                }
                Some("io.strimzi.kafka.KubernetesSecretConfigProvider") => {
                    Kind::Kubernetes("secrets")
                }
                Some("io.strimzi.kafka.KubernetesConfigMapConfigProvider") => {
                    Kind::Kubernetes("configmaps")
                }
                Some(other) => {
                    return Err((
                        key,
                        format!(
                            "`{other}` cannot run in mirrorcast (no JVM): it reads Kafka's \
                             env, file and directory providers and Strimzi's Kubernetes \
                             secret and config map providers"
                        ),
                    ))
                }
                None => return Err((key, format!("is missing for provider `{name}`"))),
            };
            by_name.insert(name.to_string(), kind);
        }
        let params = config
            .keys()
            .filter(|k| k.starts_with("config.providers.") && !k.ends_with(".class"))
            .cloned()
            .collect();
        Ok(Providers {
            by_name,
            secrets_dir: secrets_dir.display().to_string(),
            params,
        })
    }

    /// `value` with each `${name:...}` of a known provider in mirrorcast's form. A `${`
    /// without its `}` is left for the properties reader, which says what is wrong.
    pub(super) fn rewrite(&self, value: &str) -> Result<String, String> {
        use crate::config::providers::{map_references, ReferenceError};
        match map_references(value, |reference| self.rewrite_one(reference)) {
            Ok(rewritten) => Ok(rewritten),
            Err(ReferenceError::Unclosed(_)) => Ok(value.to_string()),
            Err(ReferenceError::Failed(message)) => Err(message),
        }
    }

    fn rewrite_one(&self, reference: &str) -> Result<String, String> {
        let Some((name, rest)) = reference.split_once(':') else {
            return Ok(format!("${{{reference}}}"));
        };
        let Some(kind) = self.by_name.get(name) else {
            return Ok(format!("${{{reference}}}"));
        };
        Ok(match kind {
            Kind::Env => format!("${{env:{}}}", rest.strip_prefix(':').unwrap_or(rest)),
            Kind::File => format!("${{file:{rest}}}"),
            Kind::Directory => format!("${{directory:{rest}}}"),
            Kind::Kubernetes(kind) => {
                let (object, key) = rest.split_once(':').ok_or_else(|| {
                    format!("`${{{reference}}}` is not `${{{name}:NAMESPACE/NAME:KEY}}`")
                })?;
                let name = object.rsplit('/').next().unwrap_or(object);
                let mounted = Path::new(&self.secrets_dir).join(name).join(key);
                if mounted.is_file() {
                    format!("${{directory:{}/{name}:{key}}}", self.secrets_dir)
                } else {
                    format!("${{kubernetes:{kind}/{object}:{key}}}")
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(pairs: &[(&str, &str)]) -> Result<Providers, (String, String)> {
        declared_in(pairs, Path::new("/secrets"))
    }

    fn declared_in(
        pairs: &[(&str, &str)],
        secrets_dir: &Path,
    ) -> Result<Providers, (String, String)> {
        let config = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Providers::declared(&config, secrets_dir)
    }

    #[test]
    fn strimzis_own_providers_become_mirrorcasts() {
        let providers = declared(&[]).unwrap();
        assert_eq!(
            providers
                .rewrite("${strimzienv:PASS}-${strimzifile:/p.properties:k}")
                .unwrap(),
            "${env:PASS}-${file:/p.properties:k}"
        );
        assert_eq!(
            providers
                .rewrite("${strimzidir:/opt/kafka/x:ca.crt}")
                .unwrap(),
            "${directory:/opt/kafka/x:ca.crt}"
        );
        assert_eq!(
            providers
                .rewrite("pw=${strimzisecrets:mirror/mm2-user:password};")
                .unwrap(),
            "pw=${kubernetes:secrets/mirror/mm2-user:password};",
            "not mounted: read from the Kubernetes API"
        );
        assert_eq!(
            providers.rewrite("${secrets:ns/a:b}").unwrap(),
            "${secrets:ns/a:b}",
            "an undeclared provider is left for the reader to refuse"
        );
    }

    #[test]
    fn declared_providers_are_read_by_their_class() {
        let secrets = tempfile::tempdir().unwrap();
        std::fs::create_dir(secrets.path().join("mm2")).unwrap();
        std::fs::write(secrets.path().join("mm2/pw"), "p").unwrap();
        let providers = declared_in(
            &[
                ("config.providers", "secrets, configmaps,env"),
                (
                    "config.providers.secrets.class",
                    "io.strimzi.kafka.KubernetesSecretConfigProvider",
                ),
                (
                    "config.providers.configmaps.class",
                    "io.strimzi.kafka.KubernetesConfigMapConfigProvider",
                ),
                (
                    "config.providers.env.class",
                    "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
                ),
            ],
            secrets.path(),
        )
        .unwrap();
        // A mounted key is read from its file; another from the API.
        assert_eq!(
            providers
                .rewrite("${secrets:ns/mm2:pw} ${configmaps:ns/settings:linger} ${env:X}")
                .unwrap(),
            format!(
                "${{directory:{}/mm2:pw}} ${{kubernetes:configmaps/ns/settings:linger}} ${{env:X}}",
                secrets.path().display()
            )
        );
        let (key, message) = declared(&[
            ("config.providers", "vault"),
            (
                "config.providers.vault.class",
                "com.example.VaultConfigProvider",
            ),
        ])
        .err()
        .unwrap();
        assert_eq!(key, "config.providers.vault.class");
        assert!(message.contains("no JVM"), "{message}");
        assert!(declared(&[("config.providers", "x")]).is_err());
    }
}
