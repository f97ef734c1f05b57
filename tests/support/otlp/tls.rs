//! TLS for the in-process receiver: the handshake on accepted connections (rustls on ring),
//! with a client certificate required when a client CA is given, and handshake failures
//! counted.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The receiver's certificate and key (PEM), and the CA that client certificates must be signed
/// by when mutual TLS is required.
#[derive(Clone, Debug)]
pub struct ReceiverTls {
    /// The server certificate (chain), PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
    /// With mutual TLS: the CA of the client certificates, PEM.
    pub client_ca_pem: Option<String>,
}

impl ReceiverTls {
    /// A TLS acceptor offering `alpn` (`h2` for gRPC, `http/1.1` for HTTP).
    pub(super) fn acceptor(&self, alpn: &[u8]) -> tokio_rustls::TlsAcceptor {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .expect("the receiver's certificate");
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("its key");
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match &self.client_ca_pem {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                    roots.add(c.expect("the client CA")).unwrap();
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).unwrap();
        config.alpn_protocols = vec![alpn.to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}

/// Accepts connections on `listener` and hands each over to `serve` once its TLS handshake
/// (at most 10 s) is done; a failed handshake is counted in `failures`. The task ends when
/// aborted (the receiver's `Drop`), and the connections' tasks with it (see `serve`).
pub(super) fn accept<F, Fut>(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    failures: Arc<AtomicUsize>,
    serve: F,
) -> JoinHandle<()>
where
    F: Fn(tokio_rustls::server::TlsStream<tokio::net::TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let serve = Arc::new(serve);
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let (acceptor, failures, serve) = (acceptor.clone(), failures.clone(), serve.clone());
            connections.spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => serve(tls).await,
                    _ => {
                        failures.fetch_add(1, Relaxed);
                    }
                }
            });
            // Reap finished connections so the set stays small.
            while connections.try_join_next().is_some() {}
        }
    })
}
