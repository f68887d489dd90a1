//! Every type that goes on the wire, into the case document, or onto disk: the one place they live.
//!
//! Changing the meaning or layout of any type here is a schema change: bump [`SCHEMA_VERSION`]
//! (stored in every case document and every stored summary) and teach the readers the old form.
//! Enums serialize as `snake_case` strings so JSON, CSV imports and the automerge document all share
//! one spelling.

pub mod audit;
pub mod backup;
pub mod ledger;
pub mod policy;
pub mod roster;
pub mod stats;
pub mod sync;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Version of the case document schema, of [`CaseSummary`], and of the HTTP API bodies.
pub const SCHEMA_VERSION: u32 = 2;

/// A case number: region code + year + sequence, e.g. `430702001001-2026-000123`.
/// It is also the case's identity across the federation (region codes are unique).
pub type CaseId = String;

/// Unique event identifier, made by the node that appends the event (random, hex).
pub type EventId = String;

/// A node's identity as text (derived from its public key by the node crate).
pub type NodeId = String;

/// Identifier of a supervision directive (督办单), unique within its case.
pub type DirectiveId = String;

/// One hybrid logical timestamp (`crate::clock`, the clock that makes them). Ordered by wall time, then counter; ties between nodes are
/// broken by the caller (by node ID), never by this type.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HybridTimestamp {
    /// Milliseconds since the Unix epoch: the greatest wall time this node had seen.
    pub wall_ms: i64,
    pub counter: u32,
}

impl HybridTimestamp {
    pub const ZERO: HybridTimestamp = HybridTimestamp {
        wall_ms: 0,
        counter: 0,
    };

    /// The wall-time part, for people.
    pub fn wall_time(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(self.wall_ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// 村 / 社区
    Village,
    /// 乡镇 / 街道
    Township,
    /// 县 / 区
    County,
    /// 市
    City,
}

/// How the petition arrived (条例 Art 17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// 来信
    Letter,
    /// 来访
    Visit,
    /// 网上
    Online,
    /// 电话
    Phone,
    /// 领导信箱
    LeaderMailbox,
    /// 网格排查
    GridScreening,
}

/// What the matter is about. `Other` keeps the set closed so indexes and measures stay stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// 征地拆迁 (land requisition)
    LandRequisition,
    /// 拖欠工资 (wage arrears)
    WageArrears,
    /// 拆迁安置 (demolition and relocation)
    DemolitionRelocation,
    /// 撤点并校 (school consolidation)
    SchoolConsolidation,
    /// 劳动保障 (labour disputes)
    Labour,
    /// 环境污染 (environment)
    Environment,
    /// 邻里纠纷 (neighbours)
    Neighbourhood,
    /// 婚姻家庭 (marriage and family)
    Family,
    /// 物业管理 (property management)
    PropertyManagement,
    /// 社会保障 (social security)
    SocialSecurity,
    /// 其他
    Other,
}

/// 建议意见 / 检举控告 / 申诉求决 (条例 Arts 29–31).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum MatterType {
    Suggestion,
    Accusation,
    Appeal,
}

/// Personal data: never logged, read access is recorded by the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Petitioner {
    #[cfg_attr(feature = "schema", schemars(transform = crate::schema::required_name_text))]
    pub name: String,
    /// Empty if not given. A resident ID number: 18 characters with the GB 11643-1999 check
    /// character (X in either case) or 15 digits, a real birth date; another document (see
    /// `id_type`): 5 to 32 letters, digits or '-' (`crate::personal_data`, its shape bounds it).
    #[serde(default)]
    pub id_number: String,
    /// The document `id_number` is the number of. Omitted when it is a resident ID, so
    /// petitioners written before the field existed encode (and are signed) as they were.
    #[serde(default, skip_serializing_if = "IdType::is_resident_id")]
    pub id_type: IdType,
    /// Empty if not given. A mobile (11 digits, 1[3-9]…) or a landline with its area code
    /// (0736-7221234, extension -123), perhaps after +86; spaces and dashes are ignored.
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(transform = crate::schema::line_text))]
    pub address: String,
    /// One of the (at most 5) representatives of a group visit (条例 Art 20).
    #[serde(default)]
    pub representative: bool,
}

/// The identity document a petitioner's number belongs to. Only a resident ID number is checked
/// against GB 11643-1999; the others by their shape ([`crate::personal_data::check_id_number`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum IdType {
    /// 居民身份证
    #[default]
    ResidentId,
    /// 护照
    Passport,
    /// 港澳居民来往内地通行证
    HkMacaoPermit,
    /// 台湾居民来往大陆通行证
    TaiwanPermit,
    /// 其他证件
    Other,
}

impl IdType {
    pub fn is_resident_id(&self) -> bool {
        *self == IdType::ResidentId
    }
}

/// Where the matter arose. `region_code` is the most specific administrative code known
/// (12-digit village code, or 9-digit township code); a node's jurisdiction is a code prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Location {
    pub region_code: String,
    /// Village or community name, for people.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(transform = crate::schema::line_text))]
    pub village: String,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(transform = crate::schema::line_text))]
    pub grid: String,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(transform = crate::schema::name_text))]
    pub grid_worker: String,
}

/// 领导包案 "四定": responsible leader and unit, case officer, plan, closing date.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Ownership {
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(transform = crate::schema::name_text))]
    pub leader: String,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(transform = crate::schema::line_text))]
    pub unit: String,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(transform = crate::schema::name_text))]
    pub officer: String,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(transform = crate::schema::long_text))]
    pub plan: String,
    #[serde(default)]
    pub target_date: Option<NaiveDate>,
}

/// The case's header fields, stored as a map in the case document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CaseHeader {
    pub number: CaseId,
    pub channel: Channel,
    pub petitioners: Vec<Petitioner>,
    /// People who came (a group visit of 5+ is 集体访).
    pub headcount: u32,
    #[serde(default)]
    pub respondent: String,
    pub category: Category,
    pub matter_type: MatterType,
    /// 涉法涉诉: routed to courts and 政法 departments.
    #[serde(default)]
    pub litigation_related: bool,
    /// The petitioner's request in their own words (recorded faithfully, Art 19).
    pub summary: String,
    pub location: Location,
    #[serde(default)]
    pub ownership: Ownership,
}

impl CaseHeader {
    /// Apply one amendment: what an `amend_header` event does to the header.
    pub fn amend(&mut self, amendment: &HeaderAmendment) {
        match amendment.clone() {
            HeaderAmendment::Petitioners(petitioners) => self.petitioners = petitioners,
            HeaderAmendment::Headcount(headcount) => self.headcount = headcount,
            HeaderAmendment::Respondent(respondent) => self.respondent = respondent,
            HeaderAmendment::Category(category) => self.category = category,
            HeaderAmendment::MatterType(matter_type) => self.matter_type = matter_type,
            HeaderAmendment::LitigationRelated(flag) => self.litigation_related = flag,
            HeaderAmendment::Summary(summary) => self.summary = summary,
            HeaderAmendment::Location(location) => self.location = location,
            HeaderAmendment::Ownership(ownership) => self.ownership = ownership,
        }
    }
}

/// Header fields that may be amended after registration (each amendment is an event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "field", content = "value", rename_all = "snake_case")]
pub enum HeaderAmendment {
    Petitioners(
        #[cfg_attr(
            feature = "schema",
            schemars(length(min = 1, max = crate::bounds::MAX_PETITIONERS))
        )]
        Vec<Petitioner>,
    ),
    Headcount(
        #[cfg_attr(
            feature = "schema",
            schemars(range(min = 1, max = crate::bounds::MAX_HEADCOUNT))
        )]
        u32,
    ),
    Respondent(
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::line_text))] String,
    ),
    Category(Category),
    MatterType(MatterType),
    LitigationRelated(bool),
    Summary(
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::summary_text))] String,
    ),
    Location(Location),
    Ownership(Ownership),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum MediationType {
    /// 人民调解
    People,
    /// 行政调解
    Administrative,
    /// 司法调解
    Judicial,
    /// 信访调解
    Petition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum MediationResult {
    Agreement,
    NoAgreement,
    Ongoing,
}

/// 司法确认 of a mediation agreement (parties apply within 30 days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum JudicialConfirmation {
    NotApplied,
    Applied,
    Confirmed,
    Refused,
}

/// 答复: support, explain, or not support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReplyOutcome {
    Support,
    Explain,
    NotSupport,
}

/// 满意 / 基本满意 / 不满意.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Satisfaction {
    Satisfied,
    BasicallySatisfied,
    Unsatisfied,
}

/// 复查 (review, one tier up) or 复核 (re-review, one tier higher still).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReviewLevel {
    Review,
    ReReview,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReviewOutcome {
    /// The original handling opinion stands.
    Upheld,
    /// The original handling opinion is changed.
    Revised,
}

/// What happened, with its payload. Serialized as `{"kind": "...", "payload": {...}}`.
///
/// Kinds for which [`EventKind::is_transition`] is true change the lifecycle status, the holder or a
/// deadline; they carry `prev` (the transition they were based on) so that concurrent transitions
/// made on two replicas are detected as a fork instead of being silently ordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
pub enum EventKind {
    /// 登记 at the node that creates the case; it becomes the holder. Always the first transition.
    ///
    /// Carries the header as registered (schema 2), so the registration is signed like every
    /// other event and the header is always what the register event and the amendments after it
    /// say. Absent only in schema-1 documents, whose header is a map of its own.
    Register {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header: Option<Box<CaseHeader>>,
        /// The federation policy version the case derives with for ever (`crate::policy`).
        /// Absent (0, the built-in policy) in documents registered before policies existed, and
        /// left out when 0, so their payloads and signatures encode as before; a register event
        /// naming a version is signed with signature version 3 (`crate::signature`).
        #[serde(default, skip_serializing_if = "is_zero_version")]
        policy_version: u64,
    },
    /// 受理: starts the 60-day handling limit.
    Accept {},
    /// 不予受理, with a written reason.
    Reject {
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::long_text))]
        reason: String,
    },
    /// 转送 to the competent unit. `to_node` is the receiving node when it runs Fengqiao.
    Forward {
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::line_text))]
        to_unit: String,
        #[serde(default)]
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::identifier_text))]
        to_node: Option<NodeId>,
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::long_text))]
        reason: String,
    },
    /// 交办 to a node (normally below), with the result required and a deadline.
    Assign {
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::identifier_text))]
        to_node: NodeId,
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::long_text))]
        required_result: String,
        deadline: NaiveDate,
    },
    /// The receiver of a forward or assignment takes it on.
    AcceptAssignment {},
    /// A receiver that is not competent objects within 5 working days; the case returns.
    Object {
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::long_text))]
        reason: String,
    },
    /// Litigation-related matter routed to a court or 政法 department (Arts 22, 28, 31).
    Divert {
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::line_text))]
        to_unit: String,
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::long_text))]
        reason: String,
    },
    /// 上报 to the tier above; `to_node` becomes the holder.
    Escalate {
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::identifier_text))]
        to_node: NodeId,
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::long_text))]
        reason: String,
    },
    /// One extension of at most 30 days of the handling limit (Art 34).
    Extend {
        days: u32,
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::name_text))]
        approver: String,
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::long_text))]
        reason: String,
    },
    /// 答复 / 处理意见书.
    Reply {
        outcome: ReplyOutcome,
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::long_text))]
        text: String,
    },
    /// The petitioner's satisfaction evaluation.
    Evaluate {
        satisfaction: Satisfaction,
    },
    /// 办结 / 销号. `resolved` feeds the 化解率.
    Close {
        resolved: bool,
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::long_text))]
        note: String,
    },
    /// The petitioner asks for 复查 (within 30 days of the reply) or 复核 (within 30 days of the review).
    RequestReview {
        level: ReviewLevel,
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::long_text))]
        reason: String,
    },
    /// The reviewing tier decides (within 30 days of the request).
    DecideReview {
        level: ReviewLevel,
        outcome: ReviewOutcome,
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::long_text))]
        text: String,
    },
    /// Reopen a closed case for further handling.
    Reopen {
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::long_text))]
        reason: String,
    },
    /// 提级办理: an office above the holder takes the case over; the event's maker becomes the
    /// holder.
    TakeOver {
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::long_text))]
        reason: String,
    },

    // Events below are not transitions: they annotate the case without moving its lifecycle.
    /// Settles a fork of concurrent transitions: `chosen` is the first event of the winning branch.
    /// `overrides` names the earlier resolves of the same fork this one settles (they disagreed,
    /// see [`Conflict::disputed`]); the node fills it from the state it resolves on, like `prev`.
    Resolve {
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::identifier_text))]
        chosen: EventId,
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::long_text))]
        note: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        overrides: Vec<EventId>,
    },
    /// Mediation record inside handling (Arts 33, 37).
    Mediate {
        mediation_type: MediationType,
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::name_text))]
        mediator: String,
        result: MediationResult,
        #[serde(default)]
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::long_text))]
        agreement: String,
        #[serde(default = "JudicialConfirmation::not_applied")]
        judicial_confirmation: JudicialConfirmation,
    },
    /// Update of a mediation record's judicial confirmation status.
    UpdateJudicialConfirmation {
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::identifier_text))]
        mediation: EventId,
        status: JudicialConfirmation,
    },
    /// This case repeats the matter of an earlier case (重复信访).
    LinkRepeat {
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::identifier_text))]
        earlier: CaseId,
    },
    /// 督办单: issued by a tier above the holder.
    IssueDirective {
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::identifier_text))]
        directive: DirectiveId,
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::identifier_text))]
        target_node: NodeId,
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::long_text))]
        requirement: String,
        due: NaiveDate,
        /// 挂牌督办.
        listed: bool,
    },
    AcknowledgeDirective {
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::identifier_text))]
        directive: DirectiveId,
    },
    ReportDirective {
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::identifier_text))]
        directive: DirectiveId,
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::long_text))]
        text: String,
    },
    /// 销号: only the issuer crosses a directive off.
    CrossOffDirective {
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::identifier_text))]
        directive: DirectiveId,
    },
    /// The issuer is not satisfied and sends the directive back for more work.
    ReturnDirective {
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::identifier_text))]
        directive: DirectiveId,
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::long_text))]
        reason: String,
    },
    AmendHeader {
        amendment: HeaderAmendment,
    },
    Note {
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::long_text))]
        text: String,
    },
    /// The maker takes the place of `predecessor` in this case: the roster names the maker as
    /// the predecessor's successor (a rebuilt office's new node, `fengqiao admit
    /// --successor-of`). Derive then reads the predecessor as the maker wherever the case names
    /// it (`crate::succession`). Appended by the node itself before the successor's first
    /// event on a case that names its predecessor; signed with signature version 5.
    Succeed {
        #[cfg_attr(feature = "schema", schemars(transform = crate::schema::identifier_text))]
        predecessor: NodeId,
    },
}

impl JudicialConfirmation {
    fn not_applied() -> Self {
        JudicialConfirmation::NotApplied
    }
}

impl EventKind {
    /// The directive this event steps (acknowledges, reports on, crosses off, returns), if it is
    /// a directive step after the issue.
    pub fn directive_stepped(&self) -> Option<&DirectiveId> {
        match self {
            EventKind::AcknowledgeDirective { directive }
            | EventKind::ReportDirective { directive, .. }
            | EventKind::CrossOffDirective { directive }
            | EventKind::ReturnDirective { directive, .. } => Some(directive),
            _ => None,
        }
    }

    /// Whether this kind moves the lifecycle (and so carries `prev` and can conflict).
    pub fn is_transition(&self) -> bool {
        matches!(
            self,
            EventKind::Register { .. }
                | EventKind::Accept {}
                | EventKind::Reject { .. }
                | EventKind::Forward { .. }
                | EventKind::Assign { .. }
                | EventKind::AcceptAssignment {}
                | EventKind::Object { .. }
                | EventKind::Divert { .. }
                | EventKind::Escalate { .. }
                | EventKind::Extend { .. }
                | EventKind::Reply { .. }
                | EventKind::Evaluate { .. }
                | EventKind::Close { .. }
                | EventKind::RequestReview { .. }
                | EventKind::DecideReview { .. }
                | EventKind::Reopen { .. }
                | EventKind::TakeOver { .. }
        )
    }

    /// The `kind` tag as serialized (`"accept"`, `"issue_directive"`, …).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Register { .. } => "register",
            EventKind::Accept {} => "accept",
            EventKind::Reject { .. } => "reject",
            EventKind::Forward { .. } => "forward",
            EventKind::Assign { .. } => "assign",
            EventKind::AcceptAssignment {} => "accept_assignment",
            EventKind::Object { .. } => "object",
            EventKind::Divert { .. } => "divert",
            EventKind::Escalate { .. } => "escalate",
            EventKind::Extend { .. } => "extend",
            EventKind::Reply { .. } => "reply",
            EventKind::Evaluate { .. } => "evaluate",
            EventKind::Close { .. } => "close",
            EventKind::RequestReview { .. } => "request_review",
            EventKind::DecideReview { .. } => "decide_review",
            EventKind::Reopen { .. } => "reopen",
            EventKind::TakeOver { .. } => "take_over",
            EventKind::Resolve { .. } => "resolve",
            EventKind::Mediate { .. } => "mediate",
            EventKind::UpdateJudicialConfirmation { .. } => "update_judicial_confirmation",
            EventKind::LinkRepeat { .. } => "link_repeat",
            EventKind::IssueDirective { .. } => "issue_directive",
            EventKind::AcknowledgeDirective { .. } => "acknowledge_directive",
            EventKind::ReportDirective { .. } => "report_directive",
            EventKind::CrossOffDirective { .. } => "cross_off_directive",
            EventKind::ReturnDirective { .. } => "return_directive",
            EventKind::AmendHeader { .. } => "amend_header",
            EventKind::Note { .. } => "note",
            EventKind::Succeed { .. } => "succeed",
        }
    }
}

/// One entry of a case's append-only event list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Event {
    pub id: EventId,
    #[serde(flatten)]
    pub kind: EventKind,
    /// Wall-clock time at the node that made the event.
    pub at: DateTime<Utc>,
    pub node: NodeId,
    /// The person who did it, as the API caller identified them.
    pub operator: String,
    /// For transitions: the id of the transition this one was based on (`None` only for `register`).
    #[serde(default)]
    pub prev: Option<EventId>,
    /// Hybrid logical time at the node that made the event: orders events across nodes whose wall
    /// clocks disagree. Zero in schema-1 documents.
    #[serde(default)]
    pub hlc: HybridTimestamp,
    /// The maker's signature over the event and the case number (`crate::signature`). Absent in
    /// schema-1 documents, whose events were never signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<EventSignature>,
    /// Set on every event a ledger import made: its `at` is the time the ledger records, not
    /// the time the node recorded it (its `hlc` says that). Signed (signature version 2);
    /// absent on every other event, which encode and sign as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported: Option<ImportMark>,
    /// Why the event is dated (`at`) more than the clock skew allowance before the node recorded
    /// it (`hlc`): a paper record entered later (补录). Signed (signature version 3); absent on
    /// every other event, which encode and sign as before (`crate::event_time` is the rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backdated_reason: Option<String>,
}

/// Which ledger import made an event, and from which row. The operator who ran the import is
/// the event's own `operator`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ImportMark {
    /// One run of `fengqiao import` (every batch of it), e.g. `20260305T0930-1f2e3d4c`.
    pub import_id: String,
    /// The ledger row's identity (`crate::import::row_key`): the same row gives the same key in
    /// every run, which is what makes a re-run skip it.
    pub row_key: String,
}

/// An Ed25519 signature of an event by the node it names. In JSON the bytes are lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EventSignature {
    /// Version of the signing bytes (`crate::signature::EVENT_SIGNATURE_VERSION`).
    pub version: u32,
    /// The signer's public key, 32 bytes; it hashes to the event's `node`.
    #[serde(with = "hex_bytes")]
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub public_key: Vec<u8>,
    /// 64 bytes.
    #[serde(with = "hex_bytes")]
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub signature: Vec<u8>,
}

/// Bytes as lowercase hex in JSON, so keys and signatures read as they are printed elsewhere.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        hex::decode(&text).map_err(serde::de::Error::custom)
    }
}

/// Lifecycle status derived from the transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Registered (or received by escalation); the holder must decide within 15 days.
    Registered,
    /// Forwarded or assigned; waiting for the receiver to accept or object.
    AwaitingReceiver,
    /// 受理: being handled within the 60-day limit.
    Accepted,
    /// 不予受理 (terminal unless reopened).
    NotAccepted,
    /// Routed to the courts / 政法 departments (terminal).
    Diverted,
    /// Forwarded to a unit outside the federation (terminal for this federation).
    ForwardedOut,
    /// 答复 given; waiting for evaluation.
    Replied,
    /// Evaluated by the petitioner; may be closed.
    Evaluated,
    /// 办结.
    Closed,
    /// 复查 or 复核 requested, waiting for the decision.
    UnderReview,
    /// 复核 decided: the matter is final and is not accepted again.
    Final,
}

impl Status {
    /// Every status, in lifecycle order (the order tables and measures list them in).
    pub const ALL: [Status; 11] = [
        Status::Registered,
        Status::AwaitingReceiver,
        Status::Accepted,
        Status::NotAccepted,
        Status::Diverted,
        Status::ForwardedOut,
        Status::Replied,
        Status::Evaluated,
        Status::Closed,
        Status::UnderReview,
        Status::Final,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum WarningGrade {
    /// 预警: the deadline is near.
    Approaching,
    /// 超时.
    Overdue,
    /// 严重超时.
    SeriouslyOverdue,
}

/// Which time limit a deadline or warning is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeadlineKind {
    /// 15 days to accept / reject / forward / assign / divert / escalate.
    Acceptance,
    /// 5 working days for a receiver to object.
    Objection,
    /// 60 days (+ one extension) to reply.
    Handling,
    /// Window for the petitioner to evaluate the reply.
    Evaluation,
    /// 30 days to decide a 复查 / 复核.
    ReviewDecision,
    /// Due date of a supervision directive.
    Directive,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Warning {
    pub deadline: DeadlineKind,
    pub grade: WarningGrade,
    pub due: DateTime<Utc>,
    /// For directive warnings, which directive.
    #[serde(default)]
    pub directive: Option<DirectiveId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum DirectiveStatus {
    Issued,
    Acknowledged,
    Reported,
    /// Sent back by the issuer for more work.
    Returned,
    /// 销号.
    CrossedOff,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DirectiveState {
    pub id: DirectiveId,
    pub issuer_node: NodeId,
    pub issued_by: String,
    pub issued_at: DateTime<Utc>,
    pub target_node: NodeId,
    pub requirement: String,
    /// End of the due day, China time.
    pub due: DateTime<Utc>,
    pub listed: bool,
    pub status: DirectiveStatus,
    pub reports: Vec<String>,
    pub crossed_off_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct MediationRecord {
    pub event: EventId,
    pub at: DateTime<Utc>,
    pub mediation_type: MediationType,
    pub mediator: String,
    pub result: MediationResult,
    pub agreement: String,
    pub judicial_confirmation: JudicialConfirmation,
}

/// One side of an unresolved fork: the first event of the branch and where it leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ConflictBranch {
    /// First transition of the branch: name it in a `resolve` event to choose this branch.
    pub first: EventId,
    pub kinds: Vec<String>,
    pub node: NodeId,
    pub operator: String,
    pub status: Status,
    pub holder: NodeId,
}

/// Concurrent transitions that led to different outcomes; a person must settle it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Conflict {
    /// The last transition all branches agree on.
    pub fork: EventId,
    pub branches: Vec<ConflictBranch>,
    /// Resolves of this fork made concurrently (neither office knew of the other's) that chose
    /// different branches: two decisions a person must settle, not one picked silently. Empty
    /// when nobody has resolved the fork yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disputed: Vec<ResolveDecision>,
}

/// One office's decision on a fork, as a `resolve` event recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ResolveDecision {
    /// The resolve event.
    pub event: EventId,
    /// The first event of the branch it chose.
    pub chosen: EventId,
    pub node: NodeId,
    pub operator: String,
}

/// The dates that time limits and measures are computed from. All derived from events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Timeline {
    pub registered_at: Option<DateTime<Utc>>,
    /// When the current holder received the matter (registration, escalation, forward, assignment).
    pub received_at: Option<DateTime<Utc>>,
    pub acceptance_deadline: Option<DateTime<Utc>>,
    /// First acceptance-type decision (accept, reject, forward, assign, divert, escalate).
    pub decided_at: Option<DateTime<Utc>>,
    /// The acceptance deadline in force when the decision was made (for 及时受理率).
    pub decided_deadline: Option<DateTime<Utc>>,
    pub objection_deadline: Option<DateTime<Utc>>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub handling_deadline: Option<DateTime<Utc>>,
    pub extended_days: Option<u32>,
    pub replied_at: Option<DateTime<Utc>>,
    /// The handling deadline in force when the reply was given (for 按期办结率).
    pub replied_deadline: Option<DateTime<Utc>>,
    pub evaluation_deadline: Option<DateTime<Utc>>,
    pub evaluated_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub review_requested_at: Option<DateTime<Utc>>,
    pub review_deadline: Option<DateTime<Utc>>,
}

/// The case's state: a deterministic function of its header and events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CaseState {
    pub status: Status,
    pub holder: NodeId,
    pub registered_by: NodeId,
    /// Last transition of the agreed chain: the `prev` for the next transition.
    pub tip: EventId,
    pub timeline: Timeline,
    pub reply: Option<(ReplyOutcome, String)>,
    pub satisfaction: Option<Satisfaction>,
    pub resolved: Option<bool>,
    pub review_level: Option<ReviewLevel>,
    pub review_outcome: Option<(ReviewLevel, ReviewOutcome)>,
    pub repeat_of: Option<CaseId>,
    /// Nodes the case was escalated to, in order.
    pub escalated_to: Vec<NodeId>,
    /// Nodes the case was assigned or forwarded to (交办, 转送), in order, whether they took it
    /// on or objected: each holds a copy, and the federation keeps every copy current
    /// (`fengqiao_sync::routing`). Left out when empty, so a state without it reads as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sent_to: Vec<NodeId>,
    /// Node the case is assigned or forwarded to, while awaiting its answer.
    pub awaiting: Option<NodeId>,
    /// Node that assigned or forwarded, which gets the case back on an objection.
    pub assigned_by: Option<NodeId>,
    pub assignment_deadline: Option<NaiveDate>,
    pub directives: Vec<DirectiveState>,
    pub mediations: Vec<MediationRecord>,
    pub conflict: Option<Conflict>,
    /// Events that lost a settled conflict (kept in history, without effect).
    pub superseded: Vec<EventId>,
    /// Events that could not be applied (invalid for the state they were based on).
    pub invalid: Vec<EventId>,
    pub event_count: u32,
    pub last_event_at: Option<DateTime<Utc>>,
    /// Registered by a ledger import (its register event carries an [`ImportMark`]).
    #[serde(default)]
    pub imported: bool,
    /// What a person must look at about the events' times (时间存疑: an event dated before what
    /// it follows, back-dated without a reason, or dated after it was recorded), judged from the
    /// events alone by `crate::event_time::time_flags`. Such events are kept and applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub time_flags: Vec<String>,
}

/// What a node stores per case beside the document, to list, index and measure without loading it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CaseSummary {
    pub schema_version: u32,
    pub number: CaseId,
    pub channel: Channel,
    pub category: Category,
    pub matter_type: MatterType,
    pub headcount: u32,
    pub litigation_related: bool,
    pub region_code: String,
    pub village: String,
    pub respondent: String,
    pub status: Status,
    pub holder: NodeId,
    pub registered_by: NodeId,
    pub timeline: Timeline,
    pub satisfaction: Option<Satisfaction>,
    pub resolved: Option<bool>,
    pub repeat_of: Option<CaseId>,
    pub escalated: bool,
    pub assigned: bool,
    pub directives: Vec<DirectiveState>,
    pub in_conflict: bool,
    pub event_count: u32,
    pub last_event_at: Option<DateTime<Utc>>,
    /// Registered by a ledger import: history as the ledger records it, which the measures can
    /// leave out ([`ImportedCases`]). Last, so a store's version-1 summary record (written
    /// before this field) reads as this layout with `false` after it.
    #[serde(default)]
    pub imported: bool,
    /// The petitioners' names as the header stands (amendments applied), for the store's name
    /// index (a 台账 search by person). Personal data: listings hand summaries out without them
    /// (`Node::list`), and they are never logged. Last, so a store's version-2 summary record
    /// (written before this field) reads as this layout with no names after it.
    #[serde(default)]
    pub petitioner_names: Vec<String>,
}

/// Whether the measures count the cases a ledger import registered (their history is as the
/// ledger records it, not as this system saw it happen).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ImportedCases {
    /// Every case, imported or not.
    #[default]
    Include,
    /// Only the cases registered in this system, leaving imported history out.
    Exclude,
}

impl ImportedCases {
    /// Whether a case registered by an import (`imported`) or not is counted.
    pub fn counts(self, imported: bool) -> bool {
        match self {
            ImportedCases::Include => true,
            ImportedCases::Exclude => !imported,
        }
    }
}

fn is_zero_version(value: &u64) -> bool {
    *value == 0
}

/// Regulation time limits; the defaults are the 信访工作条例 (2022) figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct Limits {
    pub acceptance_days: u32,
    pub objection_working_days: u32,
    pub handling_days: u32,
    pub max_extension_days: u32,
    pub evaluation_days: u32,
    pub review_request_days: u32,
    pub review_decision_days: u32,
    /// Public holidays that are not working days (in addition to weekends).
    pub holidays: Vec<NaiveDate>,
    /// Weekend days that are working days (调休).
    pub working_weekends: Vec<NaiveDate>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            acceptance_days: 15,
            objection_working_days: 5,
            handling_days: 60,
            max_extension_days: 30,
            evaluation_days: 30,
            review_request_days: 30,
            review_decision_days: 30,
            holidays: Vec::new(),
            working_weekends: Vec::new(),
        }
    }
}

/// Graded warning thresholds (node config `[warnings]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct WarningThresholds {
    /// Warn this many days before a deadline.
    pub approaching_days: u32,
    /// Overdue by more than this many days is 严重超时.
    pub serious_overdue_days: u32,
}

impl Default for WarningThresholds {
    fn default() -> Self {
        WarningThresholds {
            approaching_days: 3,
            serious_overdue_days: 15,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP API bodies (`/api/...`). The operator's identity travels in the `x-fengqiao-operator`
// header on every mutating call and is recorded in the events it makes.
// ---------------------------------------------------------------------------------------------

/// Name of the HTTP header that carries the operator's identity.
pub const OPERATOR_HEADER: &str = "x-fengqiao-operator";

/// `GET /api/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NodeInfo {
    pub schema_version: u32,
    pub node_id: NodeId,
    pub name: String,
    pub tier: Tier,
    pub region_code: String,
    pub case_count: u64,
    /// How this node's clock stands against its peers' (absent on a node without a federation
    /// and before any peer said its time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<ClockHealth>,
}

/// A note a node keeps (store meta) on a case it received with an event stamped beyond the
/// clock skew allowance ahead of its own clock: the event is kept, and the case lists the note
/// among its time flags at this node. Versioned, as every disk record is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedAheadNote {
    pub version: u32,
    /// When this node received it, by its own clock.
    pub received_at: DateTime<Utc>,
    /// How far the event's hybrid time lay ahead of this node's clock, in milliseconds.
    pub ahead_ms: i64,
}

impl ReceivedAheadNote {
    pub const VERSION: u32 = 1;
    const META_PREFIX: &'static str = "time_ahead/";

    /// The store meta key of the note on `case` (the latest replaces the one before).
    pub fn meta_key(case: &str) -> String {
        format!("{}{case}", Self::META_PREFIX)
    }
}

/// Whose clock a node's own is judged against: its parent's, or (a county, with no parent) the
/// median of its children's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ClockReference {
    Parent,
    Children,
}

/// This node's clock against its peers' (`clock.rs`, `judge_clock`): in `/api/health`, and
/// why the node refuses to stamp events while it is skewed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ClockHealth {
    /// This node's clock minus the reference's, in milliseconds (negative: slow).
    pub offset_ms: i64,
    pub reference: ClockReference,
    /// Off by more than the allowance (5 minutes): the node stamps no events unless told to.
    pub skewed: bool,
    /// `[clock] allow_skew` or `fengqiao run --allow-clock-skew`: stamping goes on anyway.
    #[serde(default)]
    pub allowed: bool,
    /// For people: in Chinese and English, what is wrong and what to do.
    pub message: String,
}

/// `POST /api/cases`: register a new case. Without `number`, the node assigns the next one
/// for its region and the year of `registered_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(example = crate::schema::example_registration()))]
pub struct RegisterCase {
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(transform = crate::schema::case_number))]
    pub number: Option<CaseId>,
    /// Defaults to now; an import gives the ledger's date.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(transform = crate::schema::given_time))]
    pub registered_at: Option<DateTime<Utc>>,
    /// Why `registered_at` lies more than 5 minutes in the past (补录原因): required then,
    /// refused otherwise (`crate::event_time`); an import gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backdated_reason: Option<String>,
    pub channel: Channel,
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::bounds::MAX_PETITIONERS)))]
    pub petitioners: Vec<Petitioner>,
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = crate::bounds::MAX_HEADCOUNT)))]
    pub headcount: u32,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(transform = crate::schema::line_text))]
    pub respondent: String,
    pub category: Category,
    pub matter_type: MatterType,
    #[serde(default)]
    pub litigation_related: bool,
    #[cfg_attr(feature = "schema", schemars(transform = crate::schema::summary_text))]
    pub summary: String,
    pub location: Location,
    #[serde(default)]
    pub ownership: Ownership,
}

/// `POST /api/cases/{number}/events`: append one event. `at` defaults to now (imports set it).
///
/// Read by hand (the layout is the derived one, `{"kind", "payload", "at"}`): serde's flatten
/// reads the event through a buffer that forgets where a value sat, so a wrong value deep in the
/// payload was refused without its field's name. Here the kind and its payload are read on
/// their own, and a refusal names the field (`payload.text: invalid type …`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(example = crate::schema::example_event()))]
pub struct AppendEvent {
    #[serde(flatten)]
    pub kind: EventKind,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(transform = crate::schema::given_time))]
    pub at: Option<DateTime<Utc>>,
    /// Why `at` lies more than 5 minutes in the past (补录原因): required then, refused
    /// otherwise (`crate::event_time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backdated_reason: Option<String>,
}

impl<'de> Deserialize<'de> for AppendEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// The body's three parts, each read as it is; `kind` and `payload` are then read as
        /// an [`EventKind`] with the path of any refusal.
        // Fields beside these are refused by the API's unknown-field check, as everywhere.
        #[derive(Deserialize)]
        struct Parts {
            kind: serde_json::Value,
            #[serde(default)]
            payload: Option<serde_json::Value>,
            #[serde(default)]
            at: Option<DateTime<Utc>>,
            #[serde(default)]
            backdated_reason: Option<String>,
        }
        let parts = Parts::deserialize(deserializer)?;
        let mut tagged = serde_json::Map::new();
        tagged.insert("kind".to_owned(), parts.kind);
        if let Some(payload) = parts.payload {
            tagged.insert("payload".to_owned(), payload);
        }
        let kind: EventKind = serde_path_to_error::deserialize(serde_json::Value::Object(tagged))
            .map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            if path == "." {
                serde::de::Error::custom(inner)
            } else {
                serde::de::Error::custom(format_args!("{path}: {inner}"))
            }
        })?;
        Ok(AppendEvent {
            kind,
            at: parts.at,
            backdated_reason: parts.backdated_reason,
        })
    }
}

/// `GET /api/cases/{number}`: everything about one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CaseView {
    pub header: CaseHeader,
    pub state: CaseState,
    pub events: Vec<Event>,
    pub warnings: Vec<Warning>,
    /// Peers that refused changes this node sent them for the case (quarantined there): those
    /// changes did not travel on. Empty when none did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_by_peers: Vec<sync::PeerRefusal>,
    /// This node's own observation, not part of the derived state (which every replica derives
    /// alike from the events): the case arrived with an event stamped beyond the clock allowance
    /// ahead of this node's clock, so one of the two clocks is wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_ahead: Option<String>,
}

/// One row of `GET /api/cases`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CaseListItem {
    pub summary: CaseSummary,
    pub warnings: Vec<Warning>,
}

/// One row of `GET /api/directives`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DirectiveListItem {
    pub case: CaseId,
    pub holder: NodeId,
    pub directive: DirectiveState,
    pub warnings: Vec<Warning>,
}

impl DirectiveListItem {
    /// The row of `directive` on case `case` held by `holder`, with those of the case's
    /// warnings that are about this directive.
    pub fn of(
        case: &CaseId,
        holder: &NodeId,
        directive: &DirectiveState,
        case_warnings: &[Warning],
    ) -> DirectiveListItem {
        DirectiveListItem {
            case: case.clone(),
            holder: holder.clone(),
            directive: directive.clone(),
            warnings: case_warnings
                .iter()
                .filter(|warning| warning.directive.as_ref() == Some(&directive.id))
                .cloned()
                .collect(),
        }
    }
}

/// `POST /api/import`: a batch of ledger rows, each registered with its history, or none of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ImportBatch {
    pub rows: Vec<ImportRow>,
    /// Validate only; write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// The run of the import this batch belongs to, recorded in every event it makes
    /// ([`ImportMark`]); the node makes one per batch when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_id: Option<String>,
}

/// One case from an existing ledger: its registration and the history it already has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ImportRow {
    /// Line or record number in the source file, echoed in the report.
    pub line: u64,
    pub case: RegisterCase,
    /// Later events with their original times, in order.
    #[serde(default)]
    pub history: Vec<AppendEvent>,
    /// How many rows of the same file before this one have exactly the same content: a ledger
    /// can list two identical cases, and this keeps their identities apart.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repeat: u32,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ImportOutcome {
    Imported,
    /// A case with this number already exists: re-running an import is safe.
    AlreadyPresent,
    /// An earlier run of an import already registered this row (same row identity), as the
    /// case `number`: re-running an import is safe for rows without a number too.
    AlreadyImported,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ImportRowReport {
    pub line: u64,
    pub number: Option<CaseId>,
    pub outcome: ImportOutcome,
    #[serde(default)]
    pub error: Option<String>,
    /// Where in the row the error lies, as a path into the [`ImportRow`]
    /// (`history[1].text`, `history[0].at`, `history[2]` for a whole event); `error` starts with
    /// it. Absent when the error is about the row as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Error body of every non-2xx API answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ApiError {
    pub error: String,
}

/// `GET /api/health` answered 503: the node serves, but cannot take writes. An [`ApiError`] too
/// (`error` says what `store` says), so clients that read errors read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NodeUnhealthy {
    /// Always "unhealthy".
    pub status: String,
    /// Why the store takes no writes, and what to do about it.
    pub store: String,
    pub error: String,
}

/// A count over a count; the rate is absent when nothing is in the denominator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Ratio {
    pub numerator: u64,
    pub denominator: u64,
}

impl Ratio {
    pub fn rate(&self) -> Option<f64> {
        (self.denominator > 0).then(|| self.numerator as f64 / self.denominator as f64)
    }
}

/// The standard measures over one set of cases (DOMAIN.md "What supervisors read").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct MeasureSet {
    /// Cases registered in the period.
    pub cases: u64,
    /// 及时受理率.
    pub timely_acceptance: Ratio,
    /// 按期办结率.
    pub on_time_completion: Ratio,
    /// 参评率.
    pub evaluation: Ratio,
    /// 满意率.
    pub satisfaction: Ratio,
    /// 化解率.
    pub resolution: Ratio,
    /// 重复信访率.
    pub repeat: Ratio,
    /// Open cases by warning grade (a case counts once, at its worst grade).
    pub approaching: u64,
    pub overdue: u64,
    pub seriously_overdue: u64,
    pub directives_open: u64,
    pub directives_overdue: u64,
    pub directives_crossed_off: u64,
    pub escalated: u64,
    pub assigned: u64,
    pub in_conflict: u64,
    pub by_status: std::collections::BTreeMap<Status, u64>,
}

/// `GET /api/stats`: measures for a period, in total and per category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Measures {
    pub schema_version: u32,
    /// Cases registered in `[from, to)`; open bounds when absent.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Whether the cases a ledger import registered were counted, so a figure is never read
    /// without knowing. Absent in answers of older nodes, which always counted them.
    #[serde(default)]
    pub imported: ImportedCases,
    /// The instant warnings and expired windows were judged at.
    pub now: DateTime<Utc>,
    pub total: MeasureSet,
    pub by_category: std::collections::BTreeMap<Category, MeasureSet>,
}
