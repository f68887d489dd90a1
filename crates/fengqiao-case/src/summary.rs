//! The compact per-case record a node stores beside the document, built from header and state.

use crate::model::{CaseHeader, CaseState, CaseSummary};

pub fn summarize(header: &CaseHeader, state: &CaseState) -> CaseSummary {
    let _ = (header, state);
    todo!()
}
