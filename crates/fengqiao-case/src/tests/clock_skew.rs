//! Nodes whose clocks are days off: events ordered by the hybrid clock keep cause before effect,
//! while deadlines keep counting from wall time.

use chrono::{DateTime, Duration, Utc};

use super::support::{COUNTY, VILLAGE, accept, china, header};
use crate::clock::{DEFAULT_MAX_AHEAD_MS, HybridClock};
use crate::derive::derive;
use crate::model::{DirectiveStatus, Event, EventKind, HybridTimestamp, Limits, Status};

/// A node's clock: real time plus its error, and its hybrid clock.
struct SkewedNode {
    name: &'static str,
    error: Duration,
    clock: HybridClock,
}

impl SkewedNode {
    fn new(name: &'static str, error_days: i64) -> SkewedNode {
        SkewedNode {
            name,
            error: Duration::days(error_days),
            clock: HybridClock::new(HybridTimestamp::ZERO, DEFAULT_MAX_AHEAD_MS),
        }
    }

    /// An event made at real time `real`, stamped as this node's clocks say.
    /// The case's registration, made at `at` as this node's clock reads it.
    fn register(&mut self, at: DateTime<Utc>) -> Event {
        self.make(
            "register",
            EventKind::Register {
                header: Some(Box::new(header())),
                policy_version: 0,
            },
            None,
            at,
        )
    }

    fn make(
        &mut self,
        id: &str,
        kind: EventKind,
        prev: Option<&str>,
        real: DateTime<Utc>,
    ) -> Event {
        let wall = real + self.error;
        Event {
            id: id.to_owned(),
            kind,
            at: wall,
            node: self.name.to_owned(),
            operator: "经办人".to_owned(),
            prev: prev.map(str::to_owned),
            hlc: self.clock.tick(wall),
            signature: None,
            imported: None,
            backdated_reason: None,
        }
    }

    /// This node receives `event` at real time `real`: its time is taken into the clock only
    /// when it is at most 5 minutes ahead of this node's wall clock; the event is kept anyway.
    fn receive(&mut self, event: &Event, real: DateTime<Utc>) -> bool {
        self.clock.observe(event.hlc, real + self.error).is_ok()
    }
}

fn issue(directive: &str) -> EventKind {
    EventKind::IssueDirective {
        directive: directive.to_owned(),
        target_node: VILLAGE.to_owned(),
        requirement: "三日内上报处理进展".to_owned(),
        due: super::support::date(3, 20),
        listed: false,
    }
}

#[test]
fn a_village_three_days_slow_answering_a_county_three_days_fast_is_applied_after_it() {
    let mut village = SkewedNode::new(VILLAGE, -3);
    let mut county = SkewedNode::new(COUNTY, 3);
    let register = village.register(china(3, 2, 9));
    assert!(
        county.receive(&register, china(3, 2, 9)),
        "a slow peer's time is taken in"
    );
    let accepted = village.make("accept", accept(), Some("register"), china(3, 2, 10));
    county.receive(&accepted, china(3, 2, 10));
    let directive = county.make("issue", issue("D1"), None, china(3, 3, 9));
    // Six days ahead of the village's clock: not taken in, so one fast office does not drag
    // the village's clock (and every clock the village talks to) days ahead.
    assert!(!village.receive(&directive, china(3, 3, 10)));
    // One hour after the directive really was issued, by a clock that says six days earlier.
    let acknowledged = village.make(
        "ack",
        EventKind::AcknowledgeDirective {
            directive: "D1".to_owned(),
        },
        None,
        china(3, 3, 10),
    );
    assert!(
        acknowledged.at < directive.at,
        "wall times disagree with causality"
    );
    assert!(
        acknowledged.hlc < directive.hlc,
        "nor does the hybrid clock, which did not take the fast county's time in"
    );
    assert_eq!(
        acknowledged.hlc.wall_ms,
        (china(3, 3, 10) - Duration::days(3)).timestamp_millis(),
        "the village's clock stays its own"
    );

    let events = vec![register, accepted, directive, acknowledged];
    let state = derive(&header(), &events, &Limits::default());
    // The acknowledgement follows the directive in cause, so derive applies it after it.
    assert!(state.invalid.is_empty(), "{:?}", state.invalid);
    // And a person is told the times are in doubt: dated before the directive it answers.
    assert_eq!(state.time_flags.len(), 1, "{:#?}", state.time_flags);
    assert!(
        state.time_flags[0].contains("before the issue_directive issue"),
        "{:#?}",
        state.time_flags
    );
    assert_eq!(state.directives[0].status, DirectiveStatus::Acknowledged);
    assert_eq!(state.status, Status::Accepted);

    // Any order of arrival gives the same state.
    let mut reversed = events.clone();
    reversed.reverse();
    assert_eq!(derive(&header(), &reversed, &Limits::default()), state);

    // Deadlines count from the registering office's wall time, as the regulation counts days:
    // a village whose clock is 3 days slow starts the 15-day acceptance limit 3 days early.
    let registered_at = state.timeline.registered_at.expect("registered");
    assert_eq!(registered_at, china(3, 2, 9) - Duration::days(3));
}

#[test]
fn events_without_a_hybrid_time_keep_wall_time_order() {
    // Schema-1 documents carry no hybrid time: they order as they always did.
    let mut village = SkewedNode::new(VILLAGE, 0);
    let register = village.register(china(3, 2, 9));
    let mut accepted = village.make("accept", accept(), Some("register"), china(3, 2, 10));
    let mut old_register = register.clone();
    old_register.hlc = HybridTimestamp::ZERO;
    accepted.hlc = HybridTimestamp::ZERO;
    let state = derive(&header(), &[accepted, old_register], &Limits::default());
    assert_eq!(state.status, Status::Accepted);
    assert!(state.invalid.is_empty());
}
