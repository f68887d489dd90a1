//! `fengqiao stats --by-child`: the whole subtree, then each child office with its link's health,
//! then that child's own offices indented beneath it.

use std::fmt::Write as _;

use fengqiao_case::MeasureSet;
use fengqiao_case::model::stats::{OfficeStats, StatsBreakdown, SyncHealth};

use super::render::{new_table, ratio_text};
use crate::import::values::{china_time, snake_name, start_of_china_day};

/// The query of `/api/stats` and `/api/stats/children` for a period of China days: `to` names
/// the last day included, the API wants an open end. `stats` and `report` both ask with it.
pub fn period_query(
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
    category: Option<fengqiao_case::Category>,
    without_imported: bool,
) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    let instant = |date: chrono::NaiveDate| {
        start_of_china_day(date).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    if let Some(from) = from {
        query.push(("from", instant(from)));
    }
    if let Some(to) = to {
        let day_after = to.succ_opt().unwrap_or(to);
        query.push(("to", instant(day_after)));
    }
    if let Some(category) = category {
        query.push(("category", snake_name(&category)));
    }
    if without_imported {
        query.push((
            "imported",
            snake_name(&fengqiao_case::ImportedCases::Exclude),
        ));
    }
    query
}

/// One table: a row for the whole subtree, one per child, one per grandchild (indented), and one
/// for the cases under no child when there are any.
pub fn stats_by_child_text(breakdown: &StatsBreakdown) -> String {
    let mut text = String::new();
    let period = match (&breakdown.from, &breakdown.to) {
        (None, None) => "all time 全部".to_owned(),
        (from, to) => {
            let mut period = String::new();
            if let Some(from) = from {
                let _ = write!(period, "from {}", china_time(from));
            }
            if let Some(to) = to {
                let separator = if from.is_some() { " " } else { "" };
                let _ = write!(period, "{separator}before {}", china_time(to));
            }
            period
        }
    };
    let _ = writeln!(
        text,
        "Measures by office 分级统计 · cases registered {period} · {} · judged at {}",
        super::render::imported_cases_text(breakdown.imported),
        super::render::china_time_labelled(&breakdown.now)
    );
    let mut table = new_table([
        "office 单位",
        "region",
        "cases",
        "上报 escalated",
        "交办 assigned",
        "超时 overdue",
        "督办 open",
        "督办超期 overdue",
        "督办已销号 crossed off",
        "按期办结率",
        "sync 同步",
    ]);
    table.add_row(measure_row(
        "全部 whole subtree".to_owned(),
        "",
        &breakdown.total,
        "".to_owned(),
    ));
    for child in &breakdown.children {
        table.add_row(office_row(child, ""));
        for grandchild in &child.children {
            table.add_row(office_row(grandchild, "  └ "));
        }
    }
    if breakdown.own.cases > 0 {
        table.add_row(measure_row(
            "本级 under no child".to_owned(),
            "",
            &breakdown.own,
            "".to_owned(),
        ));
    }
    let _ = writeln!(text, "{table}");
    if breakdown.children.is_empty() {
        let _ = writeln!(text, "This node has no child offices.");
    }
    text
}

fn office_row(office: &OfficeStats, indent: &str) -> Vec<String> {
    let mut name = office
        .name
        .clone()
        .unwrap_or_else(|| "(office not in the roster)".to_owned());
    if office.revoked {
        name.push_str(" (revoked 已撤销)");
    }
    let sync = match &office.sync {
        Some(health) => sync_text(health),
        None if indent.is_empty() => "unknown".to_owned(),
        None => String::new(),
    };
    measure_row(
        format!("{indent}{name}"),
        &office.region_code,
        &office.measures,
        sync,
    )
}

fn measure_row(office: String, region: &str, set: &MeasureSet, sync: String) -> Vec<String> {
    vec![
        office,
        region.to_owned(),
        set.cases.to_string(),
        set.escalated.to_string(),
        set.assigned.to_string(),
        (set.overdue + set.seriously_overdue).to_string(),
        set.directives_open.to_string(),
        set.directives_overdue.to_string(),
        set.directives_crossed_off.to_string(),
        ratio_text(&set.on_time_completion),
        sync,
    ]
}

/// `connected since …, last sync …, pending 0 out / 0 in` in one cell.
fn sync_text(health: &SyncHealth) -> String {
    let time = |instant: &Option<chrono::DateTime<chrono::Utc>>| {
        instant
            .as_ref()
            .map(china_time)
            .unwrap_or_else(|| "never".to_owned())
    };
    let mut text = if health.connected {
        format!("connected since {}", time(&health.since))
    } else {
        format!("down, last contact {}", time(&health.last_contact))
    };
    let _ = write!(
        text,
        "; last sync {}; pending {} out / {} in",
        time(&health.last_successful_sync),
        health.pending_out,
        health.pending_in
    );
    if health.quarantined > 0 {
        let _ = write!(text, "; {} quarantined", health.quarantined);
    }
    if health.refused_by_peer > 0 {
        let _ = write!(
            text,
            "; {} of our cases refused there (被对方拒收)",
            health.refused_by_peer
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn children_come_with_their_sync_health_and_villages_indented() {
        let now = chrono::Utc
            .with_ymd_and_hms(2026, 11, 20, 2, 30, 0)
            .single()
            .expect("instant");
        let set = |cases: u64, escalated: u64| MeasureSet {
            cases,
            escalated,
            ..MeasureSet::default()
        };
        let breakdown = StatsBreakdown {
            schema_version: fengqiao_case::SCHEMA_VERSION,
            from: None,
            to: None,
            imported: Default::default(),
            now,
            total: set(4, 1),
            own: MeasureSet::default(),
            children: vec![OfficeStats {
                node_id: Some("a".repeat(32)),
                name: Some("河洑镇".to_owned()),
                revoked: false,
                region_code: "430702001".to_owned(),
                measures: set(4, 1),
                sync: Some(SyncHealth {
                    connected: true,
                    since: Some(now),
                    last_contact: Some(now),
                    last_successful_sync: Some(now),
                    ..SyncHealth::default()
                }),
                children: vec![
                    OfficeStats {
                        node_id: None,
                        name: Some("芦荻山村".to_owned()),
                        revoked: false,
                        region_code: "430702001001".to_owned(),
                        measures: set(3, 1),
                        sync: None,
                        children: Vec::new(),
                    },
                    OfficeStats {
                        node_id: Some("b".repeat(32)),
                        name: Some("丹洲村".to_owned()),
                        revoked: true,
                        region_code: "430702001002".to_owned(),
                        measures: set(1, 0),
                        sync: None,
                        children: Vec::new(),
                    },
                ],
            }],
        };
        let text = stats_by_child_text(&breakdown);
        assert!(text.contains("全部 whole subtree"), "{text}");
        assert!(text.contains("河洑镇"), "{text}");
        assert!(text.contains("└ 芦荻山村"), "{text}");
        assert!(!text.contains("芦荻山村 (revoked"), "{text}");
        assert!(text.contains("└ 丹洲村 (revoked 已撤销)"), "{text}");
        assert!(text.contains("connected since"), "{text}");
        assert!(!text.contains("under no child"), "{text}");
    }
}
