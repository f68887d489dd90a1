//! Builders shared by the sync tests: a small federation tree, case headers located in it, and
//! registration and event appending through the lifecycle at a given node.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use fengqiao_case::lifecycle::{NewEvent, append, register};
use fengqiao_case::model::{
    CaseHeader, Category, Channel, EventKind, Location, MatterType, Ownership, Petitioner, Tier,
};

use crate::replica::InMemoryReplica;
use crate::routing::{PeerDescription, PeerRelation, SubtreeRoster};

/// One office of the test federation.
#[derive(Debug, Clone)]
pub struct Office {
    pub node_id: &'static str,
    pub name: &'static str,
    pub region_code: &'static str,
    pub tier: Tier,
    pub parent: Option<usize>,
}

/// County – 2 townships – 4 villages, indexed as in the table (parents before children).
pub const OFFICES: [Office; 7] = [
    Office {
        node_id: "county",
        name: "武陵区",
        region_code: "430702",
        tier: Tier::County,
        parent: None,
    },
    Office {
        node_id: "township-1",
        name: "芦荻山乡",
        region_code: "430702001",
        tier: Tier::Township,
        parent: Some(0),
    },
    Office {
        node_id: "township-2",
        name: "丹洲乡",
        region_code: "430702002",
        tier: Tier::Township,
        parent: Some(0),
    },
    Office {
        node_id: "village-11",
        name: "芦荻山村",
        region_code: "430702001001",
        tier: Tier::Village,
        parent: Some(1),
    },
    Office {
        node_id: "village-12",
        name: "新河村",
        region_code: "430702001002",
        tier: Tier::Village,
        parent: Some(1),
    },
    Office {
        node_id: "village-21",
        name: "丹洲村",
        region_code: "430702002001",
        tier: Tier::Village,
        parent: Some(2),
    },
    Office {
        node_id: "village-22",
        name: "白鹤村",
        region_code: "430702002002",
        tier: Tier::Village,
        parent: Some(2),
    },
];

pub fn office_index(node_id: &str) -> Option<usize> {
    OFFICES.iter().position(|office| office.node_id == node_id)
}

/// Subtree membership from the static tree.
pub fn tree_roster() -> impl SubtreeRoster + 'static {
    let parents: HashMap<&'static str, Option<&'static str>> = OFFICES
        .iter()
        .map(|office| {
            (
                office.node_id,
                office.parent.map(|parent| OFFICES[parent].node_id),
            )
        })
        .collect();
    move |root: &str, node: &str| {
        let mut current = Some(node);
        let mut steps = 0;
        while let Some(name) = current {
            if name == root {
                return true;
            }
            steps += 1;
            if steps > OFFICES.len() {
                return false;
            }
            current = parents.get(name).copied().flatten();
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
            if OFFICES[parent].node_id == ancestor {
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
    let office = &OFFICES[office];
    PeerDescription {
        node_id: office.node_id.to_owned(),
        name: format!("{}人民政府", office.name),
        aliases: vec![office.name.to_owned()],
        region_code: office.region_code.to_owned(),
        relation,
    }
}

pub fn actor_of(office: usize) -> [u8; 16] {
    [0x10 + office as u8; 16]
}

pub fn replica_for(office: usize) -> InMemoryReplica {
    InMemoryReplica::new(&actor_of(office), Box::new(tree_roster()))
}

pub fn instant(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day.clamp(1, 28), hour % 24, 0, 0)
        .single()
        .unwrap_or_else(|| panic!("valid instant for day {day} hour {hour}"))
}

pub fn header(number: &str, region_code: &str, respondent: &str) -> CaseHeader {
    CaseHeader {
        number: number.to_owned(),
        channel: Channel::Visit,
        petitioners: vec![Petitioner {
            name: "张三".to_owned(),
            id_number: "430702198001011236".to_owned(),
            id_type: Default::default(),
            phone: "13800000000".to_owned(),
            address: "三组".to_owned(),
            representative: false,
        }],
        headcount: 1,
        respondent: respondent.to_owned(),
        category: Category::WageArrears,
        matter_type: MatterType::Appeal,
        litigation_related: false,
        summary: "拖欠工资八个月，要求结清，施工方多次推诿".to_owned(),
        location: Location {
            region_code: region_code.to_owned(),
            village: String::new(),
            grid: "第三网格".to_owned(),
            grid_worker: "李四".to_owned(),
        },
        ownership: Ownership::default(),
    }
}

pub fn new_event(id: &str, node: &str, kind: EventKind, at: DateTime<Utc>) -> NewEvent {
    NewEvent {
        id: id.to_owned(),
        kind,
        at,
        node: node.to_owned(),
        operator: format!("operator at {node}"),
        hlc: Default::default(),
    }
}

/// The key an office of the harness signs with. The harness's node IDs are names, not hashes
/// of keys: these tests are about routing and sync, which never look at signatures.
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
    let node = OFFICES[office].node_id;
    let (document, _, _) = register(
        header(number, region_code, respondent),
        new_event(
            &format!("{number}-register"),
            node,
            EventKind::Register { header: None },
            at,
        ),
        &actor_of(office),
        replica.limits(),
        &signer_of(office),
    )
    .unwrap_or_else(|error| panic!("case {number} registers: {error}"));
    replica.insert(number, document);
}

/// Append an event the test expects the lifecycle to accept.
pub fn append_at(replica: &mut InMemoryReplica, case: &str, event: NewEvent) {
    let limits = replica.limits().clone();
    let outcome = replica
        .update(case, |document| {
            append(document, event, &limits, &signer_of(0), &TreeHierarchy)
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
