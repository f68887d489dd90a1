//! Blocking HTTP client for a running node's JSON API, used by the CLI, the importer and the demo.
//!
//! Every answer is read as JSON text first: `--json` prints it as the API sent it, the tables
//! deserialize it into the model types. Errors are turned into sentences an operator can act on.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use fengqiao_case::ApiError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::NodeDir;

/// Where the CLI looks for a node when neither `--node`, `--dir` nor `FENGQIAO_NODE` says.
pub const DEFAULT_NODE_URL: &str = "http://127.0.0.1:7370";

/// Environment variable naming the node URL (same meaning as `--node`).
pub const NODE_ENV: &str = "FENGQIAO_NODE";

/// Environment variable naming the account the CLI acts as (same meaning as `--as`).
pub const USER_ENV: &str = "FENGQIAO_USER";

/// Environment variable holding a bearer token (`fengqiao token create`); never a flag, so the
/// secret stays out of the process list and shell history.
pub const TOKEN_ENV: &str = "FENGQIAO_TOKEN";

/// Environment variable naming a PEM certificate to trust alone for `--node` / `FENGQIAO_NODE`:
/// the office LAN certificate a node made at `init` (`https.crt`), copied to the machine the CLI
/// runs on. With `--dir` the node directory's own certificate is trusted without it.
pub const NODE_CERT_ENV: &str = "FENGQIAO_NODE_CERT";

/// Answers can be large (a county's whole case list); the node is trusted, so the cap is generous.
const MAX_RESPONSE_BYTES: u64 = 512 * 1024 * 1024;

/// A large import batch is validated and written in one transaction; give it time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// How the client proves who it acts as: a bearer token (an account's, or the node's CLI token
/// with the account to act as).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub bearer: String,
    pub act_as: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Credentials")
            .field("act_as", &self.act_as)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The node directory's CLI token, acting as `act_as`.
    pub fn from_node_dir(dir: &Path, act_as: Option<String>) -> anyhow::Result<Credentials> {
        let path = NodeDir::new(dir).cli_token_path();
        let bearer = std::fs::read_to_string(&path)
            .with_context(|| {
                format!(
                    "cannot read the node's CLI token {} (only the user who runs the node may \
                     read it; elsewhere, set {TOKEN_ENV} to a token from `fengqiao token create`)",
                    path.display()
                )
            })?
            .trim()
            .to_owned();
        Ok(Credentials { bearer, act_as })
    }
}

/// A connection to one node's API, acting as one account (or anonymously: health and the
/// OpenAPI document).
#[derive(Debug, Clone)]
pub struct NodeClient {
    base_url: String,
    credentials: Option<Credentials>,
    agent: ureq::Agent,
}

/// Choose the node URL: an explicit `--node` wins, then the address a node directory's `run`
/// wrote, then `FENGQIAO_NODE`, then the default local address.
pub fn resolve_node_url(
    node: Option<&str>,
    node_dir: Option<&Path>,
    environment_node: Option<&str>,
) -> anyhow::Result<String> {
    if let Some(url) = node {
        return Ok(normalize_url(url));
    }
    if let Some(dir) = node_dir {
        let address_path = NodeDir::new(dir).api_address_path();
        let text = std::fs::read_to_string(&address_path).with_context(|| {
            format!(
                "cannot read {}: is `fengqiao run {}` running?",
                address_path.display(),
                dir.display()
            )
        })?;
        let address = text.trim();
        if address.is_empty() {
            bail!(
                "{} is empty: is the node still starting?",
                address_path.display()
            );
        }
        if !serves_https(dir)? {
            return Ok(normalize_url(address));
        }
        // The certificate names this machine, not "every address": a node listening on
        // 0.0.0.0 is reached here on loopback.
        let address = match address.parse::<std::net::SocketAddr>() {
            Ok(mut socket) if socket.ip().is_unspecified() => {
                let loopback: std::net::IpAddr = if socket.is_ipv4() {
                    std::net::Ipv4Addr::LOCALHOST.into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                };
                socket.set_ip(loopback);
                socket.to_string()
            }
            _ => address.to_owned(),
        };
        return Ok(format!("https://{address}"));
    }
    if let Some(url) = environment_node.filter(|url| !url.trim().is_empty()) {
        return Ok(normalize_url(url));
    }
    Ok(DEFAULT_NODE_URL.to_owned())
}

/// Whether the node in `dir` serves its API over HTTPS itself.
fn serves_https(dir: &Path) -> anyhow::Result<bool> {
    if !NodeDir::exists(dir) {
        return Ok(false);
    }
    Ok(crate::config::load(dir)?.http.serves_tls())
}

/// The certificate to trust alone, in PEM: with `--dir` (and no `--node`) the node directory's
/// own when it serves HTTPS, else the file `FENGQIAO_NODE_CERT` names, else none (the usual
/// public roots then decide).
pub fn trusted_certificate(
    node: Option<&str>,
    node_dir: Option<&Path>,
    environment_certificate: Option<&str>,
) -> anyhow::Result<Option<Vec<u8>>> {
    let path = match (node, node_dir) {
        (None, Some(dir)) if serves_https(dir)? => {
            let config = crate::config::load(dir)?;
            config
                .http
                .tls_cert
                .map(|certificate| NodeDir::new(dir).resolve(&certificate))
        }
        _ => environment_certificate
            .filter(|path| !path.trim().is_empty())
            .map(|path| Path::new(path.trim()).to_path_buf()),
    };
    let Some(path) = path else {
        return Ok(None);
    };
    let pem = std::fs::read(&path)
        .with_context(|| format!("cannot read the node's certificate {}", path.display()))?;
    Ok(Some(pem))
}

/// Accept `127.0.0.1:7370` as well as `http://127.0.0.1:7370/`.
fn normalize_url(url: &str) -> String {
    let trimmed = url.trim().trim_end_matches('/');
    if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("http://{trimmed}")
    }
}

impl NodeClient {
    pub fn new(base_url: impl Into<String>, credentials: Option<Credentials>) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            // Non-2xx answers carry an ApiError body worth showing, so they are not ureq errors.
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        NodeClient {
            base_url: normalize_url(&base_url.into()),
            credentials,
            agent,
        }
    }

    /// A client that trusts exactly `certificate_pem` for HTTPS: the node's self-signed office
    /// LAN certificate, pinned, so no other certificate can stand in for it.
    pub fn trusting(
        base_url: impl Into<String>,
        credentials: Option<Credentials>,
        certificate_pem: &[u8],
    ) -> anyhow::Result<Self> {
        let certificate = ureq::tls::Certificate::from_pem(certificate_pem)
            .context("the node's certificate is not a PEM certificate")?;
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&[certificate]))
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .tls_config(tls)
            .build()
            .into();
        Ok(NodeClient {
            base_url: normalize_url(&base_url.into()),
            credentials,
            agent,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The credentials, or the error that explains how to give some.
    pub fn require_credentials(&self) -> anyhow::Result<&Credentials> {
        self.credentials.as_ref().ok_or_else(|| {
            anyhow!(
                "this command needs an account: every read of cases and every change is made by \
                 a signed-in person. On the node's machine pass --dir NODE_DIR --as LOGIN (or \
                 set {USER_ENV}); elsewhere set {TOKEN_ENV} to a token from `fengqiao token create`"
            )
        })
    }

    fn authenticated<B>(&self, mut request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        if let Some(credentials) = &self.credentials {
            request = request.header("authorization", format!("Bearer {}", credentials.bearer));
            if let Some(act_as) = &credentials.act_as {
                request = request.header(crate::api::auth::ACT_AS_HEADER, act_as);
            }
        }
        request
    }

    /// `GET path?query` and the JSON answer.
    pub fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<serde_json::Value> {
        let url = self.url(path);
        let mut request = self.agent.get(&url);
        for (key, value) in query {
            request = request.query(*key, value);
        }
        let response = self.authenticated(request).call();
        self.answer(&url, response)
    }

    /// `GET` deserialized into a model type.
    pub fn get_as<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        let value = self.get(path, query)?;
        from_answer(path, value)
    }

    /// `GET path?query` as the account and copy the answer's bytes as they arrive into `to` (an
    /// export, a backup: nothing held in memory, no size limit and no overall timeout, as a
    /// large node takes a while); the bytes copied. A refusal is the node's ApiError message,
    /// and nothing is written.
    pub fn download(
        &self,
        path: &str,
        query: &[(&str, String)],
        to: &mut dyn std::io::Write,
    ) -> anyhow::Result<u64> {
        self.require_credentials()?;
        let url = self.url(path);
        let mut request = self.agent.get(&url);
        for (key, value) in query {
            request = request.query(*key, value);
        }
        let request = request.config().timeout_global(None).build();
        let mut response = self
            .authenticated(request)
            .call()
            .map_err(|error| self.transport_error(&url, error))?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response
                .body_mut()
                .with_config()
                .limit(MAX_RESPONSE_BYTES)
                .read_to_vec()
                .map_err(|error| self.transport_error(&url, error))?;
            bail!(api_error_message(status.as_u16(), &bytes));
        }
        let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
        std::io::copy(&mut reader, to).with_context(|| format!("the download from {url} broke off"))
    }

    /// `POST path` with a JSON body as the account; refuses without credentials.
    pub fn post(&self, path: &str, body: &impl Serialize) -> anyhow::Result<serde_json::Value> {
        self.require_credentials()?;
        let url = self.url(path);
        let body = serde_json::to_vec(body).context("encode the request body")?;
        let response = self
            .authenticated(self.agent.post(&url))
            .content_type("application/json")
            .send(&body[..]);
        self.answer(&url, response)
    }

    /// `POST` deserialized into a model type.
    pub fn post_as<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        let value = self.post(path, body)?;
        from_answer(path, value)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    fn answer(
        &self,
        url: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<serde_json::Value> {
        let mut response = response.map_err(|error| self.transport_error(url, error))?;
        let status = response.status();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|error| self.transport_error(url, error))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).with_context(|| {
                format!("the node at {} answered with invalid JSON", self.base_url)
            });
        }
        Err(anyhow!(api_error_message(status.as_u16(), &bytes)))
    }

    fn transport_error(&self, url: &str, error: ureq::Error) -> anyhow::Error {
        let unreachable = match &error {
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => true,
            ureq::Error::Io(io) => matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::AddrNotAvailable
                    | std::io::ErrorKind::NotConnected
            ),
            _ => false,
        };
        if unreachable {
            anyhow!(
                "cannot reach the node at {}: is `fengqiao run` running? ({error})",
                self.base_url
            )
        } else if matches!(error, ureq::Error::Rustls(_)) {
            anyhow!(
                "the node at {} is not trusted: its HTTPS certificate is not the one expected \
                 ({error}). A node's own office LAN certificate is its https.crt: with --dir on \
                 its machine the CLI trusts it; elsewhere set {NODE_CERT_ENV} to a copy of it, \
                 after comparing its fingerprint with the one `fengqiao init` printed",
                self.base_url
            )
        } else if let ureq::Error::Timeout(_) = error {
            anyhow!(
                "the node at {} did not answer in time ({url})",
                self.base_url
            )
        } else {
            anyhow::Error::new(error).context(format!("request to {url} failed"))
        }
    }
}

/// The message of a non-2xx answer: the node's ApiError text when it sent one.
fn api_error_message(status: u16, body: &[u8]) -> String {
    match serde_json::from_slice::<ApiError>(body) {
        Ok(api_error) => api_error.error,
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                format!("the node answered HTTP {status}")
            } else {
                format!("the node answered HTTP {status}: {text}")
            }
        }
    }
}

fn from_answer<T: DeserializeOwned>(path: &str, value: serde_json::Value) -> anyhow::Result<T> {
    serde_json::from_value(value).with_context(|| {
        format!(
            "unexpected answer from {path}: is the node running a different version of fengqiao?"
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn explicit_node_wins_then_dir_then_environment_then_default() {
        assert_eq!(
            resolve_node_url(Some("127.0.0.1:9000/"), None, Some("http://x:1")).unwrap(),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            resolve_node_url(None, None, Some("http://x:1")).unwrap(),
            "http://x:1"
        );
        assert_eq!(
            resolve_node_url(None, None, None).unwrap(),
            DEFAULT_NODE_URL
        );
        let temp = tempfile::tempdir().unwrap();
        std::fs::write(temp.path().join("api.addr"), "127.0.0.1:4567\n").unwrap();
        assert_eq!(
            resolve_node_url(None, Some(temp.path()), Some("http://x:1")).unwrap(),
            "http://127.0.0.1:4567"
        );
        let missing = resolve_node_url(None, Some(&temp.path().join("nope")), None);
        assert!(format!("{:#}", missing.unwrap_err()).contains("fengqiao run"));
    }

    #[test]
    fn api_error_body_becomes_the_message() {
        assert_eq!(
            api_error_message(409, br#"{"error":"cannot accept a case that is Closed"}"#),
            "cannot accept a case that is Closed"
        );
        assert_eq!(
            api_error_message(502, b"bad gateway"),
            "the node answered HTTP 502: bad gateway"
        );
    }

    #[test]
    fn mutating_without_an_account_says_how_to_give_one() {
        let client = NodeClient::new("http://127.0.0.1:9", None);
        let message = format!("{}", client.post("/api/cases", &()).unwrap_err());
        assert!(
            message.contains("--as") && message.contains(TOKEN_ENV),
            "{message}"
        );
    }

    #[test]
    fn refused_connection_names_the_node_and_run() {
        // Port 9 (discard) on loopback: nothing of ours listens there.
        let client = NodeClient::new("http://127.0.0.1:9", None);
        let message = format!("{:#}", client.get("/api/health", &[]).unwrap_err());
        assert!(
            message.contains("cannot reach the node at http://127.0.0.1:9"),
            "{message}"
        );
    }
}
