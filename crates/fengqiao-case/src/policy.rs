//! The federation's policy: which limits, calendar and warning thresholds a case derives with,
//! and the checks on a signed policy. The one place that decides it.
//!
//! Invariant: **a case derives with the policy it was registered under.** Its register event
//! records the policy version ([`policy_version_of`]); every derive, lifecycle check and receipt
//! check of the case takes its limits from that version ([`PolicyBook::limits_for_case`]), never
//! from the node's own configuration, so every office derives the same state from the same
//! events, and a new version never rewrites a case registered before it.
//!
//! Version 0 is built in ([`built_in_policy`]): the regulation's figures (`Limits::default()`),
//! the State Council calendar shipped in `config/calendar/cn-2025-2027.toml` and the default
//! warning thresholds. Documents registered before policies existed name no version and read as
//! version 0. Higher versions are issued by the federation's root (the county) and signed with
//! its node key; a node uses only versions its trusted root signed.
//!
//! A case whose register event names a version this node does not hold (registered under v3
//! where the node has only v2, because the policy travels on the roster stream and the case on
//! the sync stream) is never derived with a guess: [`PolicyBook::limits_for_case`] answers
//! [`PolicyError::Unknown`], the receipt check defers such a copy ("may pass later", like a maker
//! missing from the roster), and the shell asks for it again when its policies change.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use crate::model::policy::{POLICY_FORMAT_VERSION, Policy, PolicyVersionView, SignedPolicy};
use crate::model::{CaseHeader, CaseState, Event, EventKind, Limits, NodeId, WarningThresholds};
use crate::signature::{Ed25519Refusal, NodeSigner, node_id_for_public_key, verify_signature};

/// Signatures over policies are made over this prefix and the policy's bincode, so that no other
/// signed message of a node (an event, a roster entry) can be taken for a policy.
const SIGNING_CONTEXT: &[u8] = b"fengqiao policy\0";

/// Most policy versions a node keeps: a root issues a handful a year; a hostile peer cannot
/// grow memory or disk without bound.
pub const MAX_POLICIES: usize = 1_000;

/// The calendar data file, compiled in.
const SHIPPED_CALENDAR_TOML: &str = include_str!("../../../config/calendar/cn-2025-2027.toml");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "the case was registered under policy version {version}, which this node does not hold \
         yet (it comes from the county on the roster stream)"
    )]
    Unknown { version: u64 },
    #[error(
        "policy version {version}: format version {found} is not supported (this build reads \
         {supported})"
    )]
    UnsupportedFormat {
        version: u64,
        found: u32,
        supported: u32,
    },
    #[error("policy version {version}: the issuer key is {found} bytes, not 32")]
    BadKeyLength { version: u64, found: usize },
    #[error("policy version {version}: the signature is {found} bytes, not 64")]
    BadSignatureLength { version: u64, found: usize },
    #[error("policy version {version}: the issuer key is not a valid ed25519 key")]
    BadKey { version: u64 },
    #[error("policy version {version}: the signature does not verify")]
    BadSignature { version: u64 },
    #[error("policy version 0 is the built-in policy and cannot be issued")]
    VersionZero,
    #[error("policy version {version}: {why}")]
    Invalid { version: u64, why: String },
    #[error("policy cannot be encoded: {0}")]
    Encode(String),
    #[error("{MAX_POLICIES} policy versions are held already")]
    Full,
}

/// The shipped calendar file's layout.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarFile {
    format: u32,
    year: Vec<CalendarYear>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarYear {
    year: i32,
    notice: String,
    source: String,
    holidays: Vec<NaiveDate>,
    working_weekends: Vec<NaiveDate>,
}

/// One year of the shipped calendar: the notice it was copied from, its days off and its 调休
/// working weekends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippedYear {
    pub year: i32,
    pub notice: String,
    pub source: String,
    pub holidays: Vec<NaiveDate>,
    pub working_weekends: Vec<NaiveDate>,
}

fn parse_calendar(text: &str) -> Result<Vec<ShippedYear>, String> {
    let file: CalendarFile = toml::from_str(text).map_err(|error| error.to_string())?;
    if file.format != 1 {
        return Err(format!("calendar format {} is not 1", file.format));
    }
    Ok(file
        .year
        .into_iter()
        .map(|year| ShippedYear {
            year: year.year,
            notice: year.notice,
            source: year.source,
            holidays: year.holidays,
            working_weekends: year.working_weekends,
        })
        .collect())
}

static SHIPPED_CALENDAR: LazyLock<Vec<ShippedYear>> = LazyLock::new(|| {
    // Data compiled into this build, not input: `tests::the_shipped_calendar_reads` holds it to
    // parsing, so an empty calendar here could only come from a build whose tests failed.
    parse_calendar(SHIPPED_CALENDAR_TOML).unwrap_or_default()
});

/// The State Council calendar shipped with this software (`config/calendar/cn-2025-2027.toml`).
pub fn shipped_calendar() -> &'static [ShippedYear] {
    &SHIPPED_CALENDAR
}

/// `limits` with the shipped calendar's holidays and working weekends added to its own (each
/// date once, sorted): what a root proposes from its `[limits]`, and what `policy issue` sends.
/// Where `limits` says the opposite of the shipped calendar about a date (a working weekend the
/// calendar lists as a holiday, or the reverse), `limits` wins: it is what the county wrote.
pub fn with_shipped_calendar(mut limits: Limits) -> Limits {
    for year in shipped_calendar() {
        let holidays: Vec<NaiveDate> = year
            .holidays
            .iter()
            .filter(|date| !limits.working_weekends.contains(date))
            .copied()
            .collect();
        let working_weekends: Vec<NaiveDate> = year
            .working_weekends
            .iter()
            .filter(|date| !limits.holidays.contains(date))
            .copied()
            .collect();
        limits.holidays.extend(holidays);
        limits.working_weekends.extend(working_weekends);
    }
    limits.holidays.sort();
    limits.holidays.dedup();
    limits.working_weekends.sort();
    limits.working_weekends.dedup();
    limits
}

static BUILT_IN: LazyLock<Policy> = LazyLock::new(|| Policy {
    format_version: POLICY_FORMAT_VERSION,
    version: 0,
    limits: with_shipped_calendar(Limits::default()),
    warnings: WarningThresholds::default(),
    note: "内置政策：《信访工作条例》时限，国务院办公厅2025–2026年节假日安排".to_owned(),
    issued_at: DateTime::<Utc>::UNIX_EPOCH,
});

/// Version 0: the regulation's figures, the shipped calendar, the default warning thresholds.
pub fn built_in_policy() -> &'static Policy {
    &BUILT_IN
}

/// The policy version a case was registered under: its register event's, 0 when it names none
/// (registered before policies existed) or the events hold no register event.
pub fn policy_version_of<'a>(events: impl IntoIterator<Item = &'a Event>) -> u64 {
    events
        .into_iter()
        .find_map(|event| match &event.kind {
            EventKind::Register { policy_version, .. } if event.prev.is_none() => {
                Some(*policy_version)
            }
            _ => None,
        })
        .unwrap_or(0)
}

/// The bytes an issuer signs for `policy`.
pub fn signing_bytes(policy: &Policy) -> Result<Vec<u8>, PolicyError> {
    let mut bytes = SIGNING_CONTEXT.to_vec();
    bincode::serde::encode_into_std_write(policy, &mut bytes, bincode::config::standard())
        .map_err(|error| PolicyError::Encode(error.to_string()))?;
    Ok(bytes)
}

/// What a policy may say: every limit at least a day, no date both a holiday and a working day,
/// working weekends on weekends. The root's `[limits]` and `policy issue` are judged by it, and
/// so is every policy received (a root's bug must not reach the villages as nonsense).
pub fn validate(policy: &Policy) -> Result<(), PolicyError> {
    use chrono::{Datelike, Weekday};
    let invalid = |why: String| PolicyError::Invalid {
        version: policy.version,
        why,
    };
    let limits = &policy.limits;
    for (field, days) in [
        ("acceptance_days", limits.acceptance_days),
        ("objection_working_days", limits.objection_working_days),
        ("handling_days", limits.handling_days),
        ("max_extension_days", limits.max_extension_days),
        ("evaluation_days", limits.evaluation_days),
        ("review_request_days", limits.review_request_days),
        ("review_decision_days", limits.review_decision_days),
    ] {
        if days == 0 {
            return Err(invalid(format!("limits.{field} must be at least 1 day")));
        }
    }
    for date in &limits.working_weekends {
        if !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
            return Err(invalid(format!(
                "limits.working_weekends: {date} is a {}, not a weekend day",
                date.weekday()
            )));
        }
        if limits.holidays.contains(date) {
            return Err(invalid(format!(
                "limits: {date} is listed both as a holiday and as a working weekend day"
            )));
        }
    }
    if policy.warnings.serious_overdue_days == 0 {
        return Err(invalid(
            "warnings.serious_overdue_days must be at least 1".to_owned(),
        ));
    }
    Ok(())
}

/// Sign `policy` as `signer` (the root's node key).
pub fn sign_policy(policy: Policy, signer: &dyn NodeSigner) -> Result<SignedPolicy, PolicyError> {
    if policy.version == 0 {
        return Err(PolicyError::VersionZero);
    }
    validate(&policy)?;
    let signature = signer.sign(&signing_bytes(&policy)?);
    Ok(SignedPolicy {
        policy,
        issuer_public_key: signer.public_key().to_vec(),
        signature: signature.to_vec(),
    })
}

/// Check a signed policy on its own: format, content, key and signature (through the one
/// Ed25519 rule of `crate::signature`). Returns the issuer's node ID; whether the issuer is the
/// root this node trusts is the caller's question ([`PolicyBook::from_signed`]).
pub fn verify_policy(signed: &SignedPolicy) -> Result<NodeId, PolicyError> {
    let policy = &signed.policy;
    let version = policy.version;
    if policy.format_version != POLICY_FORMAT_VERSION {
        return Err(PolicyError::UnsupportedFormat {
            version,
            found: policy.format_version,
            supported: POLICY_FORMAT_VERSION,
        });
    }
    if version == 0 {
        return Err(PolicyError::VersionZero);
    }
    let key: [u8; 32] = signed
        .issuer_public_key
        .as_slice()
        .try_into()
        .map_err(|_| PolicyError::BadKeyLength {
            version,
            found: signed.issuer_public_key.len(),
        })?;
    let signature: [u8; 64] =
        signed
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| PolicyError::BadSignatureLength {
                version,
                found: signed.signature.len(),
            })?;
    verify_signature(&key, &signing_bytes(policy)?, &signature).map_err(
        |refusal| match refusal {
            Ed25519Refusal::BadKey => PolicyError::BadKey { version },
            Ed25519Refusal::BadSignature => PolicyError::BadSignature { version },
        },
    )?;
    validate(policy)?;
    Ok(node_id_for_public_key(&key))
}

/// The policy versions a node uses: the built-in version 0 and every version its trusted root
/// issued. Cheap to clone (a few versions of a few dozen dates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyBook {
    versions: BTreeMap<u64, Policy>,
    /// Who issued each version above 0 (the root), for showing.
    issuers: BTreeMap<u64, NodeId>,
}

impl Default for PolicyBook {
    /// The built-in version 0 only: a node that has heard of no issued policy yet, a standalone
    /// node, and the tests.
    fn default() -> Self {
        let mut versions = BTreeMap::new();
        versions.insert(0, built_in_policy().clone());
        PolicyBook {
            versions,
            issuers: BTreeMap::new(),
        }
    }
}

impl PolicyBook {
    /// The built-in version and those of `signed` that `root` issued and that verify. The
    /// caller (the roster) has verified them already; they are checked again here because this
    /// is the one place that says which policies count.
    pub fn from_signed<'a>(
        root: Option<&str>,
        signed: impl IntoIterator<Item = &'a SignedPolicy>,
    ) -> PolicyBook {
        let mut book = PolicyBook::default();
        let Some(root) = root else {
            return book;
        };
        for signed in signed {
            if let Ok(issuer) = verify_policy(signed)
                && issuer == root
            {
                book.versions
                    .insert(signed.policy.version, signed.policy.clone());
                book.issuers.insert(signed.policy.version, issuer);
            }
        }
        book
    }

    /// This book with `policy` added unsigned as its version (replacing one held): for tests
    /// and benchmarks that fix their own policy. Nodes build books with [`PolicyBook::from_signed`].
    pub fn with_version(mut self, policy: Policy) -> PolicyBook {
        self.versions.insert(policy.version, policy);
        self
    }

    /// A book whose only version, 0, has `limits`: for tests and benchmarks that derive with one
    /// fixed set of limits.
    pub fn fixed(limits: Limits) -> PolicyBook {
        PolicyBook::default().with_version(Policy {
            limits,
            ..built_in_policy().clone()
        })
    }

    /// The version new cases are registered under here: the newest held.
    pub fn current(&self) -> &Policy {
        self.versions
            .values()
            .next_back()
            .unwrap_or_else(|| built_in_policy())
    }

    pub fn get(&self, version: u64) -> Option<&Policy> {
        self.versions.get(&version)
    }

    /// The limits a case with these events derives with: those of the version its register
    /// event names. Never a guess: an unknown version is an error.
    pub fn limits_for_case<'a>(
        &self,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> Result<&Limits, PolicyError> {
        let version = policy_version_of(events);
        self.get(version)
            .map(|policy| &policy.limits)
            .ok_or(PolicyError::Unknown { version })
    }

    pub fn versions(&self) -> impl Iterator<Item = &Policy> {
        self.versions.values()
    }

    /// Every version held, for `GET /api/policy`.
    pub fn views(&self) -> Vec<PolicyVersionView> {
        self.versions
            .values()
            .map(|policy| PolicyVersionView {
                version: policy.version,
                issued_by: self.issuers.get(&policy.version).cloned(),
                issued_at: (policy.version != 0).then_some(policy.issued_at),
                note: policy.note.clone(),
                limits: policy.limits.clone(),
                warnings: policy.warnings.clone(),
            })
            .collect()
    }
}

/// The case's state, derived with the limits of the policy version it was registered under:
/// what every node calls where it derives a case (`crate::derive` itself takes the limits, so
/// that a test or a tool can fix them).
pub fn derive_registered(
    policies: &PolicyBook,
    header: &CaseHeader,
    events: &[Event],
) -> Result<CaseState, PolicyError> {
    let limits = policies.limits_for_case(events)?;
    Ok(crate::derive::derive(header, events, limits))
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike, Weekday};

    use super::*;

    #[test]
    fn the_shipped_calendar_reads_and_every_working_weekend_is_a_weekend() {
        let years = parse_calendar(SHIPPED_CALENDAR_TOML).expect("the shipped calendar parses");
        let listed: Vec<i32> = years.iter().map(|year| year.year).collect();
        assert_eq!(
            listed,
            vec![2025, 2026],
            "2027 is not published in the data"
        );
        for year in &years {
            assert!(!year.notice.is_empty() && !year.source.is_empty());
            for date in year.holidays.iter().chain(&year.working_weekends) {
                assert_eq!(date.year(), year.year, "{date} listed under {}", year.year);
            }
            for date in &year.working_weekends {
                assert!(matches!(date.weekday(), Weekday::Sat | Weekday::Sun));
                assert!(!year.holidays.contains(date));
            }
        }
        // Spot checks against the notices: 2025 春节 8 days from 除夕 1月28日, 2月8日 worked;
        // 2026 春节 9 days from 2月15日, 2月14日 and 2月28日 worked.
        let limits = &built_in_policy().limits;
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("a date");
        assert!(limits.holidays.contains(&date(2025, 1, 28)));
        assert!(limits.holidays.contains(&date(2025, 2, 4)));
        assert!(limits.working_weekends.contains(&date(2025, 2, 8)));
        assert!(limits.holidays.contains(&date(2026, 2, 23)));
        assert!(limits.working_weekends.contains(&date(2026, 2, 14)));
        assert!(limits.working_weekends.contains(&date(2026, 2, 28)));
        assert_eq!(
            years.iter().map(|year| year.holidays.len()).sum::<usize>(),
            28 + 33
        );
        assert!(validate(built_in_policy()).is_ok());
    }

    #[test]
    fn a_signed_policy_verifies_and_any_change_is_refused() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let policy = Policy {
            version: 1,
            note: "试行".to_owned(),
            issued_at: DateTime::<Utc>::UNIX_EPOCH,
            ..built_in_policy().clone()
        };
        let signed = sign_policy(policy, &key).expect("signs");
        let issuer = verify_policy(&signed).expect("verifies");
        assert_eq!(
            issuer,
            node_id_for_public_key(
                &ed25519_dalek::SigningKey::from_bytes(&[7; 32])
                    .verifying_key()
                    .to_bytes()
            )
        );
        let mut altered = signed.clone();
        altered.policy.limits.max_extension_days = 90;
        assert_eq!(
            verify_policy(&altered),
            Err(PolicyError::BadSignature { version: 1 })
        );
        // Only the trusted root's versions count.
        let book = PolicyBook::from_signed(Some("someone-else"), [&signed]);
        assert_eq!(book.current().version, 0);
        let book = PolicyBook::from_signed(Some(&issuer), [&signed]);
        assert_eq!(book.current().version, 1);
        assert_eq!(
            book.limits_for_case(&[])
                .map(|limits| limits.max_extension_days),
            Ok(30)
        );
    }
}
