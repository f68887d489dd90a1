//! The console's static files, embedded in the binary: no CDN, nothing fetched at run time
//! (village offices are often offline). `vendor/` holds third-party files as their npm packages
//! ship them (`scripts/vendor-console-assets`, versions in `vendor/VERSIONS`).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

pub const STYLESHEET: &str = include_str!("../assets/console.css");
pub const HTMX: &str = include_str!("../assets/vendor/htmx.min.js");
/// Loaded by 统计分析 only, so that the other pages stay light.
pub const ECHARTS: &str = include_str!("../assets/vendor/echarts.min.js");
pub const CHARTS: &str = include_str!("../assets/console-charts.js");

/// `GET /assets/{name}`.
pub async fn asset(Path(name): Path<String>) -> Response {
    let (content_type, body) = match name.as_str() {
        "console.css" => ("text/css; charset=utf-8", STYLESHEET),
        "htmx.min.js" => ("text/javascript; charset=utf-8", HTMX),
        "echarts.min.js" => ("text/javascript; charset=utf-8", ECHARTS),
        "console-charts.js" => ("text/javascript; charset=utf-8", CHARTS),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The files change only with the binary; a day's cache spares a village's old PC.
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}
