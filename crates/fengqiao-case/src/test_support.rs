//! Fixtures the crates' tests share (feature `test-support`, and this crate's own tests): a
//! realistic case header and a new event, so each crate's tests do not keep a copy of their own.

use chrono::{DateTime, Utc};

use crate::lifecycle::NewEvent;
use crate::model::{
    CaseHeader, Category, Channel, EventKind, Location, MatterType, Ownership, Petitioner,
};

/// A wage-arrears petition by one person (张三, a valid resident ID number) about `respondent`,
/// located in `region_code`, numbered `number`.
pub fn sample_header(number: &str, region_code: &str, respondent: &str) -> CaseHeader {
    CaseHeader {
        number: number.to_owned(),
        channel: Channel::Visit,
        petitioners: vec![Petitioner {
            name: "张三".to_owned(),
            id_number: "430702198001011236".to_owned(),
            id_type: Default::default(),
            phone: "13800000000".to_owned(),
            address: "芦荻山村三组".to_owned(),
            representative: false,
        }],
        headcount: 1,
        respondent: respondent.to_owned(),
        category: Category::WageArrears,
        matter_type: MatterType::Appeal,
        litigation_related: false,
        summary: "拖欠工资八个月，要求结清".to_owned(),
        location: Location {
            region_code: region_code.to_owned(),
            village: "芦荻山村".to_owned(),
            grid: "第三网格".to_owned(),
            grid_worker: "李四".to_owned(),
        },
        ownership: Ownership::default(),
    }
}

/// An event `id` of `kind` made at `node` at `at`, by "operator at NODE", with nothing else set.
pub fn new_event(id: &str, node: &str, kind: EventKind, at: DateTime<Utc>) -> NewEvent {
    NewEvent {
        id: id.to_owned(),
        kind,
        at,
        node: node.to_owned(),
        operator: format!("operator at {node}"),
        hlc: Default::default(),
        imported: None,
        backdated_reason: None,
    }
}
