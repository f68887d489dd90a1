//! Builders shared by the sync tests: a small federation tree, case headers located in it, and
//! registration and event appending through the lifecycle at a given node.

use std::sync::LazyLock;

use chrono::{DateTime, TimeZone, Utc};
use fengqiao_case::appending::{append, register};
use fengqiao_case::lifecycle::NewEvent;
use fengqiao_case::model::{CaseHeader, EventKind, Tier};
use fengqiao_case::signature::{NodeSigner, node_actor_for_public_key, node_id_for_public_key};

use crate::replica::InMemoryReplica;
use crate::routing::{PeerDescription, PeerRelation, SubtreeRoster};

/// One office of the test federation.
#[derive(Debug, Clone)]
pub struct Office {
    pub name: &'static str,
    pub region_code: &'static str,
    pub tier: Tier,
    pub parent: Option<usize>,
}

/// County – 2 townships – 4 villages, indexed as in the table (parents before children).
pub const OFFICES: [Office; 7] = [
    Office {
        name: "武陵区",
        region_code: "430702",
        tier: Tier::County,
        parent: None,
    },
    Office {
        name: "芦荻山乡",
        region_code: "430702001",
        tier: Tier::Township,
        parent: Some(0),
    },
    Office {
        name: "丹洲乡",
        region_code: "430702002",
        tier: Tier::Township,
        parent: Some(0),
    },
    Office {
        name: "芦荻山村",
        region_code: "430702001001",
        tier: Tier::Village,
        parent: Some(1),
    },
    Office {
        name: "新河村",
        region_code: "430702001002",
        tier: Tier::Village,
        parent: Some(1),
    },
    Office {
        name: "丹洲村",
        region_code: "430702002001",
        tier: Tier::Village,
        parent: Some(2),
    },
    Office {
        name: "白鹤村",
        region_code: "430702002002",
        tier: Tier::Village,
        parent: Some(2),
    },
];

/// Each office's node ID, as a running node has it: the ID of its signing key
/// ([`signer_of`]), so the signatures on its events verify against the node they name.
static NODE_IDS: LazyLock<Vec<String>> = LazyLock::new(|| {
    (0..OFFICES.len())
        .map(|office| node_id_for_public_key(&signer_of(office).public_key()))
        .collect()
});

/// The node ID of office `office` of [`OFFICES`].
pub fn node_id(office: usize) -> &'static str {
    &NODE_IDS[office]
}

pub fn office_index(node: &str) -> Option<usize> {
    NODE_IDS.iter().position(|id| id == node)
}

/// Subtree membership from the static tree.
pub fn tree_roster() -> impl SubtreeRoster + 'static {
    |root: &str, node: &str| {
        if root == node {
            return true;
        }
        let Some(node) = office_index(node) else {
            return false;
        };
        let mut current = Some(node);
        while let Some(office) = current {
            if node_id(office) == root {
                return true;
            }
            current = OFFICES[office].parent;
        }
        false
    }
}

/// The same static tree as the hierarchy the authority table is judged against.
pub struct TreeHierarchy;

impl fengqiao_case::authority::Hierarchy for TreeHierarchy {
    fn is_strict_ancestor(&self, ancestor: &str, node: &str) -> bool {
        let mut current = office_index(node).and_then(|index| OFFICES[index].parent);
        while let Some(parent) = current {
            if node_id(parent) == ancestor {
                return true;
            }
            current = OFFICES[parent].parent;
        }
        false
    }

    fn region_of(&self, node: &str) -> Option<String> {
        office_index(node).map(|index| OFFICES[index].region_code.to_owned())
    }
}

/// How `office` looks from the other end of its link.
pub fn describe(office: usize, relation: PeerRelation) -> PeerDescription {
    let node = node_id(office);
    let office = &OFFICES[office];
    PeerDescription {
        node_id: node.to_owned(),
        name: format!("{}人民政府", office.name),
        aliases: vec![office.name.to_owned()],
        region_code: office.region_code.to_owned(),
        relation,
    }
}

/// The office's automerge actor: its key's, as a running node's is.
pub fn actor_of(office: usize) -> [u8; 16] {
    node_actor_for_public_key(&signer_of(office).public_key())
}

pub fn replica_for(office: usize) -> InMemoryReplica {
    InMemoryReplica::new(
        &actor_of(office),
        Box::new(tree_roster()),
        Box::new(TreeHierarchy),
    )
}

pub fn instant(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day.clamp(1, 28), hour % 24, 0, 0)
        .single()
        .unwrap_or_else(|| panic!("valid instant for day {day} hour {hour}"))
}

pub fn header(number: &str, region_code: &str, respondent: &str) -> CaseHeader {
    fengqiao_case::test_support::sample_header(number, region_code, respondent)
}

pub use fengqiao_case::test_support::new_event;

/// The key an office of the harness signs with; its node ID is this key's.
pub fn signer_of(office: usize) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[0x10 + office as u8; 32])
}

/// Register a case at `office` into its replica.
pub fn register_at(
    replica: &mut InMemoryReplica,
    office: usize,
    number: &str,
    region_code: &str,
    respondent: &str,
    at: DateTime<Utc>,
) {
    let node = node_id(office);
    let (document, _, _) = register(
        header(number, region_code, respondent),
        new_event(
            &format!("{number}-register"),
            node,
            EventKind::Register {
                header: None,
                policy_version: 0,
            },
            at,
        ),
        &actor_of(office),
        replica.policies(),
        &signer_of(office),
    )
    .unwrap_or_else(|error| panic!("case {number} registers: {error}"));
    replica.insert(number, document);
}

/// Append an event the test expects the lifecycle to accept, signed by the office it names.
pub fn append_at(replica: &mut InMemoryReplica, case: &str, event: NewEvent) {
    let policies = replica.policies().clone();
    let maker = office_index(&event.node)
        .unwrap_or_else(|| panic!("event {} names an office of the harness", event.id));
    let outcome = replica
        .update(case, |document| {
            let events = document.events().expect("the case's events read");
            let limits = policies
                .limits_for_case(&events)
                .expect("the case's policy version is held");
            append(document, event, limits, &signer_of(maker), &TreeHierarchy)
        })
        .unwrap_or_else(|| panic!("case {case} is held"));
    if let Err(error) = outcome {
        panic!("event on {case} should be accepted: {error}");
    }
}

pub fn note(id: &str, node: &str, at: DateTime<Utc>) -> NewEvent {
    new_event(
        id,
        node,
        EventKind::Note {
            text: "电话回访当事人，情绪稳定，继续跟进协调".to_owned(),
        },
        at,
    )
}
