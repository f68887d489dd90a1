//! Reading the model's enum values, booleans, dates and times from text typed by people: CLI flags
//! and ledger cells, in the API's `snake_case` spelling or the Chinese terms offices use.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
// China Standard Time: the ledgers, the deadlines and the people all count days in it; the one
// definition is the deadlines' own.
use fengqiao_case::deadlines::china_offset;
use fengqiao_case::{
    Category, Channel, DeadlineKind, DirectiveStatus, IdType, JudicialConfirmation, MatterType,
    MediationResult, MediationType, ReplyOutcome, ReviewLevel, ReviewOutcome, Satisfaction, Status,
    Tier, WarningGrade,
};
use serde::de::DeserializeOwned;

/// A model enum whose values also have Chinese names. The first alias of each value is the
/// label shown in tables; the others are accepted on input.
pub trait ChineseLabels: DeserializeOwned {
    /// What the value is called in messages (`channel`, `category`, …).
    const FIELD: &'static str;
    /// `(snake_case value, Chinese name)` pairs.
    const ALIASES: &'static [(&'static str, &'static str)];
}

macro_rules! chinese_labels {
    ($type:ty, $field:literal, [$(($value:literal, $chinese:literal)),* $(,)?]) => {
        impl ChineseLabels for $type {
            const FIELD: &'static str = $field;
            const ALIASES: &'static [(&'static str, &'static str)] = &[$(($value, $chinese)),*];
        }
    };
}

chinese_labels!(
    Tier,
    "tier",
    [
        ("village", "村"),
        ("village", "社区"),
        ("township", "乡镇"),
        ("township", "街道"),
        ("township", "乡"),
        ("township", "镇"),
        ("county", "县区"),
        ("county", "县"),
        ("county", "区"),
        ("city", "市"),
    ]
);
chinese_labels!(
    IdType,
    "petitioner_id_type",
    [
        ("resident_id", "居民身份证"),
        ("passport", "护照"),
        ("hk_macao_permit", "港澳居民来往内地通行证"),
        ("taiwan_permit", "台湾居民来往大陆通行证"),
        ("other", "其他证件"),
        ("resident_id", "身份证"),
        ("hk_macao_permit", "港澳通行证"),
        ("taiwan_permit", "台胞证"),
        ("other", "其他"),
    ]
);
chinese_labels!(
    Channel,
    "channel",
    [
        ("letter", "来信"),
        ("visit", "来访"),
        ("online", "网上"),
        ("online", "网上信访"),
        ("phone", "电话"),
        ("phone", "来电"),
        ("leader_mailbox", "领导信箱"),
        ("grid_screening", "网格排查"),
        ("letter", "信"),
        ("visit", "访"),
    ]
);
chinese_labels!(
    Category,
    "category",
    [
        ("land_requisition", "征地拆迁"),
        ("land_requisition", "征地"),
        ("wage_arrears", "拖欠工资"),
        ("wage_arrears", "欠薪"),
        ("wage_arrears", "农民工工资"),
        ("demolition_relocation", "拆迁安置"),
        ("demolition_relocation", "拆迁"),
        ("school_consolidation", "撤点并校"),
        ("labour", "劳动保障"),
        ("labour", "劳动争议"),
        ("environment", "环境污染"),
        ("environment", "环保"),
        ("neighbourhood", "邻里纠纷"),
        ("family", "婚姻家庭"),
        ("property_management", "物业管理"),
        ("property_management", "物业"),
        ("social_security", "社会保障"),
        ("social_security", "社保"),
        ("other", "其他"),
    ]
);
chinese_labels!(
    MatterType,
    "matter_type",
    [
        ("suggestion", "建议意见"),
        ("suggestion", "建议"),
        ("accusation", "检举控告"),
        ("accusation", "检举"),
        ("accusation", "控告"),
        ("appeal", "申诉求决"),
        ("appeal", "申诉"),
        ("appeal", "求决"),
    ]
);
chinese_labels!(
    ReplyOutcome,
    "reply_outcome",
    [
        ("support", "支持"),
        ("explain", "解释"),
        ("not_support", "不支持"),
    ]
);
chinese_labels!(
    Satisfaction,
    "satisfaction",
    [
        ("satisfied", "满意"),
        ("basically_satisfied", "基本满意"),
        ("unsatisfied", "不满意"),
    ]
);
chinese_labels!(
    MediationType,
    "mediation type",
    [
        ("people", "人民调解"),
        ("administrative", "行政调解"),
        ("judicial", "司法调解"),
        ("petition", "信访调解"),
    ]
);
chinese_labels!(
    MediationResult,
    "mediation result",
    [
        ("agreement", "达成协议"),
        ("no_agreement", "未达成协议"),
        ("ongoing", "调解中"),
    ]
);
chinese_labels!(
    JudicialConfirmation,
    "judicial confirmation status",
    [
        ("not_applied", "未申请"),
        ("applied", "已申请"),
        ("confirmed", "已确认"),
        ("refused", "不予确认"),
    ]
);
chinese_labels!(
    ReviewLevel,
    "review level",
    [("review", "复查"), ("re_review", "复核")]
);
chinese_labels!(
    ReviewOutcome,
    "review outcome",
    [("upheld", "维持"), ("revised", "撤销变更")]
);
chinese_labels!(
    Status,
    "status",
    [
        ("registered", "已登记"),
        ("awaiting_receiver", "待接收"),
        ("accepted", "已受理"),
        ("not_accepted", "不予受理"),
        ("diverted", "已导入诉讼"),
        ("forwarded_out", "已转送"),
        ("replied", "已答复"),
        ("evaluated", "已评价"),
        ("closed", "已办结"),
        ("under_review", "复查复核中"),
        ("final", "终结"),
    ]
);
chinese_labels!(
    WarningGrade,
    "warning grade",
    [
        ("approaching", "预警"),
        ("overdue", "超时"),
        ("seriously_overdue", "严重超时"),
    ]
);
chinese_labels!(
    DeadlineKind,
    "deadline",
    [
        ("acceptance", "受理时限"),
        ("objection", "异议时限"),
        ("handling", "办理时限"),
        ("evaluation", "评价时限"),
        ("review_decision", "复查复核时限"),
        ("directive", "督办时限"),
    ]
);
chinese_labels!(
    DirectiveStatus,
    "directive status",
    [
        ("issued", "已下发"),
        ("acknowledged", "已签收"),
        ("reported", "已回复"),
        ("returned", "已退回"),
        ("crossed_off", "已销号"),
    ]
);

/// Parse a value in its `snake_case` spelling (hyphens and case forgiven) or by a Chinese name.
pub fn parse_labelled<T: ChineseLabels>(text: &str) -> Result<T, String> {
    let trimmed = text.trim();
    let spelled = T::ALIASES
        .iter()
        .find(|(_, chinese)| *chinese == trimmed)
        .map(|(value, _)| (*value).to_owned())
        .unwrap_or_else(|| trimmed.to_lowercase().replace(['-', ' '], "_"));
    serde_json::from_value(serde_json::Value::String(spelled))
        .map_err(|error| format!("{} `{trimmed}` is not known: {error}", T::FIELD))
}

/// The `snake_case` spelling of a model enum value (as the API writes it).
pub fn snake_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::from("?"),
    }
}

/// `accepted 已受理`: the API spelling followed by the Chinese label when there is one.
pub fn bilingual<T: ChineseLabels + serde::Serialize>(value: &T) -> String {
    let name = snake_name(value);
    match T::ALIASES.iter().find(|(snake, _)| *snake == name) {
        Some((_, chinese)) => format!("{name} {chinese}"),
        None => name,
    }
}

/// `true/false`, `yes/no`, `1/0`, `是/否`, `y/n`.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_lowercase().as_str() {
        "true" | "yes" | "y" | "1" | "是" | "对" | "已化解" => Ok(true),
        "false" | "no" | "n" | "0" | "否" | "未化解" => Ok(false),
        other => Err(format!("`{other}` is not true/false (是/否)")),
    }
}

/// A calendar date: `2026-03-01`, `2026/3/1` or `2026年3月1日`.
pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let trimmed = text.trim();
    for format in ["%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日"] {
        if let Ok(date) = NaiveDate::parse_from_str(trimmed, format) {
            return Ok(date);
        }
    }
    Err(format!("`{trimmed}` is not a date like 2026-03-01"))
}

/// An instant: RFC 3339 with an offset, or a local time / date taken as China time (a bare date
/// is the start of that day).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let trimmed = text.trim();
    if let Ok(instant) = DateTime::parse_from_rfc3339(trimmed) {
        return Ok(instant.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y/%m/%d %H:%M:%S",
        "%Y/%m/%d %H:%M",
    ] {
        if let Ok(local) = NaiveDateTime::parse_from_str(trimmed, format) {
            return china_local_to_utc(local, trimmed);
        }
    }
    if let Ok(date) = parse_date(trimmed) {
        return china_local_to_utc(date.and_time(NaiveTime::MIN), trimmed);
    }
    Err(format!(
        "`{trimmed}` is not a time like 2026-03-01T09:30:00+08:00, 2026-03-01 09:30 or 2026-03-01"
    ))
}

/// Start of a China-time day as an instant (for period bounds).
pub fn start_of_china_day(date: NaiveDate) -> DateTime<Utc> {
    let local = date.and_time(NaiveTime::MIN);
    // A fixed offset has no gaps or overlaps, so this always has exactly one answer.
    china_local_to_utc(local, "").unwrap_or_else(|_| Utc.from_utc_datetime(&local))
}

fn china_local_to_utc(local: NaiveDateTime, original: &str) -> Result<DateTime<Utc>, String> {
    china_offset()
        .from_local_datetime(&local)
        .single()
        .map(|instant| instant.with_timezone(&Utc))
        .ok_or_else(|| format!("`{original}` is not a valid China time"))
}

/// An instant shown in China time, to the minute.
pub fn china_time(instant: &DateTime<Utc>) -> String {
    instant
        .with_timezone(&china_offset())
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// The China-time calendar day of an instant.
pub fn china_date(instant: &DateTime<Utc>) -> String {
    instant
        .with_timezone(&china_offset())
        .format("%Y-%m-%d")
        .to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn enums_parse_from_snake_case_hyphens_and_chinese() {
        assert_eq!(parse_labelled::<Channel>("visit"), Ok(Channel::Visit));
        assert_eq!(
            parse_labelled::<Channel>("Leader-Mailbox"),
            Ok(Channel::LeaderMailbox)
        );
        assert_eq!(parse_labelled::<Channel>(" 来访 "), Ok(Channel::Visit));
        assert_eq!(
            parse_labelled::<Category>("拖欠工资"),
            Ok(Category::WageArrears)
        );
        assert_eq!(
            parse_labelled::<Satisfaction>("基本满意"),
            Ok(Satisfaction::BasicallySatisfied)
        );
        assert_eq!(
            parse_labelled::<ReplyOutcome>("不支持"),
            Ok(ReplyOutcome::NotSupport)
        );
        let error = parse_labelled::<Channel>("carrier_pigeon").unwrap_err();
        assert!(
            error.contains("carrier_pigeon") && error.contains("visit"),
            "{error}"
        );
    }

    #[test]
    fn every_alias_names_a_real_value() {
        fn check<T: ChineseLabels>() {
            for (snake, chinese) in T::ALIASES {
                assert!(parse_labelled::<T>(snake).is_ok(), "{snake}");
                assert!(parse_labelled::<T>(chinese).is_ok(), "{chinese}");
            }
        }
        check::<Tier>();
        check::<IdType>();
        check::<Channel>();
        check::<Category>();
        check::<MatterType>();
        check::<ReplyOutcome>();
        check::<Satisfaction>();
        check::<MediationType>();
        check::<MediationResult>();
        check::<JudicialConfirmation>();
        check::<ReviewLevel>();
        check::<ReviewOutcome>();
        check::<Status>();
        check::<WarningGrade>();
        check::<DeadlineKind>();
        check::<DirectiveStatus>();
    }

    #[test]
    fn times_are_china_time_unless_they_say_otherwise() {
        let expected = "2026-03-01T01:30:00Z";
        for text in [
            "2026-03-01T09:30:00+08:00",
            "2026-03-01T01:30:00Z",
            "2026-03-01 09:30",
            "2026-03-01 09:30:00",
            "2026/03/01 09:30",
        ] {
            assert_eq!(
                parse_time(text)
                    .unwrap()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                expected,
                "{text}"
            );
        }
        assert_eq!(
            parse_time("2026年3月1日")
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "2026-02-28T16:00:00Z"
        );
        assert!(parse_time("yesterday").is_err());
        assert_eq!(
            china_time(&parse_time("2026-03-01T01:30:00Z").unwrap()),
            "2026-03-01 09:30"
        );
    }

    #[test]
    fn booleans_in_english_and_chinese() {
        assert_eq!(parse_bool("TRUE"), Ok(true));
        assert_eq!(parse_bool("是"), Ok(true));
        assert_eq!(parse_bool("0"), Ok(false));
        assert!(parse_bool("maybe").is_err());
    }

    #[test]
    fn bilingual_labels() {
        assert_eq!(bilingual(&Status::Accepted), "accepted 已受理");
        assert_eq!(bilingual(&Category::WageArrears), "wage_arrears 拖欠工资");
    }
}
