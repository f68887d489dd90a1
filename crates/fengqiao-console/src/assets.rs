//! The console's static files, embedded in the binary: no CDN, nothing fetched at run time
//! (village offices are often offline). `vendor/` holds third-party files as their npm packages
//! ship them (`scripts/vendor-console-assets`, versions in `vendor/VERSIONS`).
//!
//! Pages link each file by a versioned URL (`/assets/htmx.min.js?v=<hash of its bytes>`), which
//! is cached for a year as immutable: a reload does not send htmx again, and a new binary with a
//! changed file links a new URL, so no browser keeps a stale copy.

use std::sync::LazyLock;

use axum::extract::{Path, Query};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

pub const STYLESHEET: &str = include_str!("../assets/console.css");
pub const HTMX: &str = include_str!("../assets/vendor/htmx.min.js");
/// Loaded by 统计分析 only, so that the other pages stay light.
pub const ECHARTS: &str = include_str!("../assets/vendor/echarts.min.js");
pub const CHARTS: &str = include_str!("../assets/console-charts.js");

/// What a versioned URL is cached for: a year, never revalidated (the URL changes with the file).
const CACHE_VERSIONED: &str = "public, max-age=31536000, immutable";
/// What a URL without the current version is cached for: an old page's link, or a hand-typed
/// one, may meet a newer file, so it is kept a day at most.
const CACHE_UNVERSIONED: &str = "public, max-age=86400";

/// One embedded file: its name under `/assets/`, content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: [Asset; 4] = [
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: STYLESHEET,
    },
    Asset {
        name: "htmx.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: HTMX,
    },
    Asset {
        name: "echarts.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: ECHARTS,
    },
    Asset {
        name: "console-charts.js",
        content_type: "text/javascript; charset=utf-8",
        body: CHARTS,
    },
];

/// The version of a file: 64-bit FNV-1a of its bytes in hex. Not a security measure, only a
/// name that changes when the file does.
fn version_of(body: &str) -> String {
    let hash = body.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Each file's version, computed once (hashing echarts takes a few milliseconds).
static VERSIONS: LazyLock<Vec<String>> =
    LazyLock::new(|| ASSETS.iter().map(|asset| version_of(asset.body)).collect());

/// The versioned URLs pages link the files by.
#[derive(Debug, Clone)]
pub struct AssetHrefs {
    pub stylesheet: String,
    pub htmx: String,
    pub echarts: String,
    pub charts: String,
}

/// The versioned URL of the embedded file `name` (one of [`ASSETS`]).
fn href(name: &str) -> String {
    match ASSETS.iter().position(|asset| asset.name == name) {
        Some(index) => format!("/assets/{name}?v={}", VERSIONS[index]),
        None => format!("/assets/{name}"),
    }
}

static HREFS: LazyLock<AssetHrefs> = LazyLock::new(|| AssetHrefs {
    stylesheet: href("console.css"),
    htmx: href("htmx.min.js"),
    echarts: href("echarts.min.js"),
    charts: href("console-charts.js"),
});

/// The URLs every page links its files by.
pub fn hrefs() -> &'static AssetHrefs {
    &HREFS
}

#[derive(Debug, Default, Deserialize)]
pub struct AssetParams {
    #[serde(default)]
    v: String,
}

/// `GET /assets/{name}`: the file, cached as immutable when asked for by its current version.
pub async fn asset(Path(name): Path<String>, Query(params): Query<AssetParams>) -> Response {
    let Some(index) = ASSETS.iter().position(|asset| asset.name == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let asset = &ASSETS[index];
    let cache = if params.v == VERSIONS[index] {
        CACHE_VERSIONED
    } else {
        CACHE_UNVERSIONED
    };
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, cache),
        ],
        asset.body,
    )
        .into_response()
}
