//! TLS to the collector, from the standard environment: rustls with the ring provider (as
//! async-nats), the platform's trusted roots plus `OTEL_EXPORTER_OTLP_[signal_]CERTIFICATE`,
//! and a client certificate (`_CLIENT_CERTIFICATE` and `_CLIENT_KEY`) for mutual TLS.
//!
//! The files are read and parsed once, when telemetry is set up: one that cannot be read or
//! parsed is an error then, not an export that fails later.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What the environment says about TLS for one signal, its files read and checked.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tls {
    /// `OTEL_EXPORTER_OTLP_[signal_]CERTIFICATE`: CAs trusted besides the platform's, as PEM.
    ca_pem: Option<Vec<u8>>,
    /// The same CAs, parsed.
    ca: Vec<CertificateDer<'static>>,
    /// The client certificate chain and key, for mutual TLS.
    identity: Option<Identity>,
}

#[derive(Clone, Debug)]
struct Identity {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

/// `OTEL_EXPORTER_OTLP_{signal}_{name}`, else `OTEL_EXPORTER_OTLP_{name}`: the variable that is
/// set and its value.
fn env_var(signal: &str, name: &str) -> Option<(String, String)> {
    [
        format!("OTEL_EXPORTER_OTLP_{signal}_{name}"),
        format!("OTEL_EXPORTER_OTLP_{name}"),
    ]
    .into_iter()
    .find_map(|k| {
        let v = std::env::var(&k).ok()?;
        let v = v.trim().to_string();
        (!v.is_empty()).then_some((k, v))
    })
}

/// The contents of the file variable `var` names.
fn read(var: &str, path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{var}: cannot read `{path}`: {e}"))
}

/// The certificates of a PEM file; at least one.
fn certificates(var: &str, path: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{var}: `{path}` is not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{var}: `{path}` holds no PEM certificate"));
    }
    Ok(certs)
}

impl Tls {
    /// The TLS settings of `signal` (`TRACES`, `METRICS`): the files the environment names, read
    /// and parsed. An error names the variable and the file.
    pub(crate) fn from_env(signal: &str) -> Result<Self, String> {
        let mut tls = Self::default();
        if let Some((var, path)) = env_var(signal, "CERTIFICATE") {
            let pem = read(&var, &path)?;
            tls.ca = certificates(&var, &path, &pem)?;
            tls.ca_pem = Some(pem);
        }
        match (
            env_var(signal, "CLIENT_CERTIFICATE"),
            env_var(signal, "CLIENT_KEY"),
        ) {
            (None, None) => {}
            (Some((var, _)), None) | (None, Some((var, _))) => {
                return Err(format!(
                    "{var} is set without its pair: mutual TLS needs both \
                     OTEL_EXPORTER_OTLP_[{signal}_]CLIENT_CERTIFICATE and _CLIENT_KEY"
                ));
            }
            (Some((cert_var, cert_path)), Some((key_var, key_path))) => {
                let cert_pem = read(&cert_var, &cert_path)?;
                let chain = certificates(&cert_var, &cert_path, &cert_pem)?;
                let key_pem = read(&key_var, &key_path)?;
                let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                    format!("{key_var}: `{key_path}` is not a PEM private key: {e}")
                })?;
                tls.identity = Some(Identity {
                    cert_pem,
                    key_pem,
                    chain,
                    key: Arc::new(key),
                });
            }
        }
        Ok(tls)
    }

    /// A rustls client configuration on the ring provider: the platform's roots and the extra
    /// CAs, the client certificate when there is one. `secure: false` (a plain `http://`
    /// endpoint) gives one that trusts nothing and loads no roots: an HTTP client is built
    /// with one all the same.
    pub(crate) fn rustls_config(&self, secure: bool) -> Result<rustls::ClientConfig, String> {
        let mut roots = rustls::RootCertStore::empty();
        if secure {
            // Roots that cannot be loaded or parsed are skipped, as rustls-native-certs' own
            // users do; the CAs given explicitly must all be good.
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            for ca in &self.ca {
                roots
                    .add(ca.clone())
                    .map_err(|e| format!("a CA of OTEL_EXPORTER_OTLP_CERTIFICATE: {e}"))?;
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
        match &self.identity {
            Some(id) if secure => builder
                .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
                .map_err(|e| format!("the client certificate and key do not match: {e}")),
            _ => Ok(builder.with_no_client_auth()),
        }
    }

    /// The same settings for tonic (its rustls is on the ring provider too).
    pub(crate) fn tonic(&self) -> tonic::transport::ClientTlsConfig {
        let mut config = tonic::transport::ClientTlsConfig::new().with_native_roots();
        if let Some(pem) = &self.ca_pem {
            config = config.ca_certificate(tonic::transport::Certificate::from_pem(pem));
        }
        if let Some(id) = &self.identity {
            config = config.identity(tonic::transport::Identity::from_pem(
                &id.cert_pem,
                &id.key_pem,
            ));
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_no_certificate_is_an_error_naming_it() {
        let err = certificates("OTEL_EXPORTER_OTLP_CERTIFICATE", "/x.pem", b"not pem").unwrap_err();
        assert!(err.contains("OTEL_EXPORTER_OTLP_CERTIFICATE"), "{err}");
        assert!(err.contains("/x.pem"), "{err}");
        let err = read("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem").unwrap_err();
        assert!(err.contains("cannot read `/nonexistent/ca.pem`"), "{err}");
    }

    #[test]
    fn a_plain_config_builds_without_roots() {
        assert!(Tls::default().rustls_config(false).is_ok());
    }
}
