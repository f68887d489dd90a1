//! Automatic escalation rules (自动上报): which configured rule fires for a case at `now`. No IO.
//!
//! A node's config lists rules (`[[escalation.rules]]`); the node periodically asks
//! [`first_firing`] about each case it holds and, when a rule fires, appends an ordinary
//! `escalate` event to its parent with the operator [`operator_for`] (`rule:<name>`) and the
//! reason [`Firing::reason`]. The event then goes through the same lifecycle checks as any other.
//!
//! # Conditions
//!
//! A rule has one or more conditions, and **all the conditions it gives must hold** for it to
//! fire (a rule is an AND; write two rules for an OR):
//!
//! - `when_overdue`: the case's worst warning grade ([`crate::warnings::worst_grade`] at `now`,
//!   with the node's `[warnings]` thresholds) is at least this grade
//!   (`approaching` < `overdue` < `seriously_overdue`);
//! - `min_headcount`: the case's headcount is at least this (常德 treats 5+ as a 集体访);
//! - `repeat_petition = true`: the case is linked as a repeat petition (重复信访) of an earlier
//!   one (`false`, the default, is no condition: it does not mean "not a repeat");
//! - `categories`: the case's category is one of these (empty, the default, is no condition).
//!
//! A rule with no condition at all is refused by [`validate_rules`], as are blank, whitespace
//! containing and duplicate names.
//!
//! # When a rule may fire
//!
//! Only for a case this node holds, whose status may be escalated by the lifecycle
//! (`registered` or `accepted`; not one awaiting a receiver, replied, closed, rejected, diverted,
//! forwarded out, under review or final) and that has no unresolved conflict (the lifecycle
//! refuses transitions during a conflict).
//!
//! # At most once per case per rule
//!
//! A rule has fired for a case when the case's events hold an `escalate` event made by this node
//! (its `node` is this node's ID) whose operator is `rule:<name>`. Such a rule never fires again
//! for that case, so a case the parent assigns back down does not bounce up again. The check reads
//! the events, not a local flag, so it survives restarts and holds on every replica. Another
//! rule, or the same rule name on another node (the township's after the village's), may still
//! fire; a manual escalation does not count as any rule firing.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{
    CaseSummary, Category, Event, EventKind, Status, WarningGrade, WarningThresholds,
};
use crate::warnings::{warnings, worst_grade};

/// Prefix of the operator recorded on an automatic escalation: `rule:<name>`.
pub const RULE_OPERATOR_PREFIX: &str = "rule:";

/// One automatic escalation rule (`[[escalation.rules]]` in the node config). All the conditions
/// it gives must hold for it to fire (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationRule {
    /// Unique among the node's rules, without whitespace; recorded as the operator `rule:<name>`.
    pub name: String,
    /// Fires when the case's worst warning grade is at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_overdue: Option<WarningGrade>,
    /// Fires when the case's headcount is at least this (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_headcount: Option<u32>,
    /// When true, fires only for a repeat petition (重复信访). False is no condition.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repeat_petition: bool,
    /// Fires when the case's category is one of these. Empty is no condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<Category>,
}

/// Why a list of rules is not usable. Each message names the rule to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error(
        "rule {index} (counting from 1) has an empty name: give each rule a name, e.g. \"overdue-serious\""
    )]
    EmptyName { index: usize },
    #[error(
        "rule {name:?}: the name must not contain whitespace (it is recorded as the operator \
         \"rule:<name>\")"
    )]
    NameWhitespace { name: String },
    #[error("rule {name:?} is defined more than once: rule names must be unique")]
    DuplicateName { name: String },
    #[error(
        "rule {name:?} has no condition: give at least one of when_overdue, min_headcount, \
         repeat_petition = true or categories"
    )]
    NoCondition { name: String },
    #[error("rule {name:?}: min_headcount must be at least 1")]
    ZeroHeadcount { name: String },
}

impl EscalationRule {
    /// A rule with this name and no condition yet (not valid until one is set).
    pub fn named(name: impl Into<String>) -> EscalationRule {
        EscalationRule {
            name: name.into(),
            when_overdue: None,
            min_headcount: None,
            repeat_petition: false,
            categories: Vec::new(),
        }
    }

    /// Whether the rule gives at least one condition.
    pub fn has_condition(&self) -> bool {
        self.when_overdue.is_some()
            || self.min_headcount.is_some()
            || self.repeat_petition
            || !self.categories.is_empty()
    }

    /// The operator recorded on the escalations this rule makes: `rule:<name>`.
    pub fn operator(&self) -> String {
        operator_for(&self.name)
    }

    /// Check one rule on its own (names' uniqueness is checked by [`validate_rules`]).
    /// `index` counts from 0 and is shown counting from 1.
    fn validate(&self, index: usize) -> Result<(), RuleError> {
        if self.name.trim().is_empty() {
            return Err(RuleError::EmptyName { index: index + 1 });
        }
        if self.name.chars().any(char::is_whitespace) {
            return Err(RuleError::NameWhitespace {
                name: self.name.clone(),
            });
        }
        if !self.has_condition() {
            return Err(RuleError::NoCondition {
                name: self.name.clone(),
            });
        }
        if self.min_headcount == Some(0) {
            return Err(RuleError::ZeroHeadcount {
                name: self.name.clone(),
            });
        }
        Ok(())
    }

    /// What matched, one phrase per condition, if every condition the rule gives holds for the
    /// case at `now`; `None` if any does not. Does not judge whether the case may be escalated.
    fn matches(
        &self,
        case: &CaseSummary,
        thresholds: &WarningThresholds,
        now: DateTime<Utc>,
    ) -> Option<Vec<String>> {
        let mut matched = Vec::new();
        if let Some(at_least) = self.when_overdue {
            let worst = worst_grade(&warnings(case, now, thresholds))?;
            if worst < at_least {
                return None;
            }
            matched.push(grade_phrase(worst).to_owned());
        }
        if let Some(at_least) = self.min_headcount {
            if case.headcount < at_least {
                return None;
            }
            matched.push(format!(
                "headcount {} (at least {at_least})",
                case.headcount
            ));
        }
        if self.repeat_petition {
            let earlier = case.repeat_of.as_deref()?;
            matched.push(format!("repeat petition (重复信访) of {earlier}"));
        }
        if !self.categories.is_empty() {
            if !self.categories.contains(&case.category) {
                return None;
            }
            matched.push(format!("category {}", category_name(case.category)));
        }
        Some(matched)
    }
}

/// Check a node's rules: each has a non-blank name without whitespace and at least one condition,
/// `min_headcount` is at least 1, and no name is used twice.
pub fn validate_rules(rules: &[EscalationRule]) -> Result<(), RuleError> {
    let mut names = BTreeSet::new();
    for (index, rule) in rules.iter().enumerate() {
        rule.validate(index)?;
        if !names.insert(rule.name.as_str()) {
            return Err(RuleError::DuplicateName {
                name: rule.name.clone(),
            });
        }
    }
    Ok(())
}

/// Whether a person may not act under `name` because it reads as a rule's operator: `rule:` in
/// any letter case, with the ASCII colon or the full-width one (`：`, which Chinese input methods
/// type), so that nobody reading a case's history can take a person's change for a rule's.
pub fn is_reserved_operator_name(name: &str) -> bool {
    let name = name.trim_start();
    let prefix_letters = RULE_OPERATOR_PREFIX.trim_end_matches(':');
    let Some(rest) = name
        .get(..prefix_letters.len())
        .filter(|head| head.eq_ignore_ascii_case(prefix_letters))
        .map(|_| &name[prefix_letters.len()..])
    else {
        return false;
    };
    rest.starts_with(':') || rest.starts_with('：')
}

/// The operator recorded on an escalation made by the rule named `name`: `rule:<name>`.
pub fn operator_for(name: &str) -> String {
    format!("{RULE_OPERATOR_PREFIX}{name}")
}

/// What the rules are judged against besides the case: the node asking and the time.
#[derive(Debug, Clone, Copy)]
pub struct RuleContext<'a> {
    /// This node's ID: rules fire only for cases it holds.
    pub node: &'a str,
    /// The node's `[warnings]` thresholds, for `when_overdue`.
    pub thresholds: &'a WarningThresholds,
    pub now: DateTime<Utc>,
}

/// A rule that fires for a case, with what matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing<'r> {
    pub rule: &'r EscalationRule,
    /// One phrase per condition of the rule, in the order the rule's fields are declared.
    pub matched: Vec<String>,
}

impl Firing<'_> {
    /// The escalation's reason, naming the rule and what matched, e.g.
    /// `自动上报 rule overdue-serious: seriously overdue (严重超时)`.
    pub fn reason(&self) -> String {
        format!(
            "自动上报 rule {}: {}",
            self.rule.name,
            self.matched.join("; ")
        )
    }

    /// The operator to record: `rule:<name>`.
    pub fn operator(&self) -> String {
        self.rule.operator()
    }
}

/// Whether the lifecycle lets `node` escalate the case now: it holds it, the status is
/// `registered` or `accepted`, and there is no unresolved conflict.
pub fn may_escalate(case: &CaseSummary, node: &str) -> bool {
    case.holder == node
        && matches!(case.status, Status::Registered | Status::Accepted)
        && !case.in_conflict
}

/// The rules whose conditions hold for the case, in the order given, if the case may be
/// escalated by this node; whether they already fired is not judged (that needs the events).
/// A cheap first pass over summaries: only a case with a match needs its events loaded.
pub fn matching<'r>(
    rules: &'r [EscalationRule],
    case: &CaseSummary,
    context: &RuleContext<'_>,
) -> Vec<Firing<'r>> {
    if !may_escalate(case, context.node) {
        return Vec::new();
    }
    rules
        .iter()
        .filter_map(|rule| {
            rule.matches(case, context.thresholds, context.now)
                .map(|matched| Firing { rule, matched })
        })
        .collect()
}

/// Whether the rule named `name` already escalated this case from `node`: an `escalate` event
/// made by `node` with the operator `rule:<name>` is among the case's events.
pub fn already_fired(name: &str, node: &str, events: &[Event]) -> bool {
    let operator = operator_for(name);
    events.iter().any(|event| {
        matches!(event.kind, EventKind::Escalate { .. })
            && event.node == node
            && event.operator == operator
    })
}

/// The first rule (in the order given) that fires for the case at `context.now`, or `None`.
///
/// `events` are the case's events, from which a rule that already fired is recognised (see the
/// module documentation); `case` is the summary derived from the same events.
pub fn first_firing<'r>(
    rules: &'r [EscalationRule],
    case: &CaseSummary,
    events: &[Event],
    context: &RuleContext<'_>,
) -> Option<Firing<'r>> {
    matching(rules, case, context)
        .into_iter()
        .find(|firing| !already_fired(&firing.rule.name, context.node, events))
}

fn grade_phrase(grade: WarningGrade) -> &'static str {
    match grade {
        WarningGrade::Approaching => "deadline approaching (预警)",
        WarningGrade::Overdue => "overdue (超时)",
        WarningGrade::SeriouslyOverdue => "seriously overdue (严重超时)",
    }
}

/// The category as written in the config and the API (`wage_arrears`).
fn category_name(category: Category) -> String {
    match serde_json::to_value(category) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{category:?}"),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::summary::test_support::{day, summary};

    const NODE: &str = "node-village";

    fn thresholds() -> WarningThresholds {
        WarningThresholds {
            approaching_days: 3,
            serious_overdue_days: 15,
        }
    }

    fn context(thresholds: &WarningThresholds, now: DateTime<Utc>) -> RuleContext<'_> {
        RuleContext {
            node: NODE,
            thresholds,
            now,
        }
    }

    fn rule(name: &str, edit: impl FnOnce(&mut EscalationRule)) -> EscalationRule {
        let mut rule = EscalationRule::named(name);
        edit(&mut rule);
        rule
    }

    /// A registered case held by [`NODE`] whose acceptance deadline is day 16.
    fn registered() -> CaseSummary {
        let mut case = summary(Status::Registered);
        case.timeline.acceptance_deadline = Some(day(16));
        case
    }

    /// An event built from JSON, so the test does not depend on every field of [`Event`].
    fn event(kind: serde_json::Value, node: &str, operator: &str) -> Event {
        let mut value = serde_json::json!({
            "id": format!("e-{operator}"),
            "at": day(20),
            "node": node,
            "operator": operator,
            "prev": "e-register",
        });
        if let (Some(object), Some(kind)) = (value.as_object_mut(), kind.as_object()) {
            object.extend(kind.clone());
        }
        serde_json::from_value(value).expect("a valid event")
    }

    fn escalated_by(node: &str, operator: &str) -> Event {
        event(
            serde_json::json!({
                "kind": "escalate",
                "payload": {"to_node": "node-township", "reason": "自动上报"},
            }),
            node,
            operator,
        )
    }

    fn fired<'r>(
        rules: &'r [EscalationRule],
        case: &CaseSummary,
        events: &[Event],
        now: DateTime<Utc>,
    ) -> Option<Firing<'r>> {
        let thresholds = thresholds();
        first_firing(rules, case, events, &context(&thresholds, now))
    }

    #[test]
    fn overdue_condition_fires_at_or_above_its_grade() {
        let rules = [rule("overdue-serious", |rule| {
            rule.when_overdue = Some(WarningGrade::SeriouslyOverdue);
        })];
        let case = registered();
        // Day 16 is due; day 20 is overdue, day 40 more than 15 days overdue.
        assert_eq!(fired(&rules, &case, &[], day(10)), None);
        assert_eq!(fired(&rules, &case, &[], day(20)), None);
        let firing = fired(&rules, &case, &[], day(40)).expect("seriously overdue fires");
        assert_eq!(firing.rule.name, "overdue-serious");
        assert_eq!(
            firing.reason(),
            "自动上报 rule overdue-serious: seriously overdue (严重超时)"
        );
        assert_eq!(firing.operator(), "rule:overdue-serious");

        let overdue = [rule("overdue", |rule| {
            rule.when_overdue = Some(WarningGrade::Overdue);
        })];
        assert_eq!(fired(&overdue, &case, &[], day(15)), None);
        let at_overdue = fired(&overdue, &case, &[], day(20)).expect("overdue fires");
        assert_eq!(at_overdue.matched, vec!["overdue (超时)".to_owned()]);
        let above = fired(&overdue, &case, &[], day(40)).expect("a worse grade also fires");
        assert_eq!(
            above.matched,
            vec!["seriously overdue (严重超时)".to_owned()]
        );

        let mut no_deadline = registered();
        no_deadline.timeline.acceptance_deadline = None;
        assert_eq!(fired(&overdue, &no_deadline, &[], day(40)), None);
    }

    #[test]
    fn headcount_condition_fires_from_the_minimum() {
        let rules = [rule("group-visit", |rule| rule.min_headcount = Some(5))];
        let mut case = registered();
        case.headcount = 4;
        assert_eq!(fired(&rules, &case, &[], day(2)), None);
        case.headcount = 5;
        let firing = fired(&rules, &case, &[], day(2)).expect("5 people fire");
        assert_eq!(
            firing.reason(),
            "自动上报 rule group-visit: headcount 5 (at least 5)"
        );
        case.headcount = 30;
        assert!(fired(&rules, &case, &[], day(2)).is_some());
    }

    #[test]
    fn repeat_condition_fires_only_for_a_linked_repeat() {
        let rules = [rule("repeat", |rule| rule.repeat_petition = true)];
        let mut case = registered();
        assert_eq!(fired(&rules, &case, &[], day(2)), None);
        case.repeat_of = Some("430702001001-2025-000010".to_owned());
        let firing = fired(&rules, &case, &[], day(2)).expect("a repeat fires");
        assert_eq!(
            firing.reason(),
            "自动上报 rule repeat: repeat petition (重复信访) of 430702001001-2025-000010"
        );
    }

    #[test]
    fn category_condition_fires_for_a_listed_category() {
        let rules = [rule("land", |rule| {
            rule.categories = vec![Category::LandRequisition, Category::DemolitionRelocation];
        })];
        let mut case = registered();
        case.category = Category::WageArrears;
        assert_eq!(fired(&rules, &case, &[], day(2)), None);
        case.category = Category::DemolitionRelocation;
        let firing = fired(&rules, &case, &[], day(2)).expect("a listed category fires");
        assert_eq!(
            firing.reason(),
            "自动上报 rule land: category demolition_relocation"
        );
    }

    #[test]
    fn all_conditions_of_a_rule_must_hold() {
        let rules = [rule("big-land-overdue", |rule| {
            rule.when_overdue = Some(WarningGrade::Overdue);
            rule.min_headcount = Some(5);
            rule.categories = vec![Category::LandRequisition];
        })];
        let mut case = registered();
        case.headcount = 8;
        case.category = Category::LandRequisition;
        // Everything but the deadline.
        assert_eq!(fired(&rules, &case, &[], day(10)), None);
        let firing = fired(&rules, &case, &[], day(20)).expect("all three hold");
        assert_eq!(
            firing.reason(),
            "自动上报 rule big-land-overdue: overdue (超时); headcount 8 (at least 5); \
             category land_requisition"
        );
        case.headcount = 4;
        assert_eq!(fired(&rules, &case, &[], day(20)), None);
        case.headcount = 8;
        case.category = Category::Labour;
        assert_eq!(fired(&rules, &case, &[], day(20)), None);
    }

    #[test]
    fn the_first_matching_rule_in_order_fires() {
        let rules = [
            rule("repeat", |rule| rule.repeat_petition = true),
            rule("group", |rule| rule.min_headcount = Some(5)),
            rule("big-group", |rule| rule.min_headcount = Some(2)),
        ];
        let mut case = registered();
        case.headcount = 6;
        let firing = fired(&rules, &case, &[], day(2)).expect("group fires");
        assert_eq!(firing.rule.name, "group");
        let thresholds = thresholds();
        let all = matching(&rules, &case, &context(&thresholds, day(2)));
        let names: Vec<&str> = all.iter().map(|firing| firing.rule.name.as_str()).collect();
        assert_eq!(names, ["group", "big-group"]);
    }

    #[test]
    fn a_rule_fires_once_per_case_and_node() {
        let rules = [
            rule("group", |rule| rule.min_headcount = Some(5)),
            rule("wages", |rule| {
                rule.categories = vec![Category::WageArrears]
            }),
        ];
        let mut case = registered();
        case.headcount = 6;
        // Escalated by the rule, assigned back down: the rule does not fire again, the next does.
        let history = [escalated_by(NODE, "rule:group")];
        assert!(already_fired("group", NODE, &history));
        let firing = fired(&rules, &case, &history, day(2)).expect("the other rule fires");
        assert_eq!(firing.rule.name, "wages");
        let both = [
            escalated_by(NODE, "rule:group"),
            escalated_by(NODE, "rule:wages"),
        ];
        assert_eq!(fired(&rules, &case, &both, day(2)), None);

        // Neither a manual escalation, another node's rule of the same name, nor another kind
        // of event made as the rule counts as the rule having fired here.
        let not_this_rule = [
            escalated_by(NODE, "李建国"),
            escalated_by("node-other", "rule:group"),
            event(
                serde_json::json!({"kind": "note", "payload": {"text": "x"}}),
                NODE,
                "rule:group",
            ),
        ];
        assert!(!already_fired("group", NODE, &not_this_rule));
        let firing = fired(&rules, &case, &not_this_rule, day(2)).expect("group still fires");
        assert_eq!(firing.rule.name, "group");
    }

    #[test]
    fn only_a_case_this_node_holds_fires() {
        let rules = [rule("group", |rule| rule.min_headcount = Some(5))];
        let mut case = registered();
        case.headcount = 6;
        case.holder = "node-township".to_owned();
        assert_eq!(fired(&rules, &case, &[], day(2)), None);
        assert!(!may_escalate(&case, NODE));
    }

    #[test]
    fn only_a_registered_or_accepted_case_without_conflict_fires() {
        let rules = [rule("group", |rule| rule.min_headcount = Some(5))];
        let all = [
            (Status::Registered, true),
            (Status::Accepted, true),
            (Status::AwaitingReceiver, false),
            (Status::NotAccepted, false),
            (Status::Diverted, false),
            (Status::ForwardedOut, false),
            (Status::Replied, false),
            (Status::Evaluated, false),
            (Status::Closed, false),
            (Status::UnderReview, false),
            (Status::Final, false),
        ];
        for (status, fires) in all {
            let mut case = summary(status);
            case.headcount = 6;
            assert_eq!(
                fired(&rules, &case, &[], day(2)).is_some(),
                fires,
                "{status:?}"
            );
        }
        let mut conflicted = summary(Status::Accepted);
        conflicted.headcount = 6;
        conflicted.in_conflict = true;
        assert_eq!(fired(&rules, &conflicted, &[], day(2)), None);
    }

    #[test]
    fn overdue_by_a_directive_counts_while_the_case_is_open() {
        let rules = [rule("overdue", |rule| {
            rule.when_overdue = Some(WarningGrade::Overdue);
        })];
        let mut case = summary(Status::Accepted);
        case.timeline.handling_deadline = Some(day(60));
        case.directives = vec![crate::summary::test_support::directive(
            "d1",
            day(10),
            crate::model::DirectiveStatus::Issued,
        )];
        let firing = fired(&rules, &case, &[], day(12)).expect("the directive is overdue");
        assert_eq!(firing.matched, vec!["overdue (超时)".to_owned()]);
        assert_eq!(fired(&rules, &case, &[], day(12) - Duration::days(5)), None);
    }

    #[test]
    fn rules_are_validated_with_the_bad_rule_named() {
        let good = rule("group", |rule| rule.min_headcount = Some(5));
        assert_eq!(validate_rules(&[]), Ok(()));
        assert_eq!(validate_rules(std::slice::from_ref(&good)), Ok(()));

        let empty = validate_rules(&[good.clone(), rule("  ", |rule| rule.repeat_petition = true)])
            .expect_err("a blank name is refused");
        assert_eq!(empty, RuleError::EmptyName { index: 2 });
        assert!(empty.to_string().contains("rule 2"), "{empty}");

        let spaced = validate_rules(&[rule("big group", |rule| rule.min_headcount = Some(5))])
            .expect_err("whitespace in a name is refused");
        assert!(spaced.to_string().contains("\"big group\""), "{spaced}");

        let duplicate =
            validate_rules(&[good.clone(), good.clone()]).expect_err("a duplicate name is refused");
        assert_eq!(
            duplicate.to_string(),
            "rule \"group\" is defined more than once: rule names must be unique"
        );

        let bare = validate_rules(&[EscalationRule::named("nothing")])
            .expect_err("a rule without condition is refused");
        assert!(
            bare.to_string().contains("\"nothing\" has no condition"),
            "{bare}"
        );
        let not_repeat = rule("not-repeat", |rule| rule.repeat_petition = false);
        assert_eq!(
            validate_rules(&[not_repeat]),
            Err(RuleError::NoCondition {
                name: "not-repeat".to_owned()
            })
        );

        let zero = validate_rules(&[rule("zero", |rule| rule.min_headcount = Some(0))])
            .expect_err("min_headcount 0 is refused");
        assert!(zero.to_string().contains("at least 1"), "{zero}");
    }

    #[test]
    fn rules_read_from_toml_like_json_with_snake_case_values() {
        let rule: EscalationRule = serde_json::from_value(serde_json::json!({
            "name": "overdue-land",
            "when_overdue": "seriously_overdue",
            "categories": ["land_requisition"],
        }))
        .expect("a rule");
        assert_eq!(rule.when_overdue, Some(WarningGrade::SeriouslyOverdue));
        assert_eq!(rule.categories, vec![Category::LandRequisition]);
        assert!(!rule.repeat_petition);
        assert_eq!(rule.min_headcount, None);
        let typo = serde_json::from_value::<EscalationRule>(serde_json::json!({
            "name": "x",
            "min_headcont": 5,
        }));
        assert!(typo.is_err());
    }
}
