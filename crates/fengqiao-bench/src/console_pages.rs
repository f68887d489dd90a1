//! `--mode console`: the console's pages and its Excel export, timed against a node holding `--cases` cases.
//!
//! Signs in at the console as the bench account (a supervisor, so every page and figure is
//! shown), then requests each page `--scrapes` times, one after another, from loopback: 工作台
//! (`/`), 统计 (`/statistics`), 台账 with a filter and a page of 50 (`/cases?...`, the filter and
//! page changing from request to request), and case pages of cases listed in the 台账. Times are
//! from the request to the whole answer as the client sees it, so they hold the server's time
//! plus loopback HTTP; the issue's targets are on the server's time, which is less. Then the
//! whole 台账 is exported to Excel once, timed, with the node's peak resident memory (VmHWM)
//! before and after, and the 工作台's page weight: its HTML and the assets it loads, plain and as
//! sent brotli-compressed to a browser that asks for it. Before any timing, it waits for the
//! node's 台账 rows' keeper to catch up, as on a node that has been running.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use fengqiao_bench::{Timings, peak_resident_kib};

use crate::{NodeRun, Options, filled_node};

/// The bench account's password (`init` in main.rs gives it to the account).
const BENCH_PASSWORD: &str = "bench-password";

/// Filters the 台账 is asked for in turn: by status, category, warning grade, date range and a
/// text search (a number, a common surname, a common character of given names), some on a later
/// page too, as people page through them.
const LEDGER_FILTERS: [&str; 10] = [
    "status=accepted",
    "status=registered&page=3",
    "category=wage_arrears",
    "category=land_requisition&page=5",
    "grade=overdue",
    "status=closed&page=10",
    "from=2026-01-01&to=2026-06-30&page=2",
    "q=2026-00",
    "q=%E5%BC%A0",
    "q=%E4%BC%9F&page=2",
];

/// Run the console measurement on a node in `root/console-node` (made and filled, or reused).
pub(crate) fn measure(options: &Options, root: &Path) -> anyhow::Result<()> {
    let (_, node, _) = filled_node(options, root, "console-node")?;
    let result = measure_pages(options, &node);
    node.stop();
    result
}

fn measure_pages(options: &Options, node: &NodeRun) -> anyhow::Result<()> {
    let address = node.address;
    let cookie = sign_in(address)?;
    let requests = options.scrapes.max(1);

    // The first 工作台 may wait for the statistics rollup's one build scan: not timed.
    let started = Instant::now();
    let dashboard = page(address, &cookie, "/")?;
    println!(
        "first 工作台 (waits for the rollup build if still running): {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    wait_for_ledger_rows(address, &cookie)?;
    let assets = asset_paths(&dashboard);
    let plain_assets: u64 = assets
        .iter()
        .map(|path| page(address, &cookie, path).map(|body| body.len() as u64))
        .sum::<anyhow::Result<u64>>()?;
    println!(
        "工作台 page weight uncompressed: {} bytes of HTML + {} bytes of assets it loads = {:.1} KB",
        dashboard.len(),
        plain_assets,
        (dashboard.len() as u64 + plain_assets) as f64 / 1024.0
    );
    let sent_html = sent_brotli(address, &cookie, "/")?;
    let sent_assets: u64 = assets
        .iter()
        .map(|path| sent_brotli(address, &cookie, path))
        .sum::<anyhow::Result<u64>>()?;
    println!(
        "工作台 page weight as sent (brotli, as a browser asks): {sent_html} bytes of HTML + \
         {sent_assets} bytes of assets = {:.1} KB",
        (sent_html + sent_assets) as f64 / 1024.0
    );

    report(
        "工作台 (/)",
        time_requests(requests, |_| page(address, &cookie, "/"))?,
    );
    // The statistics rollup's build scan, started when the node is bound, may still run: the
    // first 统计 would wait for it. The 工作台 above used to take long enough for it to finish.
    let started = Instant::now();
    page(address, &cookie, "/statistics")?;
    println!(
        "first 统计 (waits for the rollup build if still running): {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    report(
        "统计 (/statistics)",
        time_requests(requests, |_| page(address, &cookie, "/statistics"))?,
    );
    let ledger_times = request_times(requests, |request| {
        let filter = LEDGER_FILTERS[request % LEDGER_FILTERS.len()];
        page(address, &cookie, &format!("/cases?{filter}"))
    })?;
    report(
        "台账, a filter and a page of 50 (/cases?...)",
        Timings::of(ledger_times.clone()),
    );
    // Which filter the tail is: the first request of each filter is its first walk since the
    // start, the later ones its repeats.
    for (index, filter) in LEDGER_FILTERS.iter().enumerate() {
        let times: Vec<String> = ledger_times
            .iter()
            .skip(index)
            .step_by(LEDGER_FILTERS.len())
            .map(|time| format!("{:.1}", time.as_secs_f64() * 1e3))
            .collect();
        if !times.is_empty() {
            println!("  台账 /cases?{filter}: {} ms", times.join(", "));
        }
    }

    let mut numbers = Vec::new();
    for listing in 1..=4 {
        let body = page(address, &cookie, &format!("/cases?page={listing}"))?;
        numbers.extend(case_numbers(&body));
    }
    numbers.sort();
    numbers.dedup();
    ensure!(
        !numbers.is_empty(),
        "the 台账 lists no case to open: is the node empty?"
    );
    report(
        &format!("案件 page ({} different cases)", numbers.len()),
        time_requests(requests, |request| {
            page(
                address,
                &cookie,
                &format!("/cases/{}", numbers[request % numbers.len()]),
            )
        })?,
    );

    let pid = node.child.id().to_string();
    let peak_before = peak_resident_kib(&pid)?;
    let started = Instant::now();
    let workbook = download(address, &cookie, "/export/ledger.xlsx")?;
    let seconds = started.elapsed().as_secs_f64();
    let peak_after = peak_resident_kib(&pid)?;
    ensure!(
        workbook.starts_with(b"PK"),
        "the export is not an .xlsx (zip) file"
    );
    println!(
        "Excel export of the whole 台账 ({} cases): {seconds:.1} s, {:.1} MB; node peak resident \
         {:.0} MiB before, {:.0} MiB after",
        options.cases,
        workbook.len() as f64 / 1e6,
        peak_before as f64 / 1024.0,
        peak_after as f64 / 1024.0
    );
    Ok(())
}

/// Waits until the node's 台账 rows' keeper has caught up (`fengqiao_ledger_rows_pending 0`
/// in its metrics), as on a node that has been running: a node just filled or upgraded keeps
/// them in the background first, which would load the machine while pages are timed and make
/// the export read documents. The wait is reported: it is how long that takes after a fill.
fn wait_for_ledger_rows(address: SocketAddr, cookie: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last_reported = None;
    loop {
        let metrics = page(address, cookie, "/metrics")?;
        let pending: u64 = metrics
            .lines()
            .find_map(|line| line.strip_prefix("fengqiao_ledger_rows_pending "))
            .context("the node's metrics have no fengqiao_ledger_rows_pending")?
            .trim()
            .parse()
            .context("fengqiao_ledger_rows_pending is not a count")?;
        if pending == 0 {
            println!(
                "台账 rows kept for every case after {:.0} s of waiting (not measured)",
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        let elapsed_minutes = started.elapsed().as_secs() / 60;
        if last_reported != Some(elapsed_minutes) {
            println!("waiting for the 台账 rows' keeper: {pending} cases to go");
            last_reported = Some(elapsed_minutes);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Time `count` requests made one after another; `request(i)` makes the i-th.
fn time_requests(
    count: usize,
    request: impl FnMut(usize) -> anyhow::Result<String>,
) -> anyhow::Result<Timings> {
    Ok(Timings::of(request_times(count, request)?))
}

/// The time of each of `count` requests, in order.
fn request_times(
    count: usize,
    mut request: impl FnMut(usize) -> anyhow::Result<String>,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(count);
    for index in 0..count {
        let started = Instant::now();
        request(index)?;
        times.push(started.elapsed());
    }
    Ok(times)
}

fn report(what: &str, timings: Timings) {
    println!(
        "{what}: p50 {:.2} ms, p99 {:.2} ms ({} requests)",
        timings.p50_ms, timings.p99_ms, timings.runs
    );
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into()
}

/// Sign in at the console as the bench account; the session cookie (`name=value`).
fn sign_in(address: SocketAddr) -> anyhow::Result<String> {
    let response = agent()
        .post(format!("http://{address}/login"))
        .send_form([
            ("login", fengqiao_bench::BENCH_LOGIN),
            ("password", BENCH_PASSWORD),
        ])
        .context("sign in at the console")?;
    ensure!(
        response.status() == 303,
        "signing in answered {}",
        response.status()
    );
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|cookie| cookie.starts_with("fengqiao_session="))
        .and_then(|cookie| cookie.split(';').next())
        .map(str::to_owned)
        .context("signing in set no session cookie")
}

/// A console page's body; anything but 200 is an error naming the page.
fn page(address: SocketAddr, cookie: &str, path: &str) -> anyhow::Result<String> {
    String::from_utf8(download(address, cookie, path)?)
        .with_context(|| format!("GET {path} answered text that is not UTF-8"))
}

fn download(address: SocketAddr, cookie: &str, path: &str) -> anyhow::Result<Vec<u8>> {
    Ok(body_as_sent(address, cookie, path, None)?.1)
}

/// The bytes `path` takes on the wire to a client that accepts brotli (as Chromium does): the
/// body as sent, not decoded (ureq decodes gzip by itself, brotli only with a feature the bench
/// does not enable), after checking that it was compressed at all.
fn sent_brotli(address: SocketAddr, cookie: &str, path: &str) -> anyhow::Result<u64> {
    let (encoding, body) = body_as_sent(address, cookie, path, Some("br"))?;
    ensure!(
        encoding == "br",
        "GET {path} asked for brotli was sent with content-encoding {encoding}"
    );
    Ok(body.len() as u64)
}

/// `GET path` with the session, asking for `accept_encoding` (ureq's own gzip without it):
/// the answer's `content-encoding` (`none` without one) and its body as ureq reads it;
/// anything but 200 is an error naming the page.
fn body_as_sent(
    address: SocketAddr,
    cookie: &str,
    path: &str,
    accept_encoding: Option<&str>,
) -> anyhow::Result<(String, Vec<u8>)> {
    let mut request = agent()
        .get(format!("http://{address}{path}"))
        .header("cookie", cookie);
    if let Some(accept_encoding) = accept_encoding {
        request = request.header("accept-encoding", accept_encoding);
    }
    let mut response = request.call().with_context(|| format!("GET {path}"))?;
    ensure!(
        response.status() == 200,
        "GET {path} answered {}",
        response.status()
    );
    let encoding = response
        .headers()
        .get("content-encoding")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("none")
        .to_owned();
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 32)
        .read_to_vec()?;
    Ok((encoding, body))
}

/// The `/assets/...` files a page loads (its stylesheet and scripts).
fn asset_paths(html: &str) -> Vec<String> {
    attribute_values(html, "/assets/")
}

/// The case numbers a 台账 page links to (`href="/cases/{number}"`).
fn case_numbers(html: &str) -> Vec<String> {
    attribute_values(html, "/cases/")
        .into_iter()
        .filter_map(|path| path.strip_prefix("/cases/").map(str::to_owned))
        .filter(|number| !number.is_empty() && !number.contains('/') && !number.contains('?'))
        .collect()
}

/// Every quoted attribute value that starts with `prefix`, once each, in order.
fn attribute_values(html: &str, prefix: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let opening = format!("\"{prefix}");
    let mut rest = html;
    while let Some(start) = rest.find(&opening) {
        let value_and_rest = &rest[start + 1..];
        let Some(end) = value_and_rest.find('"') else {
            break;
        };
        let value = &value_and_rest[..end];
        if !found.iter().any(|seen| seen == value) {
            found.push(value.to_owned());
        }
        rest = &value_and_rest[end..];
    }
    found
}
