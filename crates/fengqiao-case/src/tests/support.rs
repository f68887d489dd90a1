//! Builders shared by the crate's lifecycle tests: a sample header, China-time instants, a case
//! harness that appends events with a virtual clock.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use crate::appending::{append, register};
use crate::authority::Hierarchy;
use crate::case_error::CaseError;
use crate::deadlines::china_offset;
use crate::document::CaseDocument;
use crate::model::{CaseHeader, CaseState, EventKind, Limits};

pub const VILLAGE: &str = "node-village";
pub const TOWNSHIP: &str = "node-township";
pub const COUNTY: &str = "node-county";
/// Another village of the township, a sibling of `VILLAGE`.
pub const SIBLING: &str = "node-sibling-village";
pub const ACTOR_A: [u8; 16] = [0xa1; 16];
pub const ACTOR_B: [u8; 16] = [0xb2; 16];

/// An instant given in China local time.
pub fn china(month: u32, day: u32, hour: u32) -> DateTime<Utc> {
    china_offset()
        .with_ymd_and_hms(2026, month, day, hour, 0, 0)
        .single()
        .expect("valid test instant")
        .with_timezone(&Utc)
}

pub fn date(month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, month, day).expect("valid test date")
}

pub fn end_of(month: u32, day: u32) -> DateTime<Utc> {
    crate::deadlines::end_of_local_day(date(month, day))
}

pub fn header() -> CaseHeader {
    crate::test_support::sample_header("430702001001-2026-000123", "430702001001", "某建筑公司")
}

pub use crate::test_support::new_event;

/// county → township → village, with `SIBLING` another village of the township: the hierarchy
/// the authority table is judged against in these tests.
pub struct Tree;

impl Hierarchy for Tree {
    fn is_strict_ancestor(&self, ancestor: &str, node: &str) -> bool {
        let parent = |node: &str| match node {
            VILLAGE | SIBLING => Some(TOWNSHIP),
            TOWNSHIP => Some(COUNTY),
            _ => None,
        };
        let mut current = parent(node);
        while let Some(above) = current {
            if above == ancestor {
                return true;
            }
            current = parent(above);
        }
        false
    }

    fn region_of(&self, node: &str) -> Option<String> {
        match node {
            COUNTY => Some("430702".to_owned()),
            TOWNSHIP => Some("430702001".to_owned()),
            VILLAGE => Some("430702001001".to_owned()),
            SIBLING => Some("430702001002".to_owned()),
            _ => None,
        }
    }
}

/// The key every test node signs with: these tests are about the lifecycle, not whose key it is.
pub fn signer() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[42; 32])
}

/// One replica of a case, appending through the lifecycle with generated event ids.
pub struct Case {
    pub document: CaseDocument,
    pub state: CaseState,
    pub limits: Limits,
    next_id: u32,
    prefix: String,
}

impl Case {
    /// A case registered at the village at 9:00 China time on 2 March 2026 (a Monday).
    pub fn registered() -> Case {
        Case::registered_with(header(), Limits::default())
    }

    pub fn registered_with(header: CaseHeader, limits: Limits) -> Case {
        let (document, _event, state) = register(
            header,
            new_event(
                "register",
                VILLAGE,
                EventKind::Register {
                    header: None,
                    policy_version: 0,
                },
                china(3, 2, 9),
            ),
            &ACTOR_A,
            &crate::policy::PolicyBook::fixed(limits.clone()),
            &signer(),
        )
        .expect("sample case registers");
        Case {
            document,
            state,
            limits,
            next_id: 0,
            prefix: "a".to_owned(),
        }
    }

    /// Another replica of this case, writing as `actor`, with its own event id prefix.
    pub fn fork(&mut self, actor: &[u8], prefix: &str) -> Case {
        let document = self.document.fork(actor);
        Case {
            document,
            state: self.state.clone(),
            limits: self.limits.clone(),
            next_id: 0,
            prefix: prefix.to_owned(),
        }
    }

    pub fn act(
        &mut self,
        node: &str,
        kind: EventKind,
        at: DateTime<Utc>,
    ) -> Result<CaseState, CaseError> {
        self.next_id += 1;
        let id = format!("{}{:03}", self.prefix, self.next_id);
        let (_event, state, _header) = append(
            &mut self.document,
            new_event(&id, node, kind, at),
            &self.limits,
            &signer(),
            &Tree,
        )?;
        self.state = state.clone();
        Ok(state)
    }

    /// Like [`Case::act`], for steps a test expects to be accepted.
    pub fn ok(&mut self, node: &str, kind: EventKind, at: DateTime<Utc>) -> CaseState {
        let name = kind.name();
        self.act(node, kind, at)
            .unwrap_or_else(|error| panic!("{name} should be accepted: {error}"))
    }

    /// Like [`Case::act`], for steps a test expects to be refused; returns the message.
    pub fn refused(&mut self, node: &str, kind: EventKind, at: DateTime<Utc>) -> String {
        let name = kind.name();
        let before = self.document.events().expect("events readable").len();
        let message = match self.act(node, kind, at) {
            Ok(_) => panic!("{name} should be refused"),
            Err(error) => error.to_string(),
        };
        let after = self.document.events().expect("events readable").len();
        assert_eq!(
            before, after,
            "a refused {name} must not reach the document"
        );
        message
    }

    pub fn derived(&self) -> CaseState {
        let header = self.document.header().expect("header readable");
        let events = self.document.events().expect("events readable");
        crate::derive::derive(&header, &events, &self.limits)
    }

    /// Merge `other` into this replica and re-derive.
    pub fn merge_from(&mut self, other: &mut Case) {
        self.document
            .merge(&mut other.document)
            .expect("replicas merge");
        self.state = self.derived();
    }

    pub fn last_id(&self) -> String {
        format!("{}{:03}", self.prefix, self.next_id)
    }
}

pub fn accept() -> EventKind {
    EventKind::Accept {}
}

pub fn reply() -> EventKind {
    EventKind::Reply {
        outcome: crate::model::ReplyOutcome::Support,
        text: "经协调，建筑公司同意分两期结清工资".to_owned(),
    }
}

pub fn close(resolved: bool) -> EventKind {
    EventKind::Close {
        resolved,
        note: "已结清".to_owned(),
    }
}

pub fn escalate(to_node: &str) -> EventKind {
    EventKind::Escalate {
        to_node: to_node.to_owned(),
        reason: "涉及多个村，超出本级处理能力".to_owned(),
    }
}

pub fn assign(to_node: &str, deadline: NaiveDate) -> EventKind {
    EventKind::Assign {
        to_node: to_node.to_owned(),
        required_result: "查清欠薪数额，督促支付".to_owned(),
        deadline,
    }
}
