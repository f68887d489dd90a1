//! The nemesis of issue 16: a federation of seven real nodes, each child linked to its parent
//! through its own fault proxy, worked on through the HTTP API at every tier while a seeded
//! schedule cuts links and subtrees, makes links lossy, slow or duplicating, and kills and
//! restarts nodes; then every link is healed, every node restarted, and a checker reads every
//! node to judge what the federation kept of what it acknowledged.
//!
//! The schedule is drawn from one seed (printed first): which fault, which link or node, which
//! work, which case. The timing of processes is not the seed's, so a replay follows the same
//! draws but may see nodes answer differently; every action is logged to replay by eye.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fengqiao_case::authority::lies_within;
use serde_json::{Value, json};

use crate::fault_proxy::{FaultProxy, LinkMode};
use crate::{
    NodeProcess, Office, http_get, http_post, path_str, quic_address, run_cli, sample_registration,
};

/// One office of the nemesis federation: where it sits and who its parent is.
struct OfficePlan {
    key: &'static str,
    name: &'static str,
    tier: &'static str,
    region: &'static str,
    parent: Option<usize>,
}

/// A county, two townships, two villages under each (parents before children).
const PLAN: [OfficePlan; 7] = [
    OfficePlan {
        key: "county",
        name: "武陵区信访局",
        tier: "county",
        region: "430702",
        parent: None,
    },
    OfficePlan {
        key: "luodishan",
        name: "芦荻山乡调处中心",
        tier: "township",
        region: "430702001",
        parent: Some(0),
    },
    OfficePlan {
        key: "danzhou",
        name: "丹洲乡调处中心",
        tier: "township",
        region: "430702002",
        parent: Some(0),
    },
    OfficePlan {
        key: "luodishan-village",
        name: "芦荻山村调解室",
        tier: "village",
        region: "430702001001",
        parent: Some(1),
    },
    OfficePlan {
        key: "xinhe",
        name: "新河村调解室",
        tier: "village",
        region: "430702001002",
        parent: Some(1),
    },
    OfficePlan {
        key: "danzhou-village",
        name: "丹洲村调解室",
        tier: "village",
        region: "430702002001",
        parent: Some(2),
    },
    OfficePlan {
        key: "sanchahe",
        name: "三岔河村调解室",
        tier: "village",
        region: "430702002002",
        parent: Some(2),
    },
];

/// Longest the checker waits for the federation to settle after the heal.
const QUIESCENCE_BOUND: Duration = Duration::from_secs(120);

/// A small seeded random source (xorshift64*): the schedule's only source of choices.
#[derive(Debug, Clone)]
pub struct Xorshift(u64);

impl Xorshift {
    pub fn new(seed: u64) -> Xorshift {
        // Zero is xorshift's one fixed point; mixing keeps nearby seeds apart.
        Xorshift((seed ^ 0x9E37_79B9_7F4A_7C15).max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            Some(&items[self.below(items.len())])
        }
    }

    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.next_u64() % (high - low + 1))
    }
}

/// The kinds of fault the schedule injects, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    CutLink,
    CutSubtree,
    Lossy,
    Slow,
    Duplicating,
    Kill9,
    Sigterm,
    /// A village's link cut while the village closes a case its township takes over.
    ConflictingTransitions,
    /// A node restarted with its clock up to 3 days off (`run --clock-offset-seconds`), then
    /// restarted again with the right time.
    ClockSkew,
}

/// A write the API answered 2xx to: what must be found afterwards.
#[derive(Debug, Clone)]
struct AcknowledgedWrite {
    office: usize,
    case: String,
    kind: String,
    event: String,
}

/// What the schedule knows of a case it registered: where it lies and who must hold it.
#[derive(Debug, Clone)]
struct CaseRecord {
    region: String,
    /// The registering office and its ancestors: routing sends every case up, and the
    /// registrar takes part in its case for ever. Who else must hold it is read from the case's
    /// final state (`expected_holders`).
    must_hold: BTreeSet<usize>,
}

/// Something the schedule undoes later.
#[derive(Debug, Clone)]
enum Undo {
    HealLinks(Vec<usize>),
    Restart(usize),
    /// Stop a node running with a skewed clock and run it again with the right time.
    RestartWithTheRightTime(usize),
}

/// What a run did, for its summary line.
#[derive(Debug, Default, Clone)]
pub struct NemesisReport {
    pub seed: u64,
    pub seconds: u64,
    pub faults: BTreeMap<String, u64>,
    pub acknowledged: usize,
    /// Acknowledged writes by event kind.
    pub acknowledged_by_kind: BTreeMap<String, u64>,
    pub refused: usize,
    pub unanswered: usize,
    pub cases: usize,
    pub lost: usize,
    /// Cases an office that no longer takes part in them keeps in an older version.
    pub stale_copies: usize,
    /// Cases holding two different transitions made on the same one.
    pub forked_cases: usize,
    pub convergence: Duration,
}

impl NemesisReport {
    /// One line: seed, faults by kind, writes, losses, time to converge after the heal.
    pub fn summary_line(&self) -> String {
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(kind, count)| format!("{kind}={count}"))
            .collect();
        let kinds: Vec<String> = self
            .acknowledged_by_kind
            .iter()
            .map(|(kind, count)| format!("{kind}={count}"))
            .collect();
        format!(
            "nemesis seed={} seconds={} faults[{}] writes acknowledged={} [{}] refused={} \
             unanswered={} cases={} forked={} lost={} stale_former_participant_copies={} \
             converged_after_heal={:.1}s",
            self.seed,
            self.seconds,
            faults.join(" "),
            self.acknowledged,
            kinds.join(" "),
            self.refused,
            self.unanswered,
            self.cases,
            self.forked_cases,
            self.lost,
            self.stale_copies,
            self.convergence.as_secs_f64()
        )
    }
}

/// The seven offices, their running nodes (None while down), QUIC addresses and uplinks.
struct Federation {
    offices: Vec<Office>,
    nodes: Vec<Option<NodeProcess>>,
    quic: Vec<SocketAddr>,
    /// Index = child office: the proxy between it and its parent.
    uplinks: Vec<Option<FaultProxy>>,
}

impl Federation {
    fn start(temp: &std::path::Path, seed: u64) -> Federation {
        let offices: Vec<Office> = PLAN
            .iter()
            .map(|plan| Office::init(temp, plan.key, plan.name, plan.tier, plan.region))
            .collect();
        for (index, plan) in PLAN.iter().enumerate() {
            if let Some(parent) = plan.parent {
                offices[parent].admit(&offices[index]);
            }
        }
        let mut nodes = Vec::new();
        let mut quic = Vec::new();
        let mut uplinks = Vec::new();
        for (index, plan) in PLAN.iter().enumerate() {
            let uplink = plan.parent.map(|parent| {
                let proxy = FaultProxy::start(quic[parent], seed.wrapping_add(index as u64))
                    .expect("start a fault proxy");
                offices[index].join(&offices[parent], proxy.address());
                proxy
            });
            let node = offices[index].start();
            quic.push(quic_address(&node));
            nodes.push(Some(node));
            uplinks.push(uplink);
        }
        let federation = Federation {
            offices,
            nodes,
            quic,
            uplinks,
        };
        federation.wait_for_roster();
        federation
    }

    /// Every node's roster lists every office: authority on receipt is judged against it.
    fn wait_for_roster(&self) {
        let members: Vec<&str> = self
            .offices
            .iter()
            .map(|office| office.id.as_str())
            .collect();
        let nodes: Vec<&NodeProcess> = self.nodes.iter().flatten().collect();
        crate::wait_for_roster(&nodes, &members, Duration::from_secs(60));
    }

    fn office_of_node(&self) -> HashMap<String, usize> {
        self.offices
            .iter()
            .enumerate()
            .map(|(index, office)| (office.id.clone(), index))
            .collect()
    }

    fn running(&self) -> Vec<usize> {
        (0..PLAN.len())
            .filter(|index| self.nodes[*index].is_some())
            .collect()
    }

    fn address(&self, office: usize) -> Option<SocketAddr> {
        self.nodes[office].as_ref().map(|node| node.address)
    }

    fn restart(&mut self, office: usize) {
        if self.nodes[office].is_none() {
            // At its own QUIC address, which its children's proxy forwards to.
            self.nodes[office] = Some(self.offices[office].restart_at(self.quic[office]));
        }
    }

    fn set_links(&self, links: &[usize], mode: LinkMode) {
        for link in links {
            if let Some(proxy) = &self.uplinks[*link] {
                proxy.set_mode(mode);
            }
        }
    }
}

/// Whether `ancestor` is `office` or above it.
fn is_ancestor_or_self(ancestor: usize, office: usize) -> bool {
    let mut current = Some(office);
    while let Some(index) = current {
        if index == ancestor {
            return true;
        }
        current = PLAN[index].parent;
    }
    false
}

fn ancestors_and_self(office: usize) -> Vec<usize> {
    (0..PLAN.len())
        .filter(|candidate| is_ancestor_or_self(*candidate, office))
        .collect()
}

/// The schedule's state while it runs.
struct Nemesis {
    seed: u64,
    random: Xorshift,
    federation: Federation,
    started: Instant,
    log: Vec<String>,
    cases: BTreeMap<String, CaseRecord>,
    writes: Vec<AcknowledgedWrite>,
    undo: Vec<(Instant, Undo)>,
    report: NemesisReport,
    registrations: usize,
    /// The nodes' directories, kept when a property fails.
    temp: Option<tempfile::TempDir>,
    /// Nodes that did not exit cleanly on SIGTERM (README: a node stops within about 10 s).
    unclean_stops: Vec<String>,
}

impl Nemesis {
    fn note(&mut self, line: String) {
        let elapsed = self.started.elapsed().as_secs_f64();
        self.log.push(format!("{elapsed:7.2}s {line}"));
    }

    fn count_fault(&mut self, kind: FaultKind) {
        *self.report.faults.entry(format!("{kind:?}")).or_default() += 1;
    }

    /// Undo what is due: heal links, restart nodes.
    fn undo_due(&mut self, now: Instant) {
        let (due, later): (Vec<_>, Vec<_>) =
            self.undo.drain(..).partition(|(when, _)| *when <= now);
        self.undo = later;
        for (_, undo) in due {
            self.apply_undo(undo);
        }
    }

    fn apply_undo(&mut self, undo: Undo) {
        match undo {
            Undo::HealLinks(links) => {
                self.federation.set_links(&links, LinkMode::Pass);
                let names: Vec<&str> = links.iter().map(|link| PLAN[*link].key).collect();
                self.note(format!("heal {}", names.join(",")));
            }
            Undo::Restart(office) => {
                self.federation.restart(office);
                self.note(format!("restart {}", PLAN[office].key));
            }
            Undo::RestartWithTheRightTime(office) => {
                if let Some(node) = self.federation.nodes[office].take() {
                    let graceful = node.stop().unwrap_or(false);
                    if !graceful {
                        let when = self.started.elapsed().as_secs_f64();
                        self.unclean_stops
                            .push(format!("{} at {when:.2}s", PLAN[office].key));
                    }
                }
                self.federation.restart(office);
                self.note(format!("restart {} with the right time", PLAN[office].key));
            }
        }
    }

    fn fault(&mut self) {
        let kinds = [
            FaultKind::CutLink,
            FaultKind::CutSubtree,
            FaultKind::Lossy,
            FaultKind::Slow,
            FaultKind::Duplicating,
            FaultKind::Kill9,
            FaultKind::Sigterm,
            FaultKind::ConflictingTransitions,
            FaultKind::ClockSkew,
        ];
        let kind = *self.random.pick(&kinds).expect("fault kinds");
        let link = 1 + self.random.below(PLAN.len() - 1);
        let lasting = self.random.millis(1_500, 8_000);
        let until = Instant::now() + lasting;
        match kind {
            FaultKind::CutLink => {
                self.federation.set_links(&[link], LinkMode::Partition);
                self.undo.push((until, Undo::HealLinks(vec![link])));
                self.note(format!("cut {} for {lasting:?}", PLAN[link].key));
            }
            FaultKind::CutSubtree => {
                let township = 1 + self.random.below(2);
                let links: Vec<usize> = (0..PLAN.len())
                    .filter(|office| *office != 0 && is_ancestor_or_self(township, *office))
                    .collect();
                self.federation.set_links(&links, LinkMode::Partition);
                self.undo.push((until, Undo::HealLinks(links)));
                self.note(format!(
                    "cut subtree {} for {lasting:?}",
                    PLAN[township].key
                ));
            }
            FaultKind::Lossy | FaultKind::Slow | FaultKind::Duplicating => {
                let mode = match kind {
                    FaultKind::Lossy => LinkMode::Lossy {
                        drop_fraction: 0.1 + self.random.below(40) as f64 / 100.0,
                    },
                    FaultKind::Slow => LinkMode::Slow {
                        max_delay: self.random.millis(20, 300),
                    },
                    _ => LinkMode::Duplicating {
                        duplicate_fraction: 0.2 + self.random.below(40) as f64 / 100.0,
                    },
                };
                self.federation.set_links(&[link], mode);
                self.undo.push((until, Undo::HealLinks(vec![link])));
                self.note(format!("{mode:?} on {} for {lasting:?}", PLAN[link].key));
            }
            FaultKind::Kill9 | FaultKind::Sigterm => {
                let office = self.random.below(PLAN.len());
                let Some(node) = self.federation.nodes[office].take() else {
                    return;
                };
                let down_for = self.random.millis(500, 4_000);
                if kind == FaultKind::Kill9 {
                    node.kill_hard();
                    self.note(format!("kill -9 {} for {down_for:?}", PLAN[office].key));
                } else {
                    let graceful = node.stop().unwrap_or(false);
                    self.note(format!(
                        "SIGTERM {} (graceful {graceful}) for {down_for:?}",
                        PLAN[office].key
                    ));
                    if !graceful {
                        let when = self.started.elapsed().as_secs_f64();
                        self.unclean_stops
                            .push(format!("{} at {when:.2}s", PLAN[office].key));
                    }
                }
                self.undo
                    .push((Instant::now() + down_for, Undo::Restart(office)));
            }
            FaultKind::ConflictingTransitions => {
                if !self.conflicting_transitions(lasting) {
                    return;
                }
            }
            FaultKind::ClockSkew => {
                let office = self.random.below(PLAN.len());
                let Some(node) = self.federation.nodes[office].take() else {
                    return;
                };
                let graceful = node.stop().unwrap_or(false);
                if !graceful {
                    let when = self.started.elapsed().as_secs_f64();
                    self.unclean_stops
                        .push(format!("{} at {when:.2}s", PLAN[office].key));
                }
                // Up to 3 days either way, to the second.
                let magnitude = 600 + self.random.below(3 * 86_400 - 600) as i64;
                let offset = if self.random.chance(50) {
                    magnitude
                } else {
                    -magnitude
                };
                let skewed = self.federation.offices[office].restart_at_with(
                    self.federation.quic[office],
                    &["--clock-offset-seconds", &offset.to_string()],
                );
                self.federation.nodes[office] = Some(skewed);
                self.undo
                    .push((until, Undo::RestartWithTheRightTime(office)));
                self.note(format!(
                    "clock of {} off by {offset} s for {lasting:?}",
                    PLAN[office].key
                ));
            }
        }
        self.count_fault(kind);
    }

    /// Cut a village off while it replies to and closes an accepted case and its township takes
    /// the same case over: a fork that must show as a conflict everywhere after the heal.
    fn conflicting_transitions(&mut self, lasting: Duration) -> bool {
        let village = 3 + self.random.below(4);
        let township = PLAN[village].parent.expect("a village has a parent");
        let (Some(village_address), Some(township_address)) = (
            self.federation.address(village),
            self.federation.address(township),
        ) else {
            return false;
        };
        let village_id = self.federation.offices[village].id.clone();
        let Ok((200, listing)) = http_get(
            village_address,
            &format!("/api/cases?status=accepted&holder={village_id}&limit=1000"),
        ) else {
            return false;
        };
        let numbers: Vec<String> = listing
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item["summary"]["number"].as_str().map(str::to_owned))
            .collect();
        let Some(number) = self.random.pick(&numbers).cloned() else {
            return false;
        };
        // The township must already see the case accepted and held by the village, or its take
        // over would be refused rather than conflicting.
        match http_get(township_address, &format!("/api/cases/{number}")) {
            Ok((200, view))
                if view["state"]["holder"] == village_id.as_str()
                    && view["state"]["status"] == "accepted" => {}
            _ => return false,
        }
        self.federation.set_links(&[village], LinkMode::Partition);
        self.undo
            .push((Instant::now() + lasting, Undo::HealLinks(vec![village])));
        self.note(format!(
            "conflict: cut {} for {lasting:?} on {number}",
            PLAN[village].key
        ));
        self.append(
            village,
            &number,
            json!({"kind": "reply", "payload": {"outcome": "support", "text": "企业已结清欠薪"}}),
        );
        self.append(
            village,
            &number,
            json!({"kind": "close", "payload": {"resolved": true, "note": "当事人已领取"}}),
        );
        self.append(
            township,
            &number,
            json!({"kind": "take_over", "payload": {"reason": "涉及多村，乡级提级办理"}}),
        );
        true
    }

    /// Register a case at a village (most often) or a township.
    fn register(&mut self) {
        let office = if self.random.chance(80) {
            3 + self.random.below(4)
        } else {
            1 + self.random.below(2)
        };
        let region = if PLAN[office].tier == "township" && self.random.chance(50) {
            // A township registers a matter located in one of its villages.
            let villages: Vec<usize> = (3..PLAN.len())
                .filter(|village| PLAN[*village].parent == Some(office))
                .collect();
            PLAN[*self.random.pick(&villages).expect("villages")].region
        } else {
            PLAN[office].region
        };
        let Some(address) = self.federation.address(office) else {
            return;
        };
        self.registrations += 1;
        let body = sample_registration(region, self.registrations);
        let answer = http_post(address, "/api/cases", &body);
        let Some(view) = self.judge_answer(office, "(new)", "register", answer) else {
            return;
        };
        let number = view["header"]["number"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let register = view["events"]
            .as_array()
            .and_then(|events| events.iter().find(|event| event["kind"] == "register"))
            .and_then(|event| event["id"].as_str())
            .unwrap_or_default()
            .to_owned();
        self.cases.insert(
            number.clone(),
            CaseRecord {
                region: region.to_owned(),
                must_hold: ancestors_and_self(office).into_iter().collect(),
            },
        );
        self.writes.push(AcknowledgedWrite {
            office,
            case: number,
            kind: "register".to_owned(),
            event: register,
        });
    }

    /// Whether the write was acknowledged (its view), refused (counted) or left unanswered.
    fn judge_answer(
        &mut self,
        office: usize,
        number: &str,
        kind: &str,
        answer: anyhow::Result<(u16, Value)>,
    ) -> Option<Value> {
        let who = PLAN[office].key;
        match answer {
            Ok((status, view)) if (200..300).contains(&status) => {
                self.report.acknowledged += 1;
                *self
                    .report
                    .acknowledged_by_kind
                    .entry(kind.to_owned())
                    .or_default() += 1;
                let number = view["header"]["number"].as_str().unwrap_or(number);
                self.note(format!("{who} {kind} {number}: {status}"));
                Some(view)
            }
            Ok((status, refusal)) => {
                self.report.refused += 1;
                let why: String = refusal["error"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(80)
                    .collect();
                self.note(format!("{who} {kind} {number}: {status} {why}"));
                None
            }
            Err(error) => {
                // The node went away mid-request: the write may or may not have happened.
                self.report.unanswered += 1;
                self.note(format!("{who} {kind} {number}: no answer ({error})"));
                None
            }
        }
    }

    /// Append an event at `office`; an acknowledged one is recorded with its event id.
    fn append(&mut self, office: usize, number: &str, event: Value) {
        let Some(address) = self.federation.address(office) else {
            return;
        };
        let kind = event["kind"].as_str().unwrap_or_default().to_owned();
        let answer = http_post(address, &format!("/api/cases/{number}/events"), &event);
        let Some(view) = self.judge_answer(office, number, &kind, answer) else {
            return;
        };
        // The node's hybrid clock only moves forward, so its newest event is the one just made.
        let node_id = &self.federation.offices[office].id;
        let made = view["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|made| made["node"] == node_id.as_str())
            .max_by_key(|made| {
                (
                    made["hlc"]["wall_ms"].as_i64().unwrap_or_default(),
                    made["hlc"]["counter"].as_u64().unwrap_or_default(),
                )
            })
            .and_then(|made| made["id"].as_str())
            .unwrap_or_default()
            .to_owned();
        self.writes.push(AcknowledgedWrite {
            office,
            case: number.to_owned(),
            kind,
            event: made,
        });
    }

    /// A person at a running office picks one of its cases and does what its state invites.
    fn work_on_a_case(&mut self) {
        let running = self.federation.running();
        let Some(&office) = self.random.pick(&running) else {
            return;
        };
        let address = self.federation.address(office).expect("running");
        let Ok((200, listing)) = http_get(address, "/api/cases?limit=100000") else {
            return;
        };
        let mut numbers: Vec<(String, String)> = listing
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| {
                (
                    item["summary"]["number"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    item["summary"]["status"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect();
        // Mostly open cases: closed ones invite little but notes.
        if self.random.chance(85) {
            numbers.retain(|(_, status)| status != "closed");
        }
        let Some((number, _)) = self.random.pick(&numbers).cloned() else {
            return;
        };
        let Ok((200, view)) = http_get(address, &format!("/api/cases/{number}")) else {
            return;
        };
        let candidates = self.candidates(office, &view);
        if let Some(event) = self.random.pick(&candidates).cloned() {
            self.append(office, &number, event);
        }
    }

    /// The events a person at `office` might append to the case as the office sees it.
    fn candidates(&mut self, office: usize, view: &Value) -> Vec<Value> {
        let state = &view["state"];
        let offices = self.federation.office_of_node();
        let me = self.federation.offices[office].id.as_str();
        let holder = state["holder"]
            .as_str()
            .and_then(|id| offices.get(id))
            .copied();
        let status = state["status"].as_str().unwrap_or_default();
        let region = view["header"]["location"]["region_code"]
            .as_str()
            .unwrap_or_default();
        let mut candidates = Vec::new();
        if let Some(branches) = state["conflict"]["branches"].as_array()
            && let Some(branch) = self.random.pick(branches)
        {
            candidates.push(json!({"kind": "resolve", "payload": {
                "chosen": branch["first"], "note": "经联席会议研究，以此为准"}}));
            candidates.push(candidates[0].clone());
        }
        if state["awaiting"] == me {
            candidates.push(json!({"kind": "accept_assignment", "payload": {}}));
        }
        let parent = PLAN[office]
            .parent
            .map(|parent| &self.federation.offices[parent].id);
        let escalate = parent.map(|parent| {
            json!({"kind": "escalate", "payload": {"to_node": parent, "reason": "涉及多个村，需上级协调"}})
        });
        if holder == Some(office) {
            match status {
                "registered" => {
                    candidates.push(json!({"kind": "accept", "payload": {}}));
                    candidates.extend(escalate);
                }
                "accepted" => {
                    candidates.push(json!({"kind": "reply", "payload": {
                        "outcome": "support", "text": "已督促企业支付欠薪"}}));
                    candidates.extend(escalate);
                    for (below, plan) in PLAN.iter().enumerate() {
                        if below != office
                            && is_ancestor_or_self(office, below)
                            && lies_within(region, plan.region)
                        {
                            candidates.push(json!({"kind": "assign", "payload": {
                                "to_node": self.federation.offices[below].id,
                                "required_result": "查清欠薪数额，督促企业一次性支付",
                                "deadline": a_month_ahead(),
                            }}));
                        }
                    }
                }
                "replied" => candidates.push(json!({"kind": "close", "payload": {
                    "resolved": true, "note": "当事人已领取"}})),
                _ => {}
            }
        }
        if let Some(holder) = holder
            && holder != office
            && is_ancestor_or_self(office, holder)
            && matches!(status, "registered" | "accepted")
        {
            candidates.push(
                json!({"kind": "take_over", "payload": {"reason": "涉及多村，上级提级办理"}}),
            );
        }
        // 督办: an office above the holder issues; the target signs for it and reports; the
        // issuer crosses it off or sends it back.
        if let Some(holder) = holder
            && holder != office
            && is_ancestor_or_self(office, holder)
            && status != "closed"
        {
            let listed = self.random.chance(30);
            candidates.push(json!({"kind": "issue_directive", "payload": {
                "directive": format!("D{:08X}", self.random.next_u64() as u32),
                "target_node": self.federation.offices[holder].id,
                "requirement": "限期答复当事人，报送办理结果",
                "due": a_month_ahead(),
                "listed": listed,
            }}));
        }
        for directive in state["directives"].as_array().into_iter().flatten() {
            let id = &directive["id"];
            let directive_status = directive["status"].as_str().unwrap_or_default();
            if directive["target_node"] == me {
                match directive_status {
                    "issued" => candidates.push(
                        json!({"kind": "acknowledge_directive", "payload": {"directive": id}}),
                    ),
                    "acknowledged" | "returned" => candidates.push(json!({
                        "kind": "report_directive",
                        "payload": {"directive": id, "text": "已入户调查，正在协调解决"}})),
                    _ => {}
                }
            }
            if directive["issuer_node"] == me && directive_status == "reported" {
                candidates
                    .push(json!({"kind": "cross_off_directive", "payload": {"directive": id}}));
                candidates.push(json!({"kind": "return_directive", "payload": {
                    "directive": id, "reason": "办理结果不完整，请补充"}}));
            }
        }
        candidates.push(json!({"kind": "note", "payload": {"text": "电话回访当事人，情绪稳定"}}));
        candidates
    }

    fn run_schedule(&mut self, duration: Duration) {
        let end = self.started + duration;
        let mut next_fault = Instant::now() + self.random.millis(500, 2_500);
        while Instant::now() < end {
            self.undo_due(Instant::now());
            if Instant::now() >= next_fault {
                self.fault();
                next_fault = Instant::now() + self.random.millis(800, 3_000);
            } else {
                if self.random.chance(20) {
                    self.register();
                } else {
                    self.work_on_a_case();
                }
                // People type: a pause between writes keeps the load what offices make.
                std::thread::sleep(self.random.millis(10, 40));
            }
        }
    }

    /// Heal every link, restart every stopped node, and wait until nothing is pending and
    /// every holder of a case holds the same events; returns how long that took.
    fn heal_and_settle(&mut self) -> Result<Duration, String> {
        let pending: Vec<Undo> = self.undo.drain(..).map(|(_, undo)| undo).collect();
        for undo in pending {
            self.apply_undo(undo);
        }
        let all_links: Vec<usize> = (1..PLAN.len()).collect();
        self.federation.set_links(&all_links, LinkMode::Pass);
        for office in 0..PLAN.len() {
            if self.federation.nodes[office].is_none() {
                self.apply_undo(Undo::Restart(office));
            }
        }
        self.note("healed everything".to_owned());
        let healed = Instant::now();
        let deadline = healed + QUIESCENCE_BOUND;
        loop {
            match self.settled() {
                Ok(()) => return Ok(healed.elapsed()),
                Err(why) if Instant::now() > deadline => {
                    return Err(format!(
                        "quiescence: not settled within {QUIESCENCE_BOUND:?} of the heal: {why}\n\
                         links then:\n{}",
                        self.links_now()
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    fn settled(&self) -> Result<(), String> {
        for (office, node) in self.federation.nodes.iter().enumerate() {
            let node = node.as_ref().ok_or("a node is down")?;
            let (_, peers) = http_get(node.address, "/api/peers").map_err(|e| e.to_string())?;
            let links = PLAN
                .iter()
                .filter(|plan| plan.parent == Some(office))
                .count()
                + usize::from(PLAN[office].parent.is_some());
            let peers = peers.as_array().cloned().unwrap_or_default();
            if peers.len() != links {
                return Err(format!("{} lists {} links", PLAN[office].key, peers.len()));
            }
            for peer in &peers {
                if peer["connected"] != true || peer["pending"] != 0 || peer["pending_inbound"] != 0
                {
                    return Err(format!("{} link: {peer}", PLAN[office].key));
                }
            }
        }
        // The registrar's chain holds every case it made, with the same events; offices that
        // took part for a while are judged by the checker, from the final state.
        let counts = self.event_counts()?;
        let mut unsettled = Vec::new();
        for (number, record) in &self.cases {
            let held = counts.get(number).cloned().unwrap_or_default();
            if let Some(missing) = record.must_hold.iter().find(|o| !held.contains_key(o)) {
                unsettled.push(format!("{number} not yet at {}", PLAN[*missing].key));
                continue;
            }
            let distinct: BTreeSet<u64> =
                record.must_hold.iter().map(|office| held[office]).collect();
            if distinct.len() > 1 {
                unsettled.push(format!("{number} event counts by office {held:?}"));
            }
        }
        match unsettled.len() {
            0 => Ok(()),
            cases => Err(format!(
                "{cases} cases unsettled, the first: {}",
                unsettled[..cases.min(5)].join("; ")
            )),
        }
    }

    /// Every link as each node sees it, one line each, for a report.
    fn links_now(&self) -> String {
        let mut lines = String::new();
        for (office, node) in self.federation.nodes.iter().enumerate() {
            let Some(node) = node else { continue };
            let Ok((_, peers)) = http_get(node.address, "/api/peers") else {
                continue;
            };
            for peer in peers.as_array().into_iter().flatten() {
                let _ = writeln!(
                    lines,
                    "  {} -> {} {}: connected {} pending {} inbound {} last sync {} \
                     connections {} applied {}",
                    PLAN[office].key,
                    peer["relation"],
                    peer["name"],
                    peer["connected"],
                    peer["pending"],
                    peer["pending_inbound"],
                    peer["last_successful_sync"],
                    peer["connections"],
                    peer["cases_applied"]
                );
            }
        }
        lines
    }

    /// Every case each node lists, with its event count: case → office → count.
    fn event_counts(&self) -> Result<BTreeMap<String, BTreeMap<usize, u64>>, String> {
        let mut counts: BTreeMap<String, BTreeMap<usize, u64>> = BTreeMap::new();
        for (office, listing) in self.listings()? {
            for item in listing.as_array().into_iter().flatten() {
                let number = item["summary"]["number"].as_str().unwrap_or_default();
                let events = item["summary"]["event_count"].as_u64().unwrap_or_default();
                counts
                    .entry(number.to_owned())
                    .or_default()
                    .insert(office, events);
            }
        }
        Ok(counts)
    }

    fn listings(&self) -> Result<Vec<(usize, Value)>, String> {
        let mut listings = Vec::new();
        for (office, plan) in PLAN.iter().enumerate() {
            let address = self.federation.address(office).ok_or("a node is down")?;
            let (status, listing) =
                http_get(address, "/api/cases?limit=1000000").map_err(|e| e.to_string())?;
            if status != 200 {
                return Err(format!("{} lists {status}: {listing}", plan.key));
            }
            listings.push((office, listing));
        }
        Ok(listings)
    }

    /// The properties, in order; the first violated one is returned. Answers how many former
    /// participants keep an older copy of a case (allowed, reported).
    fn check(&mut self) -> Result<usize, String> {
        let counts = self.event_counts()?;
        // Every case at each office holding it, read in full once.
        let mut views: BTreeMap<(String, usize), Value> = BTreeMap::new();
        for (number, holders) in &counts {
            for office in holders.keys() {
                let address = self.federation.address(*office).ok_or("a node is down")?;
                let (status, view) = http_get(address, &format!("/api/cases/{number}"))
                    .map_err(|e| e.to_string())?;
                if status != 200 {
                    return Err(format!("{number} at {}: {status}", PLAN[*office].key));
                }
                views.insert((number.clone(), *office), view);
            }
        }
        let event_ids = |view: &Value| -> BTreeSet<String> {
            view["events"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|event| event["id"].as_str().map(str::to_owned))
                .collect()
        };

        let county_view = |number: &str| views.get(&(number.to_owned(), 0));
        let offices = self.federation.office_of_node();

        // 1. Every acknowledged write is at its node and at every office that must hold the case.
        let mut lost = 0;
        let mut first_loss = None;
        for write in &self.writes {
            let Some(reference) = county_view(&write.case) else {
                return Err(format!(
                    "{} is not at the county: every case goes up",
                    write.case
                ));
            };
            let mut must_hold = expected_holders(reference, &offices);
            must_hold.insert(write.office);
            for office in must_hold {
                let present = views
                    .get(&(write.case.clone(), office))
                    .is_some_and(|view| event_ids(view).contains(&write.event));
                if !present {
                    lost += 1;
                    first_loss.get_or_insert_with(|| {
                        format!(
                            "acknowledged write lost: {} {} (event {}) made at {} is not at {}",
                            write.case,
                            write.kind,
                            write.event,
                            PLAN[write.office].key,
                            PLAN[office].key
                        )
                    });
                }
            }
        }
        if let Some(loss) = first_loss {
            self.report.lost = lost;
            return Err(format!("{loss} ({lost} (write, office) pairs missing)"));
        }

        let mut stale_copies = 0;
        let mut forked_cases = 0;
        for (number, holders) in &counts {
            let Some(reference) = county_view(number) else {
                return Err(format!("{number} is not at the county: every case goes up"));
            };
            // 2. The same events and derived state at every office the final state routes the
            // case to. Taking part is for good (`sent_to`, N2), so an office holding a case
            // its final state does not name got it on a branch of a fork the state does not
            // follow (an assignment made concurrently with another transition): it keeps what
            // it had, a part of the whole, counted as a stale copy.
            let expected = expected_holders(reference, &offices);
            for office in holders.keys() {
                let view = &views[&(number.clone(), *office)];
                if !expected.contains(office) {
                    if !event_ids(view).is_subset(&event_ids(reference)) {
                        return Err(format!(
                            "{} holds events of {number} the county does not",
                            PLAN[*office].key
                        ));
                    }
                    stale_copies += usize::from(event_ids(view) != event_ids(reference));
                    continue;
                }
                if event_ids(view) != event_ids(reference) {
                    return Err(format!(
                        "replicas differ: {number} has events {:?} at the county and {:?} at {}",
                        event_ids(reference),
                        event_ids(view),
                        PLAN[*office].key
                    ));
                }
                if view["state"] != reference["state"] {
                    return Err(format!(
                        "replicas derive differently: {number} at the county: {}; at {}: {}",
                        reference["state"], PLAN[*office].key, view["state"]
                    ));
                }
            }
            if let Some(missing) = expected.iter().find(|office| !holders.contains_key(office)) {
                return Err(format!(
                    "{number} is not at {}, which its state routes it to",
                    PLAN[*missing].key
                ));
            }
            // 3. No office holds a case located outside its region (a sibling's).
            let region = reference["header"]["location"]["region_code"]
                .as_str()
                .unwrap_or_default();
            if let Some(outsider) = holders
                .keys()
                .find(|office| !lies_within(region, PLAN[**office].region))
            {
                return Err(format!(
                    "jurisdiction: {} holds {number}, located in {region}",
                    PLAN[*outsider].key
                ));
            }
            // 4. A fork (two different transitions made on the same one) is a conflict until a
            // person resolves it; none is settled silently.
            let events = reference["events"].as_array().cloned().unwrap_or_default();
            let mut made_on: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for event in &events {
                if let Some(prev) = event["prev"].as_str() {
                    made_on
                        .entry(prev.to_owned())
                        .or_default()
                        .insert(format!("{}{}", event["kind"], event["payload"]));
                }
            }
            let forked = made_on.values().any(|kinds| kinds.len() > 1);
            forked_cases += usize::from(forked);
            let resolved = events.iter().any(|event| event["kind"] == "resolve");
            if forked && !resolved && reference["state"]["conflict"].is_null() {
                return Err(format!(
                    "fork silently resolved: {number} has two transitions on one, no resolve, \
                     and no conflict: {}",
                    reference["state"]
                ));
            }
        }
        for (number, record) in &self.cases {
            if !lies_within(&record.region, PLAN[0].region) {
                return Err(format!("{number} registered outside the county"));
            }
        }

        for (office, node) in self.federation.nodes.iter().enumerate() {
            let node = node.as_ref().ok_or("a node is down")?;
            // 5. Every signature and event of every case verifies.
            let verify = run_cli(&["audit", "verify", "--dir", path_str(&node.dir)]);
            if !verify.status.success() {
                return Err(format!(
                    "audit verify fails at {}: {}{}",
                    PLAN[office].key,
                    String::from_utf8_lossy(&verify.stdout),
                    String::from_utf8_lossy(&verify.stderr)
                ));
            }
            // 6. Every event was made through an API that checked it: nothing is quarantined.
            let (_, quarantine) =
                http_get(node.address, "/api/quarantine").map_err(|e| e.to_string())?;
            if quarantine["entries"]
                .as_array()
                .is_none_or(|entries| !entries.is_empty())
            {
                return Err(format!(
                    "quarantine holds honest events at {}: {quarantine}",
                    PLAN[office].key
                ));
            }
        }

        // 7. The county's statistics by child are those of a scan of its cases.
        self.check_county_stats()?;
        // 8. SIGTERM stopped every node cleanly.
        if !self.unclean_stops.is_empty() {
            return Err(format!(
                "SIGTERM did not stop cleanly: {}",
                self.unclean_stops.join(", ")
            ));
        }
        self.report.forked_cases = forked_cases;
        Ok(stale_copies)
    }

    fn check_county_stats(&self) -> Result<(), String> {
        let address = self.federation.address(0).ok_or("the county is down")?;
        let (_, listing) =
            http_get(address, "/api/cases?limit=1000000").map_err(|e| e.to_string())?;
        let (status, breakdown) =
            http_get(address, "/api/stats/children").map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("stats by child: {status} {breakdown}"));
        }
        let mut offices: Vec<&Value> = Vec::new();
        for township in breakdown["children"].as_array().into_iter().flatten() {
            offices.push(township);
            offices.extend(township["children"].as_array().into_iter().flatten());
        }
        if offices.len() != PLAN.len() - 1 {
            return Err(format!(
                "county stats by child list {} offices below the county: {breakdown}",
                offices.len()
            ));
        }
        for office in offices {
            let region = office["region_code"].as_str().unwrap_or_default();
            let mut scanned: BTreeMap<String, u64> = BTreeMap::new();
            for item in listing.as_array().into_iter().flatten() {
                let summary = &item["summary"];
                if lies_within(summary["region_code"].as_str().unwrap_or_default(), region) {
                    let status = summary["status"].as_str().unwrap_or_default().to_owned();
                    *scanned.entry(status).or_default() += 1;
                }
            }
            let counted: BTreeMap<String, u64> = office["measures"]["by_status"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(status, count)| Some((status.clone(), count.as_u64()?)))
                .filter(|(_, count)| *count > 0)
                .collect();
            if counted != scanned {
                return Err(format!(
                    "county stats for {region}: by status {counted:?}, a scan finds {scanned:?}"
                ));
            }
        }
        Ok(())
    }

    /// Panic with the seed, the schedule so far and the violated property.
    fn fail(&mut self, property: &str) -> ! {
        // The nodes' directories, for `fengqiao case show` / `audit log` on what went wrong.
        let data = self.temp.take().map(tempfile::TempDir::keep);
        // The temporary directory goes when the panic unwinds: keep the schedule and each
        // node's log beside it.
        let kept = std::env::temp_dir().join(format!("fengqiao-nemesis-{}", self.seed));
        let _ = std::fs::create_dir_all(&kept);
        let log_path = kept.join("schedule.log");
        let _ = std::fs::write(&log_path, self.log.join("\n"));
        for (office, plan) in self.federation.offices.iter().zip(PLAN.iter()) {
            let _ = std::fs::copy(
                NodeProcess::log_path_of(&office.dir),
                kept.join(format!("{}.log", plan.key)),
            );
        }
        let mut tail = String::new();
        for line in self.log.iter().rev().take(60).rev() {
            let _ = writeln!(tail, "  {line}");
        }
        panic!(
            "nemesis seed {} (replay: scripts/nemesis --seed {} --seconds {}) violated: \
             {property}\n\
             {}\nthe nodes' directories: {data:?}\n\
             last actions (the whole schedule and the nodes' logs: {}):\n{tail}",
            self.seed,
            self.seed,
            self.report.seconds,
            self.report.summary_line(),
            kept.display()
        );
    }
}

/// The offices the case's final state routes it to (`fengqiao_sync::routing`): every office
/// taking part in it (registrar, holder, awaited receiver, offices escalated to, directive
/// targets) and their ancestors, those whose region holds the case's location.
fn expected_holders(view: &Value, offices: &HashMap<String, usize>) -> BTreeSet<usize> {
    let state = &view["state"];
    let region = view["header"]["location"]["region_code"]
        .as_str()
        .unwrap_or_default();
    let named = [
        &state["registered_by"],
        &state["holder"],
        &state["awaiting"],
    ]
    .into_iter()
    .chain(state["escalated_to"].as_array().into_iter().flatten())
    .chain(state["sent_to"].as_array().into_iter().flatten())
    .chain(
        state["directives"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|directive| &directive["target_node"]),
    );
    named
        .filter_map(|node| node.as_str().and_then(|id| offices.get(id)))
        .flat_map(|office| ancestors_and_self(*office))
        .filter(|office| lies_within(region, PLAN[*office].region))
        .collect()
}

fn a_month_ahead() -> String {
    (chrono::Utc::now().date_naive() + chrono::Days::new(30))
        .format("%Y-%m-%d")
        .to_string()
}

/// The run length: `FENGQIAO_NEMESIS_SECONDS`, else `default_seconds`.
pub fn seconds_from_env(default_seconds: u64) -> Duration {
    Duration::from_secs(
        std::env::var("FENGQIAO_NEMESIS_SECONDS")
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(default_seconds),
    )
}

/// `FENGQIAO_NEMESIS_SEED`, else a fresh seed from the clock.
pub fn seed_from_env_or_fresh() -> u64 {
    std::env::var("FENGQIAO_NEMESIS_SEED")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos() as u64);
            Xorshift::new(nanos ^ u64::from(std::process::id())).next_u64() % 1_000_000_000
        })
}

/// Build the federation, run the schedule for `duration`, heal, settle and check; panics on the
/// first violated property, otherwise returns what the run did.
pub fn run_nemesis(seed: u64, duration: Duration) -> NemesisReport {
    eprintln!("nemesis: seed {seed}, {} s", duration.as_secs());
    let temp = tempfile::tempdir().expect("tempdir");
    let federation = Federation::start(temp.path(), seed);
    let mut nemesis = Nemesis {
        seed,
        random: Xorshift::new(seed),
        federation,
        started: Instant::now(),
        log: Vec::new(),
        cases: BTreeMap::new(),
        writes: Vec::new(),
        undo: Vec::new(),
        report: NemesisReport {
            seed,
            seconds: duration.as_secs(),
            ..NemesisReport::default()
        },
        registrations: 0,
        unclean_stops: Vec::new(),
        temp: Some(temp),
    };
    nemesis.run_schedule(duration);
    nemesis.report.cases = nemesis.cases.len();
    match nemesis.heal_and_settle() {
        Ok(convergence) => nemesis.report.convergence = convergence,
        Err(why) => nemesis.fail(&why),
    }
    match nemesis.check() {
        Ok(stale_copies) => nemesis.report.stale_copies = stale_copies,
        Err(why) => nemesis.fail(&why),
    }
    let report = nemesis.report.clone();
    eprintln!("{}", report.summary_line());
    report
}
