//! The web console 工作台 in a real browser: headless Chromium driven over WebDriver
//! (chromedriver, `fantoccini`) against a real `fengqiao run`, at an office PC's 1366x768. Each
//! page visited leaves a screenshot in `target/console-screenshots/`. Without Chromium and
//! chromedriver (`scripts/install-browser` installs them) the test says why on stderr and skips.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use fantoccini::{Client, ClientBuilder, Locator};
use fengqiao_tests::{
    NodeProcess, Office, TEST_LOGIN, TEST_PASSWORD, VILLAGE_REGION, case_number, fengqiao_binary,
    http_get, http_post, sample_registration,
};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Say why a browser test does not run, where `cargo test` shows it even for a passing test
/// (straight to stderr, past the test harness's capture).
fn skip(reason: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED console browser test: {reason}");
}

/// chromedriver on a free port, stopped when dropped.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

fn start_chromedriver(log: &Path) -> Chromedriver {
    let port = free_port();
    let log_file = std::fs::File::create(log).expect("chromedriver log");
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("start chromedriver");
    let driver = Chromedriver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen on {address}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    driver
}

fn screenshots_dir() -> PathBuf {
    // The binary is target/<profile>/fengqiao: the screenshots go beside the profiles.
    let binary = fengqiao_binary();
    let target = binary
        .parent()
        .and_then(Path::parent)
        .expect("binary inside target/<profile>");
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    std::fs::write(screenshots_dir().join(format!("{name}.png")), png).expect("screenshot saved");
}

async fn text_of(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("no {css} on the page: {error}"))
        .text()
        .await
        .expect("element text")
}

/// The text of `css` once it contains `needle`: after a click the browser may still show the old
/// page for a moment, so a page is read only once it is the one the click led to.
async fn text_once_it_contains(browser: &Client, css: &str, needle: &str) -> String {
    poll_text(browser, None, css, needle, Duration::from_secs(30)).await
}

/// The text of `css` once it contains `needle`, waiting up to `timeout`; with `reload`, the
/// page at that URL is opened again before each look (what another office did reaches this one
/// by sync, and a page shows what its node held when it was served).
async fn poll_text(
    browser: &Client,
    reload: Option<&str>,
    css: &str,
    needle: &str,
    timeout: Duration,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(url) = reload {
            browser.goto(url).await.expect("open the page");
        }
        let text = match browser.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{reload:?} {css} never came to contain {needle:?} within {timeout:?}; it reads: {text}"
        );
        let pause = if reload.is_some() { 500 } else { 100 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// Click the menu entry named `word` (the page it opens is read with
/// [`text_once_it_contains`]).
async fn open_menu(browser: &Client, word: &str) {
    browser
        .find(Locator::LinkText(word))
        .await
        .unwrap_or_else(|error| panic!("no menu entry {word}: {error}"))
        .click()
        .await
        .unwrap_or_else(|error| panic!("cannot open {word}: {error}"));
}

/// Fill in and send 登录, then wait for the page the answer leads to (`outcome`, a CSS selector
/// found only there): a click returns before the browser has loaded the answer, and the password
/// check takes a while in a debug build, so reading the URL at once may still see the old page.
async fn sign_in(browser: &Client, base: &str, login: &str, password: &str, outcome: &str) {
    browser
        .goto(&format!("{base}/login"))
        .await
        .expect("open 登录");
    let login_field = browser.find(Locator::Id("login")).await.expect("login");
    login_field.clear().await.expect("clear login");
    login_field.send_keys(login).await.expect("type login");
    browser
        .find(Locator::Id("password"))
        .await
        .expect("password")
        .send_keys(password)
        .await
        .expect("type password");
    browser
        .find(Locator::Id("sign-in"))
        .await
        .expect("sign-in button")
        .click()
        .await
        .expect("sign in");
    browser
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css(outcome))
        .await
        .unwrap_or_else(|error| panic!("after signing in, no {outcome} on the page: {error}"));
}

/// A village (joined to a township that is not running, so its uplink is down) holding three
/// cases: one registered 13 days ago (预警 on the 15-day acceptance limit), one 40 days ago
/// (严重超时), one today (no warning).
fn village_with_cases(dir: &Path) -> (NodeProcess, Vec<String>) {
    let township = Office::township(dir);
    let village = Office::village(dir, "village", VILLAGE_REGION);
    township.admit(&village);
    // Nobody answers QUIC on the discard port: the village's link to its parent stays down.
    village.join(&township, "127.0.0.1:9".parse().expect("address"));
    // Paper records entered late (补录) up to 60 days back, with a reason, as `[clock]` allows.
    let config_path = village.dir.join("fengqiao.toml");
    let mut config = std::fs::read_to_string(&config_path).expect("read the config");
    config.push_str("\n[clock]\nmax_backdate_days = 60\n");
    std::fs::write(&config_path, config).expect("write the config");
    let node = village.start();
    let mut numbers = Vec::new();
    for (index, days_ago) in [(1, 13), (2, 40), (3, 0)] {
        let mut body = sample_registration(VILLAGE_REGION, index);
        body["registered_at"] = serde_json::json!(Utc::now() - chrono::Duration::days(days_ago));
        if days_ago > 0 {
            body["backdated_reason"] = serde_json::json!("纸质登记簿补录");
        }
        let (status, view) = http_post(node.address, "/api/cases", &body).expect("register");
        assert_eq!(status, 201, "{view}");
        numbers.push(case_number(&view));
    }
    (node, numbers)
}

#[test]
fn a_person_signs_in_and_reads_the_dashboard_ledger_and_a_case_in_chromium() {
    if browser_is_missing() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (node, numbers) = village_with_cases(dir.path());
    let base = format!("http://{}", node.address);
    let driver = start_chromedriver(&dir.path().join("chromedriver.log"));
    let runtime = browser_runtime();
    runtime.block_on(async {
        let browser = chromium(&driver).await;

        // 登录 shows the office; a wrong password is answered in Chinese, the login kept.
        browser.goto(&format!("{base}/")).await.expect("open /");
        assert!(
            browser
                .current_url()
                .await
                .expect("url")
                .path()
                .ends_with("/login")
        );
        assert_eq!(text_of(&browser, "#office-name").await, "芦荻山村调解室");
        screenshot(&browser, "01-login").await;
        sign_in(
            &browser,
            &base,
            TEST_LOGIN,
            "wrong-password",
            "#sign-in-error",
        )
        .await;
        let error = text_of(&browser, "#sign-in-error").await;
        assert!(error.contains("登录名或密码错误"), "{error}");
        screenshot(&browser, "02-login-wrong-password").await;

        // 工作台: the uplink is down and says what waits; the two warned cases, graded in word.
        sign_in(&browser, &base, TEST_LOGIN, TEST_PASSWORD, "#user").await;
        assert_eq!(browser.current_url().await.expect("url").path(), "/");
        let banner = text_of(&browser, "#link-banner").await;
        assert!(banner.contains("离线"), "{banner}");
        assert!(banner.contains("条变更待上传"), "{banner}");
        let dashboard = text_of(&browser, "main").await;
        // The warned cases first; below, every case still awaiting 受理, warned or not.
        let (warned, awaiting) = dashboard
            .split_once("待受理的登记、上报案件")
            .expect("the 待受理 section");
        assert!(warned.contains(&numbers[0]), "{dashboard}");
        assert!(warned.contains(&numbers[1]), "{dashboard}");
        assert!(
            !warned.contains(&numbers[2]),
            "a case with no warning: {dashboard}"
        );
        for number in &numbers {
            assert!(awaiting.contains(number.as_str()), "{dashboard}");
        }
        assert!(dashboard.contains("预警"), "{dashboard}");
        assert!(dashboard.contains("严重超时"), "{dashboard}");
        assert!(dashboard.contains("已超期"), "{dashboard}");
        screenshot(&browser, "03-dashboard").await;

        // 台账: every case, the ID number masked; the filter is kept in the URL.
        open_menu(&browser, "台账").await;
        let ledger = text_once_it_contains(&browser, "main", &numbers[2]).await;
        for number in &numbers {
            assert!(ledger.contains(number.as_str()), "{ledger}");
        }
        assert!(ledger.contains("430702********0029"), "{ledger}");
        assert!(!ledger.contains("430702198503120029"), "{ledger}");
        assert!(ledger.contains("138****1234"), "{ledger}");
        screenshot(&browser, "04-ledger").await;
        browser
            .goto(&format!("{base}/cases?grade=seriously_overdue"))
            .await
            .expect("filtered 台账");
        let filtered = text_of(&browser, "#cases").await;
        assert!(filtered.contains(&numbers[1]), "{filtered}");
        assert!(!filtered.contains(&numbers[0]), "{filtered}");
        screenshot(&browser, "05-ledger-filtered").await;
        // With JavaScript on, the embedded htmx swaps the table in place on a change of filter
        // and keeps the filter in the URL.
        browser
            .find(Locator::Css("select[name=grade]"))
            .await
            .expect("the grade filter")
            .select_by_value("approaching")
            .await
            .expect("choose 预警");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let url = browser.current_url().await.expect("url");
            let table = text_of(&browser, "#cases").await;
            if url.as_str().contains("grade=approaching") && table.contains(&numbers[0]) {
                assert!(!table.contains(&numbers[1]), "{table}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "htmx did not swap the filtered table in: {url} {table}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        screenshot(&browser, "05b-ledger-htmx-filter").await;
        browser
            .goto(&format!("{base}/cases?grade=seriously_overdue"))
            .await
            .expect("filtered 台账");

        // 案件详情: masked header, the registration in the timeline, days past the limit.
        browser
            .find(Locator::LinkText(&numbers[1]))
            .await
            .expect("the case's link")
            .click()
            .await
            .expect("open 案件详情");
        let case = text_once_it_contains(&browser, "main", "430702********0029").await;
        assert!(case.contains("430702********0029"), "{case}");
        assert!(case.contains("登记"), "{case}");
        assert!(case.contains("测试员 (tester)"), "{case}");
        assert!(case.contains("已超期"), "{case}");
        screenshot(&browser, "06-case").await;
        browser
            .find(Locator::Id("toggle-full"))
            .await
            .expect("查看完整信息")
            .click()
            .await
            .expect("show full");
        let full = text_once_it_contains(&browser, "main", "430702198503120029").await;
        assert!(full.contains("430702198503120029"), "{full}");
        screenshot(&browser, "07-case-full").await;

        register_then_accept(&browser, &base).await;

        // 统计分析: the measures in words and numbers, and the charts drawn by the vendored
        // ECharts with no network at all.
        open_menu(&browser, "统计分析").await;
        let totals = text_once_it_contains(&browser, "#totals", "及时受理率").await;
        assert!(totals.contains("登记件数"), "{totals}");
        browser
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css("#chart-monthly-intake[data-drawn=\"true\"]"))
            .await
            .expect("ECharts draws the monthly intake");
        let canvases = browser
            .find_all(Locator::Css("#chart-monthly-intake canvas"))
            .await
            .expect("chart canvases");
        assert!(!canvases.is_empty(), "the chart has a canvas");
        screenshot(&browser, "12-statistics").await;
        browser
            .execute(
                "document.getElementById('chart-monthly-intake').scrollIntoView();",
                Vec::new(),
            )
            .await
            .expect("scroll to the charts");
        screenshot(&browser, "12b-statistics-charts").await;

        // 督办: nothing addressed to the village yet, and the page says so.
        open_menu(&browser, "督办").await;
        text_once_it_contains(&browser, "#to-us-empty", "暂无").await;
        screenshot(&browser, "13-directives").await;

        // 网络状态: the uplink to the township that is not running, offline, with what waits.
        open_menu(&browser, "网络状态").await;
        let links = text_once_it_contains(&browser, "#links", "离线").await;
        assert!(links.contains("上级"), "{links}");
        screenshot(&browser, "14-network").await;

        // 审计: every signature this village holds checks out, and the quarantine is empty.
        open_menu(&browser, "审计").await;
        text_once_it_contains(&browser, "#quarantine-empty", "隔离区为空").await;
        browser
            .find(Locator::Id("verify-all"))
            .await
            .expect("核验全部签名")
            .click()
            .await
            .expect("verify");
        let verified = text_once_it_contains(&browser, "#verify-result", "全部签名有效").await;
        assert!(verified.contains("已核验"), "{verified}");
        screenshot(&browser, "15-audit").await;

        // 退出登录: back to 登录, and the console asks to sign in again.
        click_then_wait_for(&browser, Locator::Id("sign-out"), Locator::Id("login")).await;
        browser
            .goto(&format!("{base}/cases"))
            .await
            .expect("open 台账");
        assert!(
            browser
                .current_url()
                .await
                .expect("url")
                .path()
                .ends_with("/login")
        );
        browser.close().await.expect("close the browser");
    });
    drop(driver);
    node.stop().expect("stop node");
}

/// Type `text` into the field with id `id`, replacing what it holds.
async fn type_into(browser: &Client, id: &str, text: &str) {
    let field = browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|error| panic!("no field #{id}: {error}"));
    field.clear().await.expect("clear the field");
    field.send_keys(text).await.expect("type into the field");
}

/// What a form field holds now (its `value` property, what the person sees in it).
async fn value_of(browser: &Client, id: &str) -> String {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|error| panic!("no field #{id}: {error}"))
        .prop("value")
        .await
        .expect("the field's value")
        .unwrap_or_default()
}

/// Click `target`, then wait for `outcome`, an element found only on the page the click leads
/// to: the click returns before the browser has loaded the answer.
async fn click_then_wait_for(browser: &Client, target: Locator<'_>, outcome: Locator<'_>) {
    browser
        .find(target)
        .await
        .unwrap_or_else(|error| panic!("no {target:?} to click: {error}"))
        .click()
        .await
        .unwrap_or_else(|error| panic!("click {target:?}: {error}"));
    browser
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(outcome)
        .await
        .unwrap_or_else(|error| panic!("after clicking {target:?}, no {outcome:?}: {error}"));
}

async fn click(browser: &Client, id: &str) {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|error| panic!("no #{id} to click: {error}"))
        .click()
        .await
        .unwrap_or_else(|error| panic!("click #{id}: {error}"));
}

/// 登记 through the form: a mistyped ID number is answered in Chinese beside its field with
/// everything typed kept; corrected, the case is registered and its page opens, where 受理
/// accepts it and the timeline shows the acceptance.
async fn register_then_accept(browser: &Client, base: &str) {
    browser
        .goto(&format!("{base}/"))
        .await
        .expect("open 工作台");
    click_then_wait_for(
        browser,
        Locator::LinkText("登记"),
        Locator::Id("submit-registration"),
    )
    .await;
    // The form starts at this office's own region code.
    assert_eq!(value_of(browser, "region_code").await, VILLAGE_REGION);
    type_into(browser, "petitioner_name_0", "赵桂兰").await;
    // One digit off: the GB 11643 check character no longer matches.
    type_into(browser, "petitioner_id_number_0", "430702198503120028").await;
    type_into(browser, "petitioner_phone_0", "13807365678").await;
    type_into(browser, "petitioner_address_0", "芦荻山乡 5 组").await;
    type_into(browser, "petitioner_name_1", "赵建军").await;
    type_into(browser, "headcount", "2").await;
    browser
        .find(Locator::Id("category"))
        .await
        .expect("the category list")
        .select_by_value("land_requisition")
        .await
        .expect("choose 征地拆迁");
    type_into(browser, "respondent", "芦荻山乡人民政府").await;
    type_into(browser, "summary", "反映修路占用承包地，补偿款至今未发放").await;
    type_into(browser, "village", "芦荻山村").await;
    type_into(browser, "leader", "刘副乡长").await;
    screenshot(browser, "08-register-filled").await;
    click(browser, "submit-registration").await;
    let error =
        text_once_it_contains(browser, "#petitioner_id_number_0-error", "身份证号有误").await;
    assert!(error.contains("校验码"), "{error}");
    for (id, typed) in [
        ("petitioner_name_0", "赵桂兰"),
        ("petitioner_id_number_0", "430702198503120028"),
        ("petitioner_phone_0", "13807365678"),
        ("petitioner_address_0", "芦荻山乡 5 组"),
        ("petitioner_name_1", "赵建军"),
        ("headcount", "2"),
        ("category", "land_requisition"),
        ("respondent", "芦荻山乡人民政府"),
        ("summary", "反映修路占用承包地，补偿款至今未发放"),
        ("village", "芦荻山村"),
        ("leader", "刘副乡长"),
    ] {
        assert_eq!(
            value_of(browser, id).await,
            typed,
            "#{id} after the refusal"
        );
    }
    screenshot(browser, "09-register-wrong-id-number").await;

    type_into(browser, "petitioner_id_number_0", "430702198503120029").await;
    // Registering leads to the new case's page, which offers 受理.
    click_then_wait_for(
        browser,
        Locator::Id("submit-registration"),
        Locator::Id("action-accept"),
    )
    .await;
    let path = browser.current_url().await.expect("url").path().to_owned();
    let number = path
        .strip_prefix("/cases/")
        .expect("a case page")
        .to_owned();
    assert!(
        number.starts_with(&format!("{VILLAGE_REGION}-")),
        "{number}"
    );
    let case = text_of(browser, "main").await;
    assert!(case.contains("待受理"), "{case}");
    assert!(case.contains("赵桂兰"), "{case}");
    assert!(case.contains("430702********0029"), "{case}");
    screenshot(browser, "10-registered-case").await;

    click(browser, "action-accept").await;
    let timeline = text_once_it_contains(browser, "table.events", "受理").await;
    assert!(timeline.contains("登记"), "{timeline}");
    assert!(timeline.contains("测试员 (tester)"), "{timeline}");
    let case = text_of(browser, "main").await;
    assert!(case.contains("办理中"), "{case}");
    assert!(
        browser.find(Locator::Id("action-accept")).await.is_err(),
        "an accepted case offers 受理 no more"
    );
    assert_eq!(browser.current_url().await.expect("url").path(), path);
    browser
        .execute(
            "document.querySelector('table.events').scrollIntoView()",
            Vec::new(),
        )
        .await
        .expect("scroll to the timeline");
    screenshot(browser, "11-case-accepted").await;
}

/// One HTTP answer of the console: status, `Location`, every `Set-Cookie`, the body.
struct Page {
    status: u16,
    location: Option<String>,
    cookies: Vec<String>,
    body: String,
}

/// A console request as a browser with JavaScript off makes it, redirects not followed.
fn console_request(
    address: SocketAddr,
    method: &str,
    path: &str,
    cookie: &str,
    form: &str,
) -> Page {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let url = format!("http://{address}{path}");
    let response = if method == "POST" {
        agent
            .post(&url)
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .send(form)
    } else {
        agent.get(&url).header("cookie", cookie).call()
    };
    let mut response = response.expect("the node answers");
    let header = |name: &str| {
        response
            .headers()
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let location = header("location").into_iter().next();
    let cookies = header("set-cookie");
    Page {
        status: response.status().as_u16(),
        location,
        cookies,
        body: response.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// `name=value` of each cookie set, as a browser sends them back.
fn cookie_header(set_cookies: &[String]) -> String {
    set_cookies
        .iter()
        .filter_map(|cookie| cookie.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Without a browser: the console signs in through the node's accounts (the API's session
/// cookie, with its attributes), reads cases only for a role that may (the role table), takes
/// a sign-out only with the session's CSRF token, and records what it showed in the access log.
#[test]
fn the_console_uses_the_apis_sessions_role_table_csrf_and_access_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (village, node, number) =
        village_with_a_case(dir.path(), &[("keeper", "管理员甲", "admin")]);

    let refused = console_request(
        node.address,
        "POST",
        "/login",
        "",
        &format!("login={TEST_LOGIN}&password=wrong"),
    );
    assert_eq!(refused.status, 401);
    assert!(
        refused.body.contains("登录名或密码错误"),
        "{}",
        refused.body
    );
    assert!(refused.cookies.is_empty(), "{:?}", refused.cookies);

    let signed_in = console_request(
        node.address,
        "POST",
        "/login",
        "",
        &format!("login={TEST_LOGIN}&password={TEST_PASSWORD}"),
    );
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    assert_eq!(signed_in.location.as_deref(), Some("/"));
    let session = signed_in
        .cookies
        .iter()
        .find(|cookie| cookie.starts_with("fengqiao_session="))
        .expect("the API's session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    let cookies = cookie_header(&signed_in.cookies);

    // The console's session is the API's: the same cookie answers /api/session.
    let (who, _) = {
        let mut response = fengqiao_tests::bare_agent()
            .get(format!("http://{}/api/session", node.address))
            .header("cookie", &cookies)
            .call()
            .expect("who am I");
        let status = response.status().as_u16();
        (
            status,
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    };
    assert_eq!(who, 200);

    let ledger = console_request(node.address, "GET", "/cases", &cookies, "");
    assert_eq!(ledger.status, 200);
    assert!(ledger.body.contains(&number), "{}", ledger.body);
    assert!(
        ledger.body.contains("430702********0029"),
        "{}",
        ledger.body
    );
    assert!(
        !ledger.body.contains("430702198503120029"),
        "{}",
        ledger.body
    );
    let case = console_request(
        node.address,
        "GET",
        &format!("/cases/{number}"),
        &cookies,
        "",
    );
    assert_eq!(case.status, 200);

    // A forged or missing CSRF token does not sign out; the session's own does.
    let forged = console_request(node.address, "POST", "/logout", &cookies, "csrf=forged");
    assert_eq!(forged.status, 403);
    assert_eq!(
        console_request(node.address, "GET", "/", &cookies, "").status,
        200,
        "still signed in"
    );
    let csrf = signed_in
        .cookies
        .iter()
        .find_map(|cookie| cookie.strip_prefix("fengqiao_console_csrf="))
        .and_then(|rest| rest.split(';').next())
        .expect("the console's CSRF cookie");
    let out = console_request(
        node.address,
        "POST",
        "/logout",
        &cookies,
        &format!("csrf={csrf}"),
    );
    assert_eq!(out.status, 303);
    let after = console_request(node.address, "GET", "/", &cookies, "");
    assert_eq!(after.status, 303);
    assert_eq!(after.location.as_deref(), Some("/login"));

    // An account whose roles do not read cases (admin only) is told so, in Chinese.
    let keeper = console_request(
        node.address,
        "POST",
        "/login",
        "",
        &format!("login=keeper&password={TEST_PASSWORD}"),
    );
    let keeper_cookies = cookie_header(&keeper.cookies);
    let refused = console_request(node.address, "GET", "/cases", &keeper_cookies, "");
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("无权查看"), "{}", refused.body);
    node.stop().expect("stop node");

    // Both reads went to the access log, under the account.
    let access_log: Vec<String> = fengqiao_tests::open_stopped_node(&village.dir)
        .store()
        .access_log_since(0, 10_000)
        .expect("the access log")
        .into_iter()
        .map(|(_, record)| String::from_utf8_lossy(&record).into_owned())
        .collect();
    assert!(
        access_log
            .iter()
            .any(|record| record.contains("list_cases_console") && record.contains(&number)),
        "{access_log:?}"
    );
    assert!(
        access_log
            .iter()
            .any(|record| record.contains("read_case") && record.contains("测试员 (tester)")),
        "{access_log:?}"
    );
}

/// Sign in to the console as `login`: the cookies to send back, and the session's CSRF token.
fn console_session(address: SocketAddr, login: &str) -> (String, String) {
    let signed_in = console_request(
        address,
        "POST",
        "/login",
        "",
        &format!("login={login}&password={TEST_PASSWORD}"),
    );
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let csrf = signed_in
        .cookies
        .iter()
        .find_map(|cookie| cookie.strip_prefix("fengqiao_console_csrf="))
        .and_then(|rest| rest.split(';').next())
        .expect("the console's CSRF cookie")
        .to_owned();
    (cookie_header(&signed_in.cookies), csrf)
}

/// Which action buttons a case page shows, by the event kinds' API names.
fn offered_actions(body: &str) -> Vec<String> {
    fengqiao_case::authority::KindTag::ALL
        .iter()
        .filter_map(|kind| serde_json::to_value(kind).ok()?.as_str().map(str::to_owned))
        .filter(|kind| body.contains(&format!("id=\"action-{kind}\"")))
        .collect()
}

/// A village's operator (who handles cases) and supervisor (督查), as `village_with_a_case`
/// adds them.
const CASE_WORKERS: &[(&str, &str, &str)] = &[
    ("lizt", "李调解", "operator"),
    ("wangdc", "王督查", "supervisor"),
];

/// A village node running alone with one registered case, and the case's number.
fn village_with_a_case(dir: &Path, logins: &[(&str, &str, &str)]) -> (Office, NodeProcess, String) {
    let village = Office::village(dir, "village", VILLAGE_REGION);
    for (login, name, role) in logins {
        fengqiao_tests::add_account(&village.dir, login, name, &[role]);
    }
    let node = NodeProcess::start(&village.dir).expect("start node");
    let (status, view) = http_post(
        node.address,
        "/api/cases",
        &sample_registration(VILLAGE_REGION, 1),
    )
    .expect("register");
    assert_eq!(status, 201, "{view}");
    let number = case_number(&view);
    (village, node, number)
}

/// Without a browser, against a real node: the case page offers what the node's role table,
/// authority table and lifecycle allow the person now; an action is taken only with the
/// session's CSRF token, and is made by the signed-in account, as through the API.
#[test]
fn the_case_page_offers_what_the_node_allows_and_acts_as_the_signed_in_account() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_village, node, number) = village_with_a_case(dir.path(), CASE_WORKERS);
    let case_path = format!("/cases/{number}");
    let actions_path = format!("/cases/{number}/actions");

    let (operator, operator_csrf) = console_session(node.address, "lizt");
    let (supervisor, _) = console_session(node.address, "wangdc");
    let page = console_request(node.address, "GET", &case_path, &operator, "");
    assert_eq!(page.status, 200, "{}", page.body);
    // 导入诉讼程序 is not offered: the matter is not litigation-related (the lifecycle).
    assert_eq!(
        offered_actions(&page.body),
        ["accept", "reject", "forward", "link_repeat", "note"]
    );
    // A supervisor does not accept (role table); alone, the village has nobody to escalate to.
    let page = console_request(node.address, "GET", &case_path, &supervisor, "");
    assert_eq!(offered_actions(&page.body), ["link_repeat", "note"]);

    let forged = console_request(
        node.address,
        "POST",
        &actions_path,
        &operator,
        "csrf=forged&action=accept",
    );
    assert_eq!(forged.status, 403, "{}", forged.body);
    let accepted = console_request(
        node.address,
        "POST",
        &actions_path,
        &operator,
        &format!("csrf={operator_csrf}&action=accept"),
    );
    assert_eq!(accepted.status, 303, "{}", accepted.body);
    assert_eq!(accepted.location.as_deref(), Some(case_path.as_str()));
    let page = console_request(node.address, "GET", &case_path, &operator, "");
    assert_eq!(
        offered_actions(&page.body),
        ["extend", "reply", "mediate", "link_repeat", "note"]
    );
    assert!(page.body.contains("李调解 (lizt)"), "{}", page.body);

    // Accepting again is refused by the lifecycle, on the case page, with the node's reason.
    let again = console_request(
        node.address,
        "POST",
        &actions_path,
        &operator,
        &format!("csrf={operator_csrf}&action=accept"),
    );
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(again.body.contains("未能受理："), "{}", again.body);
    assert!(
        again.body.contains("only a registered case"),
        "{}",
        again.body
    );
    node.stop().expect("stop node");
}

/// The value a browser sends for the select `name` in the `action` form of a case page: its
/// selected `<option>`.
fn first_option(body: &str, action: &str, name: &str) -> Option<String> {
    let form = body.split(&format!("id=\"form-{action}\"")).nth(1)?;
    let select = form.split(&format!("name=\"{name}\"")).nth(1)?;
    let select = select.split("</select>").next()?;
    select
        .split("<option value=\"")
        .skip(1)
        .find(|option| option.contains("\" selected>"))
        .and_then(|option| option.split('"').next())
        .map(str::to_owned)
}

/// 督办 from the case page, across two real offices: the township's supervisor issues a
/// directive on a village's case (挂牌), the village's operator finds it on its 工作台 and case
/// page after sync, signs for it (签收) and reports (反馈), and the township crosses it off
/// (销号). Each office is offered only its own side of the directive.
#[test]
fn a_directive_is_issued_signed_for_reported_and_crossed_off_from_the_case_pages() {
    let dir = tempfile::tempdir().expect("temp dir");
    let township = Office::township(dir.path());
    let village = Office::village(dir.path(), "village", VILLAGE_REGION);
    fengqiao_tests::add_account(&township.dir, "wangdc", "王督查", &["supervisor"]);
    fengqiao_tests::add_account(&village.dir, "lizt", "李调解", &["operator"]);
    township.admit(&village);
    let township_node = township.start();
    village.join(&township, fengqiao_tests::quic_address(&township_node));
    let village_node = village.start();
    fengqiao_tests::wait_for_roster(
        &[&township_node, &village_node],
        &[&township.id, &village.id],
        Duration::from_secs(20),
    );
    let (status, view) = http_post(
        village_node.address,
        "/api/cases",
        &sample_registration(VILLAGE_REGION, 1),
    )
    .expect("register");
    assert_eq!(status, 201, "{view}");
    let number = case_number(&view);
    let case_path = format!("/cases/{number}");
    let actions_path = format!("/cases/{number}/actions");
    let settle = Duration::from_secs(20);
    fengqiao_tests::wait_for("the case reaches the township", settle, || {
        match http_get(township_node.address, &format!("/api/cases/{number}")) {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });

    let (supervisor, supervisor_csrf) = console_session(township_node.address, "wangdc");
    let page = console_request(township_node.address, "GET", &case_path, &supervisor, "");
    assert_eq!(page.status, 200, "{}", page.body);
    let offered = offered_actions(&page.body);
    assert!(
        offered.contains(&"issue_directive".to_owned()),
        "{offered:?}"
    );
    assert!(
        !offered.contains(&"acknowledge_directive".to_owned()),
        "{offered:?}"
    );
    let due = (Utc::now() + chrono::Duration::days(10))
        .format("%Y-%m-%d")
        .to_string();
    let issued = console_request(
        township_node.address,
        "POST",
        &actions_path,
        &supervisor,
        &format!(
            "csrf={supervisor_csrf}&action=issue_directive&to_node={}&requirement=%E9%99%90%E6%9C%9F%E7%AD%94%E5%A4%8D&due={due}&listed=1",
            village.id
        ),
    );
    assert_eq!(issued.status, 303, "{}", issued.body);

    // At the village, after sync: on the 工作台, and on the case page with 签收.
    let (operator, operator_csrf) = console_session(village_node.address, "lizt");
    let page = fengqiao_tests::wait_for("the directive reaches the village", settle, || {
        let page = console_request(village_node.address, "GET", &case_path, &operator, "");
        if offered_actions(&page.body).contains(&"acknowledge_directive".to_owned()) {
            Ok(page)
        } else {
            Err(format!("offered {:?}", offered_actions(&page.body)))
        }
    });
    assert!(page.body.contains("限期答复"), "{}", page.body);
    assert!(
        !offered_actions(&page.body).contains(&"cross_off_directive".to_owned()),
        "only the issuer crosses off"
    );
    let directive = first_option(&page.body, "acknowledge_directive", "directive")
        .expect("the directive to sign for");
    let dashboard = console_request(village_node.address, "GET", "/", &operator, "");
    assert!(dashboard.body.contains("限期答复"), "{}", dashboard.body);
    for (action, extra) in [
        ("acknowledge_directive", String::new()),
        (
            "report_directive",
            "&text=%E5%B7%B2%E5%85%A5%E6%88%B7%E8%B0%83%E6%9F%A5".to_owned(),
        ),
    ] {
        let done = console_request(
            village_node.address,
            "POST",
            &actions_path,
            &operator,
            &format!("csrf={operator_csrf}&action={action}&directive={directive}{extra}"),
        );
        assert_eq!(done.status, 303, "{action}: {}", done.body);
    }

    // Back at the township: the report arrives, and the issuer crosses the directive off.
    fengqiao_tests::wait_for("the report reaches the township", settle, || {
        let (_, view) = http_get(township_node.address, &format!("/api/cases/{number}"))
            .map_err(|error| error.to_string())?;
        let directive = &view["state"]["directives"][0];
        if directive["status"] == "reported" && directive["reports"][0] == "已入户调查" {
            Ok(())
        } else {
            Err(format!("the township holds {directive}"))
        }
    });
    let page = console_request(township_node.address, "GET", &case_path, &supervisor, "");
    let offered = offered_actions(&page.body);
    assert!(
        offered.contains(&"cross_off_directive".to_owned()),
        "{offered:?}"
    );
    assert!(
        offered.contains(&"return_directive".to_owned()),
        "{offered:?}"
    );
    let crossed = console_request(
        township_node.address,
        "POST",
        &actions_path,
        &supervisor,
        &format!("csrf={supervisor_csrf}&action=cross_off_directive&directive={directive}"),
    );
    assert_eq!(crossed.status, 303, "{}", crossed.body);
    let (_, view) =
        http_get(township_node.address, &format!("/api/cases/{number}")).expect("the case");
    assert_eq!(
        view["state"]["directives"][0]["status"], "crossed_off",
        "{view}"
    );
    assert_eq!(view["state"]["directives"][0]["listed"], true, "{view}");
    village_node.stop().expect("stop village");
    township_node.stop().expect("stop township");
}

/// Sign in to the console with a password: the cookies and the CSRF token, or the status.
fn console_sign_in(
    address: SocketAddr,
    login: &str,
    password: &str,
) -> Result<(String, String), u16> {
    let signed_in = console_request(
        address,
        "POST",
        "/login",
        "",
        &format!("login={login}&password={password}"),
    );
    if signed_in.status != 303 {
        return Err(signed_in.status);
    }
    let csrf = signed_in
        .cookies
        .iter()
        .find_map(|cookie| cookie.strip_prefix("fengqiao_console_csrf="))
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_default()
        .to_owned();
    Ok((cookie_header(&signed_in.cookies), csrf))
}

/// 用户 and 修改密码 against a real node: an admin adds a person from the console and reads
/// the one-time password once; the person signs in with it and sets their own, which ends the
/// session; the old password no longer works, the new one does; an operator may not manage
/// accounts; a disabled account cannot sign in.
#[test]
fn an_admin_adds_a_person_who_sets_their_own_password_and_is_later_disabled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_village, node, _number) = village_with_a_case(
        dir.path(),
        &[
            ("zhaogl", "赵管理", "admin"),
            ("lizt", "李调解", "operator"),
        ],
    );
    let address = node.address;
    let (operator, _) = console_session(address, "lizt");
    assert_eq!(
        console_request(address, "GET", "/accounts", &operator, "").status,
        403
    );

    let (admin, admin_csrf) = console_session(address, "zhaogl");
    let added = console_request(
        address,
        "POST",
        "/accounts",
        &admin,
        &format!("csrf={admin_csrf}&login=xinren&display_name=%E6%96%B0%E4%BA%BA&role_operator=1"),
    );
    assert_eq!(added.status, 200, "{}", added.body);
    let one_time = added
        .body
        .split("id=\"one-time-password\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the one-time password, shown once")
        .to_owned();
    assert!(one_time.len() >= 10, "{one_time}");

    let (person, person_csrf) =
        console_sign_in(address, "xinren", &one_time).expect("signs in with the one-time password");
    let changed = console_request(
        address,
        "POST",
        "/password",
        &person,
        &format!(
            "csrf={person_csrf}&current={one_time}&new=my-own-secret-1&repeat=my-own-secret-1"
        ),
    );
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert!(
        changed.body.contains("id=\"password-changed\""),
        "{}",
        changed.body
    );
    // The session ended with the change.
    assert_eq!(
        console_request(address, "GET", "/", &person, "").status,
        303
    );
    assert_eq!(
        console_sign_in(address, "xinren", &one_time).err(),
        Some(401)
    );
    console_sign_in(address, "xinren", "my-own-secret-1").expect("the new password works");

    let disabled = console_request(
        address,
        "POST",
        "/accounts/xinren/disable",
        &admin,
        &format!("csrf={admin_csrf}"),
    );
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    assert!(
        disabled.body.contains("account-notice"),
        "{}",
        disabled.body
    );
    assert!(console_sign_in(address, "xinren", "my-own-secret-1").is_err());
    node.stop().expect("stop node");
}

/// Which case numbers a 台账 page lists.
fn listed_numbers(body: &str) -> Vec<String> {
    body.split("href=\"/cases/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|number| !number.contains('/'))
        .map(str::to_owned)
        .collect()
}

/// The 台账's search and filters against a real node: a petitioner's name finds only their case
/// (and the search is in the access log under the account), a case number finds its case, a
/// registration date range and the holder filter narrow the list, and a search typed with
/// markup and `&` comes back escaped in the page and percent-encoded in its links.
#[test]
fn the_ledger_finds_a_case_by_petitioner_or_number_and_filters_by_date_and_holder() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (village, node, first) = village_with_a_case(dir.path(), &[("lizt", "李调解", "operator")]);
    let (status, view) = http_post(
        node.address,
        "/api/cases",
        &sample_registration(VILLAGE_REGION, 2),
    )
    .expect("register");
    assert_eq!(status, 201, "{view}");
    let second = case_number(&view);
    let (operator, _) = console_session(node.address, "lizt");
    let get = |path: &str| console_request(node.address, "GET", path, &operator, "");

    let all = get("/cases");
    assert_eq!(all.status, 200, "{}", all.body);
    let mut both = listed_numbers(&all.body);
    both.sort();
    assert_eq!(both, [first.clone(), second.clone()]);
    // sample_registration names its petitioner 王秀英{index}.
    let by_name = get("/cases?q=%E7%8E%8B%E7%A7%80%E8%8B%B12");
    assert_eq!(listed_numbers(&by_name.body), [second]);
    let by_number = get(&format!("/cases?q={}", &first[first.len() - 6..]));
    assert_eq!(listed_numbers(&by_number.body), [first]);
    // The filter's days are China days (UTC+8), as the offices count them.
    let today = (Utc::now() + chrono::Duration::hours(8))
        .format("%Y-%m-%d")
        .to_string();
    let dated = get(&format!("/cases?from=2020-01-01&to={today}"));
    assert_eq!(listed_numbers(&dated.body).len(), 2, "{}", dated.body);
    let none = get("/cases?from=2020-01-01&to=2020-12-31");
    assert!(listed_numbers(&none.body).is_empty(), "{}", none.body);
    let held = get(&format!("/cases?holder={}", village.id));
    assert_eq!(listed_numbers(&held.body).len(), 2);
    let odd = get("/cases?q=%3Cscript%3E%26x%3D1&page=1");
    assert_eq!(odd.status, 200);
    assert!(!odd.body.contains("<script>&"), "{}", odd.body);
    assert!(odd.body.contains("&#60;script&#62;"), "{}", odd.body);
    let bad = get("/cases?from=yesterday");
    assert!(bad.body.contains("yesterday"), "the refused value is named");
    node.stop().expect("stop node");

    let access_log: Vec<String> = fengqiao_tests::open_stopped_node(&village.dir)
        .store()
        .access_log_since(0, 10_000)
        .expect("the access log")
        .into_iter()
        .map(|(_, record)| String::from_utf8_lossy(&record).into_owned())
        .collect();
    assert!(
        access_log
            .iter()
            .any(|record| record.contains("search_cases_console")
                && record.contains("王秀英2")
                && record.contains("李调解 (lizt)")),
        "{access_log:?}"
    );
}

/// The text of `css` on the page at `url`, reloaded until it contains `needle`.
async fn reload_until_it_contains(
    browser: &Client,
    url: &str,
    css: &str,
    needle: &str,
    timeout: Duration,
) -> String {
    poll_text(browser, Some(url), css, needle, timeout).await
}

/// The runtime a browser test drives WebDriver on.
fn browser_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A headless Chromium at an office PC's size, in Chinese.
async fn chromium(driver: &Chromedriver) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1366,768", "--lang=zh-CN"]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// Whether Chromium and chromedriver are here; if not, say so and let the test skip.
fn browser_is_missing() -> bool {
    for binary in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(binary).exists() {
            skip(&format!(
                "{binary} is not installed (scripts/install-browser installs it, as root with apt-get)"
            ));
            return true;
        }
    }
    false
}

/// The 台账 exported as Excel with the browser's session, read back (`excel::sheet`): the
/// header row and each row's case number.
async fn exported_ledger(browser: &Client, base: &str) -> (Vec<String>, Vec<String>) {
    let cookies = browser
        .get_all_cookies()
        .await
        .expect("the browser's cookies")
        .iter()
        .map(|cookie| format!("{}={}", cookie.name(), cookie.value()))
        .collect::<Vec<_>>()
        .join("; ");
    let mut response = fengqiao_tests::bare_agent()
        .get(format!("{base}/export/ledger.xlsx"))
        .header("Cookie", &cookies)
        .call()
        .expect("导出 Excel");
    assert_eq!(response.status(), 200);
    let bytes = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .expect("the workbook's bytes");
    let mut rows = crate::excel::sheet(&bytes).into_iter();
    let header = rows.next().expect("a header row");
    let numbers = rows.filter_map(|row| row.first().cloned()).collect();
    (header, numbers)
}

/// Across three real offices over QUIC, in Chromium: the village escalates a case (上报); the
/// township finds it in its 台账 and on its 工作台 among the cases to accept; at the county an
/// operator is offered no 督办 while a supervisor issues a 挂牌 directive on a case the village
/// holds, which the village's 工作台 then lists; the township is killed, the
/// village's link banner says it is offline and what waits, and registering still works; the
/// village's 台账 exported as Excel holds every case.
#[test]
fn a_case_goes_up_a_directive_comes_down_and_a_cut_link_shows_in_chromium() {
    if browser_is_missing() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let county = Office::county(dir.path());
    let township = Office::township(dir.path());
    let village = Office::village(dir.path(), "village", VILLAGE_REGION);
    fengqiao_tests::add_account(&village.dir, "lizt", "李调解", &["operator", "supervisor"]);
    fengqiao_tests::add_account(&township.dir, "zhangtj", "张调解", &["operator"]);
    fengqiao_tests::add_account(&county.dir, "wangdc", "王督查", &["supervisor"]);
    fengqiao_tests::add_account(&county.dir, "zhaojb", "赵经办", &["operator"]);
    let (county_node, township_node, village_node) =
        fengqiao_tests::start_chain(&county, &township, &village);
    fengqiao_tests::wait_for_roster(
        &[&county_node, &township_node, &village_node],
        &[&county.id, &township.id, &village.id],
        Duration::from_secs(30),
    );
    let mut numbers = Vec::new();
    for index in 1..=2 {
        let (status, view) = http_post(
            village_node.address,
            "/api/cases",
            &sample_registration(VILLAGE_REGION, index),
        )
        .expect("register");
        assert_eq!(status, 201, "{view}");
        numbers.push(case_number(&view));
    }
    let (going_up, staying) = (numbers[0].clone(), numbers[1].clone());
    let village_base = format!("http://{}", village_node.address);
    let township_base = format!("http://{}", township_node.address);
    let county_base = format!("http://{}", county_node.address);
    let sync = Duration::from_secs(60);
    let driver = start_chromedriver(&dir.path().join("chromedriver.log"));
    let runtime = browser_runtime();
    runtime.block_on(async {
        let browser = chromium(&driver).await;

        // The village escalates the first case to the township, beyond what it can decide.
        sign_in(&browser, &village_base, "lizt", TEST_PASSWORD, "#user").await;
        browser
            .goto(&format!("{village_base}/cases/{going_up}"))
            .await
            .expect("open the case");
        type_into(&browser, "escalate-reason", "涉及多个村组，村级无法化解").await;
        click(&browser, "action-escalate").await;
        let timeline = text_once_it_contains(&browser, "table.events", "上报").await;
        assert!(timeline.contains("李调解 (lizt)"), "{timeline}");
        screenshot(&browser, "20-village-escalated").await;

        // The township finds it in its 台账 and among the cases it must accept.
        sign_in(&browser, &township_base, "zhangtj", TEST_PASSWORD, "#user").await;
        reload_until_it_contains(
            &browser,
            &format!("{township_base}/cases"),
            "#cases",
            &going_up,
            sync,
        )
        .await;
        screenshot(&browser, "21-township-ledger").await;
        let awaiting = reload_until_it_contains(
            &browser,
            &format!("{township_base}/"),
            "#awaiting-decision",
            &going_up,
            sync,
        )
        .await;
        assert!(!awaiting.contains(&staying), "{awaiting}");
        screenshot(&browser, "22-township-dashboard").await;

        // At the county an operator may not supervise: no 督办 on the case the village holds.
        sign_in(&browser, &county_base, "zhaojb", TEST_PASSWORD, "#user").await;
        let staying_page = format!("{county_base}/cases/{staying}");
        reload_until_it_contains(&browser, &staying_page, "main", &staying, sync).await;
        assert!(
            browser
                .find(Locator::Id("action-issue_directive"))
                .await
                .is_err(),
            "an operator is offered 督办"
        );
        screenshot(&browser, "23-county-operator-case").await;

        // A supervisor issues a 挂牌 directive to the village, the case's holder.
        sign_in(&browser, &county_base, "wangdc", TEST_PASSWORD, "#user").await;
        browser.goto(&staying_page).await.expect("open the case");
        let target = browser
            .find(Locator::Css("#issue_directive-to_node option[selected]"))
            .await
            .expect("the directive's addressee")
            .attr("value")
            .await
            .expect("its value");
        assert_eq!(target.as_deref(), Some(village.id.as_str()));
        type_into(
            &browser,
            "issue_directive-requirement",
            "请于十日内入户核实并书面答复",
        )
        .await;
        let due = (Utc::now() + chrono::Duration::days(10))
            .format("%Y-%m-%d")
            .to_string();
        browser
            .execute(
                "document.getElementById('issue_directive-due').value = arguments[0];",
                vec![serde_json::json!(due)],
            )
            .await
            .expect("set the due date");
        click(&browser, "issue_directive-listed").await;
        click(&browser, "action-issue_directive").await;
        text_once_it_contains(&browser, "#case-directives", "请于十日内入户核实并书面答复").await;
        screenshot(&browser, "24-county-directive-issued").await;

        // The village finds it on its 工作台 after sync.
        sign_in(&browser, &village_base, "lizt", TEST_PASSWORD, "#user").await;
        let awaiting = reload_until_it_contains(
            &browser,
            &format!("{village_base}/"),
            "#directives-awaiting",
            "请于十日内入户核实并书面答复",
            sync,
        )
        .await;
        assert!(awaiting.contains(&staying), "{awaiting}");
        screenshot(&browser, "25-village-dashboard-directive").await;

        // The township goes down: the village's banner says so, and registering still works.
        township_node.kill_hard();
        reload_until_it_contains(
            &browser,
            &format!("{village_base}/"),
            "#link-banner",
            "离线",
            Duration::from_secs(120),
        )
        .await;
        click_then_wait_for(
            &browser,
            Locator::LinkText("登记"),
            Locator::Id("submit-registration"),
        )
        .await;
        type_into(&browser, "petitioner_name_0", "孙秀英").await;
        type_into(&browser, "petitioner_id_number_0", "430702198503120029").await;
        type_into(&browser, "petitioner_phone_0", "13807365679").await;
        type_into(&browser, "petitioner_address_0", "芦荻山乡 3 组").await;
        type_into(&browser, "headcount", "1").await;
        browser
            .find(Locator::Id("category"))
            .await
            .expect("the category list")
            .select_by_value("land_requisition")
            .await
            .expect("choose 征地拆迁");
        type_into(&browser, "respondent", "芦荻山乡人民政府").await;
        type_into(&browser, "summary", "断网期间来访：宅基地界址纠纷").await;
        type_into(&browser, "village", "芦荻山村").await;
        type_into(&browser, "leader", "刘副乡长").await;
        click_then_wait_for(
            &browser,
            Locator::Id("submit-registration"),
            Locator::Id("action-accept"),
        )
        .await;
        let registered_offline = browser
            .current_url()
            .await
            .expect("url")
            .path()
            .strip_prefix("/cases/")
            .expect("the new case's page")
            .to_owned();
        let banner = text_of(&browser, "#link-banner").await;
        assert!(banner.contains("离线"), "{banner}");
        assert!(banner.contains("条变更待上传"), "{banner}");
        screenshot(&browser, "26-village-offline-registered").await;

        // 导出 Excel: the village's 台账, read back.
        let (header, exported) = exported_ledger(&browser, &village_base).await;
        assert_eq!(
            header.first().map(String::as_str),
            Some("编号"),
            "{header:?}"
        );
        for number in [&going_up, &staying, &registered_offline] {
            assert!(exported.contains(number), "{number} not in {exported:?}");
        }
        browser.close().await.expect("close the browser");
    });
    drop(driver);
    village_node.stop().expect("stop village");
    county_node.stop().expect("stop county");
}

/// A form body as a browser encodes it (`application/x-www-form-urlencoded`), Chinese included.
fn form_of(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// Take `action` on the case at `case_path` from its page, as the signed-in account
/// (`cookie`, `csrf`), with the form's `fields`; the node's answer.
fn act(
    address: SocketAddr,
    case_path: &str,
    (cookie, csrf): (&str, &str),
    action: &str,
    fields: &[(&str, &str)],
) -> Page {
    let mut all = vec![("csrf", csrf), ("action", action)];
    all.extend_from_slice(fields);
    console_request(
        address,
        "POST",
        &format!("{case_path}/actions"),
        cookie,
        &form_of(&all),
    )
}

/// Without a browser, against a real node: 调解 recorded from the case page shows among its
/// mediation records; the agreement's 司法确认 is then offered and updates the record; a
/// 关联重复信访 links the earlier case; after a reply and a review request the supervisor's
/// 复查决定 closes the case; a litigation-related case is 导入诉讼程序. Each event's signature
/// shows valid in the timeline.
#[test]
fn mediation_confirmation_repeat_review_and_diversion_round_trip_from_the_case_page() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_village, node, number) = village_with_a_case(dir.path(), CASE_WORKERS);
    let case_path = format!("/cases/{number}");
    let (operator, operator_csrf) = console_session(node.address, "lizt");
    let (supervisor, supervisor_csrf) = console_session(node.address, "wangdc");
    let as_operator = (operator.as_str(), operator_csrf.as_str());
    let as_supervisor = (supervisor.as_str(), supervisor_csrf.as_str());
    let page_of = |cookie: &str| {
        let page = console_request(node.address, "GET", &case_path, cookie, "");
        assert_eq!(page.status, 200, "{}", page.body);
        page.body
    };
    let done = |answer: Page| {
        assert_eq!(answer.status, 303, "{}", answer.body);
        assert_eq!(answer.location.as_deref(), Some(case_path.as_str()));
    };

    done(act(node.address, &case_path, as_operator, "accept", &[]));
    let body = page_of(&operator);
    assert!(
        offered_actions(&body).contains(&"mediate".to_owned()),
        "{body}"
    );
    assert!(
        !offered_actions(&body).contains(&"update_judicial_confirmation".to_owned()),
        "no agreement yet: {body}"
    );
    done(act(
        node.address,
        &case_path,
        as_operator,
        "mediate",
        &[
            ("mediation_type", "people"),
            ("result", "agreement"),
            ("judicial_confirmation", "not_applied"),
            ("mediator", "赵调解员"),
            ("agreement", "被申请人三个月内分期付清"),
        ],
    ));
    let body = page_of(&operator);
    let records = body
        .split("id=\"mediations\"")
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .unwrap_or_else(|| panic!("the mediation records: {body}"));
    for word in [
        "人民调解",
        "赵调解员",
        "达成协议",
        "被申请人三个月内分期付清",
        "未申请",
    ] {
        assert!(records.contains(word), "{word}: {records}");
    }
    assert!(
        offered_actions(&body).contains(&"update_judicial_confirmation".to_owned()),
        "{body}"
    );
    let mediation = first_option(&body, "update_judicial_confirmation", "mediation")
        .expect("the agreement to confirm");
    done(act(
        node.address,
        &case_path,
        as_operator,
        "update_judicial_confirmation",
        &[
            ("mediation", &mediation),
            ("judicial_confirmation", "confirmed"),
        ],
    ));
    let body = page_of(&operator);
    assert!(body.contains("<td>已确认</td>"), "{body}");

    // A repeat of an earlier case: its number, linked; the case cannot repeat itself.
    let (status, earlier) = http_post(
        node.address,
        "/api/cases",
        &sample_registration(VILLAGE_REGION, 2),
    )
    .expect("register");
    assert_eq!(status, 201, "{earlier}");
    let earlier = case_number(&earlier);
    let itself = act(
        node.address,
        &case_path,
        as_operator,
        "link_repeat",
        &[("earlier", &number)],
    );
    assert_eq!(itself.status, 400, "{}", itself.body);
    assert!(
        itself.body.contains("未能关联重复信访："),
        "{}",
        itself.body
    );
    done(act(
        node.address,
        &case_path,
        as_operator,
        "link_repeat",
        &[("earlier", &earlier)],
    ));
    let body = page_of(&operator);
    assert!(
        body.contains(&format!("href=\"/cases/{earlier}\">{earlier}</a>")),
        "{body}"
    );

    // 答复, then the petitioner's 复查 request; the supervisor decides it, which closes the case.
    done(act(
        node.address,
        &case_path,
        as_operator,
        "reply",
        &[("outcome", "support"), ("text", "支持，已督促分期支付")],
    ));
    assert!(!offered_actions(&page_of(&supervisor)).contains(&"decide_review".to_owned()));
    done(act(
        node.address,
        &case_path,
        as_operator,
        "request_review",
        &[("level", "review"), ("reason", "对答复不服")],
    ));
    let body = page_of(&supervisor);
    assert!(
        offered_actions(&body).contains(&"decide_review".to_owned()),
        "{body}"
    );
    assert!(!offered_actions(&page_of(&operator)).contains(&"decide_review".to_owned()));
    done(act(
        node.address,
        &case_path,
        as_supervisor,
        "decide_review",
        &[
            ("level", "review"),
            ("outcome", "upheld"),
            ("text", "维持原答复"),
        ],
    ));
    let body = page_of(&operator);
    assert!(body.contains("已办结"), "{body}");
    assert!(body.contains(">复查决定</td>"), "{body}");
    // Every event this node made is signed by it, and the timeline says so.
    let timeline = body
        .split("<table class=\"events\">")
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .expect("the timeline");
    assert_eq!(
        timeline.matches("<tr><td>").count(),
        timeline.matches("class=\"signature-valid\"").count(),
        "{timeline}"
    );
    assert!(!timeline.contains("signature-invalid"), "{timeline}");

    // 导入诉讼程序: only a litigation-related matter is offered it, and it ends the case here.
    let mut litigation = sample_registration(VILLAGE_REGION, 3);
    litigation["litigation_related"] = serde_json::json!(true);
    let (status, view) = http_post(node.address, "/api/cases", &litigation).expect("register");
    assert_eq!(status, 201, "{view}");
    let litigation_path = format!("/cases/{}", case_number(&view));
    let page = console_request(node.address, "GET", &litigation_path, &operator, "");
    assert!(
        offered_actions(&page.body).contains(&"divert".to_owned()),
        "{}",
        page.body
    );
    assert!(!offered_actions(&page_of(&operator)).contains(&"divert".to_owned()));
    let diverted = act(
        node.address,
        &litigation_path,
        as_operator,
        "divert",
        &[("to_unit", "武陵区人民法院"), ("reason", "已进入诉讼程序")],
    );
    assert_eq!(diverted.status, 303, "{}", diverted.body);
    let page = console_request(node.address, "GET", &litigation_path, &operator, "");
    assert!(page.body.contains("导入诉讼程序"), "{}", page.body);
    assert!(
        !offered_actions(&page.body).contains(&"divert".to_owned()),
        "{}",
        page.body
    );
    node.stop().expect("stop node");
}

/// The 网络 tests' offices: a township with an admin (zhaogl) and an operator (zhangtj), a
/// village it has admitted, and a newcomer in the sibling village's region not yet admitted.
fn network_offices(dir: &std::path::Path) -> (Office, Office, Office) {
    let township = Office::township(dir);
    let village = Office::village(dir, "village", VILLAGE_REGION);
    let newcomer = Office::village(dir, "newcomer", fengqiao_tests::SIBLING_VILLAGE_REGION);
    fengqiao_tests::add_account(&township.dir, "zhaogl", "赵管理", &["admin"]);
    fengqiao_tests::add_account(&township.dir, "zhangtj", "张调解", &["operator"]);
    township.admit(&village);
    (township, village, newcomer)
}

/// Without a browser, against a real township and village: the township's admin revokes the
/// village from 网络 after a confirm step, through the rule `fengqiao revoke` uses (the roster
/// then says so), and admits another office the same way; an operator is shown neither and is
/// refused by the role table; a region outside the township's is refused beside the form.
#[test]
fn an_admin_revokes_and_admits_an_office_from_the_network_page_and_an_operator_cannot() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (township, village, newcomer) = network_offices(dir.path());
    let township_node = township.start();
    village.join(&township, fengqiao_tests::quic_address(&township_node));
    let village_node = village.start();
    fengqiao_tests::wait_for_roster(
        &[&township_node, &village_node],
        &[&township.id, &village.id],
        Duration::from_secs(30),
    );
    let address = township_node.address;
    let (admin, admin_csrf) = console_session(address, "zhaogl");
    let (operator, operator_csrf) = console_session(address, "zhangtj");

    let page = console_request(address, "GET", "/network", &operator, "");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("id=\"form-admit\""), "{}", page.body);
    assert!(!page.body.contains("/network/revoke"), "{}", page.body);
    let refused = console_request(
        address,
        "POST",
        "/network/revoke",
        &operator,
        &form_of(&[
            ("csrf", &operator_csrf),
            ("node_id", &village.id),
            ("confirmed", "1"),
        ]),
    );
    assert_eq!(refused.status, 403, "{}", refused.body);

    let page = console_request(address, "GET", "/network", &admin, "");
    assert!(
        page.body.contains(&format!("id=\"revoke-{}\"", village.id)),
        "{}",
        page.body
    );
    let asked = console_request(
        address,
        "POST",
        "/network/revoke",
        &admin,
        &form_of(&[("csrf", &admin_csrf), ("node_id", &village.id)]),
    );
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert!(asked.body.contains("确认撤销下级单位"), "{}", asked.body);
    assert!(asked.body.contains(village.name), "{}", asked.body);
    // Asking changed nothing yet.
    let page = console_request(address, "GET", "/network", &admin, "");
    assert!(page.body.contains(&format!("id=\"revoke-{}\"", village.id)));
    let revoked = console_request(
        address,
        "POST",
        "/network/revoke",
        &admin,
        &form_of(&[
            ("csrf", &admin_csrf),
            ("node_id", &village.id),
            ("confirmed", "1"),
        ]),
    );
    assert_eq!(revoked.status, 303, "{}", revoked.body);
    assert_eq!(revoked.location.as_deref(), Some("/network"));
    let page = console_request(address, "GET", "/network", &admin, "");
    assert!(!page.body.contains(&format!("id=\"revoke-{}\"", village.id)));
    assert!(
        page.body.contains("id=\"revoked-offices\""),
        "{}",
        page.body
    );
    let (_, roster) = http_get(address, "/api/roster").expect("roster");
    let revoked_ids = roster["revoked"].to_string();
    assert!(revoked_ids.contains(&village.id), "{roster}");

    // A region outside the township's is refused beside the form, as typed.
    let outside = console_request(
        address,
        "POST",
        "/network/admit",
        &admin,
        &form_of(&[
            ("csrf", &admin_csrf),
            ("node_id", &newcomer.id),
            ("name", "外乡村"),
            ("region_code", "430703101001"),
            ("confirmed", "1"),
        ]),
    );
    assert_eq!(outside.status, 400, "{}", outside.body);
    assert!(outside.body.contains("未能接入："), "{}", outside.body);
    assert!(
        outside.body.contains("value=\"外乡村\""),
        "{}",
        outside.body
    );
    let admitted = console_request(
        address,
        "POST",
        "/network/admit",
        &admin,
        &form_of(&[
            ("csrf", &admin_csrf),
            ("node_id", &newcomer.id),
            ("name", "新村调解室"),
            ("region_code", newcomer.region),
            ("confirmed", "1"),
        ]),
    );
    assert_eq!(admitted.status, 303, "{}", admitted.body);
    let page = console_request(address, "GET", "/network", &admin, "");
    assert!(
        page.body
            .contains(&format!("id=\"revoke-{}\"", newcomer.id)),
        "{}",
        page.body
    );
    let config = std::fs::read_to_string(township.dir.join("fengqiao.toml")).expect("config");
    assert!(config.contains(&newcomer.id), "{config}");
    village_node.stop().expect("stop village");
    township_node.stop().expect("stop township");
}

/// One answer read off a raw HTTP/1.0 connection, exactly as sent: status, headers (names in
/// lower case) and the body's bytes before any decoding.
struct RawAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// `GET path` over a plain socket with `headers` and nothing else (no client that asks for or
/// decodes compression by itself); HTTP/1.0, so the body ends where the connection closes.
fn raw_get(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> RawAnswer {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the node");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    let split = answer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("the answer's head ends");
    let head = String::from_utf8(answer[..split].to_vec()).expect("a UTF-8 head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    RawAnswer {
        status,
        headers,
        body: answer[split + 4..].to_vec(),
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut plain)
        .expect("a gzip body");
    plain
}

/// Against a real node over real HTTP: the console's pages, its stylesheet and scripts and the
/// API's JSON go gzip- or brotli-compressed to a client that asks for it, and decode to what a
/// client that does not ask gets plain; the xlsx export (a zip already) is never compressed
/// again; the pages link their assets by versioned URLs cached as immutable, so a reload sends
/// htmx no more.
#[test]
fn answers_are_compressed_for_clients_that_ask_and_assets_are_cached_by_version() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_village, node, _number) = village_with_a_case(dir.path(), CASE_WORKERS);
    let (cookie, _csrf) = console_session(node.address, "lizt");
    let dashboard = raw_get(node.address, "/", &[("cookie", &cookie)]);
    assert_eq!(dashboard.status, 200);
    let dashboard = String::from_utf8(dashboard.body).expect("an HTML page");
    let htmx_href = dashboard
        .split('"')
        .find(|value| value.starts_with("/assets/htmx.min.js?v="))
        .unwrap_or_else(|| panic!("the page links htmx by a versioned URL: {dashboard}"))
        .to_owned();

    for path in ["/login", "/api/openapi.json", htmx_href.as_str()] {
        let plain = raw_get(node.address, path, &[]);
        assert_eq!(plain.status, 200, "{path}");
        assert_eq!(plain.header("content-encoding"), None, "{path} asked plain");
        let gzipped = raw_get(node.address, path, &[("accept-encoding", "gzip")]);
        assert_eq!(gzipped.status, 200, "{path}");
        assert_eq!(gzipped.header("content-encoding"), Some("gzip"), "{path}");
        assert!(
            gzipped
                .header("vary")
                .is_some_and(|vary| vary.to_ascii_lowercase().contains("accept-encoding")),
            "{path}: a cache must keep the encodings apart"
        );
        assert!(
            gzipped.body.len() < plain.body.len(),
            "{path}: {} bytes gzip of {} plain",
            gzipped.body.len(),
            plain.body.len()
        );
        assert_eq!(gunzip(&gzipped.body), plain.body, "{path} decodes the same");
        let brotli = raw_get(node.address, path, &[("accept-encoding", "br")]);
        assert_eq!(brotli.header("content-encoding"), Some("br"), "{path}");
        assert!(brotli.body.len() < plain.body.len(), "{path}");
        if path == htmx_href {
            // htmx, the most of a page's weight, goes in well under half its size.
            assert!(gzipped.body.len() < plain.body.len() / 2, "{path}");
            assert!(brotli.body.len() < plain.body.len() / 2, "{path}");
        }
    }

    // The versioned URL is cached for a year as immutable; the bare one only for a day.
    let versioned = raw_get(node.address, &htmx_href, &[]);
    assert_eq!(
        versioned.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let bare = raw_get(node.address, "/assets/htmx.min.js", &[]);
    assert_eq!(bare.header("cache-control"), Some("public, max-age=86400"));
    assert_eq!(bare.body, versioned.body);
    let stale = raw_get(node.address, "/assets/htmx.min.js?v=0000000000000000", &[]);
    assert_eq!(stale.header("cache-control"), Some("public, max-age=86400"));

    // The xlsx export is a zip already: sent as it is, whatever the client accepts.
    let workbook = raw_get(
        node.address,
        "/export/ledger.xlsx",
        &[("cookie", &cookie), ("accept-encoding", "gzip, br")],
    );
    assert_eq!(workbook.status, 200);
    assert_eq!(workbook.header("content-encoding"), None);
    assert!(workbook.body.starts_with(b"PK"), "an xlsx (zip) file");
    node.stop().expect("stop node");
}

/// Choose `value` in the select list with id `id`.
async fn choose(browser: &Client, id: &str, value: &str) {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|error| panic!("no list #{id}: {error}"))
        .select_by_value(value)
        .await
        .unwrap_or_else(|error| panic!("choose {value} in #{id}: {error}"));
}

/// In Chromium, through the case page's own forms: 受理, then 调解 with its record (type,
/// result, mediator, the agreement's terms), which shows among the case's mediation records;
/// then 关联重复信访 naming an earlier case, which the page then links.
#[test]
fn a_mediation_record_and_a_repeat_link_are_entered_on_the_case_page_in_chromium() {
    if browser_is_missing() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (_village, node, number) = village_with_a_case(dir.path(), CASE_WORKERS);
    let (status, earlier) = http_post(
        node.address,
        "/api/cases",
        &sample_registration(VILLAGE_REGION, 2),
    )
    .expect("register");
    assert_eq!(status, 201, "{earlier}");
    let earlier = case_number(&earlier);
    let base = format!("http://{}", node.address);
    let driver = start_chromedriver(&dir.path().join("chromedriver.log"));
    let runtime = browser_runtime();
    runtime.block_on(async {
        let browser = chromium(&driver).await;
        sign_in(&browser, &base, "lizt", TEST_PASSWORD, "#user").await;
        browser
            .goto(&format!("{base}/cases/{number}"))
            .await
            .expect("open the case");
        click_then_wait_for(
            &browser,
            Locator::Id("action-accept"),
            Locator::Id("action-mediate"),
        )
        .await;

        choose(&browser, "mediate-mediation_type", "people").await;
        choose(&browser, "mediate-result", "agreement").await;
        choose(&browser, "mediate-judicial_confirmation", "not_applied").await;
        type_into(&browser, "mediate-mediator", "赵调解员").await;
        type_into(&browser, "mediate-agreement", "被申请人三个月内分期付清").await;
        screenshot(&browser, "30-case-mediation-filled").await;
        click(&browser, "action-mediate").await;
        let records = text_once_it_contains(&browser, "#mediations", "赵调解员").await;
        for word in ["人民调解", "达成协议", "被申请人三个月内分期付清", "未申请"]
        {
            assert!(records.contains(word), "{word}: {records}");
        }
        let timeline = text_of(&browser, "table.events").await;
        assert!(timeline.contains("调解"), "{timeline}");
        // An agreement can now be confirmed by a court: 司法确认 is offered.
        browser
            .find(Locator::Id("action-update_judicial_confirmation"))
            .await
            .expect("司法确认 offered after an agreement");
        browser
            .execute(
                "document.getElementById('mediations').scrollIntoView()",
                Vec::new(),
            )
            .await
            .expect("scroll to the records");
        screenshot(&browser, "31-case-mediation-recorded").await;

        type_into(&browser, "link_repeat-earlier", &earlier).await;
        click(&browser, "action-link_repeat").await;
        let repeat = text_once_it_contains(&browser, "#repeat-of", &earlier).await;
        assert!(repeat.contains(&earlier), "{repeat}");
        browser
            .find(Locator::Css(&format!(
                "#repeat-of a[href=\"/cases/{earlier}\"]"
            )))
            .await
            .expect("the earlier case linked");
        screenshot(&browser, "32-case-repeat-linked").await;
        browser.close().await.expect("close the browser");
    });
    drop(driver);
    node.stop().expect("stop node");
}

/// In Chromium at a township: an operator's 网络 page has no admit or revoke button; an admin
/// revokes the village after the page's confirm step (asking alone changes nothing), then admits
/// a new village, again after confirming, and the page lists it with its own revoke button.
#[test]
fn an_admin_admits_and_revokes_offices_on_the_network_page_in_chromium() {
    if browser_is_missing() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (township, village, newcomer) = network_offices(dir.path());
    let township_node = township.start();
    let base = format!("http://{}", township_node.address);
    let driver = start_chromedriver(&dir.path().join("chromedriver.log"));
    let runtime = browser_runtime();
    runtime.block_on(async {
        let browser = chromium(&driver).await;

        sign_in(&browser, &base, "zhangtj", TEST_PASSWORD, "#user").await;
        browser
            .goto(&format!("{base}/network"))
            .await
            .expect("open 网络");
        text_once_it_contains(&browser, "#federation-tree", village.name).await;
        for absent in [
            Locator::Id("form-admit"),
            Locator::Css("form[action=\"/network/revoke\"]"),
        ] {
            assert!(
                browser.find(absent).await.is_err(),
                "an operator is offered {absent:?}"
            );
        }
        screenshot(&browser, "33-network-operator").await;

        sign_in(&browser, &base, "zhaogl", TEST_PASSWORD, "#user").await;
        browser
            .goto(&format!("{base}/network"))
            .await
            .expect("open 网络");
        click_then_wait_for(
            &browser,
            Locator::Id(&format!("revoke-{}", village.id)),
            Locator::Id("confirm-question"),
        )
        .await;
        let question = text_of(&browser, "#confirm-question").await;
        assert!(question.contains("确认撤销下级单位"), "{question}");
        assert!(question.contains(village.name), "{question}");
        screenshot(&browser, "34-network-confirm-revoke").await;
        click_then_wait_for(
            &browser,
            Locator::Id("confirm"),
            Locator::Id("revoked-offices"),
        )
        .await;
        let revoked = text_of(&browser, "#revoked-offices").await;
        assert!(revoked.contains(village.region), "{revoked}");
        assert!(
            browser
                .find(Locator::Id(&format!("revoke-{}", village.id)))
                .await
                .is_err(),
            "a revoked office is offered for revoking again"
        );

        type_into(&browser, "admit-node_id", &newcomer.id).await;
        type_into(&browser, "admit-name", "新村调解室").await;
        type_into(&browser, "admit-region_code", newcomer.region).await;
        click_then_wait_for(
            &browser,
            Locator::Id("admit"),
            Locator::Id("confirm-question"),
        )
        .await;
        screenshot(&browser, "35-network-confirm-admit").await;
        click_then_wait_for(
            &browser,
            Locator::Id("confirm"),
            Locator::Id(&format!("revoke-{}", newcomer.id)),
        )
        .await;
        let children = text_of(&browser, "#children").await;
        assert!(children.contains("新村调解室"), "{children}");
        screenshot(&browser, "36-network-admitted").await;
        browser.close().await.expect("close the browser");
    });
    drop(driver);
    let (_, roster) = http_get(township_node.address, "/api/roster").expect("roster");
    assert!(
        roster["revoked"].to_string().contains(&village.id),
        "{roster}"
    );
    township_node.stop().expect("stop township");
}

/// Post `event` to a case through the API, which must take it.
fn append_event(node: &NodeProcess, number: &str, event: serde_json::Value) {
    let (status, view) = http_post(node.address, &format!("/api/cases/{number}/events"), &event)
        .expect("append an event");
    assert_eq!(status, 200, "{event} at {}: {view}", node.url());
}

/// The case's state at `node` once `accept` holds of it, waiting up to a minute.
fn state_once(
    node: &NodeProcess,
    number: &str,
    what: &str,
    accept: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    fengqiao_tests::wait_for(what, Duration::from_secs(60), || {
        match http_get(node.address, &format!("/api/cases/{number}")) {
            Ok((200, view)) if accept(&view["state"]) => Ok(view["state"].clone()),
            Ok((status, view)) => Err(format!("{status}: {}", view["state"])),
            Err(error) => Err(error.to_string()),
        }
    })
}

/// Two real offices over QUIC make a fork: with the township down the village replies and
/// closes a case; with the village down the township takes it over; both up again, each holds
/// both branches. In Chromium at the township the case page shows the two branches side by
/// side, each with its button; choosing the township's settles the fork everywhere.
#[test]
fn a_fork_is_shown_side_by_side_and_resolved_by_a_click_in_chromium() {
    if browser_is_missing() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let township = Office::township(dir.path());
    let village = Office::village(dir.path(), "village", VILLAGE_REGION);
    township.admit(&village);
    let township_node = township.start();
    let township_quic = fengqiao_tests::quic_address(&township_node);
    village.join(&township, township_quic);
    let village_node = village.start();
    let number = case_number(&fengqiao_tests::register_sample(
        &village_node,
        VILLAGE_REGION,
        1,
    ));
    append_event(
        &village_node,
        &number,
        serde_json::json!({"kind": "accept", "payload": {}}),
    );
    state_once(
        &township_node,
        &number,
        "the township has it accepted",
        |state| state["status"] == "accepted",
    );

    // The link cut by the township going down: the village replies and closes.
    assert!(township_node.stop().expect("stop"), "graceful stop");
    append_event(
        &village_node,
        &number,
        serde_json::json!({"kind": "reply", "payload": {"outcome": "support", "text": "企业已结清欠薪"}}),
    );
    append_event(
        &village_node,
        &number,
        serde_json::json!({"kind": "close", "payload": {"resolved": true, "note": "当事人已领取"}}),
    );
    // The village down in turn, the township, unaware of the close, takes the case over.
    assert!(village_node.stop().expect("stop"), "graceful stop");
    let township_node = township.restart_at(township_quic);
    append_event(
        &township_node,
        &number,
        serde_json::json!({"kind": "take_over", "payload": {"reason": "涉及多村，乡级提级办理"}}),
    );
    let village_node = village.start();
    let conflict = state_once(
        &township_node,
        &number,
        "the fork reaches the township",
        |state| !state["conflict"].is_null(),
    )["conflict"]
        .clone();
    assert_eq!(
        conflict["branches"].as_array().map(Vec::len),
        Some(2),
        "{conflict}"
    );

    let base = format!("http://{}", township_node.address);
    let driver = start_chromedriver(&dir.path().join("chromedriver.log"));
    let runtime = browser_runtime();
    runtime.block_on(async {
        let browser = chromium(&driver).await;
        sign_in(&browser, &base, TEST_LOGIN, TEST_PASSWORD, "#user").await;
        browser
            .goto(&format!("{base}/cases/{number}"))
            .await
            .expect("open the case");
        text_once_it_contains(&browser, "#conflict-notice", "冲突").await;
        let branches = browser
            .find_all(Locator::Css("#branches .branch"))
            .await
            .expect("the branches");
        assert_eq!(branches.len(), 2, "two branches side by side");
        // Side by side: the two cards on one line, the second to the right of the first.
        let (first_x, first_y, first_width, _) =
            branches[0].rectangle().await.expect("first branch's place");
        let (second_x, second_y, _, _) = branches[1]
            .rectangle()
            .await
            .expect("second branch's place");
        assert!(
            second_x >= first_x + first_width - 1.0 && (second_y - first_y).abs() < 1.0,
            "branches at ({first_x}, {first_y}) and ({second_x}, {second_y})"
        );
        let mut township_branch = None;
        for (index, branch) in branches.iter().enumerate() {
            let text = branch.text().await.expect("the branch's text");
            if text.contains("提级办理") {
                assert!(text.contains(township.name), "{text}");
                township_branch = Some(index + 1);
            } else {
                assert!(text.contains("办结"), "{text}");
                assert!(text.contains(village.name), "{text}");
            }
        }
        let township_branch = township_branch.expect("the township's branch is shown");
        browser
            .execute(
                "document.getElementById('branches').scrollIntoView()",
                Vec::new(),
            )
            .await
            .expect("scroll to the branches");
        screenshot(&browser, "37-case-fork-side-by-side").await;
        click(&browser, &format!("resolve-branch-{township_branch}")).await;
        text_once_it_contains(&browser, "table.events", "裁决冲突").await;
        assert!(
            browser.find(Locator::Id("branches")).await.is_err(),
            "a resolved fork is shown no more"
        );
        screenshot(&browser, "38-case-fork-resolved").await;
        browser.close().await.expect("close the browser");
    });
    drop(driver);
    // The decision reaches the village too: the fork is settled on both offices.
    state_once(
        &village_node,
        &number,
        "the village learns the decision",
        |state| state["conflict"].is_null() && state["status"] != "closed",
    );
    village_node.stop().expect("stop village");
    township_node.stop().expect("stop township");
}
