//! 督办: the directives on the cases this node holds, in two lists, those addressed to this
//! office and those it issued (others, between offices below, in a third), 挂牌 first, then by
//! due date; open ones by default (`?all=1` adds the crossed-off). Reading only: 签收, 反馈, 销号
//! and 退回 are actions on the case page, where the role and authority tables decide.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use fengqiao_case::model::{DirectiveListItem, DirectiveStatus};
use serde::Deserialize;

use crate::pages::{Backend, failure_page, html, language, signed_in, signed_in_layout};
use crate::texts::{DirectivesTexts, Texts};
use crate::views::{GradeView, Layout, case_href, date, days_text, grade_view};

#[derive(Debug, Default, Deserialize)]
pub struct DirectivesParams {
    #[serde(default)]
    all: String,
}

/// One directive's row.
#[derive(Debug, Clone)]
pub struct DirectiveRowView {
    pub case: String,
    pub case_href: String,
    pub listed: bool,
    pub requirement: String,
    pub issuer: String,
    pub issued_by: String,
    pub target: String,
    pub issued: String,
    pub due: String,
    /// "剩余 3 天" / "已超期 2 天", or empty once crossed off.
    pub days: String,
    pub status: String,
    pub grade: GradeView,
}

/// A list of directives under its heading.
#[derive(Debug, Clone)]
pub struct DirectiveListView {
    pub id: &'static str,
    pub heading: String,
    pub rows: Vec<DirectiveRowView>,
}

#[derive(Debug, Template)]
#[template(path = "directives.html")]
pub struct DirectivesPage {
    pub layout: Layout,
    pub d: &'static DirectivesTexts,
    pub showing_all: bool,
    pub lists: Vec<DirectiveListView>,
}

pub(crate) fn row(
    texts: &Texts,
    item: &DirectiveListItem,
    office_name: &dyn Fn(&String) -> String,
    now: DateTime<Utc>,
) -> DirectiveRowView {
    let directive = &item.directive;
    let open = directive.status != DirectiveStatus::CrossedOff;
    DirectiveRowView {
        case: item.case.clone(),
        case_href: case_href(&item.case),
        listed: directive.listed,
        requirement: directive.requirement.clone(),
        issuer: office_name(&directive.issuer_node),
        issued_by: directive.issued_by.clone(),
        target: office_name(&directive.target_node),
        issued: date(directive.issued_at),
        due: date(directive.due),
        days: if open {
            days_text(&texts.ui, directive.due, now)
        } else {
            String::new()
        },
        status: Texts::term(&texts.directives.status, &directive.status),
        grade: grade_view(texts, &item.warnings, now),
    }
}

/// Whether a directive addressed to this office waits for it: not yet signed for or reported,
/// or sent back for more work.
pub(crate) fn awaits_the_target(status: DirectiveStatus) -> bool {
    matches!(
        status,
        DirectiveStatus::Issued | DirectiveStatus::Acknowledged | DirectiveStatus::Returned
    )
}

/// `GET /directives`: 督办.
pub async fn directives(
    State(backend): State<Backend>,
    headers: HeaderMap,
    Query(params): Query<DirectivesParams>,
) -> Response {
    let user = match signed_in(&backend, &headers).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    let language = language(&headers);
    let texts = Texts::of(language);
    let d = &texts.directives;
    let showing_all = params.all == "1";
    let mut items = match backend.directives(&user, !showing_all).await {
        Ok(items) => items,
        Err(error) => return failure_page(&backend, &headers, Some(&user), &error).await,
    };
    // 挂牌督办 first (CONSOLE-NOTES), then the backend's order: by due date.
    items.sort_by_key(|item| !item.directive.listed);
    let now = backend.now();
    let own = backend.office().node_id;
    let namer = crate::pages::office_namer(&backend);
    let mut to_us = Vec::new();
    let mut from_us = Vec::new();
    let mut between_others = Vec::new();
    for item in &items {
        let view = row(texts, item, &namer, now);
        if item.directive.target_node == own {
            to_us.push(view);
        } else if item.directive.issuer_node == own {
            from_us.push(view);
        } else {
            between_others.push(view);
        }
    }
    let mut lists = vec![
        DirectiveListView {
            id: "to-us",
            heading: d.to_us.clone(),
            rows: to_us,
        },
        DirectiveListView {
            id: "from-us",
            heading: d.from_us.clone(),
            rows: from_us,
        },
    ];
    if !between_others.is_empty() {
        lists.push(DirectiveListView {
            id: "between-others",
            heading: d.between_others.clone(),
            rows: between_others,
        });
    }
    let layout = signed_in_layout(
        &backend,
        &headers,
        language,
        &user,
        "directives",
        d.title.clone(),
    )
    .await;
    html(
        StatusCode::OK,
        &DirectivesPage {
            layout,
            d,
            showing_all,
            lists,
        },
    )
}
