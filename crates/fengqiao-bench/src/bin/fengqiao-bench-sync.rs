//! Federation benchmark (`scripts/bench-sync`): real nodes with sled stores in this process, linked
//! over real QUIC on 127.0.0.1, each figure printed beside automerge's in-memory figure for the same
//! documents measured in the same run.
//!
//! - W1: a node holding `--cases` realistic cases syncs them to a new, empty peer;
//! - W2: `--updated-cases` of them get one new event each; the peer catches up on reconnect
//!   (time, and UDP bytes counted by a relay on the link, against the bare change bytes);
//! - W3: one change to a realistic case at a village until visible at the county two hops up,
//!   each timed change on another case (p50/p99);
//! - resident memory of this process during W1 (both nodes live in it).
//!
//! Direction of W1/W2: the routing rules send a case down to a child only while the child's
//! subtree takes part in it, so a child never receives a parent's 10,000 cases wholesale. The node
//! holding the cases is therefore a township, and the empty node is a new county (its parent):
//! the same session, transport and stores, in the direction the rules replicate everything.

use fengqiao_bench::{
    ImportTarget, cpu_seconds, import_sample_cases, print_run_header, resident_kib,
};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use automerge::sync::SyncDoc;
use automerge::{AutoCommit, ChangeHash};
use chrono::Utc;
use clap::Parser;
use fengqiao::federation::{Federation, FederationConfig, OfficeEntry, ParentLink};
use fengqiao::service::{InitOptions, Node, init_node};
use fengqiao_case::{AppendEvent, EventKind, ImportBatch, Tier};
use fengqiao_samples::{SampleVillage, sample_ledger};
use tokio::runtime::Runtime;

#[derive(Debug, Parser)]
#[command(about = "Benchmark Fengqiao's federation (W1, W2, W3, memory)")]
struct Options {
    /// Cases held by the sending node in W1.
    #[arg(long, default_value_t = 10_000)]
    cases: usize,
    /// Cases that get one new event each in W2.
    #[arg(long, default_value_t = 1_000)]
    updated_cases: usize,
    /// Sequential changes timed in W3 (each on its own case).
    #[arg(long, default_value_t = 200)]
    latency_changes: usize,
    /// Rows per `Node::import` call while seeding (not measured).
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Keep the nodes here instead of a temporary directory.
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Keep received events without checking them (signature, maker, authority), to measure what
    /// the checks cost. A running node always checks.
    #[arg(long)]
    no_receipt_checks: bool,
}

/// Whether the nodes check received events (see `--no-receipt-checks`).
static RECEIPT_CHECKS: AtomicBool = AtomicBool::new(true);

const OPERATOR: &str = "bench";
const COUNTY_REGION: &str = "430702";
const TOWNSHIP_REGION: &str = "430702001";
const VILLAGE_REGION: &str = "430702001001";
/// How long any one workload may take before the benchmark gives up.
const WORKLOAD_TIMEOUT: Duration = Duration::from_secs(600);

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    RECEIPT_CHECKS.store(!options.no_receipt_checks, Ordering::Relaxed);
    let temporary_directory = tempfile::tempdir().context("create temporary directory")?;
    let root = options
        .dir
        .clone()
        .unwrap_or_else(|| temporary_directory.path().to_path_buf());
    std::fs::create_dir_all(&root)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("build tokio runtime")?;
    print_run_header();
    println!(
        "checks on received events: {}",
        if options.no_receipt_checks {
            "off (--no-receipt-checks)"
        } else {
            "on"
        }
    );

    // Seeding (not measured).
    let holder = open_office(
        &root,
        "holder-township",
        "基准乡",
        Tier::Township,
        TOWNSHIP_REGION,
    )?;
    let receiver = open_office(
        &root,
        "receiver-county",
        "基准县",
        Tier::County,
        COUNTY_REGION,
    )?;
    let seed_started = Instant::now();
    seed_cases(&holder.node, options.cases, options.batch)?;
    println!(
        "seeded {} cases with Node::import in {:.1} s (not measured)",
        holder.node.store().case_count(),
        seed_started.elapsed().as_secs_f64()
    );
    let numbers = case_numbers(&holder.node)?;
    ensure!(
        numbers.len() == options.cases,
        "holder has {} cases",
        numbers.len()
    );
    let saved_documents = saved_documents(&holder.node, &numbers)?;
    let saved_bytes: usize = saved_documents.iter().map(Vec::len).sum();
    println!(
        "documents: {} saved bytes per case on average",
        saved_bytes / saved_documents.len().max(1)
    );

    // The limit: automerge in memory on the same documents.
    let in_memory = in_memory_automerge(&saved_documents)?;
    let steps = per_case_steps(&saved_documents, &holder.node.policies())?;
    drop(saved_documents);
    println!(
        "automerge in memory, {} documents: sync to empty {:.2} s ({:.0} cases/s, {} messages, {} bytes), save()+load() {:.2} s",
        numbers.len(),
        in_memory.sync_seconds,
        numbers.len() as f64 / in_memory.sync_seconds,
        in_memory.sync_messages,
        in_memory.sync_message_bytes,
        in_memory.save_load_seconds
    );

    println!(
        "per case, what a node does on top of automerge (totals over {} documents): CaseDocument::load (automerge load and shape check) {:.2} s, header()+events() {:.2} s, derive {:.2} s, save() {:.2} s, checks on receipt {:.2} s",
        numbers.len(),
        steps.load_seconds,
        steps.read_seconds,
        steps.derive_seconds,
        steps.save_seconds,
        steps.check_seconds
    );
    println!(
        "checks on receipt: {} events in {:.2} s on one core, {:.0} events verified per second (signature, maker, authority against the state each was made on)",
        steps.events,
        steps.check_seconds,
        steps.events as f64 / steps.check_seconds.max(f64::EPSILON)
    );

    // W1.
    let memory_baseline_kib = resident_kib("self")?;
    let sampler = MemorySampler::start();
    let receiver_federation = runtime.block_on(start_federation(
        Arc::clone(&receiver.node),
        federation_config(None, &[&holder]),
    ))?;
    let receiver_address = receiver_federation.local_address();
    let w1_cpu_before = cpu_seconds("self")?;
    let w1_started = Instant::now();
    let holder_federation = runtime.block_on(start_federation(
        Arc::clone(&holder.node),
        federation_config(Some((receiver_address, &receiver)), &[]),
    ))?;
    wait_until("W1: the receiver holds every case", || {
        Ok(receiver.node.store().case_count() as usize >= options.cases)
    })?;
    // The receiver commits before its disk sync and acknowledges after it: the time runs until
    // the last case is durable there and the holder has heard so.
    wait_until("W1: the holder has every case acknowledged", || {
        acknowledged_all(&runtime, &holder_federation)
    })?;
    let w1_seconds = w1_started.elapsed().as_secs_f64();
    let w1_cpu = cpu_seconds("self")? - w1_cpu_before;
    let peak_kib = sampler.stop();
    let w1_pending = runtime.block_on(holder_federation.peers())?;
    let w1_statistics = w1_pending
        .first()
        .map(|link| link.session.clone())
        .unwrap_or_default();
    let ratio = w1_seconds / in_memory.sync_seconds;
    println!(
        "W1 initial sync over QUIC: {} cases in {:.2} s ({:.0} cases/s) = {:.2}x in-memory sync (target <= 1.5x: {}); {:.2}x save()+load()",
        options.cases,
        w1_seconds,
        options.cases as f64 / w1_seconds,
        ratio,
        met(ratio <= 1.5),
        w1_seconds / in_memory.save_load_seconds
    );
    println!(
        "   session: {} frames sent, {} whole documents, {} change bytes sent",
        w1_statistics.frames_sent,
        w1_statistics.whole_documents_sent,
        w1_statistics.change_bytes_sent
    );
    println!(
        "   cpu: {:.2} s used by the process (both nodes), {:.2} of {} cores busy on average",
        w1_cpu,
        w1_cpu / w1_seconds.max(f64::EPSILON),
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    );
    let peak_mib = (peak_kib.saturating_sub(memory_baseline_kib)) as f64 / 1024.0;
    println!(
        "memory during W1 (one process holding both nodes): baseline {:.1} MiB, peak {:.1} MiB, peak minus baseline {:.1} MiB (target receiving side < 300 MiB: {})",
        memory_baseline_kib as f64 / 1024.0,
        peak_kib as f64 / 1024.0,
        peak_mib,
        met(peak_mib < 300.0)
    );

    // W2: the holder's link goes down, cases change, the link comes back through a counting relay.
    runtime.block_on(holder_federation.shutdown());
    let updated: Vec<String> = numbers
        .iter()
        .step_by((numbers.len() / options.updated_cases.max(1)).max(1))
        .take(options.updated_cases)
        .cloned()
        .collect();
    let raw_change_bytes = append_notes(&holder.node, &updated)?;
    let expected_heads = heads_of(&holder.node, &updated)?;
    let in_memory_incremental = in_memory_incremental_sync(&holder.node, &updated)?;
    let relay = runtime.block_on(CountingRelay::start(receiver_address))?;
    let receiver_feed_before = receiver.node.store().feed_head()?;
    let w2_started = Instant::now();
    let holder_federation = runtime.block_on(start_federation(
        Arc::clone(&holder.node),
        federation_config(Some((relay.address, &receiver)), &[]),
    ))?;
    // The waits must not take the cores the two nodes work on. First the cheapest sign: each
    // case the receiver takes a change of moves to a new position of its feed, one meta read.
    // Only then the acknowledgements: asking for them (the link report) counts the cases still
    // owed to the peer by reading their summaries, which every millisecond while 1,000 were
    // pending took half a core of the two (as reading 1,000 cases' heads every millisecond did
    // before). The heads are then checked (at once, as a rule), so the run still proves that the
    // receiver holds every new event.
    wait_until("W2: the receiver has written every changed case", || {
        Ok(receiver.node.store().feed_head()? >= receiver_feed_before + updated.len() as u64)
    })?;
    wait_until("W2: the holder has every change acknowledged", || {
        acknowledged_all(&runtime, &holder_federation)
    })?;
    let mut remaining: HashSet<usize> = (0..updated.len()).collect();
    wait_until("W2: the receiver holds every new event", || {
        remaining.retain(|&index| {
            heads_of_case(&receiver.node, &updated[index]).ok()
                != Some(expected_heads[index].clone())
        });
        Ok(remaining.is_empty())
    })?;
    let w2_seconds = w2_started.elapsed().as_secs_f64();
    // Let the last acknowledgements cross before reading the counters.
    std::thread::sleep(Duration::from_millis(200));
    let wire_bytes = relay.bytes_to_receiver.load(Ordering::Relaxed);
    let wire_bytes_back = relay.bytes_to_sender.load(Ordering::Relaxed);
    let w2_statistics = runtime
        .block_on(holder_federation.peers())?
        .first()
        .map(|link| link.session.clone())
        .unwrap_or_default();
    println!(
        "W2 catch-up after {} cases got one event each: {:.3} s (target < 0.5 s: {}); automerge in-memory incremental sync {:.3} s ({} message bytes)",
        updated.len(),
        w2_seconds,
        met(w2_seconds < 0.5),
        in_memory_incremental.sync_seconds,
        in_memory_incremental.sync_message_bytes
    );
    let wire_ratio = wire_bytes as f64 / raw_change_bytes as f64;
    println!(
        "   bytes: {} UDP bytes to the receiver ({} back), raw change bytes {} ({} per change): {:.2}x raw (target < 2x: {})",
        wire_bytes,
        wire_bytes_back,
        raw_change_bytes,
        raw_change_bytes / updated.len().max(1) as u64,
        wire_ratio,
        met(wire_ratio < 2.0)
    );
    println!(
        "   session: {} frames sent, {} whole documents, {} change bytes sent ({:.2}x raw)",
        w2_statistics.frames_sent,
        w2_statistics.whole_documents_sent,
        w2_statistics.change_bytes_sent,
        w2_statistics.change_bytes_sent as f64 / raw_change_bytes as f64
    );
    runtime.block_on(holder_federation.shutdown());
    runtime.block_on(receiver_federation.shutdown());
    runtime.block_on(relay.stop());

    // W3.
    let latencies = two_hop_latency(&runtime, &root, options.latency_changes)?;
    let percentile = |fraction: f64| {
        let index = ((latencies.len() as f64 - 1.0) * fraction).round() as usize;
        latencies[index].as_secs_f64() * 1000.0
    };
    println!(
        "W3 village -> township -> county, {} sequential changes, one per case: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p99 < 5 ms: {})",
        latencies.len(),
        percentile(0.5),
        percentile(0.99),
        percentile(1.0),
        met(percentile(0.99) < 5.0)
    );
    Ok(())
}

/// Whether the federation's one link has nothing left unacknowledged.
fn acknowledged_all(runtime: &Runtime, federation: &Federation) -> anyhow::Result<bool> {
    let links = runtime.block_on(federation.peers())?;
    // No link yet is not "everything acknowledged".
    Ok(!links.is_empty() && links.iter().all(|link| link.connected && link.pending == 0))
}

fn met(condition: bool) -> &'static str {
    if condition { "met" } else { "NOT met" }
}

struct BenchOffice {
    node: Arc<Node>,
    office: OfficeEntry,
}

fn open_office(
    root: &Path,
    label: &str,
    name: &str,
    tier: Tier,
    region_code: &str,
) -> anyhow::Result<BenchOffice> {
    let dir = root.join(label);
    init_node(
        &dir,
        InitOptions {
            name: name.to_owned(),
            tier,
            region_code: region_code.to_owned(),
            listen: None,
            parent: None,
            lan_names: Vec::new(),
        },
    )?;
    let node = Arc::new(Node::open(&dir)?);
    let office = OfficeEntry {
        node_id: node.node_id().to_owned(),
        name: name.to_owned(),
        aliases: Vec::new(),
        region_code: region_code.to_owned(),
        successor_of: None,
    };
    Ok(BenchOffice { node, office })
}

fn federation_config(
    parent: Option<(SocketAddr, &BenchOffice)>,
    children: &[&BenchOffice],
) -> FederationConfig {
    let mut config = FederationConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.parent = parent.map(|(address, office)| ParentLink {
        address,
        office: office.office.clone(),
    });
    config.children = children.iter().map(|child| child.office.clone()).collect();
    config
}

/// Start a node's federation, with checks on received events unless `--no-receipt-checks`.
async fn start_federation(node: Arc<Node>, config: FederationConfig) -> anyhow::Result<Federation> {
    if RECEIPT_CHECKS.load(Ordering::Relaxed) {
        Federation::start(node, config).await
    } else {
        Federation::start_without_receipt_checks_for_benchmark(node, config).await
    }
}

fn seed_cases(node: &Node, count: usize, batch: usize) -> anyhow::Result<()> {
    let villages: Vec<SampleVillage> = [("430702001001", "芦荻山村"), ("430702001002", "白马湖村")]
        .into_iter()
        .map(|(code, name)| SampleVillage {
            region_code: code.to_owned(),
            name: name.to_owned(),
        })
        .collect();
    import_sample_cases(
        node,
        OPERATOR,
        &villages,
        ImportTarget {
            count,
            batch,
            days: 365,
            now: Utc::now(),
            first_seed: 1_000,
        },
    )
}

fn case_numbers(node: &Node) -> anyhow::Result<Vec<String>> {
    let mut numbers = Vec::new();
    node.store()
        .for_each_summary(|summary| numbers.push(summary.number.clone()))?;
    Ok(numbers)
}

fn saved_documents(node: &Node, numbers: &[String]) -> anyhow::Result<Vec<Vec<u8>>> {
    numbers
        .iter()
        .map(|number| {
            node.store()
                .with_case(number, |document| document.save())?
                .with_context(|| format!("case {number} missing"))
        })
        .collect()
}

struct InMemoryFigures {
    sync_seconds: f64,
    sync_messages: u64,
    sync_message_bytes: u64,
    save_load_seconds: f64,
}

/// Run automerge's sync protocol between two in-memory documents until neither has anything to
/// send; messages are encoded and decoded as they would be on a wire. Returns (messages, bytes).
fn sync_in_memory(
    sender: &mut AutoCommit,
    receiver: &mut AutoCommit,
) -> anyhow::Result<(u64, u64)> {
    let mut sender_state = automerge::sync::State::new();
    let mut receiver_state = automerge::sync::State::new();
    let (mut messages, mut bytes) = (0u64, 0u64);
    loop {
        let mut quiet = true;
        if let Some(message) = sender.sync().generate_sync_message(&mut sender_state) {
            let encoded = message.encode();
            messages += 1;
            bytes += encoded.len() as u64;
            receiver.sync().receive_sync_message(
                &mut receiver_state,
                automerge::sync::Message::decode(&encoded)?,
            )?;
            quiet = false;
        }
        if let Some(message) = receiver.sync().generate_sync_message(&mut receiver_state) {
            let encoded = message.encode();
            messages += 1;
            bytes += encoded.len() as u64;
            sender.sync().receive_sync_message(
                &mut sender_state,
                automerge::sync::Message::decode(&encoded)?,
            )?;
            quiet = false;
        }
        if quiet {
            return Ok((messages, bytes));
        }
    }
}

/// Per document: load it (not timed), then time a full sync to an empty document, and separately
/// time `save()` + `load()`.
fn in_memory_automerge(saved_documents: &[Vec<u8>]) -> anyhow::Result<InMemoryFigures> {
    let mut figures = InMemoryFigures {
        sync_seconds: 0.0,
        sync_messages: 0,
        sync_message_bytes: 0,
        save_load_seconds: 0.0,
    };
    for saved in saved_documents {
        let mut loaded = AutoCommit::load(saved)?;
        let mut empty = AutoCommit::new();
        let started = Instant::now();
        let (messages, bytes) = sync_in_memory(&mut loaded, &mut empty)?;
        figures.sync_seconds += started.elapsed().as_secs_f64();
        figures.sync_messages += messages;
        figures.sync_message_bytes += bytes;
        ensure!(
            loaded.get_heads() == empty.get_heads(),
            "in-memory sync diverged"
        );

        let started = Instant::now();
        let bytes = loaded.save();
        let reloaded = AutoCommit::load(&bytes)?;
        figures.save_load_seconds += started.elapsed().as_secs_f64();
        drop(reloaded);
    }
    Ok(figures)
}

/// Time spent in each step a node takes per case that automerge's own sync does not.
struct CaseSteps {
    load_seconds: f64,
    read_seconds: f64,
    derive_seconds: f64,
    save_seconds: f64,
    /// The checks on receipt of a whole case (every event's signature, maker and authority).
    check_seconds: f64,
    events: usize,
}

/// A federation where every maker is a known office: the benchmark times the checks, not the
/// roster lookups, which a real roster answers from a map.
struct EveryMakerKnown;

impl fengqiao_case::authority::Hierarchy for EveryMakerKnown {
    fn is_strict_ancestor(&self, _ancestor: &str, _node: &str) -> bool {
        false
    }

    fn region_of(&self, _node: &str) -> Option<String> {
        Some(String::new())
    }
}

/// Per document, timed separately: load it as a node does, read header and events, derive the
/// state, save it.
fn per_case_steps(
    saved_documents: &[Vec<u8>],
    policies: &fengqiao_case::policy::PolicyBook,
) -> anyhow::Result<CaseSteps> {
    let mut steps = CaseSteps {
        load_seconds: 0.0,
        read_seconds: 0.0,
        derive_seconds: 0.0,
        save_seconds: 0.0,
        check_seconds: 0.0,
        events: 0,
    };
    let actor = [0u8; 16];
    for saved in saved_documents {
        let started = Instant::now();
        let mut document = fengqiao_case::CaseDocument::load(saved, &[], &actor)?;
        steps.load_seconds += started.elapsed().as_secs_f64();
        let started = Instant::now();
        let header = document.header()?;
        let events = document.events()?;
        steps.read_seconds += started.elapsed().as_secs_f64();
        let started = Instant::now();
        let state = fengqiao_case::policy::derive_registered(policies, &header, &events)?;
        steps.derive_seconds += started.elapsed().as_secs_f64();
        drop(state);
        // The checks include reading what each event was made on from the change graph.
        let started = Instant::now();
        let causal = document.causal_past()?;
        let rejections = fengqiao_case::receipt::check_received(
            &header.number,
            &header,
            &[],
            &events,
            &causal,
            &EveryMakerKnown,
            policies,
        );
        steps.check_seconds += started.elapsed().as_secs_f64();
        ensure!(
            rejections.is_empty(),
            "a seeded case fails the checks: {rejections:?}"
        );
        steps.events += events.len();
        let started = Instant::now();
        let bytes = document.save();
        steps.save_seconds += started.elapsed().as_secs_f64();
        drop(bytes);
    }
    Ok(steps)
}

/// Append one note to each case at `node`; returns the summed raw bytes of the new changes.
fn append_notes(node: &Node, numbers: &[String]) -> anyhow::Result<u64> {
    let mut raw_bytes = 0u64;
    for (index, number) in numbers.iter().enumerate() {
        let before: Vec<ChangeHash> = node
            .store()
            .with_case(number, |document| document.automerge().get_heads())?
            .context("case missing")?;
        node.append(
            &fengqiao_bench::bench_actor(OPERATOR),
            Utc::now(),
            number,
            AppendEvent {
                backdated_reason: None,
                kind: EventKind::Note {
                    text: format!("第{index}次回访：当事人表示已收到答复意见，仍要求复查。"),
                },
                at: None,
            },
        )
        .map_err(|error| anyhow::anyhow!("append to {number}: {error}"))?;
        raw_bytes += node
            .store()
            .with_case(number, |document| {
                document
                    .automerge()
                    .get_changes(&before)
                    .iter()
                    .map(|change| change.raw_bytes().len() as u64)
                    .sum::<u64>()
            })?
            .context("case missing")?;
    }
    Ok(raw_bytes)
}

/// automerge's own incremental sync of the updated documents: the peer holds each document as it
/// was before its last change (timed: the sync only).
fn in_memory_incremental_sync(node: &Node, numbers: &[String]) -> anyhow::Result<InMemoryFigures> {
    let mut figures = InMemoryFigures {
        sync_seconds: 0.0,
        sync_messages: 0,
        sync_message_bytes: 0,
        save_load_seconds: 0.0,
    };
    for number in numbers {
        let (mut current, mut previous) = node
            .store()
            .with_case(
                number,
                |document| -> anyhow::Result<(AutoCommit, AutoCommit)> {
                    let automerge = document.automerge();
                    let current = AutoCommit::load(&automerge.save())?;
                    let mut changes = automerge.get_changes(&[]);
                    changes.pop();
                    let mut previous = AutoCommit::new();
                    previous.apply_changes(changes)?;
                    Ok((current, previous))
                },
            )?
            .context("case missing")??;
        // Both sides have synced before: their sync states know each other's heads.
        let started = Instant::now();
        let (messages, bytes) = sync_in_memory(&mut current, &mut previous)?;
        figures.sync_seconds += started.elapsed().as_secs_f64();
        figures.sync_messages += messages;
        figures.sync_message_bytes += bytes;
    }
    Ok(figures)
}

/// The case's heads as its node committed them (raw change hashes, sorted), read from its
/// bookkeeping record: the waits poll this every millisecond or less, and loading the document
/// instead cost the nodes under test a core (1,000 documents loaded per poll in W2) and their
/// case locks. Only compared, so never encoded.
fn heads_of_case(node: &Node, number: &str) -> anyhow::Result<Vec<[u8; 32]>> {
    node.store()
        .heads(number)?
        .with_context(|| format!("case {number} missing"))
}

fn heads_of(node: &Node, numbers: &[String]) -> anyhow::Result<Vec<Vec<[u8; 32]>>> {
    numbers
        .iter()
        .map(|number| heads_of_case(node, number))
        .collect()
}

/// Poll `check` every millisecond until it holds.
fn wait_until(what: &str, mut check: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let deadline = Instant::now() + WORKLOAD_TIMEOUT;
    while !check()? {
        if Instant::now() > deadline {
            bail!("timed out waiting until {what}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// W3: village -> township -> county; each change is appended at the village, the federation's
/// notifier is called as the API does, and the time until the county's copy has the village's
/// heads is recorded.
fn two_hop_latency(
    runtime: &Runtime,
    root: &Path,
    changes: usize,
) -> anyhow::Result<Vec<Duration>> {
    let county = open_office(root, "w3-county", "基准县", Tier::County, COUNTY_REGION)?;
    let township = open_office(
        root,
        "w3-township",
        "基准乡",
        Tier::Township,
        TOWNSHIP_REGION,
    )?;
    let village = open_office(
        root,
        "w3-village",
        "芦荻山村",
        Tier::Village,
        VILLAGE_REGION,
    )?;
    // The county learns of the village from the township through the replicated roster; the
    // change travels up, which needs no roster anyway.
    let county_federation = runtime.block_on(start_federation(
        Arc::clone(&county.node),
        federation_config(None, &[&township]),
    ))?;
    let township_federation = runtime.block_on(start_federation(
        Arc::clone(&township.node),
        federation_config(
            Some((county_federation.local_address(), &county)),
            &[&village],
        ),
    ))?;
    let village_federation = runtime.block_on(start_federation(
        Arc::clone(&village.node),
        federation_config(Some((township_federation.local_address(), &township)), &[]),
    ))?;
    let notifier = village_federation.notifier();

    // One realistic case per timed change (about 8 events each, like W1's), so that each sample
    // is one change to a case of ordinary size: timing 200 changes to one case would measure a
    // case growing to 200 events, every hop re-reading all of them.
    let now = Utc::now();
    let rows = sample_ledger(
        7,
        changes,
        &[SampleVillage {
            region_code: VILLAGE_REGION.to_owned(),
            name: "芦荻山村".to_owned(),
        }],
        now - chrono::Duration::days(3),
        now,
    );
    // Imported with their histories, as W1's cases are.
    let numbers: Vec<String> = village
        .node
        .import(
            &fengqiao_bench::bench_actor(OPERATOR),
            now,
            ImportBatch {
                rows,
                dry_run: false,
                import_id: None,
            },
        )
        .map_err(|error| anyhow::anyhow!("import: {error}"))?
        .into_iter()
        .filter_map(|report| report.number)
        .collect();
    anyhow::ensure!(
        numbers.len() == changes,
        "W3: {} cases imported",
        numbers.len()
    );
    notifier.notify();
    wait_until("W3: the county holds the village's cases", || {
        for number in &numbers {
            if !county.node.store().contains(number)?
                || heads_of_case(&county.node, number)? != heads_of_case(&village.node, number)?
            {
                return Ok(false);
            }
        }
        Ok(true)
    })?;

    let mut latencies = Vec::with_capacity(changes);
    for (index, number) in numbers.iter().enumerate() {
        village
            .node
            .append(
                &fengqiao_bench::bench_actor(OPERATOR),
                Utc::now(),
                number,
                AppendEvent {
                    backdated_reason: None,
                    kind: EventKind::Note {
                        text: format!("第{index}次电话回访"),
                    },
                    at: None,
                },
            )
            .map_err(|error| anyhow::anyhow!("append: {error}"))?;
        let committed = Instant::now();
        notifier.notify();
        let wanted = heads_of_case(&village.node, number)?;
        let deadline = committed + Duration::from_secs(30);
        while heads_of_case(&county.node, number)? != wanted {
            if Instant::now() > deadline {
                bail!("W3: change {index} did not reach the county within 30 s");
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        latencies.push(committed.elapsed());
    }
    runtime.block_on(village_federation.shutdown());
    runtime.block_on(township_federation.shutdown());
    runtime.block_on(county_federation.shutdown());
    latencies.sort();
    Ok(latencies)
}

/// A UDP relay between one QUIC client and a server that counts the bytes each way: what the
/// link puts on the wire, QUIC headers, acknowledgements and handshake included.
struct CountingRelay {
    address: SocketAddr,
    bytes_to_receiver: Arc<AtomicU64>,
    bytes_to_sender: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingRelay {
    async fn start(server: SocketAddr) -> anyhow::Result<CountingRelay> {
        let facing_client = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await?);
        let facing_server = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await?);
        facing_server.connect(server).await?;
        let address = facing_client.local_addr()?;
        let bytes_to_receiver = Arc::new(AtomicU64::new(0));
        let bytes_to_sender = Arc::new(AtomicU64::new(0));
        let client_address = Arc::new(std::sync::Mutex::new(None::<SocketAddr>));
        let upstream = {
            let (facing_client, facing_server, counter, client_address) = (
                Arc::clone(&facing_client),
                Arc::clone(&facing_server),
                Arc::clone(&bytes_to_receiver),
                Arc::clone(&client_address),
            );
            async move {
                let mut buffer = vec![0u8; 65_536];
                while let Ok((length, from)) = facing_client.recv_from(&mut buffer).await {
                    *client_address
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(from);
                    counter.fetch_add(length as u64, Ordering::Relaxed);
                    let _ = facing_server.send(&buffer[..length]).await;
                }
            }
        };
        let downstream = {
            let counter = Arc::clone(&bytes_to_sender);
            async move {
                let mut buffer = vec![0u8; 65_536];
                while let Ok(length) = facing_server.recv(&mut buffer).await {
                    let client = *client_address
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if let Some(client) = client {
                        counter.fetch_add(length as u64, Ordering::Relaxed);
                        let _ = facing_client.send_to(&buffer[..length], client).await;
                    }
                }
            }
        };
        let task = tokio::spawn(async move {
            tokio::join!(upstream, downstream);
        });
        Ok(CountingRelay {
            address,
            bytes_to_receiver,
            bytes_to_sender,
            task,
        })
    }

    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Samples this process's VmRSS every 5 ms on its own thread, keeping the peak.
struct MemorySampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl MemorySampler {
    fn start() -> MemorySampler {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut peak = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    peak = peak.max(resident_kib("self").unwrap_or(0));
                    std::thread::sleep(Duration::from_millis(5));
                }
                peak.max(resident_kib("self").unwrap_or(0))
            })
        };
        MemorySampler { stop, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}
