//! `GET /metrics`: the node's Prometheus metrics over HTTP (the figures themselves are
//! `crate::metrics`), who may read them, and the middleware that counts every request.
//!
//! Access: a request carrying no credential is answered only if it comes from loopback (a
//! Prometheus on the node's own machine); otherwise the caller proves an account, as on every
//! other route, whose role may read metrics (the role table's `read_metrics` row). Behind a
//! reverse proxy every request reaches the node from the proxy, often over loopback, so there a
//! request the proxy forwarded (it carries `X-Forwarded-For`, as the sign-in throttle already
//! requires) counts as remote.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiFailure, ApiState, Operation, QueryPairs, QueryValues};
use crate::metrics::HttpMetrics;

/// The route label of a request no route matched (a 404): the path it asked for is never a
/// label, it may hold a case number.
const UNMATCHED_ROUTE: &str = "unmatched";

/// Whether the request carries any credential (a bearer token or the session cookie): then it
/// is checked like any other, from loopback too, so a wrong token is refused.
pub(super) fn carries_credential(headers: &HeaderMap) -> bool {
    headers.contains_key(header::AUTHORIZATION) || super::auth::session_cookie(headers).is_some()
}

/// A request `/metrics` answers without a credential: none sent, from a loopback address, and
/// (behind a proxy) not forwarded by it.
pub(super) fn answers_without_credential(request: &Request, behind_proxy: bool) -> bool {
    let headers = request.headers();
    if carries_credential(headers) {
        return false;
    }
    if behind_proxy && headers.contains_key("x-forwarded-for") {
        return false;
    }
    super::auth::peer_of(request).is_some_and(|peer| peer.ip().is_loopback())
}

/// The refusal of a credential-less request from beyond loopback.
pub(super) fn remote_needs_credential() -> ApiFailure {
    ApiFailure {
        status: StatusCode::UNAUTHORIZED,
        message: "GET /metrics answers without a credential only from loopback (127.0.0.1 or \
                  ::1, the node's own machine); from elsewhere send `Authorization: Bearer \
                  TOKEN` of an account whose role may read metrics (supervisor or admin; \
                  fengqiao token create)"
            .to_owned(),
    }
}

/// The handler: gather the node's figures on a blocking thread (the store is asked for its
/// size), the links from the running federation, and encode.
pub(super) async fn metrics(
    State(state): State<ApiState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiFailure> {
    QueryValues::new(Operation::Metrics, pairs)?;
    let now = crate::wall_clock::now();
    let node = Arc::clone(&state.node);
    let figures = tokio::task::spawn_blocking(move || crate::metrics::node_figures(&node, now))
        .await
        .map_err(|error| {
            tracing::error!(%error, "metrics work stopped unexpectedly");
            ApiFailure::internal()
        })?
        .map_err(|error| {
            tracing::error!(%error, "cannot gather the metrics");
            ApiFailure::internal()
        })?;
    let links = match &state.federation {
        Some(federation) => match federation.peers().await {
            Ok(links) => Some(links),
            Err(error) => {
                // The node's own figures stand without the links.
                tracing::warn!(%error, "cannot read the federation links for the metrics");
                None
            }
        },
        None => None,
    };
    let text = crate::metrics::encode(&figures, links.as_deref(), &state.metrics, now).map_err(
        |error| {
            tracing::error!(%error, "cannot encode the metrics");
            ApiFailure::internal()
        },
    )?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The middleware in front of every route (API and console): counts the request by method,
/// route template and status, and observes its latency.
pub(super) async fn count_requests(
    State(metrics): State<Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || UNMATCHED_ROUTE.to_owned(),
        |path| path.as_str().to_owned(),
    );
    let response = next.run(request).await;
    metrics.observe(
        method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
