//! A Kerberos realm of its own for a test: an MIT KDC (Debian's `krb5-kdc`) run from a
//! temporary directory on a free 127.0.0.1 port, with the principals asked for and a keytab
//! for each. Nothing outside the directory is read or written: every Kerberos tool and client
//! is pointed at its files (`KRB5_CONFIG`, `KRB5_KDC_PROFILE`, Java's `java.security.krb5.conf`),
//! and the KDC is killed by PID when the handle is dropped.
//!
//! Host names are taken as written (no DNS, no reverse lookup), so the broker's service
//! principal is `kafka/127.0.0.1@REALM`, the name a client builds from the address it dials.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{cluster_error, free_port, send_signal, tail, Error, Result, Security};

/// The Kafka service principal's first part (Kafka's and librdkafka's default service name).
pub const KAFKA_SERVICE_NAME: &str = "kafka";

/// Where Debian puts the KDC's programs (`/usr/sbin` is often not on a user's PATH).
const SBIN: &str = "/usr/sbin";

/// How long the KDC may take to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running KDC and the files of its realm.
pub struct Kdc {
    realm: String,
    port: u16,
    child: Option<Child>,
    // Dropped after the KDC (field order): its database goes with it.
    temp: tempfile::TempDir,
}

impl Kdc {
    /// Creates the realm `realm` with `kafka/127.0.0.1` (the broker) and `clients` (names
    /// without the realm), writes a keytab for each, and starts the KDC.
    pub fn start(realm: &str, clients: &[&str]) -> Result<Kdc> {
        let temp = tempfile::Builder::new()
            .prefix("localcluster-kdc-")
            .tempdir()?;
        let port = free_port()?;
        let mut kdc = Kdc {
            realm: realm.to_string(),
            port,
            child: None,
            temp,
        };
        std::fs::write(kdc.krb5_conf(), kdc.krb5_conf_text())?;
        std::fs::write(kdc.kdc_conf(), kdc.kdc_conf_text())?;
        kdc.run(
            "kdb5_util",
            &["-r", realm, "-P", "local-master-key", "create", "-s"],
        )?;
        let broker = kdc.broker_principal();
        for name in std::iter::once(broker.as_str()).chain(clients.iter().copied()) {
            let principal = kdc.principal(name);
            kdc.admin(&format!("addprinc -randkey {principal}"))?;
            let keytab = kdc.keytab(name);
            kdc.admin(&format!("ktadd -k {} {principal}", keytab.display()))?;
        }
        let log = std::fs::File::create(kdc.dir().join("krb5kdc.out"))?;
        let child = kdc
            .command("krb5kdc")
            .args(["-n", "-r", realm])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| missing("krb5kdc", e))?;
        kdc.child = Some(child);
        kdc.wait_until_listening()?;
        Ok(kdc)
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// `name@REALM`.
    pub fn principal(&self, name: &str) -> String {
        format!("{name}@{}", self.realm)
    }

    /// The broker's principal name without the realm.
    pub fn broker_principal(&self) -> String {
        format!("{KAFKA_SERVICE_NAME}/127.0.0.1")
    }

    /// The keytab holding `name`'s keys (written when the realm was made).
    pub fn keytab(&self, name: &str) -> PathBuf {
        self.dir()
            .join(format!("{}.keytab", name.replace(['/', '@'], "_")))
    }

    /// The `krb5.conf` clients and brokers of this realm read.
    pub fn krb5_conf(&self) -> PathBuf {
        self.dir().join("krb5.conf")
    }

    /// What a Kafka node of this realm needs: its keytab and principal, and the realm's file.
    pub fn broker_security(&self) -> Security {
        let broker = self.broker_principal();
        Security::Kerberos {
            krb5_conf: self.krb5_conf(),
            keytab: self.keytab(&broker),
            principal: self.principal(&broker),
        }
    }

    /// The JVM options a Java client of this realm (genuine MM2) runs with: the realm's file,
    /// and no host names (an empty hosts file). Kafka's Java client names the service
    /// principal's host by reverse lookup of the address (127.0.0.1 → `localhost` here),
    /// librdkafka by the address as written; with no names both say `127.0.0.1`. (Brokers with
    /// real host names need neither.)
    pub fn java_client_options(&self) -> Result<Vec<String>> {
        let hosts = self.dir().join("no-hosts");
        std::fs::write(&hosts, "")?;
        Ok(vec![
            format!("-Djava.security.krb5.conf={}", self.krb5_conf().display()),
            format!("-Djdk.net.hosts.file={}", hosts.display()),
        ])
    }

    /// The environment a Kerberos client process of this realm runs with: the realm's file
    /// and a credential cache of its own in `dir` (not the user's `/tmp/krb5cc_<uid>`).
    pub fn client_env(&self, dir: &Path) -> Vec<(String, String)> {
        vec![
            (
                "KRB5_CONFIG".to_string(),
                self.krb5_conf().display().to_string(),
            ),
            (
                "KRB5CCNAME".to_string(),
                format!("FILE:{}", dir.join("krb5cc").display()),
            ),
        ]
    }

    /// The KDC's log, for a failing test to show.
    pub fn log(&self) -> String {
        tail(&self.dir().join("krb5kdc.log"))
    }

    fn dir(&self) -> &Path {
        self.temp.path()
    }

    fn kdc_conf(&self) -> PathBuf {
        self.dir().join("kdc.conf")
    }

    fn krb5_conf_text(&self) -> String {
        let Kdc { realm, port, .. } = self;
        // TCP only (udp_preference_limit = 1): the KDC listens on one TCP port. Renewable
        // tickets, which a ticket-cache login renews (`kinit -R`).
        format!(
            "[libdefaults]\n\
             \x20 default_realm = {realm}\n\
             \x20 dns_lookup_kdc = false\n\
             \x20 dns_lookup_realm = false\n\
             \x20 dns_canonicalize_hostname = false\n\
             \x20 rdns = false\n\
             \x20 udp_preference_limit = 1\n\
             \x20 renew_lifetime = 7d\n\
             [realms]\n\
             \x20 {realm} = {{\n\
             \x20   kdc = 127.0.0.1:{port}\n\
             \x20 }}\n\
             [domain_realm]\n\
             \x20 127.0.0.1 = {realm}\n"
        )
    }

    fn kdc_conf_text(&self) -> String {
        let Kdc { realm, port, .. } = self;
        let dir = self.dir().display();
        format!(
            "[kdcdefaults]\n\
             \x20 kdc_listen = 127.0.0.1:{port}\n\
             \x20 kdc_tcp_listen = 127.0.0.1:{port}\n\
             [realms]\n\
             \x20 {realm} = {{\n\
             \x20   database_name = {dir}/principal\n\
             \x20   key_stash_file = {dir}/stash\n\
             \x20   acl_file = {dir}/kadm5.acl\n\
             \x20   kdc_listen = 127.0.0.1:{port}\n\
             \x20   kdc_tcp_listen = 127.0.0.1:{port}\n\
             \x20   master_key_type = aes256-cts-hmac-sha1-96\n\
             \x20   max_renewable_life = 7d\n\
             \x20   supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal\n\
             \x20 }}\n\
             [logging]\n\
             \x20 kdc = FILE:{dir}/krb5kdc.log\n"
        )
    }

    /// A KDC program with this realm's files.
    fn command(&self, program: &str) -> Command {
        let in_sbin = Path::new(SBIN).join(program);
        let mut command = if in_sbin.is_file() {
            Command::new(in_sbin)
        } else {
            Command::new(program)
        };
        command
            .env("KRB5_CONFIG", self.krb5_conf())
            .env("KRB5_KDC_PROFILE", self.kdc_conf())
            .current_dir(self.dir());
        command
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<()> {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| missing(program, e))?;
        if !out.status.success() {
            return Err(cluster_error(
                &self.realm,
                &format!(
                    "`{program} {}` failed ({}): {}{}",
                    args.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            ));
        }
        Ok(())
    }

    fn admin(&self, query: &str) -> Result<()> {
        self.run("kadmin.local", &["-r", &self.realm, "-q", query])
    }

    fn wait_until_listening(&mut self) -> Result<()> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(cluster_error(
                    &self.realm,
                    &format!(
                        "krb5kdc exited with {status}: {}{}",
                        tail(&self.dir().join("krb5kdc.out")),
                        self.log()
                    ),
                ));
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(cluster_error(
                    &self.realm,
                    &format!("the KDC does not listen on {address}: {}", self.log()),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Kdc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal(&child, rustix::process::Signal::KILL);
            let _ = child.wait();
        }
    }
}

fn missing(program: &str, e: std::io::Error) -> Error {
    Error::Install(format!(
        "cannot run `{program}` ({e}): install Debian's krb5-kdc, krb5-admin-server and \
         krb5-user (`cargo xtask test` does)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_realm_hands_out_tickets_for_its_keytabs() {
        let kdc = Kdc::start("LOCAL.TEST", &["mirrorcast"]).unwrap();
        let cache = tempfile::tempdir().unwrap();
        let keytab = kdc.keytab("mirrorcast").display().to_string();
        let client = kdc.principal("mirrorcast");
        let broker = kdc.principal(&kdc.broker_principal());
        // A ticket from the keytab, then a service ticket for the broker, as a client's
        // GSSAPI login asks for.
        for (program, args) in [
            ("kinit", vec!["-t", &keytab, "-k", &client]),
            ("kvno", vec![broker.as_str()]),
        ] {
            let out = Command::new(program)
                .args(args)
                .envs(kdc.client_env(cache.path()))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{program}: {}{}",
                String::from_utf8_lossy(&out.stderr),
                kdc.log()
            );
        }
    }
}
