//! Realistic sample cases drawn from the scenarios in the seed documents, for demo, tests and benches.
//!
//! The scenarios are the ones the seeds describe: 征地补偿款 left undistributed by a village
//! committee, wage, 公积金 and insurance arrears at a closed factory (大连台秤厂), 撤点并校 (扶沟县),
//! 回迁安置 delays (华联宾馆地块), pollution from a plant, 宅基地 quarrels between neighbours,
//! 物业, family maintenance and 社保. Histories follow the lifecycle rules so that every row
//! imports without refusal; they stop at `now`, and a few cases are deliberately left stalled
//! so that overdue lists and the measures have something to show.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use fengqiao_case::model::{
    AppendEvent, Category, Channel, EventKind, ImportRow, JudicialConfirmation, Location,
    MatterType, MediationResult, MediationType, Ownership, Petitioner, RegisterCase, ReplyOutcome,
    Satisfaction,
};

/// A village (or community) that sample cases are located in.
#[derive(Debug, Clone)]
pub struct SampleVillage {
    pub region_code: String,
    pub name: String,
}

/// Villages of 芦荻山乡 (常德市武陵区, region 430702001), used when the caller names none.
pub fn default_villages() -> Vec<SampleVillage> {
    [
        ("430702001001", "芦荻山村"),
        ("430702001002", "丹洲村"),
        ("430702001003", "新河村"),
        ("430702001004", "桃花村"),
        ("430702001005", "双桥村"),
        ("430702001006", "红星社区"),
    ]
    .into_iter()
    .map(|(region_code, name)| SampleVillage {
        region_code: region_code.to_owned(),
        name: name.to_owned(),
    })
    .collect()
}

/// `count` cases registered between `start` and `now` in the given villages, each with the history
/// a case of its age would have. Deterministic for a given `seed`. With no villages given, the
/// cases are placed in [`default_villages`].
pub fn sample_ledger(
    seed: u64,
    count: usize,
    villages: &[SampleVillage],
    start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<ImportRow> {
    let fallback_villages;
    let villages = if villages.is_empty() {
        fallback_villages = default_villages();
        fallback_villages.as_slice()
    } else {
        villages
    };
    let mut rng = SmallRng::seed_from_u64(seed);
    let start = start.min(now);
    let span_seconds = (now - start).num_seconds();

    // A ledger is kept in the order cases came in, so registration times are drawn first and sorted.
    let mut registration_times: Vec<DateTime<Utc>> = (0..count)
        .map(|_| {
            let offset = if span_seconds > 0 {
                rng.random_range(0..span_seconds)
            } else {
                0
            };
            during_office_hours(&mut rng, start + Duration::seconds(offset), start, now)
        })
        .collect();
    registration_times.sort();

    registration_times
        .into_iter()
        .enumerate()
        .map(|(index, registered_at)| {
            let village = pick(&mut rng, villages);
            sample_row(&mut rng, index as u64 + 1, village, registered_at, now)
        })
        .collect()
}

pub use fengqiao_case::personal_data::id_number_check_character;

/// Whether `id_number` is an 18-character resident ID number with a valid birth date and check
/// character (the import's and the API's rule, with no bound on the birth date's recency).
pub fn is_valid_id_number(id_number: &str) -> bool {
    id_number.len() == 18
        && fengqiao_case::personal_data::check_resident_id(id_number, NaiveDate::MAX).is_ok()
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/// One concrete matter within a scenario: what the petitioner says, whom it is against, and how
/// the office answers it. Placeholders: `{village}`, `{respondent}`, `{group}` (村民小组),
/// `{year}`, `{amount}`, `{count}`, `{distance}`, `{area}`; in respondents also `{committee}` (the
/// village's own committee, which is often the party complained about) and `{person}`.
struct Matter {
    summary: &'static str,
    /// `{person}` stands for a generated private person (a neighbour, a spouse).
    respondents: &'static [&'static str],
    support: &'static str,
    explain: &'static str,
    not_support: &'static str,
    agreement: &'static str,
}

struct Scenario {
    category: Category,
    weight: u32,
    /// Chance that the matter comes as a group visit of 5 or more people.
    group_chance: f64,
    litigation_chance: f64,
    /// Weights of 建议意见, 检举控告, 申诉求决.
    matter_type_weights: [u32; 3],
    /// Weights of 人民调解, 行政调解, 司法调解, 信访调解.
    mediation_weights: [u32; 4],
    /// Weights of 0, 1 and 2 mediation records on an accepted case.
    mediation_count_weights: [u32; 3],
    amount_range: (u32, u32),
    matters: &'static [Matter],
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        category: Category::LandRequisition,
        weight: 14,
        group_chance: 0.15,
        litigation_chance: 0.06,
        matter_type_weights: [5, 15, 80],
        mediation_weights: [3, 5, 1, 4],
        mediation_count_weights: [35, 45, 20],
        amount_range: (20, 600),
        matters: &[
            Matter {
                summary: "反映{village}{group}组集体土地于{year}年被征用修建高速公路连接线，征地补偿款共{amount}万元至今未足额发放到户，村委会未公开分配方案，要求公开账目并发放补偿款。",
                respondents: &["{committee}", "乡人民政府"],
                support: "经核查，{village}征地补偿款已拨付至村集体账户，村委会已召开村民代表会议公开分配方案，剩余补偿款将于三十日内足额发放到户。",
                explain: "经核查，补偿款分配方案已经村民代表会议表决通过，预留部分用于安置道路建设，已向信访人出示会议记录和账目明细并作解释。",
                not_support: "经核查，该批征地补偿款已于{year}年按方案发放并由信访人签字领取，要求重新分配缺乏依据，不予支持。",
                agreement: "村委会同意于三十日内公开补偿款分配明细，并将剩余补偿款按户足额发放；信访人对处理结果表示认可。",
            },
            Matter {
                summary: "反映本户承包地{area}亩被工业园区征用，地上附着物和青苗补偿标准偏低，与邻组标准不一致，要求按同一标准重新核算补偿。",
                respondents: &["县工业园区管委会", "县自然资源局", "乡人民政府"],
                support: "经重新丈量核算，信访人地上附着物漏登属实，已按同一标准补发青苗及附着物补偿款。",
                explain: "经核查，补偿标准系按省政府公布的区片综合地价执行，与邻组差异系地类不同所致，已向信访人出示测绘成果和补偿依据并作解释。",
                not_support: "经核查，补偿已按公布标准足额发放，信访人要求提高补偿标准缺乏政策依据，不予支持。",
                agreement: "园区管委会同意对漏登附着物补偿{amount}000元，信访人同意配合交地，双方签字确认。",
            },
        ],
    },
    Scenario {
        category: Category::WageArrears,
        weight: 14,
        group_chance: 0.25,
        litigation_chance: 0.08,
        matter_type_weights: [2, 10, 88],
        mediation_weights: [1, 5, 2, 4],
        mediation_count_weights: [30, 45, 25],
        amount_range: (5, 300),
        matters: &[
            Matter {
                summary: "反映{respondent}自{year}年起长期停产，拖欠职工工资、住房公积金和社会保险，{count}名职工只能依靠在外打工维持生计，要求补发拖欠工资并补缴公积金和保险。",
                respondents: &["大连市台秤厂", "{village}砖瓦厂", "常德市第二纺织厂"],
                support: "经区委政法委统筹、经济发展服务中心等部门联动，企业资产处置款优先用于清偿职工债权，拖欠工资已全额发放，公积金和社会保险已补缴到位。",
                explain: "企业已进入破产清算程序，职工债权已由管理人依法登记，已向职工代表说明清偿顺序和预计时间。",
                not_support: "经核查，信访人与该企业劳动关系已于{year}年解除并已结清工资，所提补发要求缺乏依据，不予支持。",
                agreement: "企业主管部门同意以厂房土地处置款优先支付拖欠工资{amount}万元，公积金和保险于年内补缴到位，职工代表签字确认。",
            },
            Matter {
                summary: "反映在{respondent}承建的安置小区项目务工，工程完工后包工头拖欠{count}名农民工工资共{amount}万元，多次讨要无果，要求督促支付。",
                respondents: &["恒通建设工程有限公司", "宏达建筑劳务有限公司"],
                support: "经人社部门督促，总承包单位已从农民工工资保证金中先行支付全部拖欠工资。",
                explain: "所欠工资涉及劳务分包纠纷，已督促总承包单位先行垫付大部分工资，剩余部分已告知信访人通过劳动保障监察投诉和劳动仲裁途径主张。",
                not_support: "经核查，信访人所称工程款属于承包合同纠纷而非工资，不属于欠薪处理范围，不予支持，已告知其通过诉讼途径解决。",
                agreement: "总承包单位同意于十五日内先行垫付拖欠工资{amount}万元，再向劳务分包方追偿；农民工代表签字确认。",
            },
        ],
    },
    Scenario {
        category: Category::SchoolConsolidation,
        weight: 5,
        group_chance: 0.12,
        litigation_chance: 0.0,
        matter_type_weights: [50, 0, 50],
        mediation_weights: [1, 6, 0, 3],
        mediation_count_weights: [70, 25, 5],
        amount_range: (1, 5),
        matters: &[
            Matter {
                summary: "反映县教体局撤并{village}小学教学点，学生需到{distance}公里外的中心小学就读，上学路途远、不安全，要求恢复教学点。",
                respondents: &["县教育和体育局", "乡中心学校"],
                support: "经县教体局研究，已于下学期起开通{village}至中心小学的校车线路，并安排教师随车照看学生。",
                explain: "经调查，撤并系根据农村义务教育学校布局调整规划，经反复论证并报县政府批准实施，中心小学办学条件明显改善；已向信访人解释政策依据，信访人表示理解和支持。",
                not_support: "该教学点生源不足十人，不具备恢复办学条件，恢复教学点的要求不予支持；已协调落实寄宿和交通补助。",
                agreement: "县教体局同意开通校车并对寄宿学生给予生活补助，家长代表表示认可。",
            },
            Matter {
                summary: "建议在{village}至乡中心小学之间开通校车，解决撤点并校后低年级学生上学难问题。",
                respondents: &["县教育和体育局"],
                support: "建议已采纳，校车线路已开通，每日早晚各一班。",
                explain: "已将建议转县教体局研究，校车线路需经交通部门安全评估后开通，已向信访人说明进度。",
                not_support: "该路段暂不具备校车通行条件，建议暂不采纳，已落实家长接送补助。",
                agreement: "乡中心学校同意调整低年级放学时间并组织家长互助接送。",
            },
        ],
    },
    Scenario {
        category: Category::DemolitionRelocation,
        weight: 9,
        group_chance: 0.2,
        litigation_chance: 0.12,
        matter_type_weights: [3, 12, 85],
        mediation_weights: [1, 5, 2, 4],
        mediation_count_weights: [30, 45, 25],
        amount_range: (1, 30),
        matters: &[
            Matter {
                summary: "反映{village}旧城区改造项目{count}户动迁户未能按期回迁，过渡安置费自{year}年起停发，要求尽快回迁安置并补发过渡费。",
                respondents: &["县房屋征收服务中心", "城投置业有限公司"],
                support: "经“回迁难”工作专班协调，回迁安置房已通过竣工验收，将于两个月内分批交付，停发期间的过渡安置费已补发到位。",
                explain: "项目因地块出让延期导致回迁推迟，地块已完成出让，已向动迁户公布回迁时间表和过渡费发放安排。",
                not_support: "经核查，信访人已选择货币补偿并领取全部补偿款，不属于回迁安置对象，相关诉求不予支持。",
                agreement: "开发企业同意补发过渡安置费并承诺于年底前交房，逾期按协议标准支付违约金，动迁户代表签字确认。",
            },
            Matter {
                summary: "反映本户房屋被列入拆迁范围，评估价格明显低于周边市场价，安置面积不足，要求重新评估。",
                respondents: &["县房屋征收服务中心", "县住房和城乡建设局"],
                support: "经复核评估，原评估遗漏附属用房，已重新出具评估报告并补足补偿款。",
                explain: "经核查，评估由依法选定的评估机构按同期市场价作出，已告知信访人可申请复核评估或向评估专家委员会申请鉴定。",
                not_support: "经核查，信访人已签订安置补偿协议并领取补偿款，要求重新评估缺乏依据，不予支持。",
                agreement: "征收部门同意委托第三方机构复核评估，按复核结果补足差额，信访人同意按期腾房。",
            },
        ],
    },
    Scenario {
        category: Category::Environment,
        weight: 9,
        group_chance: 0.18,
        litigation_chance: 0.04,
        matter_type_weights: [10, 40, 50],
        mediation_weights: [2, 6, 1, 3],
        mediation_count_weights: [40, 45, 15],
        amount_range: (2, 60),
        matters: &[
            Matter {
                summary: "反映{village}附近{respondent}夜间偷排废水，周边水塘鱼虾死亡、农田受污染，要求停产整改并赔偿损失。",
                respondents: &["鑫源化工有限公司", "兴旺生猪养殖场"],
                support: "经生态环境部门现场检测，该企业废水超标排放属实，已责令停产整改并立案处罚，企业已对受损鱼塘和农田作出赔偿。",
                explain: "经生态环境部门取样监测，排放指标符合标准，鱼塘死鱼系高温缺氧所致，已向信访人反馈监测报告并作解释。",
                not_support: "经多次现场检测，未发现超标排放，赔偿要求缺乏依据，不予支持；将持续开展监督性监测。",
                agreement: "企业同意三十日内完成污水处理设施改造，并一次性补偿受影响农户{amount}000元。",
            },
            Matter {
                summary: "反映{respondent}粉尘和噪声扰民，运输车辆昼夜通行，村民晚上无法休息，要求限期整改。",
                respondents: &["宏远石材加工厂", "永固混凝土搅拌站"],
                support: "经督促，企业已加装除尘降噪设施，夜间停止作业，运输车辆改道并加盖篷布。",
                explain: "经监测，厂界噪声和粉尘符合标准，已督促企业调整夜间作业时间，并向信访人反馈监测结果。",
                not_support: "该企业环保手续齐全、监测达标，要求关停的诉求不予支持。",
                agreement: "企业同意晚十点后停止作业，十五日内完成围挡和喷淋改造，并对沿线农户给予补偿{amount}000元。",
            },
        ],
    },
    Scenario {
        category: Category::Neighbourhood,
        weight: 15,
        group_chance: 0.01,
        litigation_chance: 0.05,
        matter_type_weights: [0, 5, 95],
        mediation_weights: [8, 1, 1, 1],
        mediation_count_weights: [20, 55, 25],
        amount_range: (5, 80),
        matters: &[
            Matter {
                summary: "反映与邻居{respondent}因宅基地界址发生纠纷，对方建房占用其宅基地约{area}平方米并堵塞排水沟，要求恢复原状。",
                respondents: &["{person}"],
                support: "经村调解委员会现场勘查，对方建房确有越界，已拆除越界部分围墙并疏通排水沟。",
                explain: "经调取宅基地使用证和四至记录，双方界址以原证为准，已向双方解释并现场埋设界桩。",
                not_support: "经现场勘查，对方建房未超出其宅基地使用证范围，信访人要求拆除的诉求不予支持。",
                agreement: "双方同意以原宅基地证载四至为界，{respondent}于十五日内拆除越界部分并疏通排水沟，双方互不追究。",
            },
            Matter {
                summary: "反映邻居{respondent}在其房屋后搭建猪圈，污水横流、气味难闻，多次协商未果，要求调解处理。",
                respondents: &["{person}"],
                support: "经调解，对方已拆除猪圈并清理污水。",
                explain: "经现场查看，猪圈位于对方自家宅基地内，已督促其做好清污，并向信访人说明情况。",
                not_support: "对方已按要求整改，信访人要求赔偿的诉求缺乏依据，不予支持。",
                agreement: "{respondent}同意一个月内将猪圈迁至远离住房处并修建化粪池，双方和好。",
            },
        ],
    },
    Scenario {
        category: Category::PropertyManagement,
        weight: 8,
        group_chance: 0.15,
        litigation_chance: 0.03,
        matter_type_weights: [15, 15, 70],
        mediation_weights: [4, 4, 1, 2],
        mediation_count_weights: [40, 45, 15],
        amount_range: (1, 20),
        matters: &[
            Matter {
                summary: "反映{village}安置小区物业公司服务不到位，电梯长期故障无人维修，擅自上调物业费，要求公开公共收益账目。",
                respondents: &["安居物业服务有限公司", "宏城物业管理有限公司"],
                support: "经住建部门督办，物业公司已完成电梯维修并恢复原收费标准，公共收益账目已在小区公示。",
                explain: "物业费调整已按规定经业主大会表决并报备，已向信访人出示表决材料并作解释，电梯已安排维保单位检修。",
                not_support: "经核查，物业公司收费标准符合物业服务合同约定，相关诉求不予支持，建议通过业主大会协商解决。",
                agreement: "物业公司同意十日内修复电梯，暂停执行新收费标准，并每季度公示公共收益。",
            },
            Matter {
                summary: "反映小区物业公司将公共绿地改为停车位收费，要求恢复绿地并公开停车费收支。",
                respondents: &["安居物业服务有限公司"],
                support: "物业公司已恢复绿地，停车费收支已在小区公示栏公开。",
                explain: "停车位改造经业主大会同意，收益已纳入公共维修资金，已向信访人说明。",
                not_support: "改造经业主大会依法表决通过，信访人要求恢复绿地的诉求不予支持。",
                agreement: "物业公司同意停止收取该区域停车费并于一个月内恢复绿化。",
            },
        ],
    },
    Scenario {
        category: Category::Family,
        weight: 8,
        group_chance: 0.0,
        litigation_chance: 0.1,
        matter_type_weights: [0, 0, 100],
        mediation_weights: [8, 0, 2, 1],
        mediation_count_weights: [15, 60, 25],
        amount_range: (3, 9),
        matters: &[
            Matter {
                summary: "反映年过七旬，三个子女不履行赡养义务，其中{respondent}拒不支付赡养费，要求村里出面调解。",
                respondents: &["{person}"],
                support: "经村调解委员会调解，子女已按月支付赡养费并轮流照料老人生活。",
                explain: "已向信访人说明赡养费可通过人民法院依法确定，并协助其申请法律援助。",
                not_support: "经了解，子女已按约定支付赡养费，信访人要求增加数额的诉求暂不支持，已告知其可依法起诉。",
                agreement: "三名子女同意每人每月支付赡养费{amount}00元，并按月轮流照料老人。",
            },
            Matter {
                summary: "反映与丈夫{respondent}长期分居，对方不支付子女抚养费并多次上门吵闹，要求调解解决。",
                respondents: &["{person}"],
                support: "经调解，对方已补付抚养费并承诺不再上门滋扰。",
                explain: "已向信访人解释抚养费须通过协议或人民法院依法确定，并协助其申请法律援助。",
                not_support: "所涉离婚财产分割问题已由人民法院判决，不属信访事项处理范围，相关诉求不予支持。",
                agreement: "{respondent}同意每月支付子女抚养费{amount}00元，双方约定探视时间，互不滋扰。",
            },
        ],
    },
    Scenario {
        category: Category::SocialSecurity,
        weight: 7,
        group_chance: 0.05,
        litigation_chance: 0.02,
        matter_type_weights: [5, 5, 90],
        mediation_weights: [1, 5, 0, 3],
        mediation_count_weights: [70, 25, 5],
        amount_range: (1, 10),
        matters: &[
            Matter {
                summary: "反映其为被征地农民，申请参加被征地农民养老保险未获批准，要求落实养老保险待遇。",
                respondents: &["县人力资源和社会保障局", "{committee}"],
                support: "经重新审核，信访人符合条件，已纳入被征地农民养老保障并补发待遇。",
                explain: "经核查，信访人参保资格需以征地时的户籍为准，已告知其补充提供户籍证明材料后重新申报。",
                not_support: "经核查，信访人征地时不在被征地村集体经济组织成员名册内，不符合参保条件，相关诉求不予支持。",
                agreement: "村委会同意协助补齐参保材料，乡社保所于十日内完成审核。",
            },
            Matter {
                summary: "反映家庭困难，丈夫重病卧床，低保资格在年度复核中被取消，要求重新审核。",
                respondents: &["县民政局", "{committee}"],
                support: "经入户核查，信访人家庭符合低保条件，已恢复低保并补发停发期间低保金。",
                explain: "经核查，信访人家庭收入超过当地低保标准，已向其解释政策，并为其申请临时救助和医疗救助。",
                not_support: "经核查，信访人家庭有车辆和经营性收入，不符合低保条件，相关诉求不予支持。",
                agreement: "乡民政办同意重新入户核查，核查期间先行给予临时救助。",
            },
        ],
    },
    Scenario {
        category: Category::Labour,
        weight: 6,
        group_chance: 0.03,
        litigation_chance: 0.15,
        matter_type_weights: [0, 10, 90],
        mediation_weights: [2, 5, 2, 2],
        mediation_count_weights: [40, 45, 15],
        amount_range: (5, 80),
        matters: &[
            Matter {
                summary: "反映在{respondent}工作期间受伤致残，单位拒不申报工伤认定，要求依法认定工伤并支付医疗费用。",
                respondents: &["鑫盛服装有限公司", "恒通建设工程有限公司"],
                support: "经劳动保障监察大队调查，已责令企业为信访人申报工伤并先行垫付医疗费用。",
                explain: "已告知信访人可自行向人社部门申请工伤认定，并协助其准备劳动关系证明材料。",
                not_support: "经核查，信访人受伤时不在工作时间和工作场所，不属于工伤情形，相关诉求不予支持。",
                agreement: "企业同意一次性支付医疗费和停工留薪期工资{amount}000元，并为信访人申报工伤。",
            },
            Matter {
                summary: "反映{respondent}未签订劳动合同即将其辞退，拖欠最后两个月工资，要求支付经济补偿。",
                respondents: &["鑫盛服装有限公司", "宏达建筑劳务有限公司"],
                support: "经劳动保障监察督促，企业已补发工资并支付经济补偿。",
                explain: "已告知信访人可向劳动人事争议仲裁委员会申请仲裁，并协助其准备证据材料。",
                not_support: "经核查，信访人系自行离职且工资已结清，要求经济补偿缺乏依据，不予支持。",
                agreement: "企业同意一次性支付拖欠工资和经济补偿{amount}000元，双方解除劳动关系，互不追究。",
            },
        ],
    },
    Scenario {
        category: Category::Other,
        weight: 5,
        group_chance: 0.05,
        litigation_chance: 0.0,
        matter_type_weights: [45, 45, 10],
        mediation_weights: [2, 3, 0, 2],
        mediation_count_weights: [80, 18, 2],
        amount_range: (1, 10),
        matters: &[
            Matter {
                summary: "检举{village}村干部在危房改造补助发放中优亲厚友，不符合条件的亲属获得补助，要求调查处理。",
                respondents: &["{committee}"],
                support: "经乡纪委调查，反映问题部分属实，已追回违规发放的补助资金，并对相关村干部作出处理。",
                explain: "经乡纪委调查核实，危房改造补助按程序评议公示发放，未发现优亲厚友问题，已向信访人反馈调查结果。",
                not_support: "经调查，所反映问题查无实据，不予支持。",
                agreement: "村委会同意重新公示补助对象名单，接受村民监督。",
            },
            Matter {
                summary: "建议在{village}村口路段增设路灯和减速带，保障村民夜间出行安全。",
                respondents: &["乡人民政府"],
                support: "建议已采纳，乡政府已安排资金在村口路段增设路灯和减速带。",
                explain: "已将建议纳入明年村道安全改造计划，已向信访人说明安排。",
                not_support: "该路段已列入道路改建工程，暂不单独增设，建议暂不采纳。",
                agreement: "乡政府同意先行设置临时警示标志，路灯纳入年度计划。",
            },
        ],
    },
];

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾",
    "肖", "田", "董", "袁", "潘", "于", "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁",
    "任", "沈", "姚", "卢", "姜", "崔", "钟", "谭", "陆", "汪", "范", "金", "石", "廖", "贾", "夏",
    "韦", "付", "方", "白", "邹", "孟", "熊", "秦", "邱", "江", "尹", "薛", "段", "雷", "侯", "龙",
];

const MALE_GIVEN_CHARACTERS: &[&str] = &[
    "国", "建", "军", "伟", "强", "明", "华", "平", "勇", "志", "文", "海", "德", "林", "春", "永",
    "福", "贵", "成", "俊", "辉", "斌", "涛", "鹏", "刚", "东", "新", "光", "宏", "庆", "金", "保",
];

const FEMALE_GIVEN_CHARACTERS: &[&str] = &[
    "秀", "英", "兰", "芳", "玉", "桂", "珍", "丽", "敏", "静", "霞", "燕", "萍", "红", "梅", "娟",
    "琴", "云", "凤", "华", "春", "艳", "莲", "翠", "菊", "婷", "慧", "洁",
];

const GROUP_NUMERALS: &[&str] = &[
    "一", "二", "三", "四", "五", "六", "七", "八", "九", "十", "十一", "十二",
];

const MOBILE_PREFIXES: &[&str] = &[
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "153",
    "155", "156", "157", "158", "159", "166", "173", "176", "177", "180", "181", "182", "183",
    "185", "186", "187", "188", "189", "191", "198", "199",
];

const REJECT_REASONS: &[&str] = &[
    "所反映事项应通过劳动人事争议仲裁途径解决，不属于信访受理范围，已书面告知信访人依法申请仲裁。",
    "所反映事项属于行政复议范围，已书面告知信访人在法定期限内依法申请行政复议。",
    "该诉求已经依法处理终结，信访人未提出新的事实和理由，不予受理，已出具不予受理告知书。",
    "所反映事项已由上级机关受理正在办理，本机关不再重复受理，已告知信访人等待办理结果。",
];

const DIVERT_UNITS: &[&str] = &["县人民法院", "县委政法委", "县人民检察院"];

const DIVERT_REASONS: &[&str] = &[
    "该事项已进入诉讼程序，属涉法涉诉事项，依法导入诉讼渠道处理。",
    "信访人对人民法院生效判决不服，属涉法涉诉事项，依法转由政法机关处理。",
    "所涉纠纷已申请仲裁并进入司法程序，依法导入法律程序解决。",
];

const EARLY_NOTES: &[&str] = &[
    "已电话告知信访人登记情况及受理时限。",
    "网格员上门了解情况，信访人情绪稳定。",
    "已调阅相关档案资料，准备提交联合会诊。",
];

const HANDLING_NOTES: &[&str] = &[
    "包案领导带队入户走访，了解信访人实际困难。",
    "召开村民代表会议，公开相关政策和处理方案。",
    "组织相关部门联合会诊，明确责任单位、办案人员、解决方案和结案时间。",
    "已邀请两代表一委员和律师参与化解。",
    "网格员上门回访，信访人情绪稳定。",
    "已书面告知信访人办理进度。",
];

const CLOSING_NOTES: &[&str] = &[
    "网格员回访，信访人表示问题已解决，未再反映。",
    "纳入网格日常回访，持续关注。",
];

const EXTENSION_REASONS: &[&str] = &[
    "涉及多个部门协调，补偿资金需报县政府研究，已书面告知信访人延期理由。",
    "需委托第三方机构评估鉴定，已书面告知信访人延长办理期限。",
    "涉事企业负责人失联，需公安机关协助查找，已书面告知信访人延期理由。",
];

const LEADER_TITLES: &[&str] = &[
    "乡党委副书记",
    "副乡长",
    "乡纪委书记",
    "乡政法委员",
    "乡人大主席",
];

const RESPONSIBLE_UNITS: &[&str] = &[
    "乡矛盾纠纷调处中心",
    "乡综治中心",
    "乡司法所",
    "乡社会事务办",
    "乡农业综合服务中心",
];

// ---------------------------------------------------------------------------------------------
// One case
// ---------------------------------------------------------------------------------------------

fn sample_row(
    rng: &mut SmallRng,
    line: u64,
    village: &SampleVillage,
    registered_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> ImportRow {
    let scenario = pick_weighted(rng, SCENARIOS, |scenario| scenario.weight);
    let matter = pick(rng, scenario.matters);
    let group_visit = rng.random_bool(scenario.group_chance);
    let litigation_related = rng.random_bool(scenario.litigation_chance);

    let petitioners = sample_petitioners(rng, village, registered_at, group_visit);
    let headcount = if group_visit {
        let largest = if scenario.category == Category::WageArrears {
            120
        } else {
            40
        };
        rng.random_range(5..=largest).max(petitioners.len() as u32)
    } else {
        petitioners.len() as u32
    };
    let channel = if group_visit && rng.random_bool(0.85) {
        Channel::Visit
    } else {
        pick_weighted(
            rng,
            &[
                (Channel::Visit, 35),
                (Channel::Online, 22),
                (Channel::Phone, 14),
                (Channel::Letter, 10),
                (Channel::GridScreening, 13),
                (Channel::LeaderMailbox, 6),
            ],
            |(_, weight)| *weight,
        )
        .0
    };
    let matter_type = pick_weighted(
        rng,
        &[
            (MatterType::Suggestion, scenario.matter_type_weights[0]),
            (MatterType::Accusation, scenario.matter_type_weights[1]),
            (MatterType::Appeal, scenario.matter_type_weights[2]),
        ],
        |(_, weight)| *weight,
    )
    .0;

    let registration_year = china_date(registered_at).year();
    let respondent_template = pick(rng, matter.respondents);
    let respondent = respondent_template
        .replace("{committee}", &village_committee(&village.name))
        .replace("{village}", &village.name)
        .replace("{person}", &random_person(rng, 0.6));
    let fill = Placeholders {
        village: village.name.clone(),
        respondent: respondent.clone(),
        group: pick(rng, GROUP_NUMERALS).to_string(),
        year: registration_year - rng.random_range(1..=12),
        amount: rng.random_range(scenario.amount_range.0..=scenario.amount_range.1),
        count: if group_visit {
            headcount.max(rng.random_range(10..=150))
        } else {
            rng.random_range(10..=150)
        },
        distance: rng.random_range(3..=15),
        area: rng.random_range(2..=60),
    };
    let mut summary = fill.apply(matter.summary);
    if channel == Channel::GridScreening {
        summary = format!("网格员入户排查发现：{summary}");
    }
    if group_visit {
        summary.push_str(&format!(
            "（集体访，来访{headcount}人，推选代表{}人）",
            petitioners.iter().filter(|p| p.representative).count()
        ));
    }

    let grid_number = rng.random_range(1..=12);
    let location = Location {
        region_code: village.region_code.clone(),
        village: village.name.clone(),
        grid: format!("{}第{grid_number}网格", village.name),
        grid_worker: random_person(rng, 0.5),
    };
    let ownership = if rng.random_bool(if group_visit { 0.7 } else { 0.25 }) {
        let registered_date = china_date(registered_at);
        Ownership {
            leader: format!("{}（{}）", person_name(rng, true), pick(rng, LEADER_TITLES)),
            unit: pick(rng, RESPONSIBLE_UNITS).to_string(),
            officer: random_person(rng, 0.5),
            plan: "一个问题、一名领导、一套方案、一抓到底：定责任单位、定办案人员、定解决方案、定结案时间。".to_owned(),
            target_date: registered_date.checked_add_days(chrono::Days::new(rng.random_range(30..=60))),
        }
    } else {
        Ownership::default()
    };

    let case = RegisterCase {
        backdated_reason: None,
        number: None,
        registered_at: Some(registered_at),
        channel,
        petitioners,
        headcount,
        respondent,
        category: scenario.category,
        matter_type,
        litigation_related,
        summary,
        location,
        ownership,
    };
    let planned = plan_history(
        rng,
        scenario,
        matter,
        &fill,
        &village.name,
        litigation_related,
    );
    let history = place_in_time(rng, planned, registered_at, now);
    ImportRow {
        line,
        case,
        history,
        repeat: 0,
    }
}

struct Placeholders {
    village: String,
    respondent: String,
    group: String,
    year: i32,
    amount: u32,
    count: u32,
    distance: u32,
    area: u32,
}

impl Placeholders {
    fn apply(&self, template: &str) -> String {
        template
            .replace("{village}", &self.village)
            .replace("{respondent}", &self.respondent)
            .replace("{group}", &self.group)
            .replace("{year}", &self.year.to_string())
            .replace("{amount}", &self.amount.to_string())
            .replace("{count}", &self.count.to_string())
            .replace("{distance}", &self.distance.to_string())
            .replace("{area}", &self.area.to_string())
    }
}

/// The self-governing committee of a village (村民委员会) or an urban community (居民委员会).
fn village_committee(village: &str) -> String {
    if village.ends_with("社区") {
        format!("{village}居民委员会")
    } else if village.ends_with('村') {
        format!("{village}村民委员会")
    } else {
        format!("{village}村村民委员会")
    }
}

fn sample_petitioners(
    rng: &mut SmallRng,
    village: &SampleVillage,
    registered_at: DateTime<Utc>,
    group_visit: bool,
) -> Vec<Petitioner> {
    let count = if group_visit {
        rng.random_range(3..=6)
    } else {
        pick_weighted(rng, &[(1, 70), (2, 22), (3, 8)], |(_, weight)| *weight).0
    };
    let family_surname = pick(rng, SURNAMES).to_string();
    (0..count)
        .map(|index| {
            let male = rng.random_bool(0.6);
            // Several petitioners of an individual matter are usually one household.
            let surname = if index == 0 || (!group_visit && rng.random_bool(0.6)) {
                family_surname.clone()
            } else {
                pick(rng, SURNAMES).to_string()
            };
            Petitioner {
                name: format!("{surname}{}", given_name(rng, male)),
                id_number: id_number(rng, &village.region_code, registered_at, male),
                id_type: Default::default(),
                phone: mobile_number(rng),
                address: format!(
                    "{}{}组{}号",
                    village.name,
                    pick(rng, GROUP_NUMERALS),
                    rng.random_range(1..=120)
                ),
                // A group visit sends at most five representatives (条例 Art 20).
                representative: group_visit && index < 5,
            }
        })
        .collect()
}

/// A person whose sex is male with probability `male_chance`.
fn random_person(rng: &mut SmallRng, male_chance: f64) -> String {
    let male = rng.random_bool(male_chance);
    person_name(rng, male)
}

fn person_name(rng: &mut SmallRng, male: bool) -> String {
    let surname = pick(rng, SURNAMES);
    format!("{surname}{}", given_name(rng, male))
}

fn given_name(rng: &mut SmallRng, male: bool) -> String {
    let characters = if male {
        MALE_GIVEN_CHARACTERS
    } else {
        FEMALE_GIVEN_CHARACTERS
    };
    if rng.random_bool(0.25) {
        pick(rng, characters).to_string()
    } else {
        format!("{}{}", pick(rng, characters), pick(rng, characters))
    }
}

/// An 18-digit resident ID number: the village's county code, a birth date making the person
/// 20–85 at registration, a sequence whose last digit is odd for men, and the check character.
fn id_number(
    rng: &mut SmallRng,
    region_code: &str,
    registered_at: DateTime<Utc>,
    male: bool,
) -> String {
    let county_code = region_code
        .get(..6)
        .filter(|code| code.bytes().all(|byte| byte.is_ascii_digit()))
        .unwrap_or("430702");
    let registration_date = china_date(registered_at);
    let age_days = rng.random_range(20 * 365..=85 * 365);
    let birth_date = registration_date
        .checked_sub_days(chrono::Days::new(age_days))
        .unwrap_or(registration_date);
    let sequence = rng.random_range(0..100u32) * 10
        + if male {
            rng.random_range(0..5u32) * 2 + 1
        } else {
            rng.random_range(0..5u32) * 2
        };
    let body = format!("{county_code}{}{sequence:03}", birth_date.format("%Y%m%d"));
    let check = id_number_check_character(&body).unwrap_or('0');
    format!("{body}{check}")
}

fn mobile_number(rng: &mut SmallRng) -> String {
    format!(
        "{}{:08}",
        pick(rng, MOBILE_PREFIXES),
        rng.random_range(0..100_000_000u32)
    )
}

// ---------------------------------------------------------------------------------------------
// History
// ---------------------------------------------------------------------------------------------

/// An event planned for a day counted from registration (China calendar days).
struct PlannedEvent {
    day: u32,
    kind: EventKind,
}

/// The whole life the case would have if time did not stop; [`place_in_time`] cuts it at `now`.
fn plan_history(
    rng: &mut SmallRng,
    scenario: &Scenario,
    matter: &Matter,
    fill: &Placeholders,
    village: &str,
    litigation_related: bool,
) -> Vec<PlannedEvent> {
    let mut plan = Vec::new();
    let note = |text: &str, day: u32| PlannedEvent {
        day,
        kind: EventKind::Note {
            text: text.to_owned(),
        },
    };

    // A few matters sit undecided past the 15-day limit: the overdue list's first column.
    if rng.random_bool(0.03) {
        if rng.random_bool(0.5) {
            plan.push(note(pick_text(rng, EARLY_NOTES), rng.random_range(0..=3)));
        }
        return plan;
    }

    let decision_day = if rng.random_bool(0.05) {
        rng.random_range(17..=25)
    } else {
        rng.random_range(1..=14)
    };
    if rng.random_bool(0.35) {
        plan.push(note(
            pick_text(rng, EARLY_NOTES),
            rng.random_range(0..decision_day),
        ));
    }

    if litigation_related {
        plan.push(PlannedEvent {
            day: decision_day.min(7),
            kind: EventKind::Divert {
                to_unit: pick(rng, DIVERT_UNITS).to_string(),
                reason: pick(rng, DIVERT_REASONS).to_string(),
            },
        });
        plan.sort_by_key(|event| event.day);
        return plan;
    }
    if rng.random_bool(0.06) {
        plan.push(PlannedEvent {
            day: decision_day,
            kind: EventKind::Reject {
                reason: pick(rng, REJECT_REASONS).to_string(),
            },
        });
        plan.sort_by_key(|event| event.day);
        return plan;
    }

    plan.push(PlannedEvent {
        day: decision_day,
        kind: EventKind::Accept {},
    });
    let accepted = decision_day;

    // Handling: the reply day decides the window in which mediation, notes and any extension fall.
    let stalled = rng.random_bool(0.06);
    let extension = (!stalled && rng.random_bool(0.12)).then(|| {
        let days = pick(rng, &[10u32, 15, 20, 30]).to_owned();
        (accepted + rng.random_range(40..=55), days)
    });
    let reply_day = if stalled {
        accepted + 150
    } else if let Some((extension_day, days)) = extension {
        rng.random_range(extension_day + 2..=accepted + 58 + days)
    } else if rng.random_bool(0.06) {
        accepted + rng.random_range(62..=80)
    } else {
        accepted + rng.random_range(5..=57)
    };

    let mut handling = Vec::new();
    let mediation_count = pick_weighted(
        rng,
        &[
            (0usize, scenario.mediation_count_weights[0]),
            (1, scenario.mediation_count_weights[1]),
            (2, scenario.mediation_count_weights[2]),
        ],
        |(_, weight)| *weight,
    )
    .0;
    let mut agreement_reached = false;
    for index in 0..mediation_count {
        let last = index + 1 == mediation_count;
        let result = if last {
            pick_weighted(
                rng,
                &[
                    (MediationResult::Agreement, 65),
                    (MediationResult::NoAgreement, 25),
                    (MediationResult::Ongoing, 10),
                ],
                |(_, weight)| *weight,
            )
            .0
        } else if rng.random_bool(0.6) {
            MediationResult::NoAgreement
        } else {
            MediationResult::Ongoing
        };
        agreement_reached = result == MediationResult::Agreement;
        let mediation_type = pick_weighted(
            rng,
            &[
                (MediationType::People, scenario.mediation_weights[0]),
                (MediationType::Administrative, scenario.mediation_weights[1]),
                (MediationType::Judicial, scenario.mediation_weights[2]),
                (MediationType::Petition, scenario.mediation_weights[3]),
            ],
            |(_, weight)| *weight,
        )
        .0;
        let mediator_unit = match mediation_type {
            MediationType::People => format!("{village}人民调解委员会"),
            MediationType::Administrative => "乡矛盾纠纷调处中心".to_owned(),
            MediationType::Judicial => "县人民法院驻调处中心法官".to_owned(),
            MediationType::Petition => "县信访局".to_owned(),
        };
        // Agreements of people's and petition mediation may be taken to court for 司法确认.
        let judicial_confirmation = if agreement_reached
            && matches!(
                mediation_type,
                MediationType::People | MediationType::Petition
            ) {
            pick_weighted(
                rng,
                &[
                    (JudicialConfirmation::NotApplied, 70),
                    (JudicialConfirmation::Applied, 15),
                    (JudicialConfirmation::Confirmed, 15),
                ],
                |(_, weight)| *weight,
            )
            .0
        } else {
            JudicialConfirmation::NotApplied
        };
        handling.push(PlannedEvent {
            day: day_between(rng, accepted, reply_day),
            kind: EventKind::Mediate {
                mediation_type,
                mediator: format!("{}（{mediator_unit}）", random_person(rng, 0.6)),
                result,
                agreement: if agreement_reached {
                    fill.apply(matter.agreement)
                } else {
                    String::new()
                },
                judicial_confirmation,
            },
        });
    }
    let note_count = pick_weighted(rng, &[(0, 20), (1, 45), (2, 35)], |(_, weight)| *weight).0;
    for _ in 0..note_count {
        handling.push(note(
            pick_text(rng, HANDLING_NOTES),
            day_between(rng, accepted, reply_day),
        ));
    }
    if let Some((extension_day, days)) = extension {
        handling.push(PlannedEvent {
            day: extension_day,
            kind: EventKind::Extend {
                days,
                approver: format!("{}（乡长）", person_name(rng, true)),
                reason: pick(rng, EXTENSION_REASONS).to_string(),
            },
        });
    }
    // Mediation records must precede the reply that draws on them; keep their relative order
    // so a later record reports the later result.
    handling.sort_by_key(|event| event.day);
    plan.append(&mut handling);
    if stalled {
        return plan;
    }

    let outcome = if agreement_reached {
        pick_weighted(
            rng,
            &[
                (ReplyOutcome::Support, 80),
                (ReplyOutcome::Explain, 18),
                (ReplyOutcome::NotSupport, 2),
            ],
            |(_, weight)| *weight,
        )
        .0
    } else {
        pick_weighted(
            rng,
            &[
                (ReplyOutcome::Support, 40),
                (ReplyOutcome::Explain, 42),
                (ReplyOutcome::NotSupport, 18),
            ],
            |(_, weight)| *weight,
        )
        .0
    };
    let reply_text = match outcome {
        ReplyOutcome::Support => matter.support,
        ReplyOutcome::Explain => matter.explain,
        ReplyOutcome::NotSupport => matter.not_support,
    };
    plan.push(PlannedEvent {
        day: reply_day,
        kind: EventKind::Reply {
            outcome,
            text: fill.apply(reply_text),
        },
    });

    let satisfaction = rng.random_bool(0.85).then(|| {
        let weights = match outcome {
            ReplyOutcome::Support => [80, 17, 3],
            ReplyOutcome::Explain => [55, 33, 12],
            ReplyOutcome::NotSupport => [20, 35, 45],
        };
        pick_weighted(
            rng,
            &[
                (Satisfaction::Satisfied, weights[0]),
                (Satisfaction::BasicallySatisfied, weights[1]),
                (Satisfaction::Unsatisfied, weights[2]),
            ],
            |(_, weight)| *weight,
        )
        .0
    });
    let close_day = match satisfaction {
        Some(satisfaction) => {
            let evaluated = reply_day + rng.random_range(1..=20);
            plan.push(PlannedEvent {
                day: evaluated,
                kind: EventKind::Evaluate { satisfaction },
            });
            rng.random_bool(0.92)
                .then(|| evaluated + rng.random_range(0..=5))
        }
        // Unevaluated replies are closed once the evaluation window has run out, or left open.
        None => rng
            .random_bool(0.7)
            .then(|| reply_day + rng.random_range(31..=40)),
    };
    let Some(close_day) = close_day else {
        return plan;
    };
    let resolved = match satisfaction {
        Some(Satisfaction::Satisfied | Satisfaction::BasicallySatisfied) => rng.random_bool(0.98),
        Some(Satisfaction::Unsatisfied) => rng.random_bool(0.4),
        None => rng.random_bool(0.85),
    };
    plan.push(PlannedEvent {
        day: close_day,
        kind: EventKind::Close {
            resolved,
            note: if resolved {
                "案结事了，已销号。".to_owned()
            } else {
                "已依法答复，信访人仍有异议，已告知复查途径，纳入重点回访。".to_owned()
            },
        },
    });
    if rng.random_bool(0.2) {
        plan.push(note(
            pick_text(rng, CLOSING_NOTES),
            close_day + rng.random_range(7..=30),
        ));
    }
    plan
}

/// A day strictly inside `(after, before)` when there is room, else `after`.
fn day_between(rng: &mut SmallRng, after: u32, before: u32) -> u32 {
    if before > after + 1 {
        rng.random_range(after + 1..before)
    } else {
        after
    }
}

/// Give each planned event an office-hours time on its day, strictly after the one before it, and
/// drop everything from the first event that would fall after `now` (the case's life so far).
fn place_in_time(
    rng: &mut SmallRng,
    plan: Vec<PlannedEvent>,
    registered_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<AppendEvent> {
    let registration_date = china_date(registered_at);
    let mut previous = registered_at;
    let mut history = Vec::with_capacity(plan.len());
    for event in plan {
        let on_its_day = registration_date
            .checked_add_days(chrono::Days::new(u64::from(event.day)))
            .map(|date| office_instant(date, rng.random_range(0..OFFICE_SECONDS)));
        let earliest = previous + Duration::minutes(rng.random_range(5..=90));
        let at = on_its_day.map_or(earliest, |at| at.max(earliest));
        if at > now {
            break;
        }
        previous = at;
        history.push(AppendEvent {
            backdated_reason: None,
            kind: event.kind,
            at: Some(at),
        });
    }
    history
}

// ---------------------------------------------------------------------------------------------
// Time and choice helpers
// ---------------------------------------------------------------------------------------------

/// Office hours run 08:30–17:30 China time.
const OFFICE_OPENS_SECONDS: u32 = 8 * 3600 + 30 * 60;
const OFFICE_SECONDS: u32 = 9 * 3600;

fn china_date(instant: DateTime<Utc>) -> NaiveDate {
    fengqiao_case::deadlines::local_date(instant)
}

/// The instant `seconds_into_office_day` after opening on `date`, China time.
fn office_instant(date: NaiveDate, seconds_into_office_day: u32) -> DateTime<Utc> {
    let local = date.and_time(NaiveTime::MIN)
        + Duration::seconds(i64::from(OFFICE_OPENS_SECONDS + seconds_into_office_day));
    (local
        - Duration::seconds(i64::from(
            fengqiao_case::deadlines::china_offset().local_minus_utc(),
        )))
    .and_utc()
}

/// Move `instant` to office hours on its China date, unless that leaves `[start, now)`.
fn during_office_hours(
    rng: &mut SmallRng,
    instant: DateTime<Utc>,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let moved = office_instant(china_date(instant), rng.random_range(0..OFFICE_SECONDS));
    if moved >= start && moved < now {
        moved
    } else {
        instant
    }
}

fn pick<'a, T>(rng: &mut SmallRng, items: &'a [T]) -> &'a T {
    // Every list passed here is a non-empty constant or the caller's non-empty village list.
    &items[rng.random_range(0..items.len())]
}

fn pick_text(rng: &mut SmallRng, texts: &[&'static str]) -> &'static str {
    texts[rng.random_range(0..texts.len())]
}

fn pick_weighted<'a, T>(rng: &mut SmallRng, items: &'a [T], weight: impl Fn(&T) -> u32) -> &'a T {
    let total: u32 = items.iter().map(&weight).sum();
    let mut target = rng.random_range(0..total.max(1));
    for item in items {
        let item_weight = weight(item);
        if target < item_weight {
            return item;
        }
        target -= item_weight;
    }
    &items[items.len() - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn instant(year: i32, month: u32, day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(year, month, day, 0, 0, 0)
            .single()
            .expect("valid date")
    }

    fn ledger(seed: u64, count: usize) -> Vec<ImportRow> {
        sample_ledger(
            seed,
            count,
            &default_villages(),
            instant(2025, 1, 1),
            instant(2026, 3, 1),
        )
    }

    #[test]
    fn id_number_check_character_matches_known_numbers() {
        // The worked example of GB 11643-1999.
        assert_eq!(id_number_check_character("11010519491231002"), Some('X'));
        assert!(is_valid_id_number("11010519491231002X"));
        assert!(!is_valid_id_number("110105194912310021"));
        assert!(!is_valid_id_number("11010519491331002X"));
        assert_eq!(id_number_check_character("1101051949123100"), None);
        assert_eq!(id_number_check_character("1101051949123100A"), None);
    }

    #[test]
    fn same_seed_same_ledger_other_seed_other_ledger() {
        assert_eq!(ledger(7, 200), ledger(7, 200));
        assert_ne!(ledger(7, 200), ledger(8, 200));
    }

    #[test]
    fn events_fall_after_registration_in_order_and_not_after_now() {
        let now = instant(2026, 3, 1);
        for row in ledger(1, 500) {
            let registered = row.case.registered_at.expect("registration time");
            assert!(registered >= instant(2025, 1, 1) && registered < now);
            let mut previous = registered;
            for event in &row.history {
                let at = event.at.expect("event time");
                assert!(at > previous, "line {}: {:?}", row.line, event.kind.name());
                assert!(at <= now);
                previous = at;
            }
        }
    }

    #[test]
    fn registrations_are_well_formed() {
        let rows = ledger(2, 500);
        assert_eq!(rows.len(), 500);
        let mut previous_registration = None;
        for (index, row) in rows.iter().enumerate() {
            let case = &row.case;
            assert_eq!(row.line, index as u64 + 1);
            assert_eq!(case.number, None);
            assert!(
                previous_registration <= case.registered_at,
                "ledger in registration order"
            );
            previous_registration = case.registered_at;
            assert!((1..=6).contains(&case.petitioners.len()));
            assert!(case.headcount >= 1 && case.headcount as usize >= case.petitioners.len());
            let representatives = case.petitioners.iter().filter(|p| p.representative).count();
            assert!(representatives <= 5);
            assert!(case.headcount >= 5 || representatives == 0);
            assert!(!case.summary.is_empty() && !case.summary.contains('{'));
            assert!(!case.respondent.is_empty() && !case.respondent.contains('{'));
            assert_eq!(case.location.region_code.len(), 12);
            assert!(
                case.location
                    .region_code
                    .bytes()
                    .all(|byte| byte.is_ascii_digit())
            );
            assert!(!case.location.village.is_empty());
            for petitioner in &case.petitioners {
                assert!(
                    is_valid_id_number(&petitioner.id_number),
                    "{}",
                    petitioner.id_number
                );
                assert!(
                    petitioner
                        .id_number
                        .starts_with(&case.location.region_code[..6])
                );
                assert_eq!(petitioner.phone.len(), 11);
                assert!(petitioner.phone.starts_with('1'));
                assert!(petitioner.phone.bytes().all(|byte| byte.is_ascii_digit()));
                assert!(petitioner.address.starts_with(&case.location.village));
                assert!(petitioner.name.chars().count() >= 2);
            }
        }
    }

    /// The lifecycle rules, restated independently of `lifecycle::check`, for the sample's history.
    #[test]
    fn histories_follow_the_lifecycle_rules() {
        #[derive(Clone, Copy, PartialEq, Debug)]
        enum Stage {
            Registered,
            Accepted,
            Terminal,
            Replied,
            Evaluated,
            Closed,
        }
        for row in ledger(3, 1000) {
            let mut stage = Stage::Registered;
            let mut extended = false;
            for event in &row.history {
                stage = match (&event.kind, stage) {
                    (EventKind::Note { .. }, stage) => stage,
                    (EventKind::Accept {}, Stage::Registered) => Stage::Accepted,
                    (EventKind::Reject { reason }, Stage::Registered) => {
                        assert!(!reason.is_empty());
                        Stage::Terminal
                    }
                    (EventKind::Divert { .. }, Stage::Registered) => {
                        assert!(row.case.litigation_related);
                        Stage::Terminal
                    }
                    (EventKind::Mediate { mediator, .. }, Stage::Accepted) => {
                        assert!(!mediator.is_empty());
                        Stage::Accepted
                    }
                    (EventKind::Extend { days, approver, .. }, Stage::Accepted) => {
                        assert!(!extended && *days <= 30 && !approver.is_empty());
                        extended = true;
                        Stage::Accepted
                    }
                    (EventKind::Reply { text, .. }, Stage::Accepted) => {
                        assert!(!text.is_empty() && !text.contains('{'));
                        Stage::Replied
                    }
                    (EventKind::Evaluate { .. }, Stage::Replied) => Stage::Evaluated,
                    (EventKind::Close { .. }, Stage::Replied | Stage::Evaluated) => Stage::Closed,
                    (kind, stage) => panic!("line {}: {} while {stage:?}", row.line, kind.name()),
                };
            }
        }
    }

    #[test]
    fn mature_cases_look_like_a_real_ledger() {
        let now = instant(2026, 3, 1);
        let rows = ledger(4, 2000);
        let mature: Vec<&ImportRow> = rows
            .iter()
            .filter(|row| {
                row.case
                    .registered_at
                    .is_some_and(|at| now - at > Duration::days(150))
            })
            .collect();
        assert!(mature.len() > 1000);
        let count = |predicate: &dyn Fn(&EventKind) -> bool| {
            mature
                .iter()
                .filter(|row| row.history.iter().any(|event| predicate(&event.kind)))
                .count() as f64
                / mature.len() as f64
        };
        let accepted = count(&|kind| matches!(kind, EventKind::Accept {}));
        let rejected = count(&|kind| matches!(kind, EventKind::Reject { .. }));
        let diverted = count(&|kind| matches!(kind, EventKind::Divert { .. }));
        let mediated = count(&|kind| matches!(kind, EventKind::Mediate { .. }));
        let extended = count(&|kind| matches!(kind, EventKind::Extend { .. }));
        let closed = count(&|kind| matches!(kind, EventKind::Close { .. }));
        let resolved = count(&|kind| matches!(kind, EventKind::Close { resolved: true, .. }));
        assert!(accepted > 0.8, "accepted {accepted}");
        assert!((0.01..0.1).contains(&rejected), "rejected {rejected}");
        assert!((0.01..0.15).contains(&diverted), "diverted {diverted}");
        assert!(mediated > 0.4, "mediated {mediated}");
        assert!((0.03..0.2).contains(&extended), "extended {extended}");
        assert!(closed > 0.6, "closed {closed}");
        assert!(resolved / closed > 0.85, "resolution {}", resolved / closed);

        let late_acceptances = mature
            .iter()
            .filter(|row| {
                let registered = row.case.registered_at.expect("registration time");
                row.history.iter().any(|event| {
                    matches!(event.kind, EventKind::Accept {})
                        && event
                            .at
                            .is_some_and(|at| at - registered > Duration::days(15))
                })
            })
            .count();
        assert!(late_acceptances > 0);

        let handled: Vec<&&ImportRow> = mature
            .iter()
            .filter(|row| {
                row.history
                    .iter()
                    .any(|event| matches!(event.kind, EventKind::Close { .. }))
            })
            .collect();
        let events: usize = handled.iter().map(|row| row.history.len() + 1).sum();
        let average = events as f64 / handled.len() as f64;
        assert!(
            (6.0..=10.0).contains(&average),
            "average events per closed case {average}"
        );

        let groups = rows.iter().filter(|row| row.case.headcount >= 5).count();
        assert!(groups > 0 && groups < rows.len() / 3);
        let village_committee = rows
            .iter()
            .filter(|row| row.case.respondent.ends_with("民委员会"))
            .count();
        assert!(village_committee > 0);
    }

    fn header_for(case: &RegisterCase, number: String) -> fengqiao_case::model::CaseHeader {
        fengqiao_case::model::CaseHeader {
            number,
            channel: case.channel,
            petitioners: case.petitioners.clone(),
            headcount: case.headcount,
            respondent: case.respondent.clone(),
            category: case.category,
            matter_type: case.matter_type,
            litigation_related: case.litigation_related,
            summary: case.summary.clone(),
            location: case.location.clone(),
            ownership: case.ownership.clone(),
        }
    }

    /// Every sample row registers and takes its whole history through the real lifecycle checks,
    /// and the state it ends in is the one its last transition implies.
    #[test]
    fn every_sample_row_imports_through_the_lifecycle_without_refusal() {
        use fengqiao_case::appending::{append, register};
        use fengqiao_case::lifecycle::NewEvent;
        use fengqiao_case::model::{Limits, Status};

        let limits = Limits::default();
        let node = "node-county".to_owned();
        let now = instant(2026, 3, 1);
        let rows = sample_ledger(5, 300, &default_villages(), instant(2025, 6, 1), now);
        for row in rows {
            let registered_at = row.case.registered_at.expect("registration time");
            let number = format!("{}-2026-{:06}", row.case.location.region_code, row.line);
            let header = header_for(&row.case, number.clone());
            let new_event = |index: usize, kind: EventKind, at: DateTime<Utc>| NewEvent {
                id: format!("{:06}{index:04}", row.line),
                kind,
                at,
                node: node.clone(),
                operator: "导入".to_owned(),
                hlc: Default::default(),
                imported: None,
                backdated_reason: None,
            };
            let (mut document, _, mut state) = register(
                header,
                new_event(
                    0,
                    EventKind::Register {
                        header: None,
                        policy_version: 0,
                    },
                    registered_at,
                ),
                &[7; 16],
                &fengqiao_case::policy::PolicyBook::fixed(limits.clone()),
                &ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
            )
            .unwrap_or_else(|error| panic!("line {} refused at registration: {error}", row.line));
            for (index, event) in row.history.iter().enumerate() {
                let at = event.at.expect("event time");
                let name = event.kind.name();
                let appended = append(
                    &mut document,
                    new_event(index + 1, event.kind.clone(), at),
                    &limits,
                    &ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
                    &fengqiao_case::authority::StandaloneOffice {
                        node: node.clone(),
                        region_code: "430702".to_owned(),
                    },
                );
                state = match appended {
                    Ok((_, state, _)) => state,
                    Err(error) => panic!("line {} refused {name}: {error}", row.line),
                };
            }
            let last_transition = row
                .history
                .iter()
                .rev()
                .find(|event| event.kind.is_transition())
                .map(|event| event.kind.name());
            let expected = match last_transition {
                None => Status::Registered,
                Some("accept" | "extend") => Status::Accepted,
                Some("reject") => Status::NotAccepted,
                Some("divert") => Status::Diverted,
                Some("reply") => Status::Replied,
                Some("evaluate") => Status::Evaluated,
                Some("close") => Status::Closed,
                Some(other) => panic!("samples made an unexpected transition {other}"),
            };
            assert_eq!(state.status, expected, "line {}", row.line);
            assert!(state.invalid.is_empty() && state.conflict.is_none());
            assert_eq!(state.event_count as usize, row.history.len() + 1);
        }
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let now = instant(2026, 3, 1);
        assert!(sample_ledger(1, 0, &[], now, now).is_empty());
        let same_instant = sample_ledger(1, 20, &[], now, now);
        assert_eq!(same_instant.len(), 20);
        assert!(same_instant.iter().all(|row| row.history.is_empty()));
        let reversed = sample_ledger(1, 20, &[], now + Duration::days(30), now);
        assert!(
            reversed
                .iter()
                .all(|row| row.case.registered_at <= Some(now))
        );
    }
}
