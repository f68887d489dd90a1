//! The supervisors' measures answered from a rollup the store keeps current, not from a scan.
//!
//! The node counts every stored summary into one [`Rollup`] once (one pass, ~0.8 s at 100,000
//! cases, so not while the node opens: the API server starts it on a blocking thread as soon as
//! it is bound, and a query arriving earlier waits for it), and the store tells it of every
//! summary committed afterwards, whoever writes it: an operator's event, an import, a case
//! received from a peer. Cases are grouped by their own region code (a village's, usually), so
//! that any office's share is the groups whose code starts with the office's: the whole subtree,
//! each child (a township) and each grandchild (a village) are answered from the same groups, and
//! a child admitted while the node runs needs no rebuild.

use fengqiao_case::authority::lies_within;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use chrono::{DateTime, Utc};
use fengqiao_case::model::roster::RosterMemberView;
use fengqiao_case::model::stats::{OfficeStats, StatsBreakdown};
use fengqiao_case::rollup::Rollup;
use fengqiao_case::{
    CaseId, CaseSummary, MeasureSet, Measures, NodeId, SCHEMA_VERSION, WarningThresholds,
};
use fengqiao_store::{Store, StoreError};

use super::{Node, ServiceError, StatsQuery};

/// Digits a region code gains per tier below (county 6, township 9, village 12).
const REGION_DIGITS_PER_TIER: usize = 3;

/// The node's rollup, shared with the store's summary observer.
pub(crate) struct StatsRollup {
    shared: Arc<SharedRollup>,
    thresholds: WarningThresholds,
}

struct SharedRollup {
    state: Mutex<RollupState>,
    /// Signalled when a build ends, whether it succeeded or not.
    build_ended: Condvar,
}

enum RollupState {
    /// Nobody asked yet: commits need no record, the build's scan will read them.
    NotBuilt,
    /// A build is scanning the store: commits made meanwhile are kept here (the latest per case)
    /// and counted after the scan, over whatever the scan read of them.
    Building {
        committed_meanwhile: HashMap<CaseId, CaseSummary>,
    },
    Ready(Rollup),
}

impl std::fmt::Debug for StatsRollup {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cases = match &*self.shared.lock() {
            RollupState::Ready(rollup) => Some(rollup.case_count()),
            _ => None,
        };
        formatter
            .debug_struct("StatsRollup")
            .field("cases", &cases)
            .finish_non_exhaustive()
    }
}

impl SharedRollup {
    fn lock(&self) -> MutexGuard<'_, RollupState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Told of each committed summary, in commit order.
    fn observe(&self, summary: &CaseSummary) {
        match &mut *self.lock() {
            RollupState::NotBuilt => {}
            RollupState::Building {
                committed_meanwhile,
            } => {
                committed_meanwhile.insert(summary.number.clone(), summary.clone());
            }
            RollupState::Ready(rollup) => count(rollup, summary),
        }
    }
}

impl StatsRollup {
    /// Has the store report every commit from now on. Called while the node opens, before
    /// anything can write; counts nothing yet.
    pub(crate) fn observe(store: &Store, thresholds: &WarningThresholds) -> StatsRollup {
        let shared = Arc::new(SharedRollup {
            state: Mutex::new(RollupState::NotBuilt),
            build_ended: Condvar::new(),
        });
        let observed = Arc::clone(&shared);
        store.set_summary_observer(Arc::new(move |summary: &CaseSummary| {
            observed.observe(summary);
        }));
        StatsRollup {
            shared,
            thresholds: thresholds.clone(),
        }
    }

    /// The built rollup, building it first (one scan of the store) if nobody has, or waiting
    /// for the build under way.
    fn ready(&self, store: &Store) -> Result<MutexGuard<'_, RollupState>, StoreError> {
        let mut state = self.shared.lock();
        loop {
            match &*state {
                RollupState::Ready(_) => return Ok(state),
                RollupState::Building { .. } => {
                    state = self
                        .shared
                        .build_ended
                        .wait(state)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                RollupState::NotBuilt => break,
            }
        }
        *state = RollupState::Building {
            committed_meanwhile: HashMap::new(),
        };
        drop(state);

        let started = Instant::now();
        let mut rollup = Rollup::new(self.thresholds.clone());
        let scanned = store.for_each_summary(|summary| count(&mut rollup, summary));
        let mut state = self.shared.lock();
        let previous = std::mem::replace(&mut *state, RollupState::NotBuilt);
        if let Err(error) = scanned {
            // Left unbuilt: the next query tries again.
            self.shared.build_ended.notify_all();
            return Err(error);
        }
        if let RollupState::Building {
            committed_meanwhile,
        } = previous
        {
            for summary in committed_meanwhile.values() {
                count(&mut rollup, summary);
            }
        }
        tracing::info!(
            cases = rollup.case_count(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "statistics rollup built from the stored summaries"
        );
        *state = RollupState::Ready(rollup);
        self.shared.build_ended.notify_all();
        Ok(state)
    }

    /// Runs `answer` over the built rollup.
    fn with_rollup<T>(
        &self,
        store: &Store,
        answer: impl FnOnce(&Rollup) -> T,
    ) -> Result<T, StoreError> {
        let state = self.ready(store)?;
        match &*state {
            RollupState::Ready(rollup) => Ok(answer(rollup)),
            // `ready` returns only once the rollup is built.
            _ => Err(StoreError::Corrupt {
                what: "statistics rollup".to_owned(),
                why: "not built after its build".to_owned(),
            }),
        }
    }
}

fn count(rollup: &mut Rollup, summary: &CaseSummary) {
    rollup.update(&summary.number, &summary.region_code, Some(summary));
}

/// An office the breakdown names: a child from the config or the roster, or a grandchild from the
/// roster.
#[derive(Debug, Clone)]
struct Office {
    node_id: Option<NodeId>,
    name: Option<String>,
    region_code: String,
    /// When it was revoked, if it was: it is then named by its revocation, and shown only while
    /// cases lie in its region.
    revoked_at: Option<DateTime<Utc>>,
}

impl Node {
    /// The supervisors' measures over the cases registered in the period, judged at `now`.
    /// Answered from the rollup, equal to `measures::measures` over every stored summary.
    pub(crate) fn stats_from_rollup(
        &self,
        now: DateTime<Utc>,
        query: &StatsQuery,
    ) -> Result<Measures, ServiceError> {
        Ok(self.stats_rollup.with_rollup(&self.store, |rollup| {
            rollup.measures(
                None,
                query.category,
                query.imported,
                query.from,
                query.to,
                now,
            )
        })?)
    }

    /// Count every stored summary into the statistics rollup now, unless that is done: the
    /// server calls it on a blocking thread once it is bound, so that the first `stats` need not
    /// wait for the scan.
    pub fn prepare_stats(&self) -> Result<(), ServiceError> {
        Ok(self.stats_rollup.with_rollup(&self.store, |_| ())?)
    }

    /// [`Node::stats`] for the whole subtree and child by child (each child's own children
    /// beneath it), naming the children the config lists. Sync health is left empty: the API
    /// fills it in from the running federation.
    pub fn stats_by_child(
        &self,
        now: DateTime<Utc>,
        query: &StatsQuery,
    ) -> Result<StatsBreakdown, ServiceError> {
        self.stats_by_child_among(now, query, &[])
    }

    /// [`Node::stats_by_child`], also naming the offices of `roster` (the replicated roster's
    /// members, and the offices it says were revoked): the children it knows this node
    /// admitted, and their children.
    pub fn stats_by_child_among(
        &self,
        now: DateTime<Utc>,
        query: &StatsQuery,
        roster: &[RosterMemberView],
    ) -> Result<StatsBreakdown, ServiceError> {
        check_period(query)?;
        let children = self.child_offices(roster);
        Ok(self.stats_rollup.with_rollup(&self.store, |rollup| {
            breakdown(rollup, &children, roster, now, query)
        })?)
    }

    /// The children this node admitted: its config's, and the roster's members it admitted
    /// (the roster is live, the config is as it was when the node opened), by region code.
    fn child_offices(&self, roster: &[RosterMemberView]) -> Vec<Office> {
        let mut children: BTreeMap<NodeId, Office> = BTreeMap::new();
        if let Some(federation) = &self.config.federation {
            for child in &federation.children {
                children.insert(
                    child.node_id.clone(),
                    Office {
                        node_id: Some(child.node_id.clone()),
                        name: Some(child.name.clone()),
                        region_code: child.region_code.clone(),
                        revoked_at: None,
                    },
                );
            }
        }
        // A revocation in the roster overrides the config the node opened with.
        for member in roster {
            if member.admitted_by.as_deref() == Some(self.node_id()) {
                children.insert(member.node_id.clone(), office_of(member));
            }
        }
        let mut children = without_superseded(children.into_values().collect());
        children.sort_by(|left, right| left.region_code.cmp(&right.region_code));
        children
    }
}

/// The breakdown of `rollup` over `children` and, beneath each, the offices of `roster` it
/// admitted (and unnamed ones for regions with cases that no known office covers).
fn breakdown(
    rollup: &Rollup,
    children: &[Office],
    roster: &[RosterMemberView],
    now: DateTime<Utc>,
    query: &StatsQuery,
) -> StatsBreakdown {
    // Every group (case region code) that holds a case; `by_group` lists them all.
    let regions: Vec<String> = rollup
        .by_group(query.category, query.imported, query.from, query.to, now)
        .into_keys()
        .collect();
    let measure = |groups: &[&str]| -> MeasureSet {
        rollup
            .measures(
                Some(groups),
                query.category,
                query.imported,
                query.from,
                query.to,
                now,
            )
            .total
    };
    let mut claimed: BTreeSet<&str> = BTreeSet::new();
    let mut child_stats = Vec::with_capacity(children.len());
    for child in children {
        let under_child = regions_under(&regions, &child.region_code);
        if child.revoked_at.is_some() && under_child.is_empty() {
            continue;
        }
        claimed.extend(under_child.iter().copied());
        let grandchildren = sub_offices(child, roster, &under_child);
        let grandchild_stats = grandchildren
            .into_iter()
            .filter_map(|grandchild| {
                let under_grandchild = regions_under(&regions, &grandchild.region_code);
                if grandchild.revoked_at.is_some() && under_grandchild.is_empty() {
                    return None;
                }
                Some(office_stats(
                    grandchild,
                    measure(&under_grandchild),
                    Vec::new(),
                ))
            })
            .collect();
        child_stats.push(office_stats(
            child.clone(),
            measure(&under_child),
            grandchild_stats,
        ));
    }
    let unclaimed: Vec<&str> = regions
        .iter()
        .map(String::as_str)
        .filter(|region| !claimed.contains(region))
        .collect();
    StatsBreakdown {
        schema_version: SCHEMA_VERSION,
        from: query.from,
        to: query.to,
        imported: query.imported,
        now,
        total: rollup
            .measures(
                None,
                query.category,
                query.imported,
                query.from,
                query.to,
                now,
            )
            .total,
        own: measure(&unclaimed),
        children: child_stats,
    }
}

/// A period that ends before it starts is refused rather than answered with nothing.
pub(super) fn check_period(query: &StatsQuery) -> Result<(), ServiceError> {
    if let (Some(from), Some(to)) = (query.from, query.to)
        && to < from
    {
        return Err(ServiceError::InvalidInput(format!(
            "the period ends ({to}) before it starts ({from})"
        )));
    }
    Ok(())
}

fn office_of(member: &RosterMemberView) -> Office {
    Office {
        node_id: Some(member.node_id.clone()),
        name: Some(member.name.clone()),
        region_code: member.region_code.clone(),
        revoked_at: member.revoked.then_some(member.issued_at),
    }
}

/// `offices` less the revoked ones superseded, so that every case is counted once: a region is
/// named after the office that has it now (a village whose node was replaced is counted under
/// the new node), and a revoked office names only a region nobody took over; of offices revoked
/// in the same region, the one revoked last names it.
fn without_superseded(offices: Vec<Office>) -> Vec<Office> {
    let overlap = |left: &str, right: &str| left.starts_with(right) || right.starts_with(left);
    let superseded = |office: &Office| {
        let Some(revoked_at) = office.revoked_at else {
            return false;
        };
        offices.iter().any(|other| {
            overlap(&other.region_code, &office.region_code)
                && match other.revoked_at {
                    None => true,
                    Some(other_revoked_at) => {
                        (other_revoked_at, &other.node_id) > (revoked_at, &office.node_id)
                    }
                }
        })
    };
    let kept: Vec<bool> = offices.iter().map(|office| !superseded(office)).collect();
    offices
        .into_iter()
        .zip(kept)
        .filter_map(|(office, kept)| kept.then_some(office))
        .collect()
}

fn office_stats(office: Office, measures: MeasureSet, children: Vec<OfficeStats>) -> OfficeStats {
    OfficeStats {
        node_id: office.node_id,
        name: office.name,
        revoked: office.revoked_at.is_some(),
        region_code: office.region_code,
        measures,
        sync: None,
        children,
    }
}

/// The case regions lying in `region_code`'s region (an empty code claims nothing: an office
/// without a region is not the whole federation).
fn regions_under<'a>(regions: &'a [String], region_code: &str) -> Vec<&'a str> {
    if region_code.is_empty() {
        return Vec::new();
    }
    regions
        .iter()
        .map(String::as_str)
        .filter(|region| lies_within(region, region_code))
        .collect()
}

/// The offices one tier below `parent`: those the roster says it admitted (or revoked), and one
/// unnamed office per region code one tier below it that holds cases but is in no known office's
/// region (a village not yet in this node's roster), by region code.
fn sub_offices(parent: &Office, roster: &[RosterMemberView], regions: &[&str]) -> Vec<Office> {
    let mut offices: Vec<Office> = without_superseded(
        roster
            .iter()
            .filter(|member| {
                parent.node_id.is_some()
                    && member.admitted_by.as_deref() == parent.node_id.as_deref()
            })
            .map(office_of)
            .collect(),
    );
    let sub_region_length = parent.region_code.len() + REGION_DIGITS_PER_TIER;
    let mut unknown: BTreeSet<&str> = BTreeSet::new();
    for region in regions {
        let known = offices.iter().any(|office| {
            !office.region_code.is_empty() && lies_within(region, &office.region_code)
        });
        if !known && let Some(sub_region) = region.get(..sub_region_length) {
            unknown.insert(sub_region);
        }
    }
    offices.extend(unknown.into_iter().map(|region_code| Office {
        node_id: None,
        name: None,
        region_code: region_code.to_owned(),
        revoked_at: None,
    }));
    offices.sort_by(|left, right| left.region_code.cmp(&right.region_code));
    offices
}
