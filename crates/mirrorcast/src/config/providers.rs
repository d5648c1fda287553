//! MM2's config-provider references, resolved when the file is loaded:
//! `${file:PATH:KEY}` (KEY of the properties file PATH), `${directory:DIR:FILE}` (the content
//! of DIR/FILE, as Kubernetes mounts secrets) and `${env:NAME}` (an environment variable).
//! Resolved values are treated as secrets: they are never displayed, only the reference is.

use std::io::Read;
use std::path::Path;

/// A referenced file holds a secret or a few properties: more than this is a mistake (or a
/// device such as `/dev/zero`, which would never end).
const MAX_REFERENCED_FILE: u64 = 1 << 20;

/// The bytes of the regular file `path`, refused if it is anything else or too large.
fn read_referenced(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    let metadata = file
        .metadata()
        .map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    if !metadata.is_file() {
        return Err(format!("`{shown}` is not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_REFERENCED_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    if bytes.len() as u64 > MAX_REFERENCED_FILE {
        return Err(format!(
            "`{shown}` is larger than {} KiB, too large for a secret",
            MAX_REFERENCED_FILE / 1024
        ));
    }
    Ok(bytes)
}

/// Replaces every `${provider:...}` in `value`. `Err` says which reference failed and why.
pub fn resolve(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    map_references(value, |reference| resolve_one(reference, env)).map_err(|e| match e {
        ReferenceError::Unclosed(rest) => format!("`{rest}` has no closing `}}`"),
        ReferenceError::Failed(message) => message,
    })
}

/// Why [`map_references`] stopped.
#[derive(Debug)]
pub(crate) enum ReferenceError {
    /// A `${` without its `}`: the text from it.
    Unclosed(String),
    /// What the replacement said.
    Failed(String),
}

/// `value` with each `${...}` replaced by what `replace` makes of the text between the braces.
pub(crate) fn map_references(
    value: &str,
    mut replace: impl FnMut(&str) -> Result<String, String>,
) -> Result<String, ReferenceError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(ReferenceError::Unclosed(rest[start..].to_string()));
        };
        out.push_str(&replace(&after[..end]).map_err(ReferenceError::Failed)?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether `value` contains a reference at all.
pub fn has_reference(value: &str) -> bool {
    value.contains("${")
}

fn resolve_one(reference: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let (provider, rest) = reference
        .split_once(':')
        .ok_or_else(|| format!("`${{{reference}}}` is not `${{provider:path:key}}`"))?;
    match provider {
        "env" => {
            // `${env:NAME}`, and `${env::NAME}` with the empty path Kafka also accepts.
            let name = rest.strip_prefix(':').unwrap_or(rest);
            env(name).ok_or_else(|| format!("environment variable `{name}` is not set"))
        }
        "file" => {
            let (path, key) = rest.rsplit_once(':').ok_or_else(|| {
                format!("`${{{reference}}}` needs a path and a key: `${{file:PATH:KEY}}`")
            })?;
            let text = read_referenced(Path::new(path))?;
            let text = super::properties::java_text(&text);
            let mut found = None;
            for line in super::properties::java_lines(&text) {
                let line = line.map_err(|e| format!("`{path}` is not a properties file: {e}"))?;
                if let java_properties::LineContent::KVPair(k, v) = line.consume_content() {
                    if k == key {
                        found = Some(v);
                    }
                }
            }
            found.ok_or_else(|| format!("`{path}` has no key `{key}`"))
        }
        "directory" => {
            let (dir, file) = rest.rsplit_once(':').ok_or_else(|| {
                format!(
                    "`${{{reference}}}` needs a directory and a file: `${{directory:DIR:FILE}}`"
                )
            })?;
            let path = Path::new(dir).join(file);
            let bytes = read_referenced(&path)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| format!("`{}` is not UTF-8 text", path.display()))?;
            Ok(text.trim_end_matches(['\n', '\r']).to_string())
        }
        // A resource's Kubernetes secret or config map that no mounted file holds.
        "kubernetes" => super::kubernetes::read(rest, env),
        other => Err(format!(
            "unknown config provider `{other}`: mirrorcast resolves `file`, `directory` and `env`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_reference_to_a_device_or_a_huge_file_is_refused_not_read_forever() {
        let zero = resolve("${directory:/dev:zero}", &no_env).unwrap_err();
        assert!(zero.contains("not a regular file"), "{zero}");
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 2 << 20]).unwrap();
        let refused = resolve(&format!("${{file:{}:key}}", big.display()), &no_env).unwrap_err();
        assert!(refused.contains("too large"), "{refused}");
    }

    #[test]
    fn env_references() {
        let env = |name: &str| (name == "MM2_PASSWORD").then(|| "s3cret".to_string());
        assert_eq!(resolve("${env:MM2_PASSWORD}", &env).unwrap(), "s3cret");
        assert_eq!(
            resolve("x-${env::MM2_PASSWORD}-y", &env).unwrap(),
            "x-s3cret-y"
        );
        assert!(resolve("${env:MISSING}", &env)
            .unwrap_err()
            .contains("MISSING"));
    }

    #[test]
    fn file_and_directory_references() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secrets.properties");
        std::fs::write(&file, "password = p4ss\nuser: mm2\n").unwrap();
        std::fs::write(dir.path().join("ca.crt"), "PEM\n").unwrap();
        let f = file.display();
        assert_eq!(
            resolve(&format!("${{file:{f}:password}}"), &no_env).unwrap(),
            "p4ss"
        );
        assert_eq!(
            resolve(&format!("u=${{file:{f}:user}}"), &no_env).unwrap(),
            "u=mm2"
        );
        let d = dir.path().display();
        assert_eq!(
            resolve(&format!("${{directory:{d}:ca.crt}}"), &no_env).unwrap(),
            "PEM"
        );
        assert!(resolve(&format!("${{file:{f}:nope}}"), &no_env)
            .unwrap_err()
            .contains("nope"));
    }

    #[test]
    fn malformed_and_unknown_references_are_errors() {
        assert!(resolve("${vault:secret/x:y}", &no_env)
            .unwrap_err()
            .contains("vault"));
        assert!(resolve("${env:X", &no_env).is_err());
        assert_eq!(resolve("plain", &no_env).unwrap(), "plain");
    }
}

/// References in a whole file: resolved when it is read, never shown.
#[cfg(test)]
mod in_a_file {
    use std::path::Path;

    use super::super::testing::{resolve, BROADCAST};
    use super::super::{describe, RawProperties};

    #[test]
    fn provider_references_resolve_and_are_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("mm2-secrets.properties");
        std::fs::write(&secrets, "password = p4ssw0rd\nuser = mm2user\n").unwrap();
        let s = secrets.display();
        let text = format!(
            "{BROADCAST}config.providers = file\n\
             config.providers.file.class = org.apache.kafka.common.config.provider.FileConfigProvider\n\
             northamerica.sasl.jaas.config = org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"${{file:{s}:user}}\" password=\"${{file:{s}:password}}\";\n"
        );
        let config = resolve(&text).unwrap();
        let na = config.cluster("northamerica").unwrap();
        assert_eq!(na.producer.get("sasl.username"), Some("mm2user"));
        assert_eq!(na.producer.get("sasl.password"), Some("p4ssw0rd"));
        let shown = describe(&config);
        assert!(
            !shown.contains("p4ssw0rd") && !shown.contains("mm2user"),
            "{shown}"
        );
    }

    #[test]
    fn a_broken_reference_names_its_key_and_line() {
        let text =
            format!("{BROADCAST}europe.sasl.password = ${{file:/nonexistent.properties:pw}}\n");
        let err = RawProperties::parse(Path::new("mm2.properties"), text.as_bytes()).unwrap_err();
        assert_eq!(err.key, "europe.sasl.password");
        assert_eq!(err.line, Some(10));
        assert!(err.message.contains("/nonexistent.properties"));
    }
}
