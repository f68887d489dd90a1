//! Automatic escalation (自动上报): the node's `[escalation]` rules applied to the cases it holds.
//!
//! Which rule fires is decided by [`fengqiao_case::escalation_rules`] (pure, `now` passed in);
//! this module walks the node's cases, and for each case a rule fires on appends an ordinary
//! `escalate` event to the node's parent (`[federation.parent]`) through [`Node::append`], with
//! the operator `rule:<name>`: it goes through the same lifecycle checks, is stamped and stored
//! like any event, and replicates to the parent as usual. A rule fires at most once per case
//! (recognised from the case's events), so a case assigned back down is not sent up again by it.
//!
//! [`run_periodically`] runs [`evaluate`] every `escalation.check_interval_seconds` on a blocking
//! thread until the node stops.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fengqiao_case::escalation_rules::{EscalationRule, RuleContext, first_firing, matching};
use fengqiao_case::{AppendEvent, CaseId, CaseSummary, Event, EventKind};
use fengqiao_store::CaseFilter;
use tokio::sync::watch;

use super::{Node, ServiceError};
use crate::config::NodeConfig;

/// The node ID of the parent this node escalates to, if it has one.
pub fn parent_node_id(config: &NodeConfig) -> Option<&str> {
    config
        .federation
        .as_ref()
        .and_then(|federation| federation.parent.as_ref())
        .map(|parent| parent.node_id.as_str())
}

/// Apply the node's escalation rules at `now` to every case it holds: each case for which a rule
/// fires is escalated to the parent. Returns the cases escalated, each with the rule that fired.
///
/// A node without rules or without a parent does nothing. A failure on one case (its document
/// unreadable, the lifecycle refusing the escalation) is logged and the other cases go on; only a
/// failure to list the node's cases is returned.
pub fn evaluate(node: &Node, now: DateTime<Utc>) -> Result<Vec<(CaseId, String)>, ServiceError> {
    let config = node.config();
    let rules = &config.escalation.rules;
    if rules.is_empty() {
        return Ok(Vec::new());
    }
    let Some(parent) = parent_node_id(config) else {
        return Ok(Vec::new());
    };
    let context = RuleContext {
        node: node.node_id(),
        thresholds: &config.warnings,
        now,
    };
    let held = node.store().list(&CaseFilter {
        holder: Some(node.node_id().to_owned()),
        ..CaseFilter::default()
    })?;
    let mut escalated = Vec::new();
    for case in held {
        // Judged on the summary first: only a case some rule matches needs its events loaded.
        let candidates = matching(rules, &case, &context);
        let Some(first_candidate) = candidates.first() else {
            continue;
        };
        if let Some(rule) = escalate_case(node, &case, first_candidate.rule, parent, &context) {
            escalated.push((case.number.clone(), rule));
        }
    }
    Ok(escalated)
}

/// Escalate one case if a rule that has not fired for it yet fires; returns that rule's name.
/// A failure is logged with the case, the rule (`candidate` when none was chosen yet) and the
/// error, and is not returned: one case must not stop the others.
fn escalate_case(
    node: &Node,
    case: &CaseSummary,
    candidate: &EscalationRule,
    parent: &str,
    context: &RuleContext<'_>,
) -> Option<String> {
    let number = &case.number;
    let events = match load_events(node, number) {
        Ok(events) => events,
        Err(error) => {
            tracing::warn!(
                case = %number,
                rule = %candidate.name,
                %error,
                "automatic escalation failed: cannot read the case"
            );
            return None;
        }
    };
    let rules = &node.config().escalation.rules;
    let firing = first_firing(rules, case, &events, context)?;
    let reason = firing.reason();
    let request = AppendEvent {
        backdated_reason: None,
        kind: EventKind::Escalate {
            to_node: parent.to_owned(),
            reason: reason.clone(),
        },
        at: None,
    };
    // The node's own rule acts as a supervisor would (escalating is a supervisor's action),
    // recorded under the rule's name.
    let actor = fengqiao_accounts::Actor {
        operator: firing.operator(),
        roles: fengqiao_accounts::RoleSet::of(&[fengqiao_accounts::Role::Supervisor]),
    };
    if let Err(error) = node.append(&actor, context.now, number, request) {
        tracing::warn!(
            case = %number,
            rule = %firing.rule.name,
            %error,
            "automatic escalation failed"
        );
        return None;
    }
    tracing::info!(
        case = %number,
        rule = %firing.rule.name,
        to_node = parent,
        %reason,
        "case escalated automatically"
    );
    Some(firing.rule.name.clone())
}

/// Read without caching: a periodic pass over every case a rule matches (most of them already
/// escalated by it) should not push the cases people work on out of the cache.
fn load_events(node: &Node, number: &str) -> Result<Vec<Event>, ServiceError> {
    let events = node
        .store()
        .with_case_uncached(number, |document| document.events())?
        .ok_or_else(|| ServiceError::NotFound(number.to_owned()))??;
    Ok(events)
}

/// Run [`evaluate`] now and then every `escalation.check_interval_seconds`, each time on a
/// blocking thread, until `stop` turns true (or its sender is dropped). Returns at once when the
/// node has no rules, or no parent (logged once, at debug).
pub async fn run_periodically(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let section = &node.config().escalation;
    if section.rules.is_empty() {
        return;
    }
    if parent_node_id(node.config()).is_none() {
        tracing::debug!(
            rules = section.rules.len(),
            "automatic escalation is off: the node has no [federation.parent] to escalate to"
        );
        return;
    }
    let interval = Duration::from_secs(section.check_interval_seconds.max(1));
    tracing::info!(
        rules = section.rules.len(),
        every_seconds = interval.as_secs(),
        "automatic escalation started"
    );
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
        let worker = Arc::clone(&node);
        match tokio::task::spawn_blocking(move || evaluate(&worker, crate::wall_clock::now())).await
        {
            Ok(Ok(escalated)) if !escalated.is_empty() => {
                tracing::debug!(cases = escalated.len(), "automatic escalation check done");
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "automatic escalation check failed"),
            Err(error) => tracing::error!(%error, "automatic escalation check stopped abnormally"),
        }
    }
    tracing::debug!("automatic escalation stopped");
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::path::Path;

    use chrono::TimeZone;
    use fengqiao_case::{
        Category, Channel, Location, MatterType, Petitioner, RegisterCase, Status, Tier,
    };

    use super::*;
    use crate::config::{self, FederationParent, FederationSection};
    use crate::service::{InitOptions, init_node};

    const VILLAGE: &str = "430702001002";
    const PARENT: &str = "0123456789abcdef0123456789abcdef";
    const OPERATOR: &str = "李建国";

    /// The account the tests act as: both case roles, under the operator name they always used.
    fn tester() -> fengqiao_accounts::Actor {
        fengqiao_accounts::Actor {
            operator: OPERATOR.to_owned(),
            roles: fengqiao_accounts::RoleSet::of(&[
                fengqiao_accounts::Role::Operator,
                fengqiao_accounts::Role::Supervisor,
            ]),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 2, 0, 0)
            .single()
            .expect("a valid time")
    }

    fn group_rule() -> EscalationRule {
        EscalationRule {
            min_headcount: Some(5),
            ..EscalationRule::named("group-visit")
        }
    }

    /// Create a village node in `dir` with these rules and, if `parent` is given, that parent.
    fn create_village(dir: &Path, rules: Vec<EscalationRule>, parent: Option<&str>) {
        init_node(
            dir,
            InitOptions {
                name: "芦荻山村调解室".into(),
                tier: Tier::Village,
                region_code: VILLAGE.into(),
                listen: None,
                parent: None,
                lan_names: Vec::new(),
            },
        )
        .expect("init the node");
        write_config(dir, rules, parent);
    }

    fn write_config(dir: &Path, rules: Vec<EscalationRule>, parent: Option<&str>) {
        let mut config = config::load(dir).expect("load the config");
        config.federation = parent.map(|parent| FederationSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            parent: Some(FederationParent {
                address: SocketAddr::from(([127, 0, 0, 1], 7380)),
                node_id: parent.to_owned(),
                name: "芦荻山乡矛盾纠纷调处中心".into(),
                region_code: "430702001".into(),
                aliases: Vec::new(),
            }),
            children: Vec::new(),
        });
        config.escalation.rules = rules;
        config::save(dir, &config).expect("save the config");
    }

    fn open_village(rules: Vec<EscalationRule>, parent: Option<&str>) -> (tempfile::TempDir, Node) {
        let temp = tempfile::tempdir().expect("a temporary directory");
        let dir = temp.path().join("village");
        create_village(&dir, rules, parent);
        let node = Node::open(&dir).expect("open the node");
        (temp, node)
    }

    fn register(node: &Node, headcount: u32) -> CaseId {
        let request = RegisterCase {
            backdated_reason: None,
            number: None,
            registered_at: None,
            channel: Channel::Visit,
            petitioners: vec![Petitioner {
                name: "王秀英".into(),
                id_number: "430702198503120029".into(),
                id_type: Default::default(),
                phone: "13807361234".into(),
                address: "芦荻山乡 3 组".into(),
                representative: true,
            }],
            headcount,
            respondent: "芦荻山村民委员会".into(),
            category: Category::LandRequisition,
            matter_type: MatterType::Appeal,
            litigation_related: false,
            summary: "反映征地补偿款未发放".into(),
            location: Location {
                region_code: VILLAGE.into(),
                village: "芦荻山村".into(),
                grid: "第三网格".into(),
                grid_worker: "李建国".into(),
            },
            ownership: Default::default(),
        };
        node.register(&tester(), now(), request)
            .expect("register the case")
            .header
            .number
    }

    fn events(node: &Node, number: &str) -> Vec<Event> {
        load_events(node, number).expect("the case's events")
    }

    #[test]
    fn a_big_group_is_escalated_once_to_the_parent_and_a_small_one_is_not() {
        let (_temp, node) = open_village(vec![group_rule()], Some(PARENT));
        let big = register(&node, 6);
        let small = register(&node, 2);

        let escalated = evaluate(&node, now()).expect("evaluate");
        assert_eq!(escalated, vec![(big.clone(), "group-visit".to_owned())]);

        let big_events = events(&node, &big);
        let escalation = big_events.last().expect("an event");
        assert_eq!(escalation.operator, "rule:group-visit");
        assert_eq!(escalation.node, node.node_id());
        match &escalation.kind {
            EventKind::Escalate { to_node, reason } => {
                assert_eq!(to_node, PARENT);
                assert_eq!(
                    reason,
                    "自动上报 rule group-visit: headcount 6 (at least 5)"
                );
            }
            other => panic!("expected an escalation, found {other:?}"),
        }
        let summaries = node
            .store()
            .list(&CaseFilter::default())
            .expect("list the cases");
        let holder = |number: &str| {
            summaries
                .iter()
                .find(|summary| summary.number == number)
                .map(|summary| (summary.holder.clone(), summary.status))
                .expect("the case is listed")
        };
        assert_eq!(holder(&big), (PARENT.to_owned(), Status::Registered));
        assert_eq!(
            holder(&small),
            (node.node_id().to_owned(), Status::Registered)
        );
        assert_eq!(events(&node, &small).len(), 1);

        let again = evaluate(&node, now() + chrono::Duration::minutes(1)).expect("evaluate");
        assert!(again.is_empty(), "{again:?}");
        assert_eq!(events(&node, &big).len(), big_events.len());
    }

    #[test]
    fn a_node_without_a_parent_escalates_nothing() {
        let (_temp, node) = open_village(vec![group_rule()], None);
        let big = register(&node, 6);
        assert!(evaluate(&node, now()).expect("evaluate").is_empty());
        assert_eq!(events(&node, &big).len(), 1);
    }

    #[test]
    fn a_node_without_rules_escalates_nothing() {
        let (_temp, node) = open_village(Vec::new(), Some(PARENT));
        let big = register(&node, 6);
        assert!(evaluate(&node, now()).expect("evaluate").is_empty());
        assert_eq!(events(&node, &big).len(), 1);
    }

    #[test]
    fn a_refused_escalation_is_logged_and_the_others_go_on() {
        // A parent configured with the node's own ID: the lifecycle refuses every escalation
        // ("already holds the case"), and evaluate reports none rather than failing.
        let temp = tempfile::tempdir().expect("a temporary directory");
        let dir = temp.path().join("village");
        create_village(&dir, vec![group_rule()], None);
        let own_id = Node::open(&dir)
            .expect("open the node")
            .node_id()
            .to_owned();
        write_config(&dir, vec![group_rule()], Some(&own_id));
        let node = Node::open(&dir).expect("reopen the node");
        let first = register(&node, 6);
        let second = register(&node, 7);
        assert!(evaluate(&node, now()).expect("evaluate").is_empty());
        assert_eq!(events(&node, &first).len(), 1);
        assert_eq!(events(&node, &second).len(), 1);
    }

    #[test]
    fn the_periodic_task_escalates_and_stops_when_told() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let (_temp, node) = open_village(vec![group_rule()], Some(PARENT));
        let big = register(&node, 6);
        let node = Arc::new(node);
        runtime.block_on(async {
            let (stop, stopped) = watch::channel(false);
            let task = tokio::spawn(run_periodically(Arc::clone(&node), stopped));
            // The first check runs at once; wait for it without depending on its timing.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while events(&node, &big).len() < 2 {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the case was not escalated"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            stop.send(true).expect("the task listens");
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the task stops")
                .expect("the task ends normally");
        });
        let last = events(&node, &big).pop().expect("an event");
        assert_eq!(last.operator, "rule:group-visit");
    }

    #[test]
    fn the_periodic_task_returns_at_once_without_a_parent() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let (_temp, node) = open_village(vec![group_rule()], None);
        let (_stop, stopped) = watch::channel(false);
        runtime.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(5),
                run_periodically(Arc::new(node), stopped),
            )
            .await
            .expect("returns without waiting for the stop signal");
        });
    }
}
