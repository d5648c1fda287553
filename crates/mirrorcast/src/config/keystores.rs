//! Java key and trust stores (JKS, PKCS12), read when the config is loaded into the PEM text
//! librdkafka takes (`ssl.ca.pem`, `ssl.certificate.pem`, `ssl.key.pem`), so an MM2 file's
//! `ssl.truststore.*` / `ssl.keystore.*` work as they are, without exporting anything.
//!
//! What is trusted and presented follows Java's key managers: a truststore trusts its
//! certificate entries and the certificate of each key entry (`TrustStoreUtil`); a keystore
//! presents its one key entry, decrypted with `ssl.key.password`, else the store's password
//! (Kafka's `DefaultSslEngineFactory`).
//!
//! Invariant: no message carries a password or key material; a store that cannot be read
//! exactly as Java would read it is refused with the reason.

use std::path::Path;

use openssl::pkey::PKey;
use openssl::x509::X509;

/// The store formats Java reads and mirrorcast reads in-process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreType {
    Jks,
    Pkcs12,
}

impl StoreType {
    /// `ssl.*store.type` as Java spells it (case-insensitive); `None` for PEM or anything else.
    pub fn parse(value: &str) -> Option<StoreType> {
        match value.trim().to_ascii_uppercase().as_str() {
            "JKS" => Some(StoreType::Jks),
            "PKCS12" => Some(StoreType::Pkcs12),
            _ => None,
        }
    }
}

/// The certificate presented and its private key, as PEM.
#[derive(PartialEq, Eq)]
pub struct KeyPair {
    /// The entry's certificate, then the rest of its chain.
    pub certificate_chain: String,
    /// PKCS#8, unencrypted: librdkafka gets it in memory, never on disk.
    pub private_key: String,
}

/// The certificates a truststore trusts, as PEM.
pub fn trusted_certificates(
    path: &str,
    store_type: StoreType,
    password: Option<&str>,
) -> Result<String, String> {
    let (bytes, store_type) = read_store(path, store_type)?;
    let mut ders: Vec<Vec<u8>> = Vec::new();
    match store_type {
        StoreType::Jks => {
            let store = load_jks(path, &bytes, password)?;
            for alias in sorted_aliases(&store) {
                if let Ok(entry) = store.get_trusted_certificate_entry(&alias) {
                    ders.push(entry.certificate.content);
                } else if let Ok(chain) = store.get_private_key_entry_certificate_chain(&alias) {
                    ders.extend(chain.into_iter().next().map(|c| c.content));
                }
            }
        }
        StoreType::Pkcs12 => {
            let store = load_pkcs12(path, &bytes, password.unwrap_or_default())?;
            for (_, entry) in store.entries() {
                match entry {
                    p12_keystore::KeyStoreEntry::Certificate(cert) => {
                        ders.push(cert.as_der().to_vec())
                    }
                    p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) => {
                        ders.extend(chain.certs().first().map(|c| c.as_der().to_vec()))
                    }
                    p12_keystore::KeyStoreEntry::Secret(_) => {}
                }
            }
        }
    }
    if ders.is_empty() {
        return Err(format!(
            "`{path}` holds no trusted certificate (Java would trust nothing either; a PKCS12 \
             truststore made by openssl without Java's trust attribute is one such store: \
             import the CA with `keytool -importcert`)"
        ));
    }
    ders.iter()
        .map(|der| der_to_pem(path, der))
        .collect::<Result<String, String>>()
}

/// The one key entry of a keystore. `key_password` is `ssl.key.password`, when set.
pub fn key_pair(
    path: &str,
    store_type: StoreType,
    store_password: Option<&str>,
    key_password: Option<&str>,
) -> Result<KeyPair, String> {
    let (bytes, store_type) = read_store(path, store_type)?;
    let (alias, key_der, chain): (String, Vec<u8>, Vec<Vec<u8>>) = match store_type {
        StoreType::Jks => {
            let store = load_jks(path, &bytes, store_password)?;
            let alias = one_key_alias(
                path,
                sorted_aliases(&store)
                    .into_iter()
                    .filter(|a| store.is_private_key_entry(a))
                    .collect(),
            )?;
            let password = key_password.or(store_password).unwrap_or_default();
            let entry = store
                .get_private_key_entry(&alias, password.as_bytes())
                .map_err(|_| {
                    format!(
                        "cannot decrypt the private key `{alias}` of `{path}`: wrong \
                         `ssl.key.password` (or, when it is unset, `ssl.keystore.password`)"
                    )
                })?;
            let chain = entry.certificate_chain.into_iter().map(|c| c.content);
            (alias, entry.private_key, chain.collect())
        }
        StoreType::Pkcs12 => {
            // A PKCS12 file has one password for the file and its keys in what keytool and
            // openssl write; `ssl.key.password` is tried when the store's does not open it.
            let store =
                load_pkcs12(path, &bytes, store_password.unwrap_or_default()).or_else(|first| {
                    match key_password {
                        Some(key) if Some(key) != store_password => {
                            load_pkcs12(path, &bytes, key).map_err(|_| first)
                        }
                        _ => Err(first),
                    }
                })?;
            let mut keys: Vec<(String, &p12_keystore::PrivateKeyChain)> = store
                .entries()
                .filter_map(|(alias, entry)| match entry {
                    p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) => {
                        Some((alias.clone(), chain))
                    }
                    _ => None,
                })
                .collect();
            let alias = one_key_alias(path, keys.iter().map(|(a, _)| a.clone()).collect())?;
            let (_, chain) = keys.remove(0);
            let certs = chain.certs().iter().map(|c| c.as_der().to_vec()).collect();
            (alias, chain.key().as_der().to_vec(), certs)
        }
    };
    if chain.is_empty() {
        return Err(format!(
            "the key entry `{alias}` of `{path}` has no certificate to present"
        ));
    }
    let private_key = PKey::private_key_from_pkcs8(&key_der)
        .and_then(|key| key.private_key_to_pem_pkcs8())
        .map_err(|_| format!("the private key `{alias}` of `{path}` is not a PKCS#8 key"))?;
    let private_key = String::from_utf8(private_key)
        .map_err(|_| format!("the private key `{alias}` of `{path}` is not PEM text"))?;
    let certificate_chain = chain
        .iter()
        .map(|der| der_to_pem(path, der))
        .collect::<Result<String, String>>()?;
    Ok(KeyPair {
        certificate_chain,
        private_key,
    })
}

/// A short account of PEM certificates for display: how many and whose.
pub fn describe_certificates(pem: &str) -> Option<String> {
    let certs = X509::stack_from_pem(pem.as_bytes()).ok()?;
    let subjects: Vec<String> = certs
        .iter()
        .map(|cert| {
            cert.subject_name()
                .entries()
                .map(|e| {
                    let name = e.object().nid().short_name().unwrap_or("?");
                    let value = e.data().to_string().unwrap_or_default();
                    format!("{name}={value}")
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    Some(format!(
        "[{} certificate(s): {}]",
        certs.len(),
        subjects.join("; ")
    ))
}

/// The store's bytes and the format they are in. Java reads a JKS store declared PKCS12 and
/// the other way round (`keystore.type.compat`, on by default; keytool writes PKCS12 since
/// JDK 9, even to a `.jks` file), so the declared type decides only for other content.
fn read_store(path: &str, declared: StoreType) -> Result<(Vec<u8>, StoreType), String> {
    let bytes = std::fs::read(Path::new(path)).map_err(|e| format!("cannot read `{path}`: {e}"))?;
    let format = if bytes.starts_with(&[0xFE, 0xED, 0xFE, 0xED]) {
        StoreType::Jks
    } else if bytes.first() == Some(&0x30) {
        // A DER sequence: PKCS12.
        StoreType::Pkcs12
    } else {
        declared
    };
    Ok((bytes, format))
}

fn load_jks(path: &str, bytes: &[u8], password: Option<&str>) -> Result<jks::KeyStore, String> {
    let mut store = jks::KeyStore::new();
    match store.load(bytes, password.unwrap_or_default().as_bytes()) {
        Ok(()) => Ok(store),
        // Java reads a store whose password is not given without checking its integrity; the
        // reader fills the entries before it checks the digest.
        Err(jks::KeyStoreError::InvalidDigest) if password.is_none() => Ok(store),
        Err(jks::KeyStoreError::InvalidDigest) => Err(format!(
            "`{path}` does not open with its password: wrong password, or the file was changed"
        )),
        Err(jks::KeyStoreError::InvalidMagic) => Err(format!(
            "`{path}` is not a JKS store (set its `ssl.*store.type`: PKCS12, JKS or PEM)"
        )),
        Err(e) => Err(format!("`{path}` is not a JKS store that can be read: {e}")),
    }
}

fn load_pkcs12(path: &str, bytes: &[u8], password: &str) -> Result<p12_keystore::KeyStore, String> {
    p12_keystore::KeyStore::from_pkcs12(bytes, password, Default::default()).map_err(|e| {
        use p12_keystore::error::Error;
        match e {
            Error::MacError(_) | Error::UnpadError => format!(
                "`{path}` does not open with its password: wrong password, or the file was \
                 changed"
            ),
            Error::DerError(_) => format!(
                "`{path}` is not a PKCS12 store (set its `ssl.*store.type`: PKCS12, JKS or PEM)"
            ),
            other => format!("`{path}` is not a PKCS12 store that can be read: {other}"),
        }
    })
}

fn sorted_aliases(store: &jks::KeyStore) -> Vec<String> {
    let mut aliases = store.aliases();
    aliases.sort();
    aliases
}

/// Java's client presents the key entry the broker's request selects; with no alias setting
/// in Kafka, a store for one client holds one.
fn one_key_alias(path: &str, aliases: Vec<String>) -> Result<String, String> {
    match aliases.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!("`{path}` holds no private key entry to present")),
        many => Err(format!(
            "`{path}` holds {} private key entries ({}): librdkafka presents one certificate, \
             so keep only the one of this client",
            many.len(),
            many.join(", ")
        )),
    }
}

fn der_to_pem(path: &str, der: &[u8]) -> Result<String, String> {
    X509::from_der(der)
        .and_then(|cert| cert.to_pem())
        .map_err(|_| format!("`{path}` holds a certificate that is not X.509"))
        .and_then(|pem| String::from_utf8(pem).map_err(|_| format!("`{path}`: not PEM text")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::rsa::Rsa;
    use openssl::x509::X509NameBuilder;
    use std::time::SystemTime;

    /// A self-signed certificate for `cn` and its key as PKCS#8 DER.
    fn certificate(cn: &str) -> (Vec<u8>, Vec<u8>) {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut cert = X509::builder().unwrap();
        cert.set_version(2).unwrap();
        cert.set_subject_name(&name).unwrap();
        cert.set_issuer_name(&name).unwrap();
        cert.set_pubkey(&key).unwrap();
        cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        cert.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        cert.sign(&key, MessageDigest::sha256()).unwrap();
        (
            cert.build().to_der().unwrap(),
            key.private_key_to_pkcs8().unwrap(),
        )
    }

    fn jks_certificate(der: &[u8]) -> jks::Certificate {
        jks::Certificate {
            cert_type: "X.509".into(),
            content: der.to_vec(),
        }
    }

    /// A JKS store with trusted `cas` and, if given, one key entry protected by `key_password`.
    fn jks_store(
        cas: &[&[u8]],
        key: Option<(&[u8], &[u8], &str)>,
        password: &str,
    ) -> tempfile::NamedTempFile {
        let mut store = jks::KeyStore::new();
        for (i, ca) in cas.iter().enumerate() {
            let entry = jks::TrustedCertificateEntry {
                creation_time: SystemTime::UNIX_EPOCH,
                certificate: jks_certificate(ca),
            };
            store
                .set_trusted_certificate_entry(&format!("ca{i}"), entry)
                .unwrap();
        }
        if let Some((cert, key, key_password)) = key {
            let entry = jks::PrivateKeyEntry {
                creation_time: SystemTime::UNIX_EPOCH,
                private_key: key.to_vec(),
                certificate_chain: vec![jks_certificate(cert)],
            };
            store
                .set_private_key_entry("client", entry, key_password.as_bytes())
                .unwrap();
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        store
            .store(file.reopen().unwrap(), password.as_bytes())
            .unwrap();
        file
    }

    fn pkcs12_store(
        cas: &[&[u8]],
        key: Option<(&[u8], &[u8])>,
        password: &str,
    ) -> tempfile::NamedTempFile {
        use p12_keystore::{Certificate, KeyStoreEntry, PrivateKey, PrivateKeyChain};
        let mut store = p12_keystore::KeyStore::new();
        for (i, ca) in cas.iter().enumerate() {
            let cert = Certificate::from_der(ca).unwrap();
            store.add_entry(&format!("ca{i}"), KeyStoreEntry::Certificate(cert));
        }
        if let Some((cert, key)) = key {
            let chain = PrivateKeyChain::new(
                vec![1u8; 20],
                PrivateKey::from_der(key).unwrap(),
                [Certificate::from_der(cert).unwrap()],
            );
            store.add_entry("client", KeyStoreEntry::PrivateKeyChain(chain));
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), store.writer(password).write().unwrap()).unwrap();
        file
    }

    fn path(file: &tempfile::NamedTempFile) -> String {
        file.path().display().to_string()
    }

    #[test]
    fn a_jks_truststore_gives_its_certificates_as_pem_with_or_without_its_password() {
        let (ca1, _) = certificate("ca-one");
        let (ca2, _) = certificate("ca-two");
        let (client, key) = certificate("client");
        let file = jks_store(&[&ca1, &ca2], Some((&client, &key, "keypass")), "storepass");
        let pem = trusted_certificates(&path(&file), StoreType::Jks, Some("storepass")).unwrap();
        assert_eq!(
            describe_certificates(&pem).unwrap(),
            "[3 certificate(s): CN=ca-one; CN=ca-two; CN=client]",
            "certificate entries, and the certificate of a key entry, as Java trusts them"
        );
        assert_eq!(
            trusted_certificates(&path(&file), StoreType::Jks, None).unwrap(),
            pem,
            "Java reads a store without its password, unchecked"
        );
        let wrong =
            trusted_certificates(&path(&file), StoreType::Jks, Some("nope-nope")).unwrap_err();
        assert!(wrong.contains("does not open with its password"), "{wrong}");
        assert!(!wrong.contains("nope-nope"), "{wrong}");
    }

    #[test]
    fn a_jks_keystore_gives_its_key_decrypted_with_the_key_password_or_the_stores() {
        let (client, key) = certificate("client");
        let separate = jks_store(&[], Some((&client, &key, "keypass")), "storepass");
        let pair = key_pair(
            &path(&separate),
            StoreType::Jks,
            Some("storepass"),
            Some("keypass"),
        )
        .unwrap();
        assert_eq!(
            describe_certificates(&pair.certificate_chain).unwrap(),
            "[1 certificate(s): CN=client]"
        );
        let decoded = PKey::private_key_from_pem(pair.private_key.as_bytes()).unwrap();
        assert_eq!(decoded.private_key_to_pkcs8().unwrap(), key);
        let err = key_pair(&path(&separate), StoreType::Jks, Some("storepass"), None)
            .err()
            .unwrap();
        assert!(err.contains("ssl.key.password"), "{err}");
        let same = jks_store(&[], Some((&client, &key, "storepass")), "storepass");
        assert!(key_pair(&path(&same), StoreType::Jks, Some("storepass"), None).is_ok());
    }

    #[test]
    fn pkcs12_stores_are_read_as_java_reads_them() {
        let (ca, _) = certificate("ca");
        let (client, key) = certificate("client");
        let truststore = pkcs12_store(&[&ca], None, "trustpass");
        let pem =
            trusted_certificates(&path(&truststore), StoreType::Pkcs12, Some("trustpass")).unwrap();
        assert_eq!(
            describe_certificates(&pem).unwrap(),
            "[1 certificate(s): CN=ca]"
        );
        let keystore = pkcs12_store(&[], Some((&client, &key)), "keypass1");
        let pair = key_pair(&path(&keystore), StoreType::Pkcs12, Some("keypass1"), None).unwrap();
        assert!(pair.private_key.starts_with("-----BEGIN PRIVATE KEY-----"));
        let wrong = key_pair(&path(&keystore), StoreType::Pkcs12, Some("wrong-1"), None)
            .err()
            .unwrap();
        assert!(wrong.contains("does not open"), "{wrong}");
    }

    #[test]
    fn stores_that_cannot_be_used_as_they_are_say_why() {
        let (ca, _) = certificate("ca");
        let (a, key_a) = certificate("a");
        let (b, key_b) = certificate("b");
        let jks = jks_store(&[&ca], None, "storepass");
        let p12 = pkcs12_store(&[&ca], None, "storepass");
        // As Java (`keystore.type.compat`): a store is read by its content.
        for (store, declared) in [(&jks, StoreType::Pkcs12), (&p12, StoreType::Jks)] {
            let pem = trusted_certificates(&path(store), declared, Some("storepass")).unwrap();
            assert_eq!(
                describe_certificates(&pem).unwrap(),
                "[1 certificate(s): CN=ca]"
            );
        }
        let text = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(text.path(), "-----BEGIN CERTIFICATE-----\n").unwrap();
        let err = trusted_certificates(&path(&text), StoreType::Jks, None).unwrap_err();
        assert!(err.contains("not a JKS store"), "{err}");
        let err = key_pair(&path(&jks), StoreType::Jks, Some("storepass"), None)
            .err()
            .unwrap();
        assert!(err.contains("no private key entry"), "{err}");
        let mut store = jks::KeyStore::new();
        for (alias, cert, key) in [("a", &a, &key_a), ("b", &b, &key_b)] {
            let entry = jks::PrivateKeyEntry {
                creation_time: SystemTime::UNIX_EPOCH,
                private_key: key.clone(),
                certificate_chain: vec![jks_certificate(cert)],
            };
            store
                .set_private_key_entry(alias, entry, b"storepass")
                .unwrap();
        }
        let two = tempfile::NamedTempFile::new().unwrap();
        store.store(two.reopen().unwrap(), b"storepass").unwrap();
        let err = key_pair(&path(&two), StoreType::Jks, Some("storepass"), None)
            .err()
            .unwrap();
        assert!(err.contains("2 private key entries (a, b)"), "{err}");
        let err = trusted_certificates("/nonexistent.jks", StoreType::Jks, None).unwrap_err();
        assert!(err.contains("cannot read `/nonexistent.jks`"), "{err}");
    }
}
