//! Where the API may listen, and HTTPS when it listens beyond this machine. Sessions and
//! passwords cross the office LAN only inside TLS: an address beyond loopback needs
//! `http.tls_cert` and `http.tls_key` (served here, with rustls), or `http.behind_proxy = true`
//! (a reverse proxy in front terminates TLS).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::HttpSection;

/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for the server to take them.
const ACCEPTED_QUEUE: usize = 64;

/// The client's address, as the server records it for every request (the sign-in throttle).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddress(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for PeerAddress {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        PeerAddress(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for PeerAddress {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        PeerAddress(*stream.remote_addr())
    }
}

/// Whether the API may listen on `address` with these settings; the refusal says what to set.
pub fn check_listen_address(http: &HttpSection, address: SocketAddr) -> anyhow::Result<()> {
    if http.tls_cert.is_some() != http.tls_key.is_some() {
        bail!("http.tls_cert and http.tls_key go together: set both (PEM files) or neither");
    }
    if address.ip().is_loopback() || http.serves_tls() || http.behind_proxy {
        return Ok(());
    }
    bail!(
        "refusing to serve the API on {address} over plain HTTP: passwords and sessions would \
         cross the network in clear. Set http.tls_cert and http.tls_key (PEM certificate chain \
         and key) in fengqiao.toml, or http.behind_proxy = true if a reverse proxy in front \
         serves HTTPS, or listen on 127.0.0.1"
    )
}

/// A self-signed certificate `init` makes for the office LAN, and its fingerprint, which people
/// compare once when their browser (or `fengqiao --node https://…`) first meets it.
#[derive(Debug, Clone)]
pub struct LanCertificate {
    pub certificate_pem: String,
    pub key_pem: String,
    /// SHA-256 of the certificate's DER bytes, as browsers show it (`AB:CD:…`).
    pub fingerprint: String,
}

/// How long a LAN certificate is valid: an office should not find its console locked out by an
/// expiry nobody remembers; it is replaced by making a new one, and trust is the fingerprint.
const LAN_CERTIFICATE_YEARS: i32 = 10;

/// Make a self-signed certificate for `names` (host names and IP addresses people and the local
/// CLI reach the node by) with a new P-256 key (every browser accepts it; Ed25519 not).
pub fn generate_lan_certificate(
    names: &[String],
    office: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<LanCertificate> {
    use chrono::Datelike;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .context("cannot make a key for the HTTPS certificate")?;
    let mut parameters = rcgen::CertificateParams::new(names.to_vec())
        .context("a name for the HTTPS certificate is not a valid host name or address")?;
    parameters.distinguished_name = rcgen::DistinguishedName::new();
    parameters
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{office} (Fengqiao)"));
    let month = u8::try_from(now.month()).unwrap_or(1);
    let day = u8::try_from(now.day()).unwrap_or(1).min(28);
    parameters.not_before = rcgen::date_time_ymd(now.year() - 1, month, day);
    parameters.not_after = rcgen::date_time_ymd(now.year() + LAN_CERTIFICATE_YEARS, month, day);
    let certificate = parameters
        .self_signed(&key)
        .context("cannot sign the HTTPS certificate")?;
    Ok(LanCertificate {
        certificate_pem: certificate.pem(),
        key_pem: key.serialize_pem(),
        fingerprint: fingerprint_of_der(certificate.der()),
    })
}

/// The SHA-256 fingerprint of the first certificate in a PEM file, as browsers show it.
pub fn fingerprint_of_pem_file(path: &Path) -> anyhow::Result<String> {
    let first = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read the certificate {}", path.display()))?
        .next()
        .with_context(|| format!("{} holds no PEM certificate", path.display()))?
        .with_context(|| format!("cannot read the certificate {}", path.display()))?;
    Ok(fingerprint_of_der(&first))
}

fn fingerprint_of_der(der: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(der)
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A TLS acceptor for the certificate chain and key in PEM files.
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read the certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("cannot read the certificate {}", cert.display()))?;
    if chain.is_empty() {
        bail!("{} holds no PEM certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read the private key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot set up TLS")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and the key do not go together")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A listener handing the server connections whose TLS handshake is done. Handshakes run on
/// their own tasks, so a slow or silent client delays nobody else.
#[derive(Debug)]
pub struct TlsListener {
    handshaken: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(listener: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (sender, handshaken) = mpsc::channel(ACCEPTED_QUEUE);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            tracing::warn!(%error, "cannot accept a connection");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                    () = sender.closed() => return,
                };
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let _ = sender.send((stream, peer)).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { handshaken, local })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(accepted) => accepted,
            // The accepting task ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn beyond_loopback_only_with_tls_or_a_proxy() {
        let lan: SocketAddr = "192.168.1.20:7370".parse().unwrap();
        let loopback: SocketAddr = "127.0.0.1:7370".parse().unwrap();
        let mut http = HttpSection::default();
        assert!(check_listen_address(&http, loopback).is_ok());
        let refused = check_listen_address(&http, lan).unwrap_err().to_string();
        assert!(
            refused.contains("http.tls_cert") && refused.contains("http.behind_proxy = true"),
            "{refused}"
        );
        http.behind_proxy = true;
        assert!(check_listen_address(&http, lan).is_ok());
        http.behind_proxy = false;
        http.tls_cert = Some("cert.pem".into());
        assert!(
            check_listen_address(&http, loopback).is_err(),
            "a key goes with it"
        );
        http.tls_key = Some("key.pem".into());
        assert!(check_listen_address(&http, lan).is_ok());
    }
}
