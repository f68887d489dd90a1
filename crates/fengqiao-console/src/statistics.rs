//! 统计分析: the office's measures for a period and category, month by month, and (for the roles
//! the role table lets read them) child by child with drill-down, each child's link health
//! beside it, and the villages with no case in the period (零访村). Every figure is the
//! backend's, counted as `fengqiao stats` counts it; this file only arranges and words them.
//! Charts are ECharts options in a `data-chart` attribute (escaped like any text), drawn by
//! `console-charts.js`; the tables carry the same figures, so the page reads with JavaScript off.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Datelike, Months, NaiveDate, TimeZone, Utc};
use fengqiao_accounts::Action;
use fengqiao_case::deadlines::china_offset;
use fengqiao_case::model::stats::{OfficeStats, StatsBreakdown};
use fengqiao_case::model::{Category, ImportedCases, MeasureSet, Measures, Ratio};
use serde::Deserialize;
use serde_json::json;

use crate::backend::StatsPeriod;
use crate::forms::Choice;
use crate::forms::{choices, parse_choice};
use crate::pages::{
    ALL_CATEGORIES, Backend, failure_page, html, language, signed_in, signed_in_layout,
};
use crate::texts::{StatisticsTexts, Texts, fill};
use crate::views::{Layout, date_time};

/// Months the monthly charts cover, ending with the period's last month.
const CHART_MONTHS: u32 = 12;
/// Digits of a village's region code (county 6, township 9, village 12).
const VILLAGE_REGION_DIGITS: usize = 12;

/// The page's filters as the URL carries them: dates as `2026-12-04` (the period runs from the
/// first day's start to the last day's end, in China), the enums' API names, and the region code
/// of the child office drilled into.
#[derive(Debug, Default, Deserialize)]
pub struct StatisticsParams {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    imported: String,
    #[serde(default)]
    office: String,
}

/// One figure of the totals: its name and its value as supervisors read it.
#[derive(Debug, Clone)]
pub struct FigureView {
    pub label: String,
    pub value: String,
}

/// One child office's row.
#[derive(Debug, Clone)]
pub struct ChildRowView {
    pub name: String,
    pub region_code: String,
    /// The drill-down into its own children, when it has any.
    pub href: Option<String>,
    pub revoked: bool,
    pub cases: u64,
    pub timely_acceptance: String,
    pub on_time_completion: String,
    pub satisfaction: String,
    pub approaching: u64,
    pub overdue: u64,
    pub seriously_overdue: u64,
    pub directives_open: u64,
    /// `link-up`, `link-down` or `link-none`, with its words (never colour alone).
    pub link_class: &'static str,
    pub link_text: String,
}

/// A chart: its title (also the accessible name) and the ECharts option as JSON text.
#[derive(Debug, Clone)]
pub struct ChartView {
    pub id: &'static str,
    pub title: String,
    pub option: String,
}

#[derive(Debug, Template)]
#[template(path = "statistics.html")]
pub struct StatisticsPage {
    pub layout: Layout,
    pub s: &'static StatisticsTexts,
    pub from: String,
    pub to: String,
    pub categories: Vec<Choice>,
    pub imported: Vec<Choice>,
    pub period_text: String,
    pub error: Option<String>,
    pub totals: Vec<FigureView>,
    /// Where the child table is: the links back up the drill-down, then its own heading.
    pub breadcrumb: Vec<(String, String)>,
    pub child_heading: String,
    pub children: Option<Vec<ChildRowView>>,
    pub by_child_forbidden: bool,
    pub zero_case_villages: Vec<String>,
    pub charts: Vec<ChartView>,
}

/// The start of a China day, as an instant.
fn china_midnight(date: NaiveDate) -> Option<DateTime<Utc>> {
    china_offset()
        .from_local_datetime(&date.and_hms_opt(0, 0, 0)?)
        .single()
        .map(|at| at.with_timezone(&Utc))
}

fn parse_date(text: &str, refused: &mut Vec<String>) -> Option<NaiveDate> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(date) => Some(date),
        Err(_) => {
            refused.push(text.to_owned());
            None
        }
    }
}

/// "96.3%（26/27）", or a dash when nothing was there to count.
fn rate_text(ratio: &Ratio) -> String {
    match ratio.rate() {
        Some(rate) => format!(
            "{:.1}%（{}/{}）",
            rate * 100.0,
            ratio.numerator,
            ratio.denominator
        ),
        None => "—".to_owned(),
    }
}

/// A rate as a chart plots it: a percentage with one decimal, or nothing.
fn rate_point(ratio: &Ratio) -> serde_json::Value {
    match ratio.rate() {
        Some(rate) => json!((rate * 1000.0).round() / 10.0),
        None => serde_json::Value::Null,
    }
}

fn totals(s: &StatisticsTexts, measures: &MeasureSet) -> Vec<FigureView> {
    let count = |label: &String, value: u64| FigureView {
        label: label.clone(),
        value: value.to_string(),
    };
    let rate = |label: &String, ratio: &Ratio| FigureView {
        label: label.clone(),
        value: rate_text(ratio),
    };
    vec![
        count(&s.cases, measures.cases),
        rate(&s.timely_acceptance, &measures.timely_acceptance),
        rate(&s.on_time_completion, &measures.on_time_completion),
        rate(&s.evaluation, &measures.evaluation),
        rate(&s.satisfaction, &measures.satisfaction),
        rate(&s.resolution, &measures.resolution),
        rate(&s.repeat, &measures.repeat),
        count(&s.approaching, measures.approaching),
        count(&s.overdue, measures.overdue),
        count(&s.seriously_overdue, measures.seriously_overdue),
        count(&s.directives_open, measures.directives_open),
        count(&s.directives_overdue, measures.directives_overdue),
        count(&s.escalated, measures.escalated),
        count(&s.assigned, measures.assigned),
        count(&s.in_conflict, measures.in_conflict),
    ]
}

/// An office's name as the table shows it: its roster name, or its region code.
fn office_name(office: &OfficeStats) -> String {
    office
        .name
        .clone()
        .unwrap_or_else(|| office.region_code.clone())
}

/// The path from the top of the breakdown down to the office with `region_code`.
fn drill_path<'a>(offices: &'a [OfficeStats], region_code: &str) -> Option<Vec<&'a OfficeStats>> {
    for office in offices {
        if office.region_code == region_code {
            return Some(vec![office]);
        }
        if let Some(mut below) = drill_path(&office.children, region_code) {
            below.insert(0, office);
            return Some(below);
        }
    }
    None
}

/// Villages in `offices` and beneath them with no case in the period (revoked offices left
/// out: they no longer report).
fn zero_case_villages(offices: &[OfficeStats], found: &mut Vec<String>) {
    for office in offices {
        if office.region_code.len() == VILLAGE_REGION_DIGITS
            && !office.revoked
            && office.measures.cases == 0
        {
            found.push(office_name(office));
        }
        zero_case_villages(&office.children, found);
    }
}

/// The URL of this page with the same filters, drilled into `office` (empty for the top).
fn statistics_href(params: &StatisticsParams, office: &str) -> String {
    let mut pairs = Vec::new();
    for (name, value) in [
        ("from", params.from.trim()),
        ("to", params.to.trim()),
        ("category", params.category.trim()),
        ("imported", params.imported.trim()),
        ("office", office),
    ] {
        // Dates, API names and region codes: digits, letters, `-` and `_`, nothing to encode.
        if !value.is_empty()
            && value
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        {
            pairs.push(format!("{name}={value}"));
        }
    }
    if pairs.is_empty() {
        "/statistics".to_owned()
    } else {
        format!("/statistics?{}", pairs.join("&"))
    }
}

fn child_row(texts: &Texts, office: &OfficeStats, params: &StatisticsParams) -> ChildRowView {
    let s = &texts.statistics;
    let (link_class, link_text) = match &office.sync {
        Some(sync) => {
            let state = if sync.connected {
                &s.link_up
            } else {
                &s.link_down
            };
            let since = sync
                .since
                .map(|since| format!(" {} {}", texts.ui.link_since, date_time(since)))
                .unwrap_or_default();
            let pending = fill(
                &s.link_pending,
                &[("out", &sync.pending_out), ("in", &sync.pending_in)],
            );
            (
                if sync.connected {
                    "link-up"
                } else {
                    "link-down"
                },
                format!("{state}{since} · {pending}"),
            )
        }
        None => ("link-none", s.link_unknown.clone()),
    };
    let measures = &office.measures;
    ChildRowView {
        name: office_name(office),
        region_code: office.region_code.clone(),
        href: (!office.children.is_empty()).then(|| statistics_href(params, &office.region_code)),
        revoked: office.revoked,
        cases: measures.cases,
        timely_acceptance: rate_text(&measures.timely_acceptance),
        on_time_completion: rate_text(&measures.on_time_completion),
        satisfaction: rate_text(&measures.satisfaction),
        approaching: measures.approaching,
        overdue: measures.overdue,
        seriously_overdue: measures.seriously_overdue,
        directives_open: measures.directives_open,
        link_class,
        link_text,
    }
}

/// The months of the charts: `CHART_MONTHS` China months ending with the one `last_day` is in.
fn chart_months(last_day: NaiveDate) -> Vec<(String, StatsPeriod)> {
    let Some(last_month) = last_day.with_day(1) else {
        return Vec::new();
    };
    (0..CHART_MONTHS)
        .rev()
        .filter_map(|back| {
            let first = last_month.checked_sub_months(Months::new(back))?;
            let next = first.checked_add_months(Months::new(1))?;
            Some((
                first.format("%Y-%m").to_string(),
                StatsPeriod {
                    from: Some(china_midnight(first)?),
                    to: Some(china_midnight(next)?),
                    ..StatsPeriod::default()
                },
            ))
        })
        .collect()
}

/// An ECharts option as the page carries it, with what every chart shares: tooltips drawn on
/// the canvas (`richText`), so that no office's text ever becomes markup, and no animation (an
/// office's old PC draws once; a screenshot shows the figures).
fn chart_option(mut option: serde_json::Value) -> String {
    if let Some(fields) = option.as_object_mut() {
        fields.insert("animation".to_owned(), json!(false));
        fields.insert(
            "tooltip".to_owned(),
            json!({"trigger": "axis", "renderMode": "richText"}),
        );
    }
    option.to_string()
}

fn charts(
    texts: &Texts,
    months: &[String],
    monthly: &[Measures],
    children: Option<&[OfficeStats]>,
) -> Vec<ChartView> {
    let s = &texts.statistics;
    let mut charts = Vec::new();
    if let Some(children) = children.filter(|children| !children.is_empty()) {
        let names: Vec<String> = children.iter().map(office_name).collect();
        let cases: Vec<u64> = children.iter().map(|child| child.measures.cases).collect();
        let late: Vec<u64> = children
            .iter()
            .map(|child| child.measures.overdue + child.measures.seriously_overdue)
            .collect();
        charts.push(ChartView {
            id: "chart-by-child",
            title: s.chart_by_child.clone(),
            option: chart_option(json!({
                "legend": {"data": [s.cases, s.overdue_all]},
                "xAxis": {"type": "category", "data": names},
                "yAxis": {"type": "value", "minInterval": 1},
                "series": [
                    {"name": s.cases, "type": "bar", "data": cases},
                    {"name": s.overdue_all, "type": "bar", "data": late, "itemStyle": {"color": "#c0392b"}},
                ],
            })),
        });
    }
    let categories: Vec<Category> = ALL_CATEGORIES
        .iter()
        .copied()
        .filter(|category| {
            monthly.iter().any(|measures| {
                measures
                    .by_category
                    .get(category)
                    .is_some_and(|set| set.cases > 0)
            })
        })
        .collect();
    let intake_series: Vec<serde_json::Value> = categories
        .iter()
        .map(|category| {
            let data: Vec<u64> = monthly
                .iter()
                .map(|measures| {
                    measures
                        .by_category
                        .get(category)
                        .map_or(0, |set| set.cases)
                })
                .collect();
            json!({"name": Texts::term(&texts.category, category), "type": "bar", "stack": "intake", "data": data})
        })
        .collect();
    charts.push(ChartView {
        id: "chart-monthly-intake",
        title: s.chart_monthly_intake.clone(),
        option: chart_option(json!({
            "legend": {"type": "scroll"},
            "xAxis": {"type": "category", "data": months},
            "yAxis": {"type": "value", "minInterval": 1},
            "series": intake_series,
        })),
    });
    let rate_series = |name: &String, pick: fn(&MeasureSet) -> &Ratio| {
        let data: Vec<serde_json::Value> = monthly
            .iter()
            .map(|measures| rate_point(pick(&measures.total)))
            .collect();
        json!({"name": name, "type": "line", "connectNulls": false, "data": data})
    };
    charts.push(ChartView {
        id: "chart-monthly-rates",
        title: s.chart_monthly_rates.clone(),
        option: chart_option(json!({
            "legend": {},
            "xAxis": {"type": "category", "data": months},
            "yAxis": {"type": "value", "min": 0, "max": 100, "axisLabel": {"formatter": "{value}%"}},
            "series": [
                rate_series(&s.timely_acceptance, |set| &set.timely_acceptance),
                rate_series(&s.on_time_completion, |set| &set.on_time_completion),
                rate_series(&s.satisfaction, |set| &set.satisfaction),
            ],
        })),
    });
    charts
}

/// `GET /statistics`: 统计分析.
pub async fn statistics(
    State(backend): State<Backend>,
    headers: HeaderMap,
    Query(params): Query<StatisticsParams>,
) -> Response {
    let user = match signed_in(&backend, &headers).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    let language = language(&headers);
    let texts = Texts::of(language);
    let s = &texts.statistics;
    let now = backend.now();
    let today = now.with_timezone(&china_offset()).date_naive();
    let mut refused = Vec::new();
    let first_day = parse_date(&params.from, &mut refused)
        .unwrap_or_else(|| today.with_ordinal(1).unwrap_or(today));
    let last_day = parse_date(&params.to, &mut refused).unwrap_or(today);
    let category: Option<Category> = parse_choice(&params.category, &mut refused);
    let imported: Option<ImportedCases> = parse_choice(&params.imported, &mut refused);
    let period = StatsPeriod {
        from: china_midnight(first_day),
        to: last_day.succ_opt().and_then(china_midnight),
        category,
        imported: imported.unwrap_or_default(),
    };
    let months = chart_months(last_day);
    let mut periods = vec![period.clone()];
    periods.extend(months.iter().map(|(_, month)| StatsPeriod {
        category,
        imported: period.imported,
        ..month.clone()
    }));
    let measures = match backend.measures(&user, periods).await {
        Ok(measures) => measures,
        Err(error) => return failure_page(&backend, &headers, Some(&user), &error).await,
    };
    let Some((in_period, monthly)) = measures.split_first() else {
        return failure_page(
            &backend,
            &headers,
            Some(&user),
            &crate::BackendError::new(
                crate::BackendErrorKind::Internal,
                "the node answered no measures",
            ),
        )
        .await;
    };
    // The children's figures only for the roles the role table lets read them (the backend
    // asks the same table again).
    let may_read_children = user
        .account
        .actor()
        .permit(Action::ReadStatsByChild)
        .is_ok();
    let breakdown: Option<StatsBreakdown> = if may_read_children {
        match backend.measures_by_child(&user, period.clone()).await {
            Ok(breakdown) => Some(breakdown),
            Err(error) => return failure_page(&backend, &headers, Some(&user), &error).await,
        }
    } else {
        None
    };
    let office = backend.office();
    let mut breadcrumb = Vec::new();
    let mut child_heading = s.by_child.clone();
    let shown: Option<&[OfficeStats]> = breakdown.as_ref().map(|breakdown| {
        let path = match params.office.trim() {
            "" => None,
            region => drill_path(&breakdown.children, region),
        };
        match path {
            Some(path) => {
                breadcrumb.push((statistics_href(&params, ""), office.name.clone()));
                for above in &path[..path.len() - 1] {
                    breadcrumb.push((
                        statistics_href(&params, &above.region_code),
                        office_name(above),
                    ));
                }
                let drilled = path[path.len() - 1];
                child_heading = fill(&s.by_child_of, &[("office", &office_name(drilled))]);
                drilled.children.as_slice()
            }
            None => {
                if !params.office.trim().is_empty() {
                    refused.push(params.office.trim().to_owned());
                }
                breakdown.children.as_slice()
            }
        }
    });
    // An office with no children (a village) has no child table to show.
    let shown = shown.filter(|offices| !offices.is_empty());
    let children = shown.map(|offices| {
        offices
            .iter()
            .map(|office| child_row(texts, office, &params))
            .collect()
    });
    let mut villages = Vec::new();
    if let Some(offices) = shown {
        zero_case_villages(offices, &mut villages);
    }
    let month_names: Vec<String> = months.iter().map(|(name, _)| name.clone()).collect();
    let charts = charts(texts, &month_names, monthly, shown);
    let period_text = fill(
        &s.period_text,
        &[
            ("from", &first_day.format("%Y-%m-%d")),
            ("to", &last_day.format("%Y-%m-%d")),
            (
                "imported",
                &Texts::term(&s.imported_choice, &period.imported),
            ),
        ],
    );
    let error = (!refused.is_empty())
        .then(|| fill(&texts.ui.bad_filter, &[("value", &refused.join("、"))]));
    let layout = signed_in_layout(
        &backend,
        &headers,
        language,
        &user,
        "statistics",
        s.title.clone(),
    )
    .await;
    html(
        StatusCode::OK,
        &StatisticsPage {
            layout,
            s,
            from: first_day.format("%Y-%m-%d").to_string(),
            to: last_day.format("%Y-%m-%d").to_string(),
            categories: choices(&texts.category, &ALL_CATEGORIES, category.as_ref()),
            imported: choices(
                &texts.statistics.imported_choice,
                &[ImportedCases::Include, ImportedCases::Exclude],
                Some(&period.imported),
            ),
            period_text,
            error,
            totals: totals(s, &in_period.total),
            breadcrumb,
            child_heading,
            children,
            by_child_forbidden: !may_read_children,
            zero_case_villages: villages,
            charts,
        },
    )
}
