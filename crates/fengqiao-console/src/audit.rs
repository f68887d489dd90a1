//! 审计: a case's audit trail (who made each event, at which office, when as claimed and as
//! recorded, whether its signature holds), the check of every signature in the store, and the
//! quarantine (changes refused from peers, with why). Each part only for the roles the role
//! table lets read it; a part a person may not read says so instead of failing the page.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use fengqiao_case::model::audit::{AuditLog, AuditReport, QuarantineListing, SignatureStatus};
use serde::Deserialize;

use crate::backend::{BackendError, BackendErrorKind};
use crate::pages::{Backend, failure_page, html, language, signed_in, signed_in_layout};
use crate::texts::{AuditTexts, Texts, fill};
use crate::views::{Layout, case_href, date_time};

#[derive(Debug, Default, Deserialize)]
pub struct AuditParams {
    #[serde(default)]
    case: String,
    #[serde(default)]
    verify: String,
    #[serde(default)]
    after: String,
}

/// One event of the trail.
#[derive(Debug, Clone)]
pub struct TrailRowView {
    pub kind: String,
    pub summary: String,
    pub at: String,
    /// The time the node recorded (its hybrid clock), when it differs from the claimed one by a
    /// minute or more: 补录 or an imported record.
    pub recorded: String,
    pub office: String,
    pub operator: String,
    /// `signature-valid` / `signature-unsigned` / `signature-invalid`, with its words.
    pub signature_class: &'static str,
    pub signature: String,
    pub note: String,
}

#[derive(Debug, Clone)]
pub struct QuarantineRowView {
    pub received: String,
    pub peer: String,
    pub case: String,
    pub case_href: String,
    pub reason: String,
}

/// A part of the page: its rows, or why it is not shown.
#[derive(Debug, Clone)]
pub enum Part<T> {
    Shown(T),
    NotPermitted(String),
    NotAsked,
}

#[derive(Debug, Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub layout: Layout,
    pub a: &'static AuditTexts,
    pub case: String,
    pub trail: Part<Vec<TrailRowView>>,
    pub verify: Part<VerifyView>,
    pub quarantine: Part<Vec<QuarantineRowView>>,
    pub quarantine_next: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct VerifyView {
    pub clean: bool,
    pub summary: String,
    pub failures: Vec<String>,
}

fn trail_rows(texts: &Texts, log: &AuditLog) -> Vec<TrailRowView> {
    let a = &texts.audit;
    log.events
        .iter()
        .map(|event| {
            // Zero in schema-1 documents, which recorded no such time.
            let recorded_at = (event.hlc.wall_ms > 0)
                .then(|| event.hlc.wall_time())
                .flatten();
            let recorded = match recorded_at {
                Some(recorded) if (recorded - event.at).num_minutes().abs() >= 1 => {
                    date_time(recorded)
                }
                _ => String::new(),
            };
            let (signature_class, signature) = signature_words(a, &event.signature);
            let mut note = Vec::new();
            if let Some(reason) = &event.backdated_reason {
                note.push(fill(&a.backdated, &[("reason", reason)]));
            }
            if let Some(mark) = &event.imported {
                note.push(fill(&a.imported, &[("import", &mark.import_id)]));
            }
            TrailRowView {
                kind: texts
                    .event
                    .get(&event.kind)
                    .cloned()
                    .unwrap_or_else(|| event.kind.clone()),
                summary: event.summary.clone(),
                at: date_time(event.at),
                recorded,
                office: event
                    .office
                    .clone()
                    .unwrap_or_else(|| event.node.chars().take(8).collect()),
                operator: event.operator.clone(),
                signature_class,
                signature,
                note: note.join("；"),
            }
        })
        .collect()
}

fn verify_view(texts: &Texts, report: &AuditReport) -> VerifyView {
    let a = &texts.audit;
    VerifyView {
        clean: report.is_clean(),
        summary: fill(
            &a.verify_summary,
            &[
                ("cases", &report.cases_checked),
                ("events", &report.events_checked),
                ("unsigned", &report.unsigned),
                ("failures", &report.failures.len()),
                ("quarantined", &report.quarantined),
            ],
        ),
        failures: report
            .failures
            .iter()
            .map(|failure| {
                let mut text = failure.case.clone();
                if let Some(event) = &failure.event {
                    text.push_str(&format!(" {event}"));
                }
                format!("{text}：{}", failure.reason)
            })
            .collect(),
    }
}

fn quarantine_rows(
    listing: &QuarantineListing,
    namer: &dyn Fn(&String) -> String,
) -> Vec<QuarantineRowView> {
    listing
        .entries
        .iter()
        .map(|entry| QuarantineRowView {
            received: date_time(entry.received_at),
            peer: namer(&entry.peer),
            case: entry.case.clone(),
            case_href: case_href(&entry.case),
            reason: entry.reason.clone(),
        })
        .collect()
}

/// A backend answer as a part of the page: a refusal by the role table becomes its words
/// (`not_permitted`, with `{why}`), any other failure fails the page.
fn part<T, U>(
    not_permitted: &str,
    answer: Result<T, BackendError>,
    shown: impl FnOnce(T) -> U,
) -> Result<Part<U>, BackendError> {
    match answer {
        Ok(value) => Ok(Part::Shown(shown(value))),
        Err(error) if error.kind == BackendErrorKind::Forbidden => Ok(Part::NotPermitted(fill(
            not_permitted,
            &[("why", &error.message)],
        ))),
        Err(error) => Err(error),
    }
}

/// `GET /audit?case=N&verify=1&after=Q`: 审计.
pub async fn audit(
    State(backend): State<Backend>,
    headers: HeaderMap,
    Query(params): Query<AuditParams>,
) -> Response {
    let user = match signed_in(&backend, &headers).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    let language = language(&headers);
    let texts = Texts::of(language);
    let a = &texts.audit;
    let mut error = None;
    let case = params.case.trim().to_owned();
    let trail = if case.is_empty() {
        Ok(Part::NotAsked)
    } else {
        match backend.audit_log(&user, case.clone()).await {
            Err(refusal) if refusal.kind == BackendErrorKind::NotFound => {
                error = Some(fill(&texts.ui.not_found, &[("number", &case)]));
                Ok(Part::NotAsked)
            }
            answer => part(&a.not_permitted, answer, |log| trail_rows(texts, &log)),
        }
    };
    let verify = if params.verify == "1" {
        part(
            &a.not_permitted,
            backend.audit_verify(&user).await,
            |report| verify_view(texts, &report),
        )
    } else {
        Ok(Part::NotAsked)
    };
    let after = params.after.trim().parse::<u64>().unwrap_or(0);
    let namer = crate::pages::office_namer(&backend);
    let mut quarantine_next = None;
    let quarantine = part(
        &a.not_permitted,
        backend.quarantine(&user, after).await,
        |listing| {
            quarantine_next = listing
                .next_after
                .map(|next| format!("/audit?after={next}"));
            quarantine_rows(&listing, &namer)
        },
    );
    let (trail, verify, quarantine) = match (trail, verify, quarantine) {
        (Ok(trail), Ok(verify), Ok(quarantine)) => (trail, verify, quarantine),
        (Err(failure), _, _) | (_, Err(failure), _) | (_, _, Err(failure)) => {
            return failure_page(&backend, &headers, Some(&user), &failure).await;
        }
    };
    let layout = signed_in_layout(
        &backend,
        &headers,
        language,
        &user,
        "audit",
        a.title.clone(),
    )
    .await;
    html(
        StatusCode::OK,
        &AuditPage {
            layout,
            a,
            case,
            trail,
            verify,
            quarantine,
            quarantine_next,
            error,
        },
    )
}

/// A signature's status in colour class and words, for the audit trail and the case's
/// timeline alike.
pub(crate) fn signature_words(a: &AuditTexts, status: &SignatureStatus) -> (&'static str, String) {
    match status {
        SignatureStatus::Valid => ("signature-valid", a.signature_valid.clone()),
        SignatureStatus::Unsigned => ("signature-unsigned", a.signature_unsigned.clone()),
        SignatureStatus::Invalid { reason } => (
            "signature-invalid",
            fill(&a.signature_invalid, &[("reason", reason)]),
        ),
    }
}
