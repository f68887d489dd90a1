//! Scripted cases that walk the lifecycle across the tiers, through each office's own API: a
//! group visit closed at the county, a village escalating to its township under the county's
//! supervision directive, concurrent notes at a village, an escalation to the city, and a county
//! assignment (交办) carried down to a village by its township.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Days;
use fengqiao_case::{
    AppendEvent, CaseView, Category, Channel, EventKind, JudicialConfirmation, Location,
    MatterType, MediationResult, MediationType, Ownership, Petitioner, RegisterCase, ReplyOutcome,
    Satisfaction,
};

use crate::client::NodeClient;
use crate::import::progress_bar;

use super::offices::{COUNTY, Office, Servers};

/// Stand-in id of the city petition bureau's node, which is not part of the demo.
const DEMO_CITY_NODE: &str = "changde-city-petition-bureau";

/// Longest the demo waits for one replication step of a scenario.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// A scripted case and the office where it is best looked at.
#[derive(Debug, Clone)]
pub struct ScenarioCase {
    pub number: String,
    pub office: usize,
    pub title: &'static str,
}

/// The office serving `region`.
fn office_at(offices: &[Office], region: &str) -> anyhow::Result<usize> {
    offices
        .iter()
        .position(|office| office.region == region)
        .with_context(|| format!("the demo has no office for region {region}"))
}

/// A scenario case's number at the office registering it: fixed, so a re-run finds it instead of
/// registering it twice.
fn scenario_number(region: &str, sequence: u32) -> String {
    format!(
        "{region}-{}-9{sequence:05}",
        crate::wall_clock::now().format("%Y")
    )
}

/// One scripted case, played at the offices it involves: its number and the office where it
/// is best looked at.
type Scenario = fn(&[Office], &Servers) -> anyhow::Result<(String, usize)>;

pub fn play(offices: &[Office], servers: &Servers) -> anyhow::Result<Vec<ScenarioCase>> {
    let scenarios: [(&'static str, Scenario); 5] = [
        (
            "集体访 wage arrears, closed at the county",
            group_visit_closed_at_the_county,
        ),
        (
            "escalated by the village, supervised by the county",
            escalated_by_a_village_under_supervision,
        ),
        (
            "two notes written at the same moment",
            concurrent_notes_at_a_village,
        ),
        (
            "escalated to the city (not in the demo)",
            escalated_to_the_city,
        ),
        (
            "assigned by the county, down to the village",
            assigned_down_to_a_village,
        ),
    ];
    let progress = progress_bar(scenarios.len() as u64, "scenarios");
    let mut cases = Vec::with_capacity(scenarios.len());
    for (title, scenario) in scenarios {
        let (number, office) = scenario(offices, servers)?;
        cases.push(ScenarioCase {
            number,
            office,
            title,
        });
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(cases)
}

/// The village office serving `region` and its township.
fn village_and_township(offices: &[Office], region: &str) -> anyhow::Result<(usize, usize)> {
    let village = office_at(offices, region)?;
    let township = offices[village]
        .parent
        .with_context(|| format!("the demo village {region} has no township"))?;
    Ok((village, township))
}

/// A group visit over wage arrears at a factory that stopped production, received at the
/// county's one-window centre: accepted, owned by a leader, mediated twice, replied,
/// evaluated and closed as resolved.
fn group_visit_closed_at_the_county(
    offices: &[Office],
    servers: &Servers,
) -> anyhow::Result<(String, usize)> {
    let county = servers.client(COUNTY);
    let wages = scenario_number(&offices[COUNTY].region, 1);
    if register_once(county, &wages, wage_arrears_group_visit(&wages))? {
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
            append(county, &wages, kind)?;
        }
    }
    Ok((wages, COUNTY))
}

/// Land compensation withheld by a village committee: the village cannot handle a complaint
/// about its own committee, so it escalates (上报) to the township, which accepts it; the
/// county supervises with a listed directive (挂牌督办) that the township acknowledges and
/// reports on, and the county crosses it off (销号). Every step happens at its own office
/// and reaches the others over the federation.
fn escalated_by_a_village_under_supervision(
    offices: &[Office],
    servers: &Servers,
) -> anyhow::Result<(String, usize)> {
    let (village, township) = village_and_township(offices, "430702001001")?;
    let county = servers.client(COUNTY);
    let land = scenario_number(&offices[village].region, 2);
    if register_once(servers.client(village), &land, land_requisition(&land))? {
        let township_id = offices[township].node_id.clone();
        append(
            servers.client(village),
            &land,
            EventKind::Escalate {
                to_node: township_id.clone(),
                reason: "被反映对象为本村村委会，村级无法处理，上报乡调处中心".into(),
            },
        )?;
        wait_for_case(
            servers.client(township),
            &land,
            "the escalation reaches the township",
            |view| view.state.holder == township_id,
        )?;
        append(servers.client(township), &land, EventKind::Accept {})?;
        wait_for_case(county, &land, "the acceptance reaches the county", |view| {
            view.state.timeline.accepted_at.is_some()
        })?;
        let directive = "D0DEMO02".to_owned();
        let today = crate::wall_clock::now().date_naive();
        append(
            county,
            &land,
            EventKind::IssueDirective {
                directive: directive.clone(),
                target_node: township_id,
                requirement: "七日内核清补偿款发放台账，向村民公开".into(),
                due: today.checked_add_days(Days::new(7)).unwrap_or(today),
                listed: true,
            },
        )?;
        wait_for_case(
            servers.client(township),
            &land,
            "the directive reaches the township",
            |view| view.state.directives.iter().any(|d| d.id == directive),
        )?;
        for kind in [
            EventKind::AcknowledgeDirective {
                directive: directive.clone(),
            },
            EventKind::ReportDirective {
                directive: directive.clone(),
                text: "已核清：少发 3 户共 4.2 万元，村委会承诺月底前补齐并张榜公示".into(),
            },
        ] {
            append(servers.client(township), &land, kind)?;
        }
        wait_for_case(county, &land, "the report reaches the county", |view| {
            view.state
                .directives
                .iter()
                .any(|d| d.id == directive && !d.reports.is_empty())
        })?;
        append(county, &land, EventKind::CrossOffDirective { directive })?;
    }
    Ok((land, village))
}

/// A school consolidation suggestion where two staff add notes at the same moment: notes do
/// not move the lifecycle, so both simply appear, in the order the node received them.
fn concurrent_notes_at_a_village(
    offices: &[Office],
    servers: &Servers,
) -> anyhow::Result<(String, usize)> {
    let school_village = office_at(offices, "430702002002")?;
    let school = scenario_number(&offices[school_village].region, 3);
    let client = servers.client(school_village);
    if register_once(client, &school, school_consolidation(&school))? {
        let writers = [
            "网格员：已入户走访，家长主要担心校车安全",
            "乡中心学校：新校区校车线路已报交警审批",
        ]
        .map(|text| {
            let client = client.clone();
            let number = school.clone();
            std::thread::spawn(move || {
                append(&client, &number, EventKind::Note { text: text.into() })
            })
        });
        for writer in writers {
            writer
                .join()
                .map_err(|_| anyhow::anyhow!("a note writer thread panicked"))??;
        }
    }
    Ok((school, school_village))
}

/// A group petition beyond the county's competence (a city-owned enterprise's restructuring)
/// escalated (上报) to the city petition bureau, which becomes the holder. The city's node is
/// not part of the demo, so the case then waits there.
fn escalated_to_the_city(offices: &[Office], servers: &Servers) -> anyhow::Result<(String, usize)> {
    let county = servers.client(COUNTY);
    let restructuring = scenario_number(&offices[COUNTY].region, 4);
    if register_once(
        county,
        &restructuring,
        enterprise_restructuring(&restructuring),
    )? {
        append(
            county,
            &restructuring,
            EventKind::Escalate {
                to_node: DEMO_CITY_NODE.into(),
                reason: "涉及市属国有企业改制职工安置，超出区级职权，报请市信访局协调".into(),
            },
        )?;
    }
    Ok((restructuring, COUNTY))
}

/// A homestead quarrel phoned in to the county, assigned (交办) to 丹洲乡, which accepts the
/// assignment and assigns it on to 丹洲村, whose mediation room accepts it and mediates an
/// agreement on the spot (小事不出村).
fn assigned_down_to_a_village(
    offices: &[Office],
    servers: &Servers,
) -> anyhow::Result<(String, usize)> {
    let (assigned_village, assigned_township) = village_and_township(offices, "430702002001")?;
    let county = servers.client(COUNTY);
    let homestead = scenario_number(&offices[COUNTY].region, 5);
    if register_once(county, &homestead, homestead_quarrel(&homestead))? {
        let deadline = crate::wall_clock::now()
            .date_naive()
            .checked_add_days(Days::new(15))
            .unwrap_or_else(|| crate::wall_clock::now().date_naive());
        let township_id = offices[assigned_township].node_id.clone();
        append(
            county,
            &homestead,
            EventKind::Assign {
                to_node: township_id.clone(),
                required_result: "十五日内组织双方调解，报送处理结果".into(),
                deadline,
            },
        )?;
        let township_client = servers.client(assigned_township);
        wait_for_case(
            township_client,
            &homestead,
            "the assignment reaches the township",
            |view| view.state.awaiting.as_deref() == Some(township_id.as_str()),
        )?;
        append(township_client, &homestead, EventKind::AcceptAssignment {})?;
        let village_id = offices[assigned_village].node_id.clone();
        append(
            township_client,
            &homestead,
            EventKind::Assign {
                to_node: village_id.clone(),
                required_result: "由村调解室就地调解，十日内报结果".into(),
                deadline,
            },
        )?;
        let village_client = servers.client(assigned_village);
        wait_for_case(
            village_client,
            &homestead,
            "the assignment reaches the village",
            |view| view.state.awaiting.as_deref() == Some(village_id.as_str()),
        )?;
        append(village_client, &homestead, EventKind::AcceptAssignment {})?;
        append(
            village_client,
            &homestead,
            EventKind::Mediate {
                mediation_type: MediationType::People,
                mediator: "丹洲村调解室 黄德胜".into(),
                result: MediationResult::Agreement,
                agreement: "双方同意以 1998 年宅基地确权图为准，共同出资砌界墙".into(),
                judicial_confirmation: JudicialConfirmation::NotApplied,
            },
        )?;
    }
    Ok((homestead, assigned_village))
}

/// Poll the case at an office until `ready` holds: the previous step has replicated there.
fn wait_for_case(
    client: &NodeClient,
    number: &str,
    what: &str,
    ready: impl Fn(&CaseView) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let path = crate::cli::case::case_path(number);
    loop {
        if let Ok(view) = client.get_as::<CaseView>(&path, &[])
            && ready(&view)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{what}: not within {} s (case {number}); run with -v to see the federation's log",
                STEP_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
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
            &AppendEvent {
                backdated_reason: None,
                kind,
                at: None,
            },
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
        id_type: Default::default(),
        phone: phone.to_owned(),
        address: address.to_owned(),
        representative,
    }
}

pub fn wage_arrears_group_visit(number: &str) -> RegisterCase {
    RegisterCase {
        backdated_reason: None,
        number: Some(number.to_owned()),
        registered_at: None,
        channel: Channel::Visit,
        petitioners: vec![
            person(
                "刘桂兰",
                "430702196803154520",
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
                "430702196512280033",
                "13907361003",
                "芙蓉街道芙蓉社区",
                true,
            ),
            person(
                "李秀珍",
                "430702197206064521",
                "13907361004",
                "东江街道南坪岗社区",
                true,
            ),
            person(
                "张建军",
                "430702196909090019",
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
            target_date: crate::wall_clock::now()
                .date_naive()
                .checked_add_days(Days::new(60)),
        },
    }
}

pub fn land_requisition(number: &str) -> RegisterCase {
    RegisterCase {
        backdated_reason: None,
        number: Some(number.to_owned()),
        registered_at: None,
        channel: Channel::Letter,
        petitioners: vec![person(
            "刘德华",
            "430702196801010013",
            "13907365555",
            "芦荻山乡芦荻山村五组",
            false,
        )],
        headcount: 1,
        respondent: "芦荻山村村民委员会".into(),
        category: Category::LandRequisition,
        matter_type: MatterType::Appeal,
        litigation_related: false,
        summary:
            "反映修建沿江公路征地补偿款未足额发放到户，村委会未公开分配方案，要求公开补偿明细并补齐"
                .into(),
        location: Location {
            region_code: "430702001001".into(),
            village: "芦荻山乡芦荻山村".into(),
            grid: "第五网格".into(),
            grid_worker: "王小兵".into(),
        },
        ownership: Ownership::default(),
    }
}

pub fn school_consolidation(number: &str) -> RegisterCase {
    RegisterCase {
        backdated_reason: None,
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
        backdated_reason: None,
        number: Some(number.to_owned()),
        registered_at: None,
        channel: Channel::Visit,
        petitioners: vec![
            person(
                "黄志刚",
                "430702196507213012",
                "13907362001",
                "穿紫河街道穿紫河社区",
                true,
            ),
            person(
                "谭美华",
                "43070219691012452X",
                "13907362002",
                "穿紫河街道穿紫河社区",
                true,
            ),
            person(
                "曾凡军",
                "43070219660303601X",
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

fn homestead_quarrel(number: &str) -> RegisterCase {
    RegisterCase {
        backdated_reason: None,
        number: Some(number.to_owned()),
        registered_at: None,
        channel: Channel::Phone,
        petitioners: vec![person(
            "邓桂香",
            "430702197304184527",
            "13907363003",
            "丹洲乡丹洲村三组",
            false,
        )],
        headcount: 1,
        respondent: "同组村民 邓某".into(),
        category: Category::Neighbourhood,
        matter_type: MatterType::Appeal,
        litigation_related: false,
        summary: "反映邻居翻建房屋时占用自家宅基地约 8 平方米，双方多次争吵，要求依界址调处".into(),
        location: Location {
            region_code: "430702002001".into(),
            village: "丹洲乡丹洲村".into(),
            grid: "第三网格".into(),
            grid_worker: "邓小红".into(),
        },
        ownership: Ownership::default(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn scenario_bodies_are_well_formed() {
        let group = wage_arrears_group_visit(&scenario_number("430702", 1));
        assert!(group.headcount >= 5, "a 集体访");
        assert!(
            group
                .petitioners
                .iter()
                .filter(|person| person.representative)
                .count()
                <= 5
        );
        assert!(scenario_number("430702001001", 2).starts_with("430702001001-"));
        let json = serde_json::to_string(&land_requisition("x")).unwrap();
        assert!(json.contains("land_requisition"));
        for case in [
            land_requisition("x"),
            school_consolidation("y"),
            enterprise_restructuring("z"),
            homestead_quarrel("w"),
        ] {
            assert!(case.location.region_code.starts_with("430702"));
        }
    }
}
