//! The role table: which role may do which action, in one place, as `fengqiao_case::authority`
//! is for offices. The authority table decides what an **office** may do to a case; this table
//! decides what a **person at that office** may do. Both are asked before an event is made: the
//! role first (service), then the office's authority. A refusal is HTTP 403 naming the rule.

use std::fmt;

use fengqiao_case::authority::KindTag;
use serde::{Deserialize, Serialize};

/// A person's role at their office.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 登记员/调解员: registers, accepts, handles, mediates, replies, notes.
    Operator,
    /// 督查: reads what operators read; issues and crosses off directives, takes over, escalates,
    /// assigns down, reads the whole subtree's statistics and the audit log.
    Supervisor,
    /// 管理员: accounts, tokens, admitting and revoking offices; no case actions by itself.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Operator, Role::Supervisor, Role::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }

    /// A role as people type it: the API's name or the Chinese term.
    pub fn parse(text: &str) -> Option<Role> {
        match text.trim() {
            "operator" | "登记员" | "调解员" => Some(Role::Operator),
            "supervisor" | "督查" => Some(Role::Supervisor),
            "admin" | "管理员" => Some(Role::Admin),
            _ => None,
        }
    }

    const fn bit(self) -> u8 {
        match self {
            Role::Operator => 1,
            Role::Supervisor => 2,
            Role::Admin => 4,
        }
    }
}

/// The roles one account holds (an account may hold several: an admin who also handles cases).
/// On the wire and on disk: a list of role names.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RoleSet(u8);

impl RoleSet {
    pub const EMPTY: RoleSet = RoleSet(0);

    pub const fn of(roles: &[Role]) -> RoleSet {
        let mut bits = 0;
        let mut index = 0;
        while index < roles.len() {
            bits |= roles[index].bit();
            index += 1;
        }
        RoleSet(bits)
    }

    pub const fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL
            .into_iter()
            .filter(move |role| self.contains(*role))
    }

    /// Roles as people type them, separated by commas: `operator,supervisor`.
    pub fn parse(text: &str) -> Result<RoleSet, RoleError> {
        let mut roles = RoleSet::EMPTY;
        for part in text.split([',', '，', '、']) {
            let role = Role::parse(part).ok_or_else(|| RoleError::UnknownRole(part.to_owned()))?;
            roles.0 |= role.bit();
        }
        Ok(roles)
    }
}

impl fmt::Display for RoleSet {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Role::name).collect();
        if names.is_empty() {
            formatter.write_str("no role")
        } else {
            formatter.write_str(&names.join(","))
        }
    }
}

impl fmt::Debug for RoleSet {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "RoleSet({self})")
    }
}

impl Serialize for RoleSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// In JSON a list of role names, each once.
#[cfg(feature = "schema")]
impl schemars::JsonSchema for RoleSet {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RoleSet".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "array",
            "items": generator.subschema_for::<Role>(),
            "uniqueItems": true,
        })
    }
}

impl<'de> Deserialize<'de> for RoleSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let roles = Vec::<Role>::deserialize(deserializer)?;
        Ok(RoleSet::of(&roles))
    }
}

/// What a person may ask a node to do. A case event is named by the authority table's kind, so
/// the role check and the office check read alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Append (or, for `Register`, create) an event of this kind.
    Event(KindTag),
    /// Import a ledger (registers cases with their histories).
    Import,
    /// List cases, show one (personal data, recorded in the access log), list directives.
    ReadCases,
    /// The node's own measures.
    ReadStats,
    /// The measures of the whole subtree, child by child.
    ReadStatsByChild,
    /// A case's audit trail.
    ReadAuditLog,
    /// Check every signature in the store.
    VerifyAudit,
    /// The federation's links and roster.
    ReadFederation,
    /// Changes refused from peers.
    ReadQuarantine,
    /// Apply an edited `[federation]` section (admit, revoke).
    ReloadFederation,
    /// Create, list, disable accounts, reset passwords, set roles; create, list, revoke tokens.
    ManageAccounts,
    /// Issue the next version of the federation's policy (limits, calendar, warnings): the
    /// root office only.
    IssuePolicy,
    /// Export the 台账 with ID numbers and phones whole (an export is masked otherwise).
    ExportPersonalData,
    /// The node's Prometheus metrics (`GET /metrics`) from beyond loopback: counts, links and
    /// request figures, never a case's content.
    ReadMetrics,
    /// Take a backup of the whole node (`GET /api/backup`): every case with its petitioners,
    /// the accounts and the node's key.
    BackupNode,
}

impl Action {
    /// The name a refusal gives: the event kind's API name, or the action's.
    pub fn name(self) -> String {
        match self {
            Action::Event(kind) => serde_json::to_value(kind)
                .ok()
                .and_then(|value| value.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{kind:?}")),
            Action::Import => "import".to_owned(),
            Action::ReadCases => "read_cases".to_owned(),
            Action::ReadStats => "read_stats".to_owned(),
            Action::ReadStatsByChild => "read_stats_by_child".to_owned(),
            Action::ReadAuditLog => "read_audit_log".to_owned(),
            Action::VerifyAudit => "verify_audit".to_owned(),
            Action::ReadFederation => "read_federation".to_owned(),
            Action::ReadQuarantine => "read_quarantine".to_owned(),
            Action::ReloadFederation => "reload_federation".to_owned(),
            Action::ManageAccounts => "manage_accounts".to_owned(),
            Action::IssuePolicy => "issue_policy".to_owned(),
            Action::ExportPersonalData => "export_personal_data".to_owned(),
            Action::ReadMetrics => "read_metrics".to_owned(),
            Action::BackupNode => "backup_node".to_owned(),
        }
    }
}

use Role::{Admin, Operator, Supervisor};

const CASE_WORK: &str = "operators (登记员/调解员) register and handle cases";
const SUPERVISION: &str = "only a supervisor (督查) does this";

/// THE role table: each action, the roles that may take it, and why (shown in refusals).
pub const ROLE_TABLE: &[(Action, &[Role], &str)] = &[
    (Action::Event(KindTag::Register), &[Operator], CASE_WORK),
    (Action::Event(KindTag::Accept), &[Operator], CASE_WORK),
    (Action::Event(KindTag::Reject), &[Operator], CASE_WORK),
    (Action::Event(KindTag::Forward), &[Operator], CASE_WORK),
    (
        Action::Event(KindTag::Assign),
        &[Supervisor],
        "only a supervisor (督查) assigns (交办) down",
    ),
    (
        Action::Event(KindTag::AcceptAssignment),
        &[Operator],
        CASE_WORK,
    ),
    (Action::Event(KindTag::Object), &[Operator], CASE_WORK),
    (Action::Event(KindTag::Divert), &[Operator], CASE_WORK),
    (
        Action::Event(KindTag::Escalate),
        &[Supervisor],
        "only a supervisor (督查) escalates (上报)",
    ),
    (Action::Event(KindTag::Extend), &[Operator], CASE_WORK),
    (Action::Event(KindTag::Reply), &[Operator], CASE_WORK),
    (Action::Event(KindTag::Evaluate), &[Operator], CASE_WORK),
    (Action::Event(KindTag::Close), &[Operator], CASE_WORK),
    (
        Action::Event(KindTag::RequestReview),
        &[Operator],
        CASE_WORK,
    ),
    (
        Action::Event(KindTag::DecideReview),
        &[Supervisor],
        SUPERVISION,
    ),
    (Action::Event(KindTag::Reopen), &[Supervisor], SUPERVISION),
    (
        Action::Event(KindTag::TakeOver),
        &[Supervisor],
        "only a supervisor (督查) takes a case over (提级办理)",
    ),
    (
        Action::Event(KindTag::Resolve),
        &[Operator, Supervisor],
        "a person handling or supervising the case settles a conflict",
    ),
    (Action::Event(KindTag::Mediate), &[Operator], CASE_WORK),
    (
        Action::Event(KindTag::UpdateJudicialConfirmation),
        &[Operator],
        CASE_WORK,
    ),
    (
        Action::Event(KindTag::LinkRepeat),
        &[Operator, Supervisor],
        "a person handling or supervising the case links a repeat petition",
    ),
    (
        Action::Event(KindTag::IssueDirective),
        &[Supervisor],
        "only a supervisor (督查) issues a directive (督办)",
    ),
    (
        Action::Event(KindTag::AcknowledgeDirective),
        &[Operator],
        CASE_WORK,
    ),
    (
        Action::Event(KindTag::ReportDirective),
        &[Operator],
        CASE_WORK,
    ),
    (
        Action::Event(KindTag::CrossOffDirective),
        &[Supervisor],
        "only a supervisor (督查) crosses a directive off (销号)",
    ),
    (
        Action::Event(KindTag::ReturnDirective),
        &[Supervisor],
        "only a supervisor (督查) sends a directive back",
    ),
    (Action::Event(KindTag::AmendHeader), &[Operator], CASE_WORK),
    (
        Action::Event(KindTag::Succeed),
        &[Operator, Supervisor],
        "a person handling or supervising the case takes the old node's place in it (the node \
         does so itself before their first event on it)",
    ),
    (
        Action::Event(KindTag::Note),
        &[Operator, Supervisor],
        "a person handling or supervising the case adds notes",
    ),
    (Action::Import, &[Operator], CASE_WORK),
    (
        Action::ReadCases,
        &[Operator, Supervisor],
        "cases and their petitioners are read by the people handling or supervising them",
    ),
    (
        Action::ReadStats,
        &[Operator, Supervisor],
        "the office's measures are read by its operators and supervisors",
    ),
    (
        Action::ReadStatsByChild,
        &[Supervisor],
        "only a supervisor (督查) reads the whole subtree's statistics",
    ),
    (
        Action::ReadAuditLog,
        &[Supervisor],
        "only a supervisor (督查) reads the audit log",
    ),
    (
        Action::VerifyAudit,
        &[Supervisor, Admin],
        "the store's signatures are checked by a supervisor or an admin",
    ),
    (
        Action::ReadFederation,
        &[Operator, Supervisor, Admin],
        "anyone signed in may see the federation's links and roster",
    ),
    (
        Action::ReadQuarantine,
        &[Supervisor, Admin],
        "refused changes are read by a supervisor or an admin",
    ),
    (
        Action::ReloadFederation,
        &[Admin],
        "only an admin (管理员) admits and revokes offices",
    ),
    (
        Action::ManageAccounts,
        &[Admin],
        "only an admin (管理员) manages accounts and tokens",
    ),
    (
        Action::IssuePolicy,
        &[Admin],
        "only an admin (管理员) issues the federation's policy (limits, calendar, warnings)",
    ),
    (
        Action::ExportPersonalData,
        &[Admin],
        "only an admin (管理员) exports ID numbers and phones whole; the export is logged",
    ),
    (
        Action::ReadMetrics,
        &[Supervisor, Admin],
        "the node's metrics are read by a supervisor or an admin (or by anyone on the node's \
         own machine, from loopback)",
    ),
    (
        Action::BackupNode,
        &[Admin],
        "only an admin (管理员) takes a backup: it holds every case, every account and the \
         node's key",
    ),
];

/// Why a person may not take an action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    #[error("{who} may not {action}: {why} (they hold {roles})", action = action.name())]
    NotPermitted {
        who: String,
        action: Action,
        why: &'static str,
        roles: RoleSet,
    },
    #[error("the role table has no row for {}", .0.name())]
    NoRule(Action),
    #[error("unknown role {0:?}: the roles are operator, supervisor and admin")]
    UnknownRole(String),
}

/// The roles that may take `action`, and why.
pub fn rule(action: Action) -> Option<(&'static [Role], &'static str)> {
    ROLE_TABLE
        .iter()
        .find(|(row, _, _)| *row == action)
        .map(|(_, roles, why)| (*roles, *why))
}

/// Whether someone (`who`, for the message) holding `roles` may take `action`.
pub fn permit(who: &str, roles: RoleSet, action: Action) -> Result<(), RoleError> {
    let (allowed, why) = rule(action).ok_or(RoleError::NoRule(action))?;
    if allowed.iter().any(|role| roles.contains(*role)) {
        Ok(())
    } else {
        Err(RoleError::NotPermitted {
            who: who.to_owned(),
            action,
            why,
            roles,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_event_kind_has_exactly_one_row() {
        for kind in KindTag::ALL {
            let rows = ROLE_TABLE
                .iter()
                .filter(|(action, _, _)| *action == Action::Event(kind))
                .count();
            assert_eq!(rows, 1, "{kind:?}");
        }
        let mut actions: Vec<String> = ROLE_TABLE.iter().map(|row| row.0.name()).collect();
        let all = actions.len();
        actions.sort();
        actions.dedup();
        assert_eq!(actions.len(), all, "an action has two rows");
    }

    #[test]
    fn an_operator_may_not_supervise_and_the_refusal_names_the_rule() {
        let operator = RoleSet::of(&[Role::Operator]);
        assert!(permit("李调解 (lizt)", operator, Action::Event(KindTag::Accept)).is_ok());
        let refusal = permit(
            "李调解 (lizt)",
            operator,
            Action::Event(KindTag::IssueDirective),
        )
        .unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "李调解 (lizt) may not issue_directive: only a supervisor (督查) issues a directive \
             (督办) (they hold operator)"
        );
        let supervisor = RoleSet::of(&[Role::Supervisor]);
        assert!(permit("x", supervisor, Action::Event(KindTag::IssueDirective)).is_ok());
        assert!(permit("x", supervisor, Action::Event(KindTag::Register)).is_err());
    }

    #[test]
    fn an_admin_alone_takes_no_case_action_but_manages_accounts() {
        let admin = RoleSet::of(&[Role::Admin]);
        for kind in KindTag::ALL {
            assert!(permit("a", admin, Action::Event(kind)).is_err(), "{kind:?}");
        }
        assert!(permit("a", admin, Action::ReadCases).is_err());
        assert!(permit("a", admin, Action::ManageAccounts).is_ok());
        assert!(permit("a", admin, Action::ReloadFederation).is_ok());
        let operator = RoleSet::of(&[Role::Operator, Role::Supervisor]);
        assert!(permit("o", operator, Action::ManageAccounts).is_err());
    }

    #[test]
    fn metrics_are_read_by_supervisors_and_admins_only() {
        for role in [Role::Supervisor, Role::Admin] {
            assert!(permit("监控", RoleSet::of(&[role]), Action::ReadMetrics).is_ok());
        }
        let refusal = permit(
            "李调解 (lizt)",
            RoleSet::of(&[Role::Operator]),
            Action::ReadMetrics,
        )
        .unwrap_err();
        assert!(refusal.to_string().contains("read_metrics"), "{refusal}");
    }

    #[test]
    fn role_sets_parse_print_and_serialize_as_lists() {
        let roles = RoleSet::parse("supervisor,operator").unwrap();
        assert_eq!(roles.to_string(), "operator,supervisor");
        assert_eq!(
            RoleSet::parse("督查、管理员").unwrap().to_string(),
            "supervisor,admin"
        );
        assert!(RoleSet::parse("boss").is_err());
        let json = serde_json::to_string(&roles).unwrap();
        assert_eq!(json, r#"["operator","supervisor"]"#);
        assert_eq!(serde_json::from_str::<RoleSet>(&json).unwrap(), roles);
    }
}
