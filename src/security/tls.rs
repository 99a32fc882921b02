//! TLS for listeners and for corelog's own clients, on rustls with the
//! ring provider. A listener's server configuration can be swapped while
//! it runs (certificate reload on SIGHUP): every new handshake takes the
//! current one; connections already established keep theirs.

use super::Principal;
use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Whether a TLS listener asks for client certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    None,
    /// A certificate is asked for and checked if sent; one is not needed.
    Requested,
    /// A certificate signed by the client CA is needed (mutual TLS).
    Required,
}

/// Where a TLS listener's certificate, key and client CA come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the server certificate first, then its chain.
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM: the CAs client certificates must chain to (mutual TLS).
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

impl TlsFiles {
    /// For logs and the admin API: paths only, never key material.
    pub fn describe(&self) -> String {
        let mut s = format!("cert={} key={}", self.cert.display(), self.key.display());
        if let Some(ca) = &self.client_ca {
            s.push_str(&format!(" client_ca={}", ca.display()));
        }
        s
    }
}

/// The crypto every configuration is built with (never a process-wide
/// default that another library might set).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS listener's server side: its files and the configuration new
/// handshakes use.
pub struct TlsServer {
    files: TlsFiles,
    current: ArcSwap<ServerConfig>,
    /// The certificate in service, for the reload log line.
    summary: ArcSwap<String>,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl TlsServer {
    /// Loads the files; an error names the file and what is wrong with it.
    pub fn load(files: TlsFiles) -> Result<TlsServer, String> {
        let (config, summary) = build_server_config(&files)?;
        Ok(TlsServer {
            files,
            current: ArcSwap::from_pointee(config),
            summary: ArcSwap::from_pointee(summary),
        })
    }

    /// The configuration for the next handshake.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The certificate in service: subject, serial and expiry.
    pub fn summary(&self) -> String {
        self.summary.load().to_string()
    }

    /// Reads the files again and, if they make a valid configuration,
    /// swaps it in for new handshakes; otherwise keeps the old one and
    /// says why. Returns the new certificate's summary.
    pub fn reload(&self) -> Result<String, String> {
        let (config, summary) = build_server_config(&self.files)?;
        self.current.store(Arc::new(config));
        self.summary.store(Arc::new(summary.clone()));
        Ok(summary)
    }
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{what} {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {}: no PEM certificate in the file",
            path.display()
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        format!(
            "TLS key {}: {e} (a PEM private key is expected: PKCS#8, PKCS#1 or SEC1)",
            path.display()
        )
    })
}

fn roots(path: &Path, what: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path, what)? {
        roots
            .add(cert)
            .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    }
    Ok(roots)
}

fn build_server_config(files: &TlsFiles) -> Result<(ServerConfig, String), String> {
    let chain = read_certs(&files.cert, "TLS certificate")?;
    let key = read_key(&files.key)?;
    let summary = describe_cert(&chain[0]);
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match (&files.client_ca, files.client_auth) {
        (_, ClientAuth::None) => builder.with_no_client_auth(),
        (None, _) => {
            return Err("TLS: client certificates are asked for but no client CA is given (--tls-client-ca)".into());
        }
        (Some(ca), auth) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(ca, "TLS client CA")?),
                provider(),
            );
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| format!("TLS client CA {}: {e}", ca.display()))?,
            )
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        format!(
            "TLS certificate {} and key {}: {e}",
            files.cert.display(),
            files.key.display()
        )
    })?;
    // Kafka clients hold long-lived connections: resumption gains little,
    // and the default session cache is one lock shared by every shard.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok((config, summary))
}

/// `subject=CN=… serial=… not_after=…` of a certificate, for logs.
pub fn describe_cert(cert: &CertificateDer<'_>) -> String {
    use x509_cert::der::Decode;
    match x509_cert::Certificate::from_der(cert.as_ref()) {
        Ok(c) => {
            let tbs = &c.tbs_certificate;
            let serial: String = tbs
                .serial_number
                .as_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!(
                "subject={} serial={} not_after={}",
                tbs.subject, serial, tbs.validity.not_after
            )
        }
        Err(e) => format!("(certificate not parsed: {e})"),
    }
}

/// The principal of a client certificate under mutual TLS: `User:` and its
/// subject in RFC 4514 form (`User:CN=alice,O=corp`), as Kafka's default
/// principal mapping gives.
pub fn principal_from_cert(cert: &CertificateDer<'_>) -> Option<Principal> {
    use x509_cert::der::Decode;
    let c = x509_cert::Certificate::from_der(cert.as_ref()).ok()?;
    Some(Principal(format!("User:{}", c.tbs_certificate.subject)))
}

/// A corelog client's TLS settings: the CA to trust and, for mutual TLS,
/// its own certificate and key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Builds a client configuration from `files`.
pub fn client_config(files: &ClientTlsFiles) -> Result<Arc<ClientConfig>, String> {
    let Some(ca) = &files.ca else {
        return Err("TLS: a CA to trust is needed (--tls-ca FILE)".into());
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots(ca, "TLS CA")?);
    let config = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(read_certs(cert, "TLS client certificate")?, read_key(key)?)
            .map_err(|e| format!("TLS client certificate {}: {e}", cert.display()))?,
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err("TLS: a client certificate needs its key and a key its certificate".into());
        }
    };
    Ok(Arc::new(config))
}

/// The name a client checks the server's certificate against: an IP
/// address for an address, a DNS name otherwise.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string()).map_err(|e| format!("TLS server name {host:?}: {e}"))
}

/// The integration tests' certificate authority (tests/common/pki.rs),
/// so that these tests make their certificates as those do.
#[cfg(test)]
#[path = "../../tests/common/pki.rs"]
mod test_pki;

#[cfg(test)]
mod tests {
    use super::test_pki::{Leaf, Pki};
    use super::*;

    fn files(leaf: &Leaf) -> TlsFiles {
        TlsFiles {
            cert: leaf.cert.clone(),
            key: leaf.key.clone(),
            client_ca: None,
            client_auth: ClientAuth::None,
        }
    }

    #[test]
    fn a_certificate_and_its_key_load_and_a_mismatched_pair_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path(), "test");
        let (one, two) = (pki.client("one"), pki.client("two"));
        let server = TlsServer::load(files(&one)).unwrap();
        assert!(
            server.summary().contains("subject=CN=one,O=corelog"),
            "{}",
            server.summary()
        );
        let mismatched = Leaf {
            cert: one.cert.clone(),
            key: two.key,
        };
        let err = TlsServer::load(files(&mismatched)).unwrap_err();
        assert!(err.contains("one.pem") && err.contains("two.key"), "{err}");
        let absent = Leaf {
            cert: dir.path().join("absent.pem"),
            key: dir.path().join("x"),
        };
        let err = TlsServer::load(files(&absent)).unwrap_err();
        assert!(err.contains("absent.pem"), "{err}");
    }

    #[test]
    fn reload_swaps_the_certificate_and_a_broken_file_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path(), "test");
        let first = pki.client("first");
        let server = TlsServer::load(files(&first)).unwrap();
        let before = server.config();
        let second = pki.client("second");
        std::fs::copy(&second.cert, &first.cert).unwrap();
        std::fs::copy(&second.key, &first.key).unwrap();
        let summary = server.reload().unwrap();
        assert!(summary.contains("CN=second"), "{summary}");
        assert!(!Arc::ptr_eq(&before, &server.config()));
        std::fs::write(&first.cert, "not a certificate").unwrap();
        assert!(server.reload().is_err());
        assert!(server.summary().contains("CN=second"));
    }

    #[test]
    fn a_client_certificate_gives_a_principal_named_by_its_subject() {
        let dir = tempfile::tempdir().unwrap();
        let alice = Pki::new(dir.path(), "test").client("alice");
        let cert = CertificateDer::pem_file_iter(&alice.cert)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(
            principal_from_cert(&cert).unwrap(),
            Principal("User:CN=alice,O=corelog".into())
        );
    }

    #[test]
    fn mutual_tls_without_a_client_ca_is_a_configuration_error() {
        let dir = tempfile::tempdir().unwrap();
        let srv = Pki::new(dir.path(), "test").server("srv");
        let mut f = files(&srv);
        f.client_auth = ClientAuth::Required;
        assert!(TlsServer::load(f).unwrap_err().contains("--tls-client-ca"));
    }
}
