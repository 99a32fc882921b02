//! A test certificate authority, made with rcgen in a test's directory:
//! the CA, a server leaf for `localhost` and `127.0.0.1`, and client
//! leaves, each written as PEM files (ECDSA P-256 keys).
//!
//! The library's own unit tests (src/security/tls.rs) include this file
//! too: it may use only rcgen and std.
#![allow(dead_code)]

use rcgen::{
    CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair, date_time_ymd,
};
use std::path::{Path, PathBuf};

/// A certificate and its key on disk.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub struct Pki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate (PEM): what clients trust.
    pub ca_pem: PathBuf,
}

impl Pki {
    /// A new CA named `name`, written to `dir/NAME-ca.pem`.
    pub fn new(dir: &Path, name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("{name} test CA"));
        params.distinguished_name = dn;
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let ca_pem = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca_pem, ca.pem()).unwrap();
        Pki {
            dir: dir.to_path_buf(),
            ca,
            ca_pem,
        }
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    pub fn server(&self, file_stem: &str) -> Leaf {
        self.leaf(file_stem, "localhost", &["localhost", "127.0.0.1"], None)
    }

    /// A client certificate whose subject is `CN=<cn>,O=corelog`.
    pub fn client(&self, cn: &str) -> Leaf {
        self.leaf(cn, cn, &[], None)
    }

    /// A server certificate valid only from 2000 to 2001 (expired).
    pub fn expired_server(&self, file_stem: &str) -> Leaf {
        self.leaf(
            file_stem,
            "localhost",
            &["localhost", "127.0.0.1"],
            Some((2000, 2001)),
        )
    }

    fn leaf(
        &self,
        file_stem: &str,
        cn: &str,
        names: &[&str],
        validity: Option<(i32, i32)>,
    ) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let mut dn = DistinguishedName::new();
        // Most general first: printed (RFC 4514) as CN=…,O=corelog.
        dn.push(DnType::OrganizationName, "corelog");
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        if let Some((from, to)) = validity {
            params.not_before = date_time_ymd(from, 1, 1);
            params.not_after = date_time_ymd(to, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let leaf = Leaf {
            cert: self.dir.join(format!("{file_stem}.pem")),
            key: self.dir.join(format!("{file_stem}.key")),
        };
        std::fs::write(&leaf.cert, cert.pem()).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }
}
