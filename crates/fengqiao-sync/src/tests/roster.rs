//! The replicated roster: who counts as a member, what a relay cannot forge, and how two linked
//! rosters converge through the exchange.

use chrono::{TimeZone, Utc};
use ed25519_dalek::SigningKey;
use fengqiao_case::authority::Hierarchy;
use fengqiao_case::model::Tier;
use fengqiao_case::model::roster::{RosterFrame, SignedRosterEntry};

use crate::roster::{
    Admission, Roster, RosterError, RosterEvent, RosterExchange, RosterSigner,
    node_id_for_public_key, sign_entry, verify_entry,
};
use crate::routing::{PeerRelation, SubtreeRoster};

struct Office {
    key: SigningKey,
    id: String,
    name: &'static str,
    tier: Tier,
    region: &'static str,
}

fn office(seed: u8, name: &'static str, tier: Tier, region: &'static str) -> Office {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let id = node_id_for_public_key(&key.public_key());
    Office {
        key,
        id,
        name,
        tier,
        region,
    }
}

fn admission(office: &Office, revoked: bool) -> Admission {
    Admission {
        node_id: office.id.clone(),
        name: office.name.to_owned(),
        aliases: Vec::new(),
        tier: office.tier,
        region_code: office.region.to_owned(),
        revoked,
        successor_of: None,
    }
}

fn at(minute: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 9, minute, 0)
        .single()
        .expect("valid time")
}

/// County 430702, township 430702001 under it, village 430702001001 under that.
struct Federation {
    county: Office,
    township: Office,
    village: Office,
    /// Every entry, as the county would hold it once all links have talked.
    entries: Vec<SignedRosterEntry>,
}

fn federation() -> Federation {
    let county = office(1, "武陵区信访局", Tier::County, "430702");
    let township = office(2, "芦荻山乡人民政府", Tier::Township, "430702001");
    let village = office(3, "芦荻山村", Tier::Village, "430702001001");
    let mut county_roster = Roster::new(Some(county.id.clone()));
    let mut township_roster = Roster::new(Some(county.id.clone()));
    let root = county_roster
        .issue(&county.key, admission(&county, false), at(0))
        .expect("root entry");
    let township_entry = county_roster
        .issue(&county.key, admission(&township, false), at(1))
        .expect("township entry");
    let village_entry = township_roster
        .issue(&township.key, admission(&village, false), at(2))
        .expect("village entry");
    Federation {
        county,
        township,
        village,
        entries: vec![root, township_entry, village_entry],
    }
}

#[test]
fn members_chain_from_the_root_and_answer_subtree_questions() {
    let federation = federation();
    let mut roster = Roster::new(Some(federation.county.id.clone()));
    let merge = roster.merge(federation.entries.clone());
    assert_eq!(merge.added, 3);
    assert!(merge.refused.is_empty(), "{:?}", merge.refused);
    assert!(merge.membership_changed);
    assert_eq!(roster.members().count(), 3);
    let village = roster.member(&federation.village.id).expect("village");
    assert_eq!(
        village.parent.as_deref(),
        Some(federation.township.id.as_str())
    );
    assert!(roster.is_in_subtree(&federation.township.id, &federation.village.id));
    assert!(roster.is_in_subtree(&federation.county.id, &federation.village.id));
    assert!(!roster.is_in_subtree(&federation.village.id, &federation.township.id));
    assert!(roster.is_in_subtree(&federation.village.id, &federation.village.id));
    let hierarchy: &dyn Hierarchy = &roster;
    assert!(hierarchy.is_strict_ancestor(&federation.county.id, &federation.village.id));
    assert!(hierarchy.is_strict_ancestor(&federation.township.id, &federation.village.id));
    assert!(!hierarchy.is_strict_ancestor(&federation.village.id, &federation.village.id));
    assert!(!hierarchy.is_strict_ancestor(&federation.village.id, &federation.county.id));
}

#[test]
fn merging_in_any_order_gives_the_same_roster() {
    let federation = federation();
    let mut forward = Roster::new(Some(federation.county.id.clone()));
    forward.merge(federation.entries.clone());
    let mut backward = Roster::new(Some(federation.county.id.clone()));
    for entry in federation.entries.iter().rev() {
        backward.merge([entry.clone()]);
    }
    assert_eq!(forward.digest(), backward.digest());
    assert_eq!(
        forward.members().collect::<Vec<_>>(),
        backward.members().collect::<Vec<_>>()
    );
    // Merging again adds nothing.
    assert_eq!(forward.merge(federation.entries).added, 0);
}

#[test]
fn nothing_is_a_member_without_a_trusted_root() {
    let federation = federation();
    let mut roster = Roster::new(None);
    roster.merge(federation.entries.clone());
    assert_eq!(roster.members().count(), 0);
    assert!(roster.set_root(&federation.county.id));
    assert_eq!(roster.members().count(), 3);
}

#[test]
fn a_relay_cannot_sign_for_another_office_nor_alter_an_entry() {
    let federation = federation();
    // The township writes an entry that claims the county admitted a village.
    let mut forged = federation.entries[2].entry.clone();
    forged.parent = Some(federation.county.id.clone());
    let signed_by_relay = sign_entry(forged, &federation.township.key).expect("sign");
    assert!(matches!(
        verify_entry(&signed_by_relay),
        Err(RosterError::WrongIssuer { .. })
    ));
    // The township alters the county's entry about itself to widen its region.
    let mut altered = federation.entries[1].clone();
    altered.entry.region_code = "430702".to_owned();
    assert!(matches!(
        verify_entry(&altered),
        Err(RosterError::BadSignature { .. })
    ));
    let mut short_signature = federation.entries[1].clone();
    short_signature.signature.truncate(10);
    assert!(matches!(
        verify_entry(&short_signature),
        Err(RosterError::BadSignatureLength { found: 10, .. })
    ));

    let mut roster = Roster::new(Some(federation.county.id.clone()));
    roster.merge(federation.entries.clone());
    let digest = roster.digest();
    let merge = roster.merge([signed_by_relay, altered, short_signature]);
    assert_eq!(merge.added, 0);
    assert_eq!(merge.refused.len(), 3);
    assert_eq!(roster.digest(), digest, "refused entries leave no trace");
}

#[test]
fn an_office_admits_only_lower_tiers_inside_its_region() {
    let federation = federation();
    let mut village_roster = Roster::new(Some(federation.county.id.clone()));
    village_roster.merge(federation.entries.clone());
    // A village "admits" a township-tier office, and a township admits a village elsewhere.
    let fake_township = office(9, "假乡镇", Tier::Township, "430702001001");
    village_roster
        .issue(
            &federation.village.key,
            admission(&fake_township, false),
            at(5),
        )
        .expect("signing works; membership is the roster's decision");
    let elsewhere = office(10, "外县村", Tier::Village, "430703001001");
    village_roster
        .issue(
            &federation.township.key,
            admission(&elsewhere, false),
            at(6),
        )
        .expect("sign");
    assert!(village_roster.member(&fake_township.id).is_none());
    assert!(village_roster.member(&elsewhere.id).is_none());
    assert_eq!(village_roster.members().count(), 3);
}

#[test]
fn a_forged_root_does_not_move_an_office() {
    let federation = federation();
    let impostor = office(11, "冒充的县", Tier::County, "430702");
    let mut impostor_roster = Roster::new(Some(impostor.id.clone()));
    let fake_root = impostor_roster
        .issue(&impostor.key, admission(&impostor, false), at(30))
        .expect("root");
    let stolen_township = impostor_roster
        .issue(
            &impostor.key,
            admission(&federation.township, false),
            at(31),
        )
        .expect("entry");
    let mut roster = Roster::new(Some(federation.county.id.clone()));
    roster.merge(federation.entries.clone());
    roster.merge([fake_root, stolen_township]);
    assert!(roster.member(&impostor.id).is_none());
    let township = roster.member(&federation.township.id).expect("township");
    assert_eq!(
        township.parent.as_deref(),
        Some(federation.county.id.as_str())
    );
}

#[test]
fn revoking_a_township_removes_its_subtree_until_it_is_admitted_again() {
    let federation = federation();
    let mut county_roster = Roster::new(Some(federation.county.id.clone()));
    county_roster.merge(federation.entries.clone());
    let revocation = county_roster
        .issue(
            &federation.county.key,
            admission(&federation.township, true),
            at(10),
        )
        .expect("revoke");
    assert!(county_roster.member(&federation.township.id).is_none());
    assert!(county_roster.member(&federation.village.id).is_none());
    assert!(!county_roster.is_in_subtree(&federation.county.id, &federation.village.id));
    // The township is still known by its last name, as revoked; nothing else is.
    let revoked: Vec<(&str, &str, bool)> = county_roster
        .revoked()
        .map(|entry| (entry.node_id.as_str(), entry.name.as_str(), entry.revoked))
        .collect();
    assert_eq!(
        revoked,
        vec![(federation.township.id.as_str(), "芦荻山乡人民政府", true)]
    );

    // The revocation travels: a roster that learns it later agrees.
    let mut other = Roster::new(Some(federation.county.id.clone()));
    other.merge(federation.entries.clone());
    let merge = other.merge([revocation.clone()]);
    assert!(merge.membership_changed);
    assert!(other.member(&federation.village.id).is_none());
    // An older admission replayed after the revocation changes nothing.
    assert_eq!(other.merge([federation.entries[1].clone()]).added, 0);

    county_roster
        .issue(
            &federation.county.key,
            admission(&federation.township, false),
            at(20),
        )
        .expect("admit again");
    assert!(county_roster.member(&federation.village.id).is_some());
    assert_eq!(county_roster.revoked().count(), 0);
}

/// Run two exchanges until neither has anything to say; returns the frames that crossed.
fn converse(
    left: &mut (Roster, RosterExchange),
    right: &mut (Roster, RosterExchange),
) -> Vec<RosterFrame> {
    converse_through(left, right, |frame| frame)
}

/// [`converse`], with what the right side sends passing through `on_the_way`.
fn converse_through(
    left: &mut (Roster, RosterExchange),
    right: &mut (Roster, RosterExchange),
    on_the_way: impl Fn(RosterFrame) -> RosterFrame,
) -> Vec<RosterFrame> {
    let mut crossed = Vec::new();
    for _ in 0..20 {
        let mut quiet = true;
        while let Some(frame) = left.1.poll_transmit() {
            quiet = false;
            crossed.push(frame.clone());
            right.1.handle_frame(&mut right.0, frame);
        }
        while let Some(frame) = right.1.poll_transmit() {
            quiet = false;
            let frame = on_the_way(frame);
            crossed.push(frame.clone());
            left.1.handle_frame(&mut left.0, frame);
        }
        if quiet {
            return crossed;
        }
    }
    panic!("the exchange did not settle");
}

#[test]
fn a_new_child_learns_the_root_and_the_roster_from_its_parent() {
    let federation = federation();
    let mut township_roster = Roster::new(Some(federation.county.id.clone()));
    township_roster.merge(federation.entries.clone());
    let village_roster = Roster::new(None);
    let township_exchange = RosterExchange::new(PeerRelation::Child, &township_roster);
    let village_exchange = RosterExchange::new(PeerRelation::Parent, &village_roster);
    let mut township = (township_roster, township_exchange);
    let mut village = (village_roster, village_exchange);
    let crossed = converse(&mut township, &mut village);
    assert_eq!(village.0.root(), Some(federation.county.id.as_str()));
    assert_eq!(village.0.digest(), township.0.digest());
    assert_eq!(village.0.members().count(), 3);
    let events: Vec<RosterEvent> = std::iter::from_fn(|| village.1.poll_event()).collect();
    assert!(events.contains(&RosterEvent::RootPinned {
        root: federation.county.id.clone()
    }));
    assert!(events.contains(&RosterEvent::Changed { added: 3 }));
    let entries_frames = crossed
        .iter()
        .filter(|frame| matches!(frame, RosterFrame::Entries { .. }))
        .count();
    assert_eq!(entries_frames, 1, "only the township had anything to send");

    // Reconnecting with nothing changed: one digest each way.
    let mut township_again = (
        township.0.clone(),
        RosterExchange::new(PeerRelation::Child, &township.0),
    );
    let mut village_again = (
        village.0.clone(),
        RosterExchange::new(PeerRelation::Parent, &village.0),
    );
    let crossed = converse(&mut township_again, &mut village_again);
    assert_eq!(crossed.len(), 2, "{crossed:?}");
}

#[test]
fn a_child_never_sets_its_parents_root_and_a_mismatch_is_reported() {
    let federation = federation();
    let impostor = office(12, "冒充的县", Tier::County, "430702");
    let mut county_side = Roster::new(Some(federation.county.id.clone()));
    county_side.merge(federation.entries.clone());
    // A child announcing another root is not believed: only a parent names the root.
    let mut child_exchange =
        RosterExchange::new(PeerRelation::Child, &Roster::new(Some(impostor.id.clone())));
    let frame = child_exchange.poll_transmit().expect("digest");
    let mut county_exchange = RosterExchange::new(PeerRelation::Child, &county_side);
    county_exchange.handle_frame(&mut county_side, frame.clone());
    assert_eq!(county_side.root(), Some(federation.county.id.as_str()));

    let mut pinned = Roster::new(Some(federation.county.id.clone()));
    let mut from_parent = RosterExchange::new(PeerRelation::Parent, &pinned);
    from_parent.handle_frame(&mut pinned, frame);
    assert_eq!(pinned.root(), Some(federation.county.id.as_str()));
    let events: Vec<RosterEvent> = std::iter::from_fn(|| from_parent.poll_event()).collect();
    assert_eq!(
        events,
        vec![RosterEvent::RootMismatch {
            ours: federation.county.id.clone(),
            parents: impostor.id.clone(),
        }]
    );
}

#[test]
fn an_entry_written_below_reaches_the_parent_and_both_settle() {
    let federation = federation();
    let mut county_roster = Roster::new(Some(federation.county.id.clone()));
    county_roster.merge(federation.entries.clone());
    let mut township_roster = Roster::new(Some(federation.county.id.clone()));
    township_roster.merge(federation.entries.clone());
    let county_exchange = RosterExchange::new(PeerRelation::Child, &county_roster);
    let township_exchange = RosterExchange::new(PeerRelation::Parent, &township_roster);
    let mut county = (county_roster, county_exchange);
    let mut township = (township_roster, township_exchange);
    assert_eq!(
        converse(&mut county, &mut township).len(),
        2,
        "equal rosters: digests only"
    );

    // The township admits a second village while the link is up.
    let second = office(4, "新坪村", Tier::Village, "430702001002");
    township
        .0
        .issue(&federation.township.key, admission(&second, false), at(40))
        .expect("admit");
    township.1.on_roster_change(&township.0);
    let crossed = converse(&mut county, &mut township);
    assert!(county.0.member(&second.id).is_some(), "{crossed:?}");
    assert_eq!(county.0.digest(), township.0.digest());
    assert!(crossed.len() <= 5, "settles in a few frames: {crossed:?}");
}

#[test]
fn peers_that_keep_different_entries_stop_trading_them() {
    let federation = federation();
    // The left side only ever receives tampered copies of the right side's entries, so it
    // refuses them and can never reach the right side's digest.
    let mut left = Roster::new(Some(federation.county.id.clone()));
    left.merge(federation.entries[..1].to_vec());
    let mut right = Roster::new(Some(federation.county.id.clone()));
    right.merge(federation.entries.clone());
    let mut tampered: Vec<SignedRosterEntry> = right.entries().cloned().collect();
    for entry in &mut tampered {
        entry.signature[0] ^= 1;
    }
    let left_exchange = RosterExchange::new(PeerRelation::Child, &left);
    let right_exchange = RosterExchange::new(PeerRelation::Parent, &right);
    let mut left_side = (left, left_exchange);
    let mut right_side = (right, right_exchange);
    let crossed = converse_through(&mut left_side, &mut right_side, |frame| match frame {
        RosterFrame::Entries { digest, .. } => RosterFrame::Entries {
            entries: tampered.clone(),
            digest,
        },
        other => other,
    })
    .len();
    assert!(crossed <= 6, "{crossed} frames: the exchange must settle");
    assert_ne!(left_side.0.digest(), right_side.0.digest());
}

/// Signers of edge-case signatures over whatever message they are given, so one signer makes a
/// roster entry and an event of the same kind.
mod edge_case_signers {
    use curve25519_dalek::{EdwardsPoint, Scalar};
    use ed25519_dalek::SigningKey;
    use sha2::{Digest, Sha512};

    use crate::roster::RosterSigner;

    /// What each signer does to an honest signature.
    #[derive(Debug, Clone, Copy)]
    pub enum Twist {
        None,
        /// One bit of `s` flipped.
        FlippedBit,
        /// `s + ℓ`: the same scalar, not in canonical form.
        NonCanonicalS,
        /// The point of order 2 added to `R`, `s` computed for it: only the cofactored equation
        /// holds (the issue's attack).
        MixedOrderR,
        /// Not this key at all: the first speccheck vector's small-order key and signature
        /// (`A` and `R` of small order, `s = 0`), which the cofactored equation accepts for
        /// every message.
        SmallOrderKeyAndR,
    }

    pub struct EdgeCaseSigner {
        pub key: SigningKey,
        pub twist: Twist,
    }

    /// ed25519-speccheck's vector 0 (`shared/testdata/ed25519-edge-cases.json`).
    const SMALL_ORDER_KEY: &str =
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa";
    const SMALL_ORDER_SIGNATURE: &str = "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a0000000000000000000000000000000000000000000000000000000000000000";

    fn decoded<const LENGTH: usize>(hex_text: &str) -> [u8; LENGTH] {
        hex::decode(hex_text)
            .expect("hex")
            .try_into()
            .expect("length")
    }

    fn order_two_point() -> EdwardsPoint {
        let mut encoding = [0xff_u8; 32];
        encoding[0] = 0xec;
        encoding[31] = 0x7f;
        curve25519_dalek::edwards::CompressedEdwardsY(encoding)
            .decompress()
            .expect("(0, -1) is on the curve")
    }

    fn wide_hash(parts: &[&[u8]]) -> Scalar {
        let mut hash = Sha512::new();
        for part in parts {
            hash.update(part);
        }
        Scalar::from_bytes_mod_order_wide(&hash.finalize().into())
    }

    impl RosterSigner for EdgeCaseSigner {
        fn public_key(&self) -> [u8; 32] {
            match self.twist {
                Twist::SmallOrderKeyAndR => decoded(SMALL_ORDER_KEY),
                _ => self.key.public_key(),
            }
        }

        fn sign(&self, message: &[u8]) -> [u8; 64] {
            let mut signature = RosterSigner::sign(&self.key, message);
            match self.twist {
                Twist::None => {}
                Twist::FlippedBit => signature[40] ^= 0x04,
                Twist::NonCanonicalS => {
                    // ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian.
                    let order: [u8; 32] = [
                        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2,
                        0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
                    ];
                    let mut carry = 0u16;
                    for (byte, add) in signature[32..].iter_mut().zip(order) {
                        let total = u16::from(*byte) + u16::from(add) + carry;
                        *byte = total as u8;
                        carry = total >> 8;
                    }
                    assert_eq!(carry, 0, "s + ℓ fits in 32 bytes");
                }
                Twist::MixedOrderR => {
                    let public_key = self.key.public_key();
                    let nonce = wide_hash(&[b"mixed-order nonce", message]);
                    let commitment =
                        (EdwardsPoint::mul_base(&nonce) + order_two_point()).compress();
                    let challenge = wide_hash(&[commitment.as_bytes(), &public_key, message]);
                    let s = nonce + challenge * self.key.to_scalar();
                    signature[..32].copy_from_slice(commitment.as_bytes());
                    signature[32..].copy_from_slice(s.as_bytes());
                }
                Twist::SmallOrderKeyAndR => signature = decoded(SMALL_ORDER_SIGNATURE),
            }
            signature
        }
    }
}

/// A roster entry and an event signed the same edge-case way get the same verdict: both go
/// through `fengqiao_case::signature`'s one rule (ZIP-215), alone and in a batch. Before, the
/// roster used ed25519-dalek's cofactorless `verify` and events its `verify_strict`.
#[test]
fn roster_entries_and_events_get_one_verdict_on_edge_case_signatures() {
    use edge_case_signers::{EdgeCaseSigner, Twist};
    use fengqiao_case::model::roster::{ROSTER_FORMAT_VERSION, RosterEntry};
    use fengqiao_case::model::{Event, EventKind, HeaderAmendment, HybridTimestamp};
    use fengqiao_case::signature::{SignerKeys, sign_event, verify_all, verify_event};

    let case = "430702001001-2026-000123".to_owned();
    let valid_signer = SigningKey::from_bytes(&[9; 32]);
    let event_by = |signer: &dyn RosterSigner, id: &str| {
        let mut event = Event {
            id: id.to_owned(),
            kind: EventKind::AmendHeader {
                amendment: HeaderAmendment::Headcount(4),
            },
            at: at(5),
            node: node_id_for_public_key(&signer.public_key()),
            operator: "王芳".to_owned(),
            prev: None,
            hlc: HybridTimestamp::default(),
            signature: None,
            imported: None,
            backdated_reason: None,
        };
        sign_event(&case, &mut event, signer).expect("signs");
        event
    };
    let valid: Vec<Event> = (0..8)
        .map(|index| event_by(&valid_signer, &format!("valid-{index}")))
        .collect();

    for (twist, verdict) in [
        (Twist::None, true),
        (Twist::FlippedBit, false),
        (Twist::NonCanonicalS, false),
        (Twist::MixedOrderR, true),
        (Twist::SmallOrderKeyAndR, true),
    ] {
        let signer = EdgeCaseSigner {
            key: SigningKey::from_bytes(&[7; 32]),
            twist,
        };
        let node = node_id_for_public_key(&signer.public_key());
        let entry = RosterEntry {
            format_version: ROSTER_FORMAT_VERSION,
            node_id: node.clone(),
            name: "武陵区信访局".to_owned(),
            aliases: Vec::new(),
            tier: Tier::County,
            region_code: "430702".to_owned(),
            parent: None,
            revoked: false,
            serial: 1,
            issued_at: at(4),
            successor_of: None,
        };
        let roster_verdict = match verify_entry(&sign_entry(entry, &signer).expect("signs")) {
            Ok(issuer) => {
                assert_eq!(issuer, node);
                true
            }
            Err(RosterError::BadSignature { .. }) => false,
            Err(other) => panic!("{twist:?}: unexpected refusal {other}"),
        };
        let event = event_by(&signer, "edge-case");
        let alone = verify_event(&case, &event).is_ok();
        let mut batch: Vec<&Event> = valid.iter().collect();
        batch.insert(3, &event);
        let in_batch = verify_all(&case, &batch, &mut SignerKeys::default());
        assert_eq!(
            (roster_verdict, alone, in_batch),
            (verdict, verdict, verdict),
            "{twist:?}: roster entry, event alone, event among 8 valid"
        );
    }
}

/// Policies ride the roster exchange and the stored snapshot; only the trusted root's versions
/// count, only the root issues, and a snapshot stored before policies still reads.
#[test]
fn policies_travel_with_the_roster_and_only_the_roots_count() {
    use fengqiao_case::model::policy::Policy;
    use fengqiao_case::model::{Limits, WarningThresholds};
    use fengqiao_case::policy::{built_in_policy, sign_policy};

    use crate::roster::{decode_snapshot, encode_snapshot};

    let federation = federation();
    let mut county_roster = Roster::new(Some(federation.county.id.clone()));
    county_roster.merge(federation.entries.clone());
    let longer = Limits {
        max_extension_days: 45,
        ..Limits::default()
    };
    let issued = county_roster
        .issue_policy(
            &federation.county.key,
            longer.clone(),
            WarningThresholds::default(),
            "试行".to_owned(),
            at(5),
        )
        .expect("the root issues");
    assert_eq!(issued.policy.version, 1);
    // A township's own "policy" verifies as a signature but is not the root's.
    let township_policy = sign_policy(
        Policy {
            version: 7,
            ..built_in_policy().clone()
        },
        &federation.township.key,
    )
    .expect("signs");
    county_roster.merge_policies([township_policy.clone()]);
    let mut township_roster = Roster::new(Some(federation.county.id.clone()));
    township_roster.merge(federation.entries.clone());
    assert!(matches!(
        township_roster.issue_policy(
            &federation.township.key,
            Limits::default(),
            WarningThresholds::default(),
            String::new(),
            at(6),
        ),
        Err(RosterError::NotRoot { .. })
    ));

    let village_roster = Roster::new(None);
    let mut county = (
        county_roster.clone(),
        RosterExchange::new(PeerRelation::Child, &county_roster),
    );
    let mut village = (
        village_roster.clone(),
        RosterExchange::new(PeerRelation::Parent, &village_roster),
    );
    converse(&mut county, &mut village);
    assert_eq!(village.0.digest(), county.0.digest());
    assert_eq!(village.0.policies().count(), 2, "both kept, as entries are");
    let book = village.0.policy_book();
    assert_eq!(book.current().version, 1, "only the root's version counts");
    assert_eq!(book.current().limits, longer);
    assert!(book.get(7).is_none());
    let events: Vec<RosterEvent> = std::iter::from_fn(|| village.1.poll_event()).collect();
    assert!(events.contains(&RosterEvent::PoliciesChanged { added: 2 }));

    // An altered policy is refused.
    let mut altered = issued.clone();
    altered.policy.limits.max_extension_days = 90;
    let mut other = Roster::new(Some(federation.county.id.clone()));
    let merge = other.merge_policies([altered]);
    assert_eq!(merge.policies_added, 0);
    assert_eq!(merge.refused.len(), 1, "{:?}", merge.refused);

    // Stored and read back, policies included; a format-1 snapshot (before policies) reads.
    let stored = encode_snapshot(&county.0.snapshot()).expect("encodes");
    let (restored, _) = Roster::from_snapshot(decode_snapshot(&stored).expect("decodes"));
    assert_eq!(restored.policy_book(), county.0.policy_book());
    assert_eq!(restored.digest(), county.0.digest());
    // Format-1 snapshots hold entries in their format-1 layout (no `successor_of`).
    let entries_as_format_1: Vec<fengqiao_case::model::roster::SignedRosterEntryV1> = federation
        .entries
        .iter()
        .map(|signed| fengqiao_case::model::roster::SignedRosterEntryV1 {
            entry: signed.entry.as_version_1().expect("names no successor"),
            issuer_public_key: signed.issuer_public_key.clone(),
            signature: signed.signature.clone(),
        })
        .collect();
    let mut format_1 = vec![1u8];
    bincode::serde::encode_into_std_write(
        (
            1u32,
            Some(federation.county.id.clone()),
            entries_as_format_1,
        ),
        &mut format_1,
        bincode::config::standard(),
    )
    .expect("encodes");
    let old = decode_snapshot(&format_1).expect("a format-1 snapshot reads");
    assert_eq!(old.entries, federation.entries);
    assert!(old.policies.is_empty());
}
