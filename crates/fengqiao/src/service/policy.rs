//! The federation's policy in a running node: the versions it holds, shared between the live
//! roster (which takes them in from links and persists them) and everything that derives a case
//! (the service, the store replica). The rules are `fengqiao_case::policy`'s; this file only
//! keeps the node's current [`PolicyBook`] and answers `GET /api/policy`.
//!
//! A node's `[limits]` and `[warnings]` are the root's proposal for the first policy version
//! only (issued when the root's federation starts and it holds no version of its own); a node
//! below the root ignores them and says so at start.

use std::sync::{Arc, PoisonError, RwLock};

use fengqiao_case::model::policy::PolicyView;
use fengqiao_case::policy::{PolicyBook, derive_registered, with_shipped_calendar};
use fengqiao_case::{CaseHeader, CaseState, Event, Limits, SCHEMA_VERSION, WarningThresholds};
use fengqiao_store::Store;

use super::{Node, ServiceError};
use crate::config::NodeConfig;
use crate::service::ROSTER_META_KEY;

/// The node's policy versions, replaced whole when the roster takes new ones.
#[derive(Debug, Default)]
pub struct SharedPolicies(RwLock<Arc<PolicyBook>>);

impl SharedPolicies {
    pub fn new(book: PolicyBook) -> SharedPolicies {
        SharedPolicies(RwLock::new(Arc::new(book)))
    }

    pub fn get(&self) -> Arc<PolicyBook> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn set(&self, book: PolicyBook) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(book);
    }
}

/// The versions kept in the node's stored roster (the built-in one only when there is none, or
/// it cannot be read: the roster reports that when the federation starts).
pub fn stored_policies(store: &Store) -> PolicyBook {
    let snapshot = match store.meta_get(ROSTER_META_KEY) {
        Ok(Some(value)) => fengqiao_sync::decode_snapshot(&value),
        Ok(None) => return PolicyBook::default(),
        Err(error) => {
            tracing::warn!(%error, "cannot read the stored roster for its policies");
            return PolicyBook::default();
        }
    };
    match snapshot {
        Ok(snapshot) => fengqiao_sync::Roster::from_snapshot(snapshot)
            .0
            .policy_book(),
        Err(error) => {
            tracing::warn!(%error, "the stored roster cannot be read for its policies");
            PolicyBook::default()
        }
    }
}

/// Whether the node is the federation's root (or runs alone): no parent configured.
pub fn is_root(config: &NodeConfig) -> bool {
    config
        .federation
        .as_ref()
        .is_none_or(|federation| federation.parent.is_none())
}

/// What the root proposes as its first policy version: its `[limits]` with the shipped State
/// Council calendar added to its own dates, and its `[warnings]`.
pub fn root_proposal(config: &NodeConfig) -> (Limits, WarningThresholds) {
    (
        with_shipped_calendar(config.limits.clone()),
        config.warnings.clone(),
    )
}

/// The warning thresholds the node grades with from its start: the newest policy version's; a
/// root (or lone node) that holds no issued version yet uses its own `[warnings]`, which become
/// its first version when its federation starts. A new version's thresholds take effect when the
/// node next starts (the measures' rollup is built with them).
pub fn effective_warnings(book: &PolicyBook, config: &NodeConfig) -> WarningThresholds {
    if book.current().version == 0 && is_root(config) {
        config.warnings.clone()
    } else {
        book.current().warnings.clone()
    }
}

/// A node below the root ignores its own `[limits]` and `[warnings]`, and a node without a
/// federation its `[limits]` (it derives with the built-in policy until it runs a federation as
/// its root): say so once at start.
pub fn warn_if_local_settings_ignored(config: &NodeConfig) {
    let limits_set = config.limits != Limits::default();
    let warnings_set = config.warnings != WarningThresholds::default();
    if !is_root(config) && (limits_set || warnings_set) {
        tracing::warn!(
            "[limits] and [warnings] in fengqiao.toml are ignored on a node below the root: \
             every case derives with the county's policy (fengqiao policy show)"
        );
    } else if config.federation.is_none() && limits_set {
        tracing::warn!(
            "[limits] in fengqiao.toml is ignored by a node without [federation]: its cases \
             derive with the built-in policy; a county's [limits] becomes the federation's \
             first policy when its federation starts"
        );
    }
}

impl Node {
    /// The policy versions this node holds now.
    pub fn policies(&self) -> Arc<PolicyBook> {
        self.policies.get()
    }

    /// The cell the federation's live roster writes new versions into.
    pub fn shared_policies(&self) -> Arc<SharedPolicies> {
        Arc::clone(&self.policies)
    }

    /// `GET /api/policy`.
    pub fn policy_view(&self) -> PolicyView {
        let book = self.policies();
        PolicyView {
            schema_version: SCHEMA_VERSION,
            current: book.current().version,
            versions: book.views(),
        }
    }

    /// The case's state under the policy version it was registered under.
    pub(crate) fn derive_case(
        &self,
        header: &CaseHeader,
        events: &[Event],
    ) -> Result<CaseState, ServiceError> {
        derive_registered(&self.policies(), header, events)
            .map_err(|error| ServiceError::Internal(format!("case {}: {error}", header.number)))
    }
}
