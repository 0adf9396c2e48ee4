//! How the shipper and the collector reach their NATS servers: who they
//! are (credentials) and whom they trust (TLS).

use std::path::{Path, PathBuf};

use async_nats::ConnectOptions;

/// Credentials and TLS for the connection to NATS, shared by
/// [`ShipperConfig`](crate::ShipperConfig) and
/// [`CollectorConfig`](crate::CollectorConfig).
///
/// Secrets are named by file and read when connecting, so they never sit
/// in a command line (which other users of the host can read) or in a
/// printed configuration. At most one way to authenticate is set:
///
/// | method | settings | server side |
/// |---|---|---|
/// | none | (default) | no `authorization` block |
/// | decentralised JWT | [`creds_file`](Self::creds_file): a `.creds` file (user JWT and NKey seed), as `nsc` writes it | operator mode |
/// | NKey | [`nkey_seed_file`](Self::nkey_seed_file): a file holding the seed (`SU...`) | `nkey: U...` |
/// | user and password | [`user`](Self::user) and [`password_file`](Self::password_file) | `user`, `password` |
/// | token | [`token_file`](Self::token_file) | `token` |
///
/// TLS: [`tls_ca_file`](Self::tls_ca_file) adds the certificates (PEM) that
/// may sign the server's; [`tls_client_cert`](Self::tls_client_cert) sends
/// a client certificate (mutual TLS, the server's `verify: true`);
/// [`require_tls`](Self::require_tls) refuses a connection the server
/// does not encrypt. Any TLS setting makes TLS required. Use `tls://` URLs
/// for servers that expect TLS.
///
/// # Examples
///
/// ```
/// use auditring_nats::{NatsConnection, ShipperConfig};
///
/// let connection = NatsConnection::default()
///     .creds_file("/etc/auditring/gw-1.creds")
///     .tls_ca_file("/etc/auditring/nats-ca.pem");
/// let config = ShipperConfig::new("tls://nats.example.net:4222", "/var/log/audit.jsonl", "gw-1")
///     .connection(connection);
/// assert!(config.connection.require_tls);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsConnection {
    /// A `.creds` file: a user JWT and its NKey seed.
    pub creds_file: Option<PathBuf>,
    /// A file holding an NKey seed.
    pub nkey_seed_file: Option<PathBuf>,
    /// A user name; its password is in [`password_file`](Self::password_file).
    pub user: Option<String>,
    /// A file holding the user's password.
    pub password_file: Option<PathBuf>,
    /// A file holding a token.
    pub token_file: Option<PathBuf>,
    /// Certificates (PEM) trusted to sign the server's certificate.
    pub tls_ca_file: Option<PathBuf>,
    /// A client certificate and its private key (PEM), for mutual TLS.
    pub tls_client_cert: Option<(PathBuf, PathBuf)>,
    /// Refuse a connection without TLS.
    pub require_tls: bool,
}

impl NatsConnection {
    /// Authenticates with a `.creds` file.
    pub fn creds_file(mut self, path: impl AsRef<Path>) -> Self {
        self.creds_file = Some(path.as_ref().to_owned());
        self
    }

    /// Authenticates with the NKey seed in a file.
    pub fn nkey_seed_file(mut self, path: impl AsRef<Path>) -> Self {
        self.nkey_seed_file = Some(path.as_ref().to_owned());
        self
    }

    /// Authenticates as `user`, with the password in a file.
    pub fn user(mut self, user: impl Into<String>, password_file: impl AsRef<Path>) -> Self {
        self.user = Some(user.into());
        self.password_file = Some(password_file.as_ref().to_owned());
        self
    }

    /// Authenticates with the token in a file.
    pub fn token_file(mut self, path: impl AsRef<Path>) -> Self {
        self.token_file = Some(path.as_ref().to_owned());
        self
    }

    /// Trusts the certificates in a PEM file to sign the server's
    /// certificate; requires TLS.
    pub fn tls_ca_file(mut self, path: impl AsRef<Path>) -> Self {
        self.tls_ca_file = Some(path.as_ref().to_owned());
        self.require_tls = true;
        self
    }

    /// Presents a client certificate (mutual TLS); requires TLS.
    pub fn tls_client_cert(mut self, cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        self.tls_client_cert = Some((cert.as_ref().to_owned(), key.as_ref().to_owned()));
        self.require_tls = true;
        self
    }

    /// Refuses a connection without TLS.
    pub fn require_tls(mut self, on: bool) -> Self {
        self.require_tls = on;
        self
    }

    /// Checks the settings and reads every file they name, as connecting
    /// will: one way to authenticate at most, a password with a user, and
    /// every file readable.
    ///
    /// # Errors
    ///
    /// A message naming the setting or file to fix.
    pub fn check(&self) -> Result<(), String> {
        self.options().map(drop)
    }

    /// The client's options: credentials read from their files, TLS set.
    pub(crate) fn options(&self) -> Result<ConnectOptions, String> {
        let methods = [
            self.creds_file.is_some(),
            self.nkey_seed_file.is_some(),
            self.user.is_some(),
            self.token_file.is_some(),
        ];
        if methods.iter().filter(|&&m| m).count() > 1 {
            return Err("more than one way to authenticate to NATS is set: give one of a creds file, an NKey seed file, a user with a password file, or a token file".into());
        }
        if self.user.is_some() != self.password_file.is_some() {
            return Err("a NATS user needs a password file, and a password file a user".into());
        }
        let options = if let Some(path) = &self.creds_file {
            let text = secret(path, "NATS creds file")?;
            ConnectOptions::with_credentials(&text).map_err(|e| {
                format!(
                    "{}: not a NATS creds file (a user JWT and an NKey seed, as nsc writes them): {e}",
                    path.display()
                )
            })?
        } else if let Some(path) = &self.nkey_seed_file {
            let seed = secret(path, "NKey seed file")?;
            let seed = seed.trim();
            if !seed.starts_with("SU") {
                return Err(format!(
                    "{}: not an NKey user seed (it starts with SU)",
                    path.display()
                ));
            }
            ConnectOptions::with_nkey(seed.to_owned())
        } else if let (Some(user), Some(path)) = (&self.user, &self.password_file) {
            let password = secret(path, "NATS password file")?;
            ConnectOptions::with_user_and_password(user.clone(), trim_newline(&password))
        } else if let Some(path) = &self.token_file {
            let token = secret(path, "NATS token file")?;
            ConnectOptions::with_token(trim_newline(&token))
        } else {
            ConnectOptions::new()
        };
        let mut options = options;
        if let Some(path) = &self.tls_ca_file {
            readable(path, "TLS CA file")?;
            options = options.add_root_certificates(path.clone());
        }
        if let Some((cert, key)) = &self.tls_client_cert {
            readable(cert, "TLS client certificate")?;
            readable(key, "TLS client key")?;
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        if self.require_tls || self.tls_ca_file.is_some() || self.tls_client_cert.is_some() {
            options = options.require_tls(true);
        }
        Ok(options)
    }
}

/// The text of a secret's file, or what to fix.
fn secret(path: &Path, what: &str) -> Result<String, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if text.trim().is_empty() {
        return Err(format!("{what} {} is empty", path.display()));
    }
    Ok(text)
}

fn readable(path: &Path, what: &str) -> Result<(), String> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// A secret as written by `echo` or an editor: without its final newline.
fn trim_newline(text: &str) -> String {
    text.strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(text)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("auditring-nats-conn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn settings_are_checked_with_what_to_fix() {
        assert!(NatsConnection::default().check().is_ok());
        let pw = file("pw", "s3cret\n");
        let token = file("token", "t0k3n");
        assert!(NatsConnection::default().user("u", &pw).check().is_ok());
        assert!(NatsConnection::default().token_file(&token).check().is_ok());

        let both = NatsConnection::default().user("u", &pw).token_file(&token);
        assert!(both.check().unwrap_err().contains("more than one way"));

        let no_password = NatsConnection {
            user: Some("u".into()),
            ..NatsConnection::default()
        };
        assert!(no_password.check().unwrap_err().contains("password file"));

        let missing = NatsConnection::default().token_file("/nonexistent/token");
        let e = missing.check().unwrap_err();
        assert!(e.contains("NATS token file /nonexistent/token"), "{e}");

        let empty = NatsConnection::default().token_file(file("empty", "\n"));
        assert!(empty.check().unwrap_err().contains("is empty"));

        let not_seed = NatsConnection::default().nkey_seed_file(file("seed", "UABC\n"));
        assert!(
            not_seed
                .check()
                .unwrap_err()
                .contains("not an NKey user seed")
        );

        let not_creds = NatsConnection::default().creds_file(file("creds", "hello\n"));
        assert!(
            not_creds
                .check()
                .unwrap_err()
                .contains("not a NATS creds file")
        );

        let ca = NatsConnection::default().tls_ca_file("/nonexistent/ca.pem");
        assert!(ca.require_tls);
        assert!(
            ca.check()
                .unwrap_err()
                .contains("TLS CA file /nonexistent/ca.pem")
        );
    }

    #[test]
    fn secrets_lose_only_their_final_newline() {
        assert_eq!(trim_newline("pw\n"), "pw");
        assert_eq!(trim_newline("pw\r\n"), "pw");
        assert_eq!(trim_newline(" pw "), " pw ");
        assert_eq!(trim_newline("pw\n\n"), "pw\n");
    }
}
