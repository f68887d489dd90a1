//! `fengqiao demo`: a county node (武陵区) seeded with realistic cases, serving its API in-process.
//!
//! Everything is seeded through the HTTP API, exactly as an operator's commands would do it, so the
//! demo also shows that the API, the importer and the lifecycle fit together.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{Days, Utc};
use clap::Args;
use fengqiao_case::samples::{SampleVillage, sample_ledger};
use fengqiao_case::{
    AppendEvent, CaseView, Category, Channel, EventKind, JudicialConfirmation, Location,
    MatterType, Measures, MediationResult, MediationType, NodeInfo, Ownership, Petitioner,
    RegisterCase, ReplyOutcome, Satisfaction, Tier,
};

use crate::cli::{GlobalOptions, emit, render};
use crate::client::NodeClient;
use crate::config::NodeDir;
use crate::import::{ImportTotals, progress_bar, upload_in_batches};

/// The demo county: 常德市武陵区.
pub const DEMO_COUNTY_CODE: &str = "430702";
pub const DEMO_COUNTY_NAME: &str = "常德市武陵区社会矛盾纠纷调处化解中心";

/// Who the demo says it is in the events it makes.
const DEMO_OPERATOR: &str = "演示 demo";

/// Stand-in id of the city petition bureau's node, which this one-node demo escalates to.
const DEMO_CITY_NODE: &str = "changde-city-petition-bureau";

const DEFAULT_LISTEN: &str = "127.0.0.1:7370";

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address to serve on; if it is taken, a free port is used instead
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// How many sample cases to seed
    #[arg(long = "cases", value_name = "N", default_value_t = 200)]
    pub case_count: usize,
    /// Seed of the sample generator (same seed, same cases)
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Exit after seeding instead of serving until Ctrl-C
    #[arg(long)]
    pub no_serve: bool,
}

/// Villages and communities of the demo county, with 12-digit codes under 430702.
pub fn demo_villages() -> Vec<SampleVillage> {
    [
        ("430702001001", "芦荻山乡芦荻山村"),
        ("430702001002", "芦荻山乡新坪村"),
        ("430702001003", "河洑镇河洑村"),
        ("430702001004", "河洑镇山下村"),
        ("430702002001", "丹洲乡丹洲村"),
        ("430702002002", "丹洲乡白鹤山村"),
        ("430702003001", "东江街道东江社区"),
        ("430702003002", "东江街道南坪岗社区"),
        ("430702004001", "芙蓉街道芙蓉社区"),
        ("430702004002", "穿紫河街道穿紫河社区"),
        ("430702005001", "长庚街道长庚社区"),
        ("430702005002", "白马湖街道白马湖社区"),
    ]
    .into_iter()
    .map(|(region_code, name)| SampleVillage {
        region_code: region_code.to_owned(),
        name: name.to_owned(),
    })
    .collect()
}

pub fn run(args: DemoArgs, global: &GlobalOptions) -> anyhow::Result<()> {
    let dir = match &global.dir {
        Some(dir) => dir.clone(),
        None => fresh_demo_dir()?,
    };
    prepare_node_dir(&dir)?;
    let listen = free_address(args.listen);

    // A stale address from an earlier run would point at a dead port; remove it before the server
    // can write the new one.
    let _ = std::fs::remove_file(NodeDir::new(&dir).api_address_path());
    let runtime = crate::cli::tokio_runtime()?;
    let shutdown_requested = std::sync::Arc::new(tokio::sync::Notify::new());
    let serving = {
        let _entered = runtime.enter();
        let signal = crate::cli::shutdown_signal()?;
        let requested = shutdown_requested.clone();
        let shutdown = async move {
            tokio::select! {
                () = signal => {}
                () = requested.notified() => {}
            }
        };
        let serve_dir = dir.clone();
        runtime
            .spawn(async move { crate::api::serve(&serve_dir, Some(listen), None, shutdown).await })
    };
    let url = wait_until_serving(&dir, &serving)?;
    let operator = global
        .operator
        .clone()
        .unwrap_or_else(|| DEMO_OPERATOR.to_owned());
    let client = NodeClient::new(url.clone(), Some(operator));
    let seeded = seed(&client, &args);
    let seeded = match seeded {
        Ok(seeded) => seeded,
        Err(error) => {
            shutdown_requested.notify_one();
            let _ = runtime.block_on(serving);
            return Err(error);
        }
    };

    let measures: Measures = client.get_as("/api/stats", &[])?;
    if global.json {
        crate::cli::print_json(&measures)?;
    } else {
        emit(render::stats_text(&measures))?;
        emit(guide(&dir, &url, &seeded, args.no_serve))?;
    }
    if args.no_serve {
        shutdown_requested.notify_one();
    } else {
        eprintln!("serving {url} until Ctrl-C …");
    }
    let served = runtime
        .block_on(serving)
        .context("the demo node's server task failed")?;
    served.context("the demo node stopped with an error")?;
    Ok(())
}

/// A new directory under the system temp dir, kept after the demo so it can be run again.
fn fresh_demo_dir() -> anyhow::Result<PathBuf> {
    let mut suffix = [0u8; 4];
    getrandom::fill(&mut suffix).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
    let dir = std::env::temp_dir().join(format!("fengqiao-demo-{}", hex::encode(suffix)));
    Ok(dir)
}

/// Initialize the county node unless `dir` already holds one (then it is reused as it is).
fn prepare_node_dir(dir: &Path) -> anyhow::Result<()> {
    if NodeDir::exists(dir) {
        eprintln!("reusing the node in {}", dir.display());
        return Ok(());
    }
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} exists, is not empty and is not a node directory: choose another --dir",
            dir.display()
        );
    }
    let options = crate::service::InitOptions {
        name: DEMO_COUNTY_NAME.to_owned(),
        tier: Tier::County,
        region_code: DEMO_COUNTY_CODE.to_owned(),
        listen: None,
        parent: None,
    };
    crate::service::init_node(dir, options)
        .with_context(|| format!("cannot create the demo node in {}", dir.display()))?;
    eprintln!(
        "created county node {DEMO_COUNTY_NAME} ({DEMO_COUNTY_CODE}) in {}",
        dir.display()
    );
    Ok(())
}

/// The requested address if it can be bound now, otherwise port 0 on the same interface.
fn free_address(requested: SocketAddr) -> SocketAddr {
    match TcpListener::bind(requested) {
        Ok(listener) => {
            drop(listener);
            requested
        }
        Err(error) => {
            let fallback = SocketAddr::new(requested.ip(), 0);
            eprintln!("{requested} is not available ({error}); using a free port instead");
            fallback
        }
    }
}

/// Wait for the in-process server to write `api.addr` and answer `/api/health`.
fn wait_until_serving(
    dir: &Path,
    serving: &tokio::task::JoinHandle<anyhow::Result<()>>,
) -> anyhow::Result<String> {
    let address_path = NodeDir::new(dir).api_address_path();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if serving.is_finished() {
            bail!("the demo node stopped while starting: run with -v for its log");
        }
        if let Ok(text) = std::fs::read_to_string(&address_path)
            && let Ok(address) = text.trim().parse::<SocketAddr>()
        {
            let url = format!("http://{address}");
            if NodeClient::new(url.clone(), None)
                .get_as::<NodeInfo>("/api/health", &[])
                .is_ok()
            {
                return Ok(url);
            }
        }
        if Instant::now() > deadline {
            bail!("the demo node did not answer within 30 s");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// What seeding produced, for the guide.
#[derive(Debug, Default)]
struct Seeded {
    totals: ImportTotals,
    scenario_cases: Vec<String>,
}

fn seed(client: &NodeClient, args: &DemoArgs) -> anyhow::Result<Seeded> {
    let node: NodeInfo = client.get_as("/api/health", &[])?;
    if node.case_count > 0 {
        // Sample rows carry no numbers (the node assigns them), so importing them again would
        // register every case twice: a reused demo node keeps what it has.
        eprintln!(
            "the node already holds {} case(s): not seeding it again",
            node.case_count
        );
        return Ok(Seeded::default());
    }
    let now = Utc::now();
    let start = now.checked_sub_days(Days::new(180)).unwrap_or(now);
    let rows = sample_ledger(args.seed, args.case_count, &demo_villages(), start, now);
    let reports = upload_in_batches(client, &rows, 100, false, "seeding")
        .context("seed the sample cases through POST /api/import")?;
    let totals = ImportTotals::count(&reports);
    if totals.rejected > 0 {
        for report in reports
            .iter()
            .filter(|report| report.error.is_some())
            .take(5)
        {
            eprintln!(
                "sample row {} rejected: {}",
                report.line,
                report.error.as_deref().unwrap_or_default()
            );
        }
        bail!(
            "{} sample case(s) were rejected by the node",
            totals.rejected
        );
    }
    eprintln!(
        "seeded {} sample case(s) ({} already present)",
        totals.imported, totals.already_present
    );
    let scenario_cases = scenarios(client).context("play the scripted scenarios")?;
    Ok(Seeded {
        totals,
        scenario_cases,
    })
}

/// A scenario case's number: fixed, so a re-run finds it instead of registering it twice.
fn scenario_number(sequence: u32) -> String {
    format!(
        "{DEMO_COUNTY_CODE}-{}-9{sequence:05}",
        Utc::now().format("%Y")
    )
}

/// Scripted cases that walk the lifecycle through the same API an operator's commands use.
fn scenarios(client: &NodeClient) -> anyhow::Result<Vec<String>> {
    let progress = progress_bar(4, "scenarios");
    let node: NodeInfo = client.get_as("/api/health", &[])?;
    let mut numbers = Vec::new();

    // 1. A group visit over wage arrears at a factory that stopped production: accepted by the
    //    county, owned by a leader, mediated twice, replied, evaluated and closed as resolved.
    let wages = scenario_number(1);
    if register_once(client, &wages, wage_arrears_group_visit(&wages))? {
        let steps = [
            EventKind::Accept {},
            EventKind::Mediate {
                mediation_type: MediationType::Petition,
                mediator: "区信访局 周建华".into(),
                result: MediationResult::NoAgreement,
                agreement: String::new(),
                judicial_confirmation: JudicialConfirmation::NotApplied,
            },
            EventKind::Mediate {
                mediation_type: MediationType::Administrative,
                mediator: "区人社局 劳动监察大队".into(),
                result: MediationResult::Agreement,
                agreement: "破产管理人以厂房处置款优先清偿职工工资，分三期于六个月内付清".into(),
                judicial_confirmation: JudicialConfirmation::NotApplied,
            },
            EventKind::Reply {
                outcome: ReplyOutcome::Support,
                text: "诉求合理，已协调按调解协议分期补发拖欠工资及社保费".into(),
            },
            EventKind::Evaluate {
                satisfaction: Satisfaction::BasicallySatisfied,
            },
            EventKind::Close {
                resolved: true,
                note: "首期工资已发放，职工代表签字确认，销号".into(),
            },
        ];
        for kind in steps {
            append(client, &wages, kind)?;
        }
    }
    numbers.push(wages);
    progress.inc(1);

    // 2. Land requisition compensation left short: accepted, supervised by a listed directive that
    //    is acknowledged, reported on and crossed off, then escalated-in-kind via a leader's plan.
    let land = scenario_number(2);
    if register_once(client, &land, land_requisition(&land))? {
        append(client, &land, EventKind::Accept {})?;
        let directive = "D0DEMO01".to_owned();
        let due = Utc::now()
            .date_naive()
            .checked_add_days(Days::new(7))
            .unwrap_or_else(|| Utc::now().date_naive());
        let steps = [
            EventKind::IssueDirective {
                directive: directive.clone(),
                target_node: node.node_id.clone(),
                requirement: "七日内核清补偿款发放台账，向村民公开".into(),
                due,
                listed: true,
            },
            EventKind::AcknowledgeDirective {
                directive: directive.clone(),
            },
            EventKind::ReportDirective {
                directive: directive.clone(),
                text: "已核清：少发 3 户共 4.2 万元，镇政府承诺月底前补齐并张榜公示".into(),
            },
            EventKind::CrossOffDirective { directive },
        ];
        for kind in steps {
            append(client, &land, kind)?;
        }
    }
    numbers.push(land);
    progress.inc(1);

    // 3. A school consolidation complaint where two staff add notes at the same moment: notes do
    //    not move the lifecycle, so both simply appear, in the order the node received them.
    let school = scenario_number(3);
    if register_once(client, &school, school_consolidation(&school))? {
        let first = client.clone();
        let second = client.clone();
        let number_one = school.clone();
        let number_two = school.clone();
        let writers = [
            std::thread::spawn(move || {
                append(
                    &first,
                    &number_one,
                    EventKind::Note {
                        text: "网格员：已入户走访，家长主要担心校车安全".into(),
                    },
                )
            }),
            std::thread::spawn(move || {
                append(
                    &second,
                    &number_two,
                    EventKind::Note {
                        text: "教育局：新校区校车线路已报交警审批".into(),
                    },
                )
            }),
        ];
        for writer in writers {
            writer
                .join()
                .map_err(|_| anyhow::anyhow!("a note writer thread panicked"))??;
        }
    }
    numbers.push(school);
    progress.inc(1);

    // 4. A group petition beyond the county's competence (a city-owned enterprise's restructuring)
    //    escalated (上报) to the city petition bureau, which becomes the holder. The city's node is
    //    not part of this one-node demo, so the case then waits there.
    let restructuring = scenario_number(4);
    if register_once(
        client,
        &restructuring,
        enterprise_restructuring(&restructuring),
    )? {
        append(
            client,
            &restructuring,
            EventKind::Escalate {
                to_node: DEMO_CITY_NODE.into(),
                reason: "涉及市属国有企业改制职工安置，超出区级职权，报请市信访局协调".into(),
            },
        )?;
    }
    numbers.push(restructuring);
    progress.finish_and_clear();
    Ok(numbers)
}

/// Register a scenario case unless it already exists; `true` when it was registered now.
fn register_once(client: &NodeClient, number: &str, case: RegisterCase) -> anyhow::Result<bool> {
    if client
        .get_as::<CaseView>(&crate::cli::case::case_path(number), &[])
        .is_ok()
    {
        return Ok(false);
    }
    let _: CaseView = client
        .post_as("/api/cases", &case)
        .with_context(|| format!("register scenario case {number}"))?;
    Ok(true)
}

fn append(client: &NodeClient, number: &str, kind: EventKind) -> anyhow::Result<()> {
    let name = kind.name();
    let _: CaseView = client
        .post_as(
            &format!("{}/events", crate::cli::case::case_path(number)),
            &AppendEvent { kind, at: None },
        )
        .with_context(|| format!("{name} on scenario case {number}"))?;
    Ok(())
}

fn person(
    name: &str,
    id_number: &str,
    phone: &str,
    address: &str,
    representative: bool,
) -> Petitioner {
    Petitioner {
        name: name.to_owned(),
        id_number: id_number.to_owned(),
        phone: phone.to_owned(),
        address: address.to_owned(),
        representative,
    }
}

fn wage_arrears_group_visit(number: &str) -> RegisterCase {
    RegisterCase {
        number: Some(number.to_owned()),
        registered_at: None,
        channel: Channel::Visit,
        petitioners: vec![
            person(
                "刘桂兰",
                "430702196803154521",
                "13907361001",
                "东江街道东江社区",
                true,
            ),
            person(
                "陈国庆",
                "430702197011020019",
                "13907361002",
                "东江街道东江社区",
                true,
            ),
            person(
                "王德明",
                "430702196512280031",
                "13907361003",
                "芙蓉街道芙蓉社区",
                true,
            ),
            person(
                "李秀珍",
                "430702197206064526",
                "13907361004",
                "东江街道南坪岗社区",
                true,
            ),
            person(
                "张建军",
                "430702196909090017",
                "13907361005",
                "长庚街道长庚社区",
                true,
            ),
        ],
        headcount: 23,
        respondent: "常德市武陵区东江电子元件厂（已停产）".into(),
        category: Category::WageArrears,
        matter_type: MatterType::Appeal,
        litigation_related: false,
        summary: "23 名原职工集体来访，反映工厂停产后拖欠八个月工资及社保费，要求补发".into(),
        location: Location {
            region_code: "430702003001".into(),
            village: "东江街道东江社区".into(),
            grid: "第二网格".into(),
            grid_worker: "杨丽".into(),
        },
        ownership: Ownership {
            leader: "区委常委、政法委书记".into(),
            unit: "区人力资源和社会保障局".into(),
            officer: "周建华".into(),
            plan: "摸清欠薪底数，协调破产管理人优先清偿，必要时启动欠薪保障金".into(),
            target_date: Utc::now().date_naive().checked_add_days(Days::new(60)),
        },
    }
}

fn land_requisition(number: &str) -> RegisterCase {
    RegisterCase {
        number: Some(number.to_owned()),
        registered_at: None,
        channel: Channel::Letter,
        petitioners: vec![person(
            "刘德华",
            "430702196801010019",
            "13907365555",
            "河洑镇河洑村五组",
            false,
        )],
        headcount: 1,
        respondent: "河洑镇人民政府".into(),
        category: Category::LandRequisition,
        matter_type: MatterType::Appeal,
        litigation_related: false,
        summary: "反映修建沿江公路征地补偿款未足额发放到户，要求公开补偿明细并补齐".into(),
        location: Location {
            region_code: "430702001003".into(),
            village: "河洑镇河洑村".into(),
            grid: "第五网格".into(),
            grid_worker: "王小兵".into(),
        },
        ownership: Ownership::default(),
    }
}

fn school_consolidation(number: &str) -> RegisterCase {
    RegisterCase {
        number: Some(number.to_owned()),
        registered_at: None,
        channel: Channel::Online,
        petitioners: vec![person("向春梅", "", "13807369876", "丹洲乡白鹤山村", false)],
        headcount: 1,
        respondent: "区教育局".into(),
        category: Category::SchoolConsolidation,
        matter_type: MatterType::Suggestion,
        litigation_related: false,
        summary: "白鹤山村小学并入丹洲中心小学后孩子上学路远，建议开通校车".into(),
        location: Location {
            region_code: "430702002002".into(),
            village: "丹洲乡白鹤山村".into(),
            grid: String::new(),
            grid_worker: String::new(),
        },
        ownership: Ownership::default(),
    }
}

fn enterprise_restructuring(number: &str) -> RegisterCase {
    RegisterCase {
        number: Some(number.to_owned()),
        registered_at: None,
        channel: Channel::Visit,
        petitioners: vec![
            person(
                "黄志刚",
                "430702196507213016",
                "13907362001",
                "穿紫河街道穿紫河社区",
                true,
            ),
            person(
                "谭美华",
                "430702196910124528",
                "13907362002",
                "穿紫河街道穿紫河社区",
                true,
            ),
            person(
                "曾凡军",
                "430702196603036011",
                "13907362003",
                "长庚街道长庚社区",
                true,
            ),
        ],
        headcount: 12,
        respondent: "常德市某市属纺织公司".into(),
        category: Category::Labour,
        matter_type: MatterType::Appeal,
        litigation_related: false,
        summary: "12 名职工反映市属纺织公司改制时身份置换补偿标准不一，要求统一标准".into(),
        location: Location {
            region_code: "430702004002".into(),
            village: "穿紫河街道穿紫河社区".into(),
            grid: String::new(),
            grid_worker: String::new(),
        },
        ownership: Ownership::default(),
    }
}

fn guide(dir: &Path, url: &str, seeded: &Seeded, no_serve: bool) -> String {
    let mut lines = vec![
        String::new(),
        format!(
            "Demo county node {DEMO_COUNTY_NAME} ({DEMO_COUNTY_CODE}): {} sample case(s) imported \
             ({} already there), {} scripted scenario(s).",
            seeded.totals.imported,
            seeded.totals.already_present,
            seeded.scenario_cases.len()
        ),
        format!("node directory: {}", dir.display()),
    ];
    if no_serve {
        lines.push(format!(
            "The node is stopped. Serve it again with: fengqiao run {}",
            dir.display()
        ));
    } else {
        lines.push(format!("API: {url}   (OpenAPI: {url}/api/openapi.json)"));
    }
    lines.push(String::new());
    lines.push("Try, in another terminal:".into());
    let node = if no_serve {
        format!("--dir {}", dir.display())
    } else {
        format!("--node {url}")
    };
    lines.push(format!("  fengqiao case list {node} --overdue"));
    for number in &seeded.scenario_cases {
        lines.push(format!("  fengqiao case show {number} {node}"));
    }
    lines.push(format!("  fengqiao directive list {node}"));
    lines.push(format!("  fengqiao stats {node} --category wage_arrears"));
    lines.push(format!(
        "  fengqiao case note {} {node} --operator 你的名字 --text \"电话回访\"",
        seeded
            .scenario_cases
            .first()
            .map(String::as_str)
            .unwrap_or("NUMBER")
    ));
    lines.join("\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn demo_villages_are_twelve_digit_codes_in_the_county() {
        let villages = demo_villages();
        assert!(villages.len() >= 10);
        for village in &villages {
            assert_eq!(village.region_code.len(), 12);
            assert!(village.region_code.starts_with(DEMO_COUNTY_CODE));
        }
    }

    #[test]
    fn scenario_bodies_are_well_formed() {
        let group = wage_arrears_group_visit(&scenario_number(1));
        assert!(group.headcount >= 5, "a 集体访");
        assert!(
            group
                .petitioners
                .iter()
                .filter(|person| person.representative)
                .count()
                <= 5
        );
        assert!(scenario_number(1).starts_with("430702-"));
        let json = serde_json::to_string(&land_requisition("x")).unwrap();
        assert!(json.contains("land_requisition"));
        let _ = school_consolidation("y");
    }

    #[test]
    fn busy_address_falls_back_to_a_free_port() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap();
        assert_eq!(free_address(address).port(), 0);
    }
}
