//! 督办: the directives on the cases this node holds, in two lists, those addressed to this
//! office and those it issued (others, between offices below, in a third), 挂牌 first, then by
//! due date; open ones by default (`?all=1` adds the crossed-off). Reading only: 签收, 反馈, 销号
//! and 退回 are actions on the case page, where the role and authority tables decide.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use crate::pages::{Backend, failure_page, html, language, signed_in, signed_in_layout};
use crate::texts::{DirectivesTexts, Texts};
use crate::views::{DirectiveRowView, Layout, directive_row as row};

#[derive(Debug, Default, Deserialize)]
pub struct DirectivesParams {
    #[serde(default)]
    all: String,
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
