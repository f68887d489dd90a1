//! What each page shows, as text ready to print: the templates (askama, escaping everything)
//! only lay it out. Words come from the texts, identifiers are masked here unless the page is
//! asked for full data, times are in China time.

use askama::Template;
use chrono::{DateTime, Utc};
use fengqiao_case::deadlines::{calendar_days_until, china_offset};
use fengqiao_case::model::{
    CaseView, DirectiveListItem, DirectiveStatus, NodeId, Petitioner, Warning,
};
use fengqiao_case::signature::signature_status;
use fengqiao_case::summary::{open_deadlines, summarize};
use fengqiao_case::warnings::worst_grade;

use crate::backend::{CaseRow, LinkRelation, LinkStatus};
use crate::forms::{Choice, InputView, SelectView};
use crate::masking::{mask_id_number, mask_phone};
use crate::texts::{Language, Texts, Ui, api_name, fill};

/// What every page shares: the office, who is signed in, the link banner, the menu.
#[derive(Debug, Clone)]
pub struct Layout {
    pub t: &'static Ui,
    pub lang: &'static str,
    pub switch_language_href: String,
    pub office: String,
    pub office_tier: String,
    /// `显示名 (login)` of the signed-in account; None on the sign-in page.
    pub user: Option<String>,
    pub csrf: String,
    /// Which menu entry is this page: `dashboard`, `ledger` or empty.
    pub active: &'static str,
    /// The menu offers 用户 (the role table's `manage_accounts` row says so).
    pub manages_accounts: bool,
    pub banner: Vec<BannerLine>,
    pub title: String,
    /// The versioned URLs of the stylesheet and scripts (cached as immutable).
    pub assets: &'static crate::assets::AssetHrefs,
}

/// One line of the link banner: colour and word (never colour alone).
#[derive(Debug, Clone)]
pub struct BannerLine {
    /// `link-up`, `link-down` or `link-none`.
    pub class: &'static str,
    pub text: String,
}

/// The link banner: each federation link with its state, since when, and what waits to go.
pub fn banner(texts: &Texts, links: &[LinkStatus]) -> Vec<BannerLine> {
    let t = &texts.ui;
    if links.is_empty() {
        return vec![BannerLine {
            class: "link-none",
            text: t.link_none.clone(),
        }];
    }
    links
        .iter()
        .map(|link| {
            let relation = match link.relation {
                LinkRelation::Parent => &t.link_parent,
                LinkRelation::Child => &t.link_child,
            };
            let state = if link.connected {
                &t.link_connected
            } else {
                &t.link_offline
            };
            let mut text = format!("{relation} {}：{state}", link.name);
            if let Some(since) = link.since {
                text.push_str(&format!(" {} {}", t.link_since, date_time(since)));
            }
            let pending = match link.relation {
                LinkRelation::Parent => fill(&t.link_pending_up, &[("count", &link.pending_out)]),
                LinkRelation::Child => fill(&t.link_pending_down, &[("count", &link.pending_out)]),
            };
            text.push_str(&format!(" · {pending}"));
            BannerLine {
                class: if link.connected {
                    "link-up"
                } else {
                    "link-down"
                },
                text,
            }
        })
        .collect()
}

/// A date as tables show it: `2026-12-04`, in China.
pub fn date(at: DateTime<Utc>) -> String {
    at.with_timezone(&china_offset())
        .format("%Y-%m-%d")
        .to_string()
}

/// A time as the timeline shows it, in China (the column says 北京时间).
pub fn date_time(at: DateTime<Utc>) -> String {
    at.with_timezone(&china_offset())
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// "剩余 3 天" / "今日到期" / "已超期 2 天".
pub fn days_text(t: &Ui, due: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let days = calendar_days_until(due, now);
    match days {
        0 => t.due_today.clone(),
        days if days > 0 => fill(&t.days_left, &[("days", &days)]),
        days => fill(&t.days_overdue, &[("days", &days.unsigned_abs())]),
    }
}

/// A graded warning in colour and word.
#[derive(Debug, Clone)]
pub struct GradeView {
    /// `grade-approaching`, `grade-overdue`, `grade-seriously_overdue`, or `grade-none`.
    pub class: String,
    pub word: String,
    /// Which limit and how far: "办理期限 已超期 2 天".
    pub detail: String,
}

pub(crate) fn grade_view(texts: &Texts, warnings: &[Warning], now: DateTime<Utc>) -> GradeView {
    let Some(grade) = worst_grade(warnings) else {
        return GradeView {
            class: "grade-none".to_owned(),
            word: texts.ui.no_warning.clone(),
            detail: String::new(),
        };
    };
    let detail = warnings
        .iter()
        .filter(|warning| warning.grade == grade)
        .min_by_key(|warning| warning.due)
        .map(|warning| {
            format!(
                "{} {}",
                Texts::term(&texts.deadline, &warning.deadline),
                days_text(&texts.ui, warning.due, now)
            )
        })
        .unwrap_or_default();
    GradeView {
        class: format!("grade-{}", api_name(&grade)),
        word: Texts::term(&texts.grade, &grade),
        detail,
    }
}

/// One row of the 台账 or the 工作台: identifiers masked.
#[derive(Debug, Clone)]
pub struct RowView {
    pub number: String,
    pub href: String,
    pub petitioners: String,
    pub id_numbers: String,
    pub phones: String,
    pub summary: String,
    pub category: String,
    pub status: String,
    pub registered: String,
    pub holder: String,
    pub grade: GradeView,
}

/// The first characters of a long text, for a list cell.
fn beginning(text: &str, characters: usize) -> String {
    let mut shortened: String = text.chars().take(characters).collect();
    if text.chars().nth(characters).is_some() {
        shortened.push('…');
    }
    shortened
}

/// The path of a case's page: the number is `REGION-YEAR-SEQUENCE` (digits and dashes, the
/// domain's rule), so it needs no escaping beyond what the template does; anything else is
/// percent-encoded rather than trusted.
pub fn case_href(number: &str) -> String {
    let mut path = String::from("/cases/");
    for byte in number.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' {
            path.push(char::from(byte));
        } else {
            path.push_str(&format!("%{byte:02X}"));
        }
    }
    path
}

pub fn row_view(
    texts: &Texts,
    row: &CaseRow,
    holder_name: &dyn Fn(&NodeId) -> String,
    now: DateTime<Utc>,
) -> RowView {
    let summary = &row.item.summary;
    let join = |part: &dyn Fn(&Petitioner) -> String| {
        row.petitioners
            .iter()
            .map(part)
            .filter(|text| !text.is_empty())
            .collect::<Vec<_>>()
            .join("、")
    };
    RowView {
        number: summary.number.clone(),
        href: case_href(&summary.number),
        petitioners: join(&|petitioner| petitioner.name.clone()),
        id_numbers: join(&|petitioner| mask_id_number(&petitioner.id_number)),
        phones: join(&|petitioner| mask_phone(&petitioner.phone)),
        summary: beginning(&row.summary, 40),
        category: Texts::term(&texts.category, &summary.category),
        status: Texts::term(&texts.status, &summary.status),
        registered: summary.timeline.registered_at.map(date).unwrap_or_default(),
        holder: holder_name(&summary.holder),
        grade: grade_view(texts, &row.item.warnings, now),
    }
}

#[derive(Debug, Template)]
#[template(path = "sign_in.html")]
pub struct SignInPage {
    pub layout: Layout,
    pub error: Option<String>,
    pub login: String,
}

#[derive(Debug, Template)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    pub layout: Layout,
    pub rows: Vec<RowView>,
    pub total: usize,
    /// Directives addressed to this office that await its 签收 or 反馈, 挂牌 first.
    pub directives: Vec<DirectiveRowView>,
    pub d: &'static crate::texts::DirectivesTexts,
    /// Cases sent to this office (交办, 转送) that await its 接收.
    pub awaiting_receipt: Vec<RowView>,
    /// Cases registered or escalated here that await the decision to accept (受理) or not, the
    /// first page of them, and how many there are in all.
    pub awaiting_decision: Vec<RowView>,
    pub awaiting_decision_total: usize,
}

#[derive(Debug, Template)]
#[template(path = "ledger.html")]
pub struct LedgerPage {
    pub layout: Layout,
    pub holders: Vec<Choice>,
    pub regions: Vec<Choice>,
    pub from: String,
    pub to: String,
    pub search: String,
    pub statuses: Vec<Choice>,
    pub categories: Vec<Choice>,
    pub grades: Vec<Choice>,
    pub rows: Vec<RowView>,
    pub page_text: String,
    pub previous_href: Option<String>,
    pub next_href: Option<String>,
    pub error: Option<String>,
    /// 导出 Excel with the same filters (identifiers masked), and, for the roles that may,
    /// with identifiers whole.
    pub export_href: String,
    pub export_full_href: Option<String>,
}

/// A label and its value, for the case header.
#[derive(Debug, Clone)]
pub struct Field {
    pub label: String,
    pub value: String,
}

#[derive(Debug, Clone)]
pub struct PetitionerView {
    pub name: String,
    pub id_number: String,
    pub phone: String,
    pub address: String,
    pub representative: bool,
}

#[derive(Debug, Clone)]
pub struct EventView {
    pub at: String,
    pub kind: String,
    pub operator: String,
    pub office: String,
    /// `signature-valid` / `signature-unsigned` / `signature-invalid`, with its words, as the
    /// audit trail shows them (`crate::audit::signature_words`).
    pub signature_class: &'static str,
    pub signature: String,
}

/// One mediation record (调解记录) of the case page.
#[derive(Debug, Clone)]
pub struct MediationView {
    pub at: String,
    pub mediation_type: String,
    pub mediator: String,
    pub result: String,
    pub agreement: String,
    pub judicial_confirmation: String,
}

#[derive(Debug, Clone)]
pub struct DeadlineView {
    pub kind: String,
    pub due: String,
    pub days: String,
    pub grade: GradeView,
}

#[derive(Debug, Template)]
#[template(path = "case.html")]
pub struct CasePageView {
    pub layout: Layout,
    pub number: String,
    pub fields: Vec<Field>,
    pub summary: String,
    pub petitioners: Vec<PetitionerView>,
    pub full: bool,
    /// The link that shows or hides the full personal data, when the role may read it.
    pub toggle: Option<(String, String)>,
    pub events: Vec<EventView>,
    pub deadlines: Vec<DeadlineView>,
    /// The case's directives (督办), open and crossed off, 挂牌 first.
    pub directives: Vec<DirectiveRowView>,
    pub d: &'static crate::texts::DirectivesTexts,
    /// What the signed-in person may do now (`crate::actions`), filled in by the handler.
    pub actions: ActionsView,
    pub mediations: Vec<MediationView>,
    /// The events whose times a person must look at (时间存疑, the clock rule of
    /// `fengqiao_case::event_time`), and this node's own finding that the case arrived dated
    /// ahead of its clock.
    pub time_flags: Vec<String>,
    /// The earlier case this one repeats (重复信访): its page and its number.
    pub repeat_of: Option<(String, String)>,
    pub a: &'static crate::texts::AuditTexts,
}

#[derive(Debug, Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub layout: Layout,
    pub message: String,
}

/// The case page's content. `full`: the signed-in role may read personal data and asked to.
pub fn case_page_view(
    layout: Layout,
    texts: &'static Texts,
    view: &CaseView,
    full: bool,
    may_read_personal_data: bool,
    office_name: &dyn Fn(&NodeId) -> String,
    now: DateTime<Utc>,
) -> CasePageView {
    let t = &texts.ui;
    let header = &view.header;
    let timeline = &view.state.timeline;
    let yes_no = |flag: bool| if flag { t.yes.clone() } else { t.no.clone() };
    let fields = vec![
        Field {
            label: t.status.clone(),
            value: Texts::term(&texts.status, &view.state.status),
        },
        Field {
            label: t.holder.clone(),
            value: office_name(&view.state.holder),
        },
        Field {
            label: t.channel.clone(),
            value: Texts::term(&texts.channel, &header.channel),
        },
        Field {
            label: t.category.clone(),
            value: Texts::term(&texts.category, &header.category),
        },
        Field {
            label: t.matter_type.clone(),
            value: Texts::term(&texts.matter_type, &header.matter_type),
        },
        Field {
            label: t.headcount.clone(),
            value: header.headcount.to_string(),
        },
        Field {
            label: t.respondent.clone(),
            value: header.respondent.clone(),
        },
        Field {
            label: t.litigation_related.clone(),
            value: yes_no(header.litigation_related),
        },
        Field {
            label: t.village.clone(),
            value: header.location.village.clone(),
        },
        Field {
            label: t.region_code.clone(),
            value: header.location.region_code.clone(),
        },
        Field {
            label: t.leader.clone(),
            value: header.ownership.leader.clone(),
        },
        Field {
            label: t.registered_at.clone(),
            value: timeline.registered_at.map(date).unwrap_or_default(),
        },
    ];
    let petitioners = header
        .petitioners
        .iter()
        .map(|petitioner| PetitionerView {
            name: petitioner.name.clone(),
            id_number: if full {
                petitioner.id_number.clone()
            } else {
                mask_id_number(&petitioner.id_number)
            },
            phone: if full {
                petitioner.phone.clone()
            } else {
                mask_phone(&petitioner.phone)
            },
            // An address has no masked form: it is shown only in full view.
            address: if full {
                petitioner.address.clone()
            } else {
                String::new()
            },
            representative: petitioner.representative,
        })
        .collect();
    let mut events: Vec<&fengqiao_case::model::Event> = view.events.iter().collect();
    events.sort_by(|left, right| left.at.cmp(&right.at).then(left.id.cmp(&right.id)));
    let events = events
        .into_iter()
        .map(|event| {
            let (signature_class, signature) = crate::audit::signature_words(
                &texts.audit,
                &signature_status(&header.number, event),
            );
            EventView {
                at: date_time(event.at),
                kind: texts
                    .event
                    .get(event.kind.name())
                    .cloned()
                    .unwrap_or_else(|| event.kind.name().to_owned()),
                operator: event.operator.clone(),
                office: office_name(&event.node),
                signature_class,
                signature,
            }
        })
        .collect();
    let mediations = view
        .state
        .mediations
        .iter()
        .map(|record| MediationView {
            at: date_time(record.at),
            mediation_type: Texts::term(&texts.mediation_type, &record.mediation_type),
            mediator: record.mediator.clone(),
            result: Texts::term(&texts.mediation_result, &record.result),
            agreement: record.agreement.clone(),
            judicial_confirmation: Texts::term(
                &texts.judicial_confirmation,
                &record.judicial_confirmation,
            ),
        })
        .collect();
    let time_flags = view
        .state
        .time_flags
        .iter()
        .chain(view.received_ahead.as_ref())
        .cloned()
        .collect();
    let repeat_of = view
        .state
        .repeat_of
        .as_ref()
        .map(|earlier| (case_href(earlier), earlier.clone()));
    // The open limits as the domain names them (`summary::open_deadlines`, the rule the
    // warnings are judged on), each with its warning when it has one.
    let case_summary = summarize(header, &view.state);
    let deadlines = open_deadlines(&case_summary)
        .into_iter()
        .map(|deadline| {
            let warned: Vec<Warning> = view
                .warnings
                .iter()
                .filter(|warning| {
                    warning.deadline == deadline.kind
                        && warning.due == deadline.due
                        && warning.directive == deadline.directive
                })
                .cloned()
                .collect();
            DeadlineView {
                kind: Texts::term(&texts.deadline, &deadline.kind),
                due: date(deadline.due),
                days: days_text(t, deadline.due, now),
                grade: grade_view(texts, &warned, now),
            }
        })
        .collect();
    let number = header.number.clone();
    let toggle = may_read_personal_data.then(|| {
        if full {
            (case_href(&number), t.show_masked.clone())
        } else {
            (
                format!("{}?full=1", case_href(&number)),
                t.show_full.clone(),
            )
        }
    });
    let mut directives: Vec<DirectiveRowView> = view
        .state
        .directives
        .iter()
        .map(|directive| {
            let item = fengqiao_case::model::DirectiveListItem::of(
                &header.number,
                &view.state.holder,
                directive,
                &view.warnings,
            );
            directive_row(texts, &item, office_name, now)
        })
        .collect();
    directives.sort_by_key(|row| !row.listed);
    CasePageView {
        layout,
        number,
        fields,
        summary: header.summary.clone(),
        petitioners,
        full,
        toggle,
        events,
        deadlines,
        directives,
        d: &texts.directives,
        actions: ActionsView::default(),
        mediations,
        time_flags,
        repeat_of,
        a: &texts.audit,
    }
}

/// The language switch's link.
pub fn switch_language_href(language: Language) -> String {
    format!("/language?to={}", language.other().code())
}

/// One action's form on the case page.
#[derive(Debug, Clone)]
pub struct ActionView {
    /// The event kind's API name: the form's `action`, and part of its elements' ids.
    pub kind: String,
    pub label: String,
    pub selects: Vec<SelectView>,
    pub fields: Vec<InputView>,
    /// 办结 asks whether the matter was resolved; 督办 whether it is 挂牌.
    pub checkbox: Option<CheckboxView>,
}

/// A yes/no field of an action's form.
#[derive(Debug, Clone)]
pub struct CheckboxView {
    pub name: &'static str,
    pub label: String,
    pub checked: bool,
}

/// The actions part of the case page.
#[derive(Debug, Clone, Default)]
pub struct ActionsView {
    /// Where the forms are sent.
    pub href: String,
    pub forms: Vec<ActionView>,
    /// Why the action just sent was refused.
    pub error: Option<String>,
    pub conflict_notice: Option<String>,
    /// The branches of the case's fork of concurrent transitions, side by side; empty without one.
    pub branches: Vec<BranchView>,
    /// Whether the signed-in person may resolve the fork (each branch then has its button).
    pub may_resolve: bool,
}

/// One branch of a fork, as the case page shows it beside the others.
#[derive(Debug, Clone)]
pub struct BranchView {
    /// The branch's first event: what choosing it names (`chosen`).
    pub first: String,
    /// Its transitions, in words (`办结、答复`).
    pub kinds: String,
    pub operator: String,
    pub office: String,
    /// Where the case would stand had only this branch happened.
    pub status: String,
    pub holder: String,
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

/// One directive's row, for 督办 and the 工作台.
pub(crate) fn directive_row(
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
pub(crate) fn directive_awaits_its_target(status: DirectiveStatus) -> bool {
    matches!(
        status,
        DirectiveStatus::Issued | DirectiveStatus::Acknowledged | DirectiveStatus::Returned
    )
}
