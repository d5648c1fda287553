//! Who may use the HTTP side, decided per request: the `Host` it names (a browser tricked by
//! DNS rebinding names the attacker's host, never ours), the bearer token, and which records
//! may be browsed. Pure; [`super::http`] applies it.
//!
//! Invariant: the token is never shown (its `Debug` is redacted) and is compared in constant
//! time; a request is refused before any handler runs.

use std::net::IpAddr;

use subtle::ConstantTimeEq;

/// Paths anyone who reaches the port may use: probes, and the page itself (it holds no data,
/// and asks for the token when the API refuses it).
const OPEN_PATHS: [&str; 3] = ["/", "/healthz", "/readyz"];

/// A shared secret for `Authorization: Bearer ...`.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// The token of a token file: its first line, trimmed. `None` if that is empty.
    pub fn from_file_text(text: &str) -> Option<Self> {
        let token = text.lines().next().unwrap_or("").trim();
        (!token.is_empty()).then(|| Token(token.to_string()))
    }

    fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// The access rules of one HTTP server.
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    /// Required for everything but [`OPEN_PATHS`] when set.
    pub token: Option<Token>,
    /// Host names served besides IP addresses and `localhost` (lower case, no port); `*` for
    /// any.
    pub allowed_hosts: Vec<String>,
    /// Whether the records of replicated topics may be read (`--http-browse`).
    pub browse: bool,
}

/// Why a request is refused: its status and a message for the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 403: a name the server does not answer to.
    Host(String),
    /// 401: no token or a wrong one.
    Token,
}

impl Refusal {
    pub fn message(&self) -> String {
        match self {
            Refusal::Host(host) => format!(
                "the Host `{host}` is not served here (a protection against DNS rebinding): \
                 use the address, or start mirrorcast with --http-allow-host {host}"
            ),
            Refusal::Token => {
                "an access token is required: send `Authorization: Bearer <token>` (the content \
                 of the file given to --http-token-file)"
                    .to_string()
            }
        }
    }
}

impl AccessPolicy {
    /// Checks a request's `Host` header and `Authorization` header for `path`.
    pub fn check(
        &self,
        path: &str,
        host: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<(), Refusal> {
        if let Some(host) = host {
            if !self.host_allowed(host) {
                return Err(Refusal::Host(host.to_string()));
            }
        }
        let Some(token) = &self.token else {
            return Ok(());
        };
        if OPEN_PATHS.contains(&path) {
            return Ok(());
        }
        let presented = authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            Some(presented) if token.matches(presented) => Ok(()),
            _ => Err(Refusal::Token),
        }
    }

    /// An IP address or `localhost` is always served: a page from elsewhere cannot make a
    /// browser send either. A name must be allowed.
    fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        name.parse::<IpAddr>().is_ok()
            || name == "localhost"
            || self
                .allowed_hosts
                .iter()
                .any(|allowed| allowed == "*" || *allowed == name)
    }
}

/// The name of a `Host` header without its port: `[::1]:80` -> `::1`, `a:80` -> `a`.
fn host_name(host: &str) -> &str {
    if let Some(bracketed) = host.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or(bracketed);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(token: Option<&str>, allowed: &[&str]) -> AccessPolicy {
        AccessPolicy {
            token: token.and_then(Token::from_file_text),
            allowed_hosts: allowed.iter().map(|h| h.to_string()).collect(),
            browse: false,
        }
    }

    #[test]
    fn addresses_and_localhost_are_served_other_names_only_when_allowed() {
        let open = policy(None, &["mirrorcast.example"]);
        for host in [
            "127.0.0.1:9090",
            "[::1]:9090",
            "10.1.2.3",
            "localhost:9090",
            "LOCALHOST",
        ] {
            assert_eq!(
                open.check("/api/status", Some(host), None),
                Ok(()),
                "{host}"
            );
        }
        assert_eq!(
            open.check("/metrics", Some("MirrorCast.example:80"), None),
            Ok(())
        );
        assert_eq!(
            open.check("/healthz", Some("attacker.example:9090"), None),
            Err(Refusal::Host("attacker.example:9090".into()))
        );
        assert_eq!(
            open.check("/", None, None),
            Ok(()),
            "no Host: not a browser"
        );
        let any = policy(None, &["*"]);
        assert_eq!(any.check("/", Some("anything.example"), None), Ok(()));
    }

    #[test]
    fn a_token_guards_everything_but_the_probes_and_the_page() {
        let guarded = policy(Some("s3cret\n"), &[]);
        for path in ["/", "/healthz", "/readyz"] {
            assert_eq!(guarded.check(path, Some("127.0.0.1"), None), Ok(()));
        }
        for path in ["/metrics", "/api/status", "/api/regions"] {
            assert_eq!(
                guarded.check(path, Some("127.0.0.1"), None),
                Err(Refusal::Token)
            );
            assert_eq!(
                guarded.check(path, Some("127.0.0.1"), Some("Bearer wrong")),
                Err(Refusal::Token)
            );
            assert_eq!(
                guarded.check(path, Some("127.0.0.1"), Some("Basic s3cret")),
                Err(Refusal::Token)
            );
            assert_eq!(
                guarded.check(path, Some("127.0.0.1"), Some("Bearer s3cret")),
                Ok(())
            );
        }
    }

    #[test]
    fn the_token_is_never_shown_and_an_empty_file_is_no_token() {
        let token = Token::from_file_text("s3cret\n").unwrap();
        assert!(!format!("{token:?}").contains("s3cret"));
        assert!(!Refusal::Token.message().contains("s3cret"));
        assert!(Token::from_file_text("  \n").is_none());
        assert!(Token::from_file_text("").is_none());
    }
}
