//! Blocking HTTP client for a running node's JSON API, used by the CLI, the importer and the demo.
//!
//! Every answer is read as JSON text first: `--json` prints it as the API sent it, the tables
//! deserialize it into the model types. Errors are turned into sentences an operator can act on.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use fengqiao_case::{ApiError, OPERATOR_HEADER};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::NodeDir;

/// Where the CLI looks for a node when neither `--node`, `--dir` nor `FENGQIAO_NODE` says.
pub const DEFAULT_NODE_URL: &str = "http://127.0.0.1:7370";

/// Environment variable naming the node URL (same meaning as `--node`).
pub const NODE_ENV: &str = "FENGQIAO_NODE";

/// Environment variable naming the operator (same meaning as `--operator`).
pub const OPERATOR_ENV: &str = "FENGQIAO_OPERATOR";

/// Answers can be large (a county's whole case list); the node is trusted, so the cap is generous.
const MAX_RESPONSE_BYTES: u64 = 512 * 1024 * 1024;

/// A large import batch is validated and written in one transaction; give it time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// A connection to one node's API, acting as one operator (or anonymously, for reads).
#[derive(Debug, Clone)]
pub struct NodeClient {
    base_url: String,
    operator: Option<String>,
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
        return Ok(normalize_url(address));
    }
    if let Some(url) = environment_node.filter(|url| !url.trim().is_empty()) {
        return Ok(normalize_url(url));
    }
    Ok(DEFAULT_NODE_URL.to_owned())
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
    pub fn new(base_url: impl Into<String>, operator: Option<String>) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            // Non-2xx answers carry an ApiError body worth showing, so they are not ureq errors.
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        NodeClient {
            base_url: normalize_url(&base_url.into()),
            operator: operator.filter(|name| !name.trim().is_empty()),
            agent,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn operator(&self) -> Option<&str> {
        self.operator.as_deref()
    }

    /// The operator for a mutating call, or the error that explains why one is needed.
    pub fn require_operator(&self) -> anyhow::Result<&str> {
        self.operator.as_deref().ok_or_else(|| {
            anyhow!(
                "this command changes data and needs an operator: every change is recorded with \
                 who made it. Pass --operator NAME or set {OPERATOR_ENV}"
            )
        })
    }

    /// `GET path?query` and the JSON answer.
    pub fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<serde_json::Value> {
        let url = self.url(path);
        let mut request = self.agent.get(&url);
        for (key, value) in query {
            request = request.query(*key, value);
        }
        // Reads send the operator too when known: the node records who read personal data.
        if let Some(operator) = &self.operator {
            request = request.header(OPERATOR_HEADER, operator);
        }
        let response = request.call();
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

    /// `POST path` with a JSON body as the operator; refuses without one.
    pub fn post(&self, path: &str, body: &impl Serialize) -> anyhow::Result<serde_json::Value> {
        let operator = self.require_operator()?.to_owned();
        let url = self.url(path);
        let body = serde_json::to_vec(body).context("encode the request body")?;
        let response = self
            .agent
            .post(&url)
            .header(OPERATOR_HEADER, &operator)
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
    fn mutating_without_operator_says_why() {
        let client = NodeClient::new("http://127.0.0.1:9", None);
        let message = format!("{}", client.post("/api/cases", &()).unwrap_err());
        assert!(message.contains("operator") && message.contains("recorded"));
    }

    #[test]
    fn refused_connection_names_the_node_and_run() {
        // Port 9 (discard) on loopback: nothing of ours listens there.
        let client = NodeClient::new("http://127.0.0.1:9", Some("tester".into()));
        let message = format!("{:#}", client.get("/api/health", &[]).unwrap_err());
        assert!(
            message.contains("cannot reach the node at http://127.0.0.1:9"),
            "{message}"
        );
    }
}
