//! Certificates for the TLS tests (OTLP export, NATS connections): a CA, a server certificate
//! for 127.0.0.1 and localhost signed by it, and a client certificate signed by it (mutual
//! TLS), as PEM files.
#![allow(dead_code)] // Not every test that includes this file uses all of it.

use std::path::{Path, PathBuf};

use nats_actors_suite::otlp::ReceiverTls;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};

/// The PEM files of one CA and what it signed.
pub struct Pki {
    /// The CA's certificate file.
    pub ca: PathBuf,
    /// The client certificate and its key.
    pub client_cert: PathBuf,
    /// The client key.
    pub client_key: PathBuf,
    /// The server's certificate and key, for the receiver.
    pub server: ReceiverTls,
    /// The same, as files (for nats-server).
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// The CA, PEM (to require client certificates signed by it).
    pub ca_pem: String,
}

/// A CA named `name` and the certificates it signs, written under `dir`.
pub fn pki(dir: &Path, name: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, name);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    let server = params.signed_by(&server_key, &ca, &ca_key).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "otlp exporter");
    let client = params.signed_by(&client_key, &ca, &ca_key).unwrap();
    let write = |file: &str, pem: String| {
        let path = dir.join(file);
        std::fs::write(&path, pem).unwrap();
        path
    };
    Pki {
        ca: write("ca.pem", ca.pem()),
        client_cert: write("client.pem", client.pem()),
        client_key: write("client-key.pem", client_key.serialize_pem()),
        server_cert: write("server.pem", server.pem()),
        server_key: write("server-key.pem", server_key.serialize_pem()),
        server: ReceiverTls {
            cert_pem: server.pem(),
            key_pem: server_key.serialize_pem(),
            client_ca_pem: None,
        },
        ca_pem: ca.pem(),
    }
}
