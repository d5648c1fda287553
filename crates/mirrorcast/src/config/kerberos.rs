//! SASL/GSSAPI (Kerberos) logins as MM2 files write them, mapped to librdkafka's.
//!
//! Java logs in with a JAAS `Krb5LoginModule` line (a keytab and principal, or the ticket cache
//! another program fills) and `sasl.kerberos.*` keys. librdkafka logs in through Cyrus SASL's
//! GSSAPI plugin, which reads the process's credential cache, and fills that cache itself by
//! running `sasl.kerberos.kinit.cmd` through a shell at start and every
//! `sasl.kerberos.min.time.before.relogin`. So a keytab login becomes a kinit command that
//! takes a ticket with the keytab, and a ticket-cache login one that renews the cache's ticket
//! (`kinit -R`, as Java's login thread does for it). One credential cache serves the whole
//! process, so every login of one process must be the same principal's.
//!
//! Invariant: every value that reaches that shell command (principal, keytab, kinit path) is
//! checked to be inert there, and librdkafka's own names for them are refused; anything Java
//! would do that librdkafka cannot is refused with the reason, never dropped.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use super::client::{ClientSettings, Mapped, Setting};

/// What a Krb5LoginModule line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Login {
    /// Keys from a keytab: librdkafka runs kinit with them.
    Keytab { keytab: String, principal: String },
    /// Tickets another program keeps in the credential cache.
    TicketCache { principal: Option<String> },
}

/// Whether this build's librdkafka has the GSSAPI mechanism (Cyrus SASL).
pub fn gssapi_built_in() -> bool {
    static BUILT_IN: OnceLock<bool> = OnceLock::new();
    *BUILT_IN.get_or_init(|| {
        rdkafka::ClientConfig::new()
            .create_native_config()
            .and_then(|config| config.get("builtin.features"))
            .is_ok_and(|features| features.split(',').any(|f| f.trim() == "sasl_gssapi"))
    })
}

/// The refusal of a GSSAPI login by a build without it, with how to get one.
pub fn without_gssapi() -> String {
    "SASL/GSSAPI (Kerberos): this mirrorcast was built without it; build it with `cargo build \
     --release --features kerberos` (needs Debian's libsasl2-dev and pkg-config; to run, \
     libsasl2-modules-gssapi-mit and krb5-user's kinit)"
        .to_string()
}

/// Whether a client with these Java settings logs in with GSSAPI: Java's (and librdkafka's)
/// mechanism when a SASL protocol names none.
pub fn uses_gssapi(all: &BTreeMap<String, String>) -> bool {
    let sasl = all
        .get("security.protocol")
        .is_some_and(|p| p.trim().to_ascii_uppercase().starts_with("SASL_"));
    let mechanism = all
        .get("sasl.mechanism")
        .or_else(|| all.get("sasl.mechanisms"))
        .map(|m| m.trim().to_ascii_uppercase());
    match mechanism {
        Some(m) => m == "GSSAPI",
        None => sasl,
    }
}

/// A `Krb5LoginModule` line's options as librdkafka settings.
pub fn map_login(
    options: &[(String, String)],
    all: &BTreeMap<String, String>,
) -> Result<Mapped, String> {
    if !uses_gssapi(all) {
        return Err(
            "a Krb5LoginModule login is for `sasl.mechanism = GSSAPI` (Kafka's default SASL \
             mechanism), but another mechanism is set"
                .into(),
        );
    }
    if !gssapi_built_in() {
        return Err(without_gssapi());
    }
    let mut mapped = Vec::new();
    if let Some(service) = service_name(options, all)? {
        mapped.push(("sasl.kerberos.service.name".to_string(), service));
    }
    let login = login(options)?;
    let kinit = all
        .get("sasl.kerberos.kinit.cmd")
        .map(String::as_str)
        .unwrap_or("kinit");
    mapped.push((
        "sasl.kerberos.kinit.cmd".into(),
        kinit_command(kinit, &login)?,
    ));
    if let Some(problem) = missing_program(kinit.trim()) {
        return Err(problem);
    }
    match login {
        Login::Keytab { keytab, principal } => {
            mapped.push(("sasl.kerberos.keytab".into(), keytab));
            mapped.push(("sasl.kerberos.principal".into(), principal));
        }
        Login::TicketCache { principal } => {
            if let Some(principal) = principal {
                mapped.push(("sasl.kerberos.principal".into(), principal));
            }
        }
    }
    Ok(Mapped::Set(mapped))
}

/// The `sasl.kerberos.*` keys of a Java client (`None`: not one of them).
pub fn map_setting(key: &str, value: &str) -> Option<Result<Mapped, String>> {
    let mapped = match key {
        // The same name in librdkafka (its default, `kafka`, is what Java needs spelled out).
        "sasl.kerberos.service.name" => Ok(Mapped::Set(vec![(key.into(), value.trim().into())])),
        // Java's is the path of kinit, librdkafka's the whole command: the login line's
        // mapping makes that command with this path.
        "sasl.kerberos.kinit.cmd" => {
            kinit_command(value, &Login::TicketCache { principal: None }).map(|_| Mapped::Nothing)
        }
        // librdkafka's names, which no Java client has: their values would reach kinit's
        // shell command unchecked.
        "sasl.kerberos.principal" | "sasl.kerberos.keytab" => Err(
            "librdkafka's key, not the Java client's: write the login as Java does, \
             `sasl.jaas.config = com.sun.security.auth.module.Krb5LoginModule required \
             useKeyTab=true keyTab=\"...\" principal=\"...\";`"
                .into(),
        ),
        "sasl.kerberos.min.time.before.relogin" => match value.trim().parse::<u64>() {
            Ok(0) => Err(
                "0 makes librdkafka never run kinit (Java: refresh without waiting): use a \
                 number of milliseconds above 0, or remove the key (1 minute)"
                    .into(),
            ),
            Ok(_) => Ok(Mapped::Set(vec![(key.into(), value.trim().into())])),
            Err(_) => Err(format!("`{value}` is not a number of milliseconds")),
        },
        // When Java's login thread renews within a ticket's life; librdkafka runs kinit every
        // `min.time.before.relogin` instead (1 minute), well inside any renew window.
        "sasl.kerberos.ticket.renew.window.factor" | "sasl.kerberos.ticket.renew.jitter" => {
            Ok(Mapped::Nothing)
        }
        _ => return None,
    };
    Some(mapped)
}

/// librdkafka's kinit command for `login`, run by a shell: `kinit` is Java's path of the
/// program. librdkafka fills in the keytab and principal, checked inert in [`login`].
fn kinit_command(kinit: &str, login: &Login) -> Result<String, String> {
    let kinit = kinit.trim();
    if kinit.is_empty()
        || !kinit
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    {
        return Err(format!(
            "`sasl.kerberos.kinit.cmd` is the path of kinit (as Java reads it), and `{kinit}` \
             is not a plain path: librdkafka runs it through a shell"
        ));
    }
    Ok(match login {
        // Acquire, never renew: the keytab gives a fresh ticket, and a renewal of an empty
        // cache would only log an error.
        Login::Keytab { .. } => {
            format!("{kinit} -t \"%{{sasl.kerberos.keytab}}\" -k %{{sasl.kerberos.principal}}")
        }
        // What Java's login thread runs for a ticket-cache login.
        Login::TicketCache { .. } => format!("{kinit} -R"),
    })
}

/// Why `program` (a path, or a name looked up on PATH) cannot run, if it cannot: librdkafka
/// would only log a failed refresh every minute.
fn missing_program(program: &str) -> Option<String> {
    let found = if program.contains('/') {
        Path::new(program).is_file()
    } else {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
    };
    (!found).then(|| {
        format!(
            "`{program}` is not found: librdkafka takes Kerberos tickets by running kinit \
             (Debian's krb5-user)"
        )
    })
}

/// The clients whose Kerberos login differs from the first one's, with why that cannot be:
/// one process has one credential cache, which librdkafka's kinit fills for every client.
pub fn other_identities<'a>(
    clients: impl Iterator<Item = &'a ClientSettings>,
) -> Vec<(&'a Setting, String)> {
    let mut first: Option<(Option<&str>, Option<&str>, &str)> = None;
    let mut others: Vec<(&Setting, String)> = Vec::new();
    for client in clients {
        let Some(kinit) = client.setting("sasl.kerberos.kinit.cmd") else {
            continue;
        };
        let identity = (
            client.get("sasl.kerberos.principal"),
            client.get("sasl.kerberos.keytab"),
            kinit.value.as_str(),
        );
        match first {
            None => first = Some(identity),
            Some(seen) if seen == identity => {}
            Some((principal, ..)) => {
                if others.iter().all(|(s, _)| s.origin != kinit.origin) {
                    others.push((
                        kinit,
                        format!(
                            "this Kerberos login differs from another of the file's (principal \
                             `{}`): every client of one mirrorcast process shares one \
                             credential cache (librdkafka's kinit fills KRB5CCNAME), so all \
                             must log in as one principal; run one process per principal",
                            principal.unwrap_or("of the ticket cache")
                        ),
                    ));
                }
            }
        }
    }
    others
}

/// The service name from the login's `serviceName` option or `sasl.kerberos.service.name`;
/// Kafka refuses a conflict, and a login with neither.
fn service_name(
    options: &[(String, String)],
    all: &BTreeMap<String, String>,
) -> Result<Option<String>, String> {
    let in_login = option(options, "serviceName");
    let in_key = all.get("sasl.kerberos.service.name").map(|s| s.trim());
    match (in_login, in_key) {
        (Some(login), Some(key)) if login != key => Err(format!(
            "the login's serviceName `{login}` and `sasl.kerberos.service.name` `{key}` \
             differ, which Kafka refuses too: keep one"
        )),
        (Some(login), _) => Ok(Some(login.to_string())),
        // Set by its own key.
        (None, Some(_)) => Ok(None),
        (None, None) => Err(
            "a GSSAPI login needs the broker's service name, as Kafka does: set \
             `sasl.kerberos.service.name` (usually `kafka`)"
                .into(),
        ),
    }
}

fn option<'a>(options: &'a [(String, String)], name: &str) -> Option<&'a str> {
    options
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The JDK's Kerberos login module (IBM's takes other options, and is not mapped).
pub fn is_krb5_module(module: &str) -> bool {
    module == "com.sun.security.auth.module.Krb5LoginModule"
}

fn flag(options: &[(String, String)], name: &str) -> bool {
    option(options, name).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

fn login(options: &[(String, String)]) -> Result<Login, String> {
    for (name, value) in options {
        match name.as_str() {
            "useKeyTab" | "useTicketCache" | "storeKey" | "doNotPrompt" | "debug" | "renewTGT"
            | "refreshKrb5Config" | "keyTab" | "principal" | "serviceName" => {}
            "isInitiator" if value.trim().eq_ignore_ascii_case("true") => {}
            "isInitiator" => {
                return Err("`isInitiator=false` is a server's login; a client initiates".into())
            }
            "ticketCache" => {
                return Err(
                    "librdkafka reads the credential cache the environment names: remove \
                     `ticketCache` and start mirrorcast with KRB5CCNAME set to that cache"
                        .into(),
                )
            }
            other => {
                return Err(format!(
                    "the Krb5LoginModule option `{}` has no librdkafka counterpart (it takes \
                     useKeyTab, keyTab, principal, useTicketCache, serviceName)",
                    if other.chars().all(|c| c.is_ascii_alphanumeric()) {
                        other
                    } else {
                        "(not shown)"
                    }
                ))
            }
        }
    }
    let principal = option(options, "principal").map(str::trim);
    if let Some(principal) = principal {
        if principal == "*" {
            return Err("`principal=\"*\"` is a server's login (any key of the keytab)".into());
        }
        if principal.is_empty()
            || principal.starts_with('-')
            || !principal
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._/@-".contains(c))
        {
            return Err(format!(
                "the principal `{principal}` has characters librdkafka's kinit command (run by \
                 a shell) cannot carry: letters, digits and `._/@-` only, not first `-`"
            ));
        }
    }
    if flag(options, "useKeyTab") {
        let keytab = option(options, "keyTab").map(str::trim).unwrap_or_default();
        if keytab.is_empty() {
            return Err("`useKeyTab=true` without `keyTab=\"...\"` (the keytab's path)".into());
        }
        if keytab.contains(['"', '$', '`', '\\', '\n']) {
            return Err(format!(
                "the keytab path `{keytab}` has a character librdkafka's kinit command (run by \
                 a shell) cannot carry in quotes: `\"`, `$`, backquote or backslash"
            ));
        }
        let Some(principal) = principal else {
            return Err(
                "`useKeyTab=true` needs `principal=\"...\"`: kinit takes the keys of that \
                 principal from the keytab"
                    .into(),
            );
        };
        return Ok(Login::Keytab {
            keytab: keytab.to_string(),
            principal: principal.to_string(),
        });
    }
    if flag(options, "useTicketCache") {
        return Ok(Login::TicketCache {
            principal: principal.map(str::to_string),
        });
    }
    Err(
        "a Krb5LoginModule login with neither `useKeyTab=true` nor `useTicketCache=true` asks \
         for a password at a prompt, which a replicator cannot answer"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn java(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn options(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_keytab_login_and_a_ticket_cache_login() {
        let keytab = options(&[
            ("useKeyTab", "true"),
            ("storeKey", "true"),
            ("keyTab", "/etc/security/keytabs/mm2.keytab"),
            ("principal", "mm2/host.example.com@EXAMPLE.COM"),
        ]);
        assert_eq!(
            login(&keytab),
            Ok(Login::Keytab {
                keytab: "/etc/security/keytabs/mm2.keytab".into(),
                principal: "mm2/host.example.com@EXAMPLE.COM".into(),
            })
        );
        let cache = options(&[("useTicketCache", "true")]);
        assert_eq!(login(&cache), Ok(Login::TicketCache { principal: None }));
        let prompt = options(&[("storeKey", "true")]);
        assert!(login(&prompt).unwrap_err().contains("prompt"));
    }

    #[test]
    fn what_a_shell_or_librdkafka_cannot_carry_is_refused() {
        for (option, value, says) in [
            ("principal", "mm2@EXAMPLE.COM; rm -rf /", "characters"),
            ("principal", "*", "server"),
            ("keyTab", "/keytabs/$(id).keytab", "keytab path"),
            ("isInitiator", "false", "server"),
            ("ticketCache", "/tmp/cache", "KRB5CCNAME"),
            ("clearPass", "true", "clearPass"),
        ] {
            let mut login_options = options(&[
                ("useKeyTab", "true"),
                ("keyTab", "/k.keytab"),
                ("principal", "mm2@EXAMPLE.COM"),
            ]);
            login_options.retain(|(k, _)| k != option);
            login_options.push((option.into(), value.into()));
            let err = login(&login_options).unwrap_err();
            assert!(err.contains(says), "{option}={value}: {err}");
        }
        let keytab = Login::Keytab {
            keytab: "/k.keytab".into(),
            principal: "mm2@EXAMPLE.COM".into(),
        };
        assert!(kinit_command("/usr/bin/kinit; true", &keytab).is_err());
        assert_eq!(
            kinit_command("/usr/bin/kinit", &keytab).unwrap(),
            "/usr/bin/kinit -t \"%{sasl.kerberos.keytab}\" -k %{sasl.kerberos.principal}"
        );
        // A ticket-cache login renews the cache's ticket, as Java's login thread does.
        assert_eq!(
            kinit_command("kinit", &Login::TicketCache { principal: None }).unwrap(),
            "kinit -R"
        );
        let leading_dash = options(&[("useTicketCache", "true"), ("principal", "-c/tmp/x")]);
        assert!(login(&leading_dash).is_err());
    }

    #[test]
    fn the_service_name_comes_from_the_login_or_the_key_as_kafka_takes_it() {
        let with = options(&[("serviceName", "kafka")]);
        let key = java(&[("sasl.kerberos.service.name", "kafka")]);
        assert_eq!(
            service_name(&with, &BTreeMap::new()),
            Ok(Some("kafka".into()))
        );
        assert_eq!(service_name(&[], &key), Ok(None));
        assert!(service_name(&[], &BTreeMap::new())
            .unwrap_err()
            .contains("sasl.kerberos.service.name"));
        let other = options(&[("serviceName", "kafka-eu")]);
        assert!(service_name(&other, &key).unwrap_err().contains("differ"));
    }

    #[test]
    fn gssapi_is_the_mechanism_a_sasl_protocol_without_one_uses() {
        assert!(uses_gssapi(&java(&[("security.protocol", "SASL_SSL")])));
        assert!(uses_gssapi(&java(&[("sasl.mechanism", "GSSAPI")])));
        assert!(!uses_gssapi(&java(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
        ])));
        assert!(!uses_gssapi(&java(&[("security.protocol", "SSL")])));
    }

    #[test]
    fn java_keys_are_checked_and_librdkafkas_own_names_refused() {
        let relogin = "sasl.kerberos.min.time.before.relogin";
        assert_eq!(
            map_setting(relogin, "30000"),
            Some(Ok(Mapped::Set(vec![(relogin.into(), "30000".into())])))
        );
        assert!(map_setting(relogin, "0").unwrap().is_err());
        let kinit = "sasl.kerberos.kinit.cmd";
        assert_eq!(
            map_setting(kinit, "/opt/krb5/bin/kinit"),
            Some(Ok(Mapped::Nothing))
        );
        assert!(map_setting(kinit, "kinit && true").unwrap().is_err());
        for key in ["sasl.kerberos.principal", "sasl.kerberos.keytab"] {
            assert!(map_setting(key, "$(id)")
                .unwrap()
                .unwrap_err()
                .contains("Krb5LoginModule"));
        }
        assert_eq!(map_setting("sasl.kerberos.other", "x"), None);
        assert!(missing_program("kinit-that-is-not-there").is_some());
        assert!(missing_program("/bin/sh").is_none());
    }

    #[test]
    fn one_process_logs_in_as_one_principal() {
        let client = |principal: &str, line: usize| {
            let mut settings = ClientSettings::default();
            for (key, value) in [
                ("sasl.kerberos.principal", principal),
                ("sasl.kerberos.keytab", "/k.keytab"),
                ("sasl.kerberos.kinit.cmd", "kinit -t ..."),
            ] {
                let setting = Setting {
                    value: value.into(),
                    origin: format!("{principal}.sasl.jaas.config"),
                    line: Some(line),
                    reference: None,
                };
                settings.set(key, setting);
            }
            settings
        };
        let same = [client("mm2@A", 1), client("mm2@A", 2)];
        assert!(other_identities(same.iter()).is_empty());
        let two = [client("mm2@A", 1), client("mm2@B", 2), client("mm2@B", 3)];
        let others = other_identities(two.iter());
        assert_eq!(others.len(), 1, "said once per key");
        assert_eq!(others[0].0.origin, "mm2@B.sasl.jaas.config");
        assert!(others[0].1.contains("one principal"), "{}", others[0].1);
    }
}
