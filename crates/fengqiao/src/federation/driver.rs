//! The async shell around one [`Session`]: moves frames between a QUIC stream and the sans-IO
//! core, honours its timeouts, wakes it on local changes, and runs every storage call on a
//! blocking thread.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use fengqiao_case::signature::SignerKeys;
use fengqiao_sync::{
    FrameCodec, PeerDescription, PeerRelation, Session, SessionConfig, SessionStatistics,
    SyncEvent, SyncFrame,
};
use fengqiao_transport::{PeerConnection, quinn, read_frame, write_frame};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::links::LinkRegistry;
use super::replica::{ReceivedChanges, StoreReplica};

/// Frames handled per blocking call, and made durable by one disk sync: enough to amortise the
/// thread hop and the sync, and well under the sender's window of 64, so that acknowledgements
/// reach the sender while the rest of its window is still being applied here (with a batch of
/// a whole window, the two sides would take turns instead of working at once).
const FRAMES_PER_BATCH: usize = 16;

/// Received frames handed to a preparing thread at most this many at a time.
const CASES_PREPARED_TOGETHER: usize = 16;

/// At most this many threads prepare a session's received cases.
const MAX_PREPARING_THREADS: usize = 4;

/// Priority of the preparing threads on thread-priority's portable scale (0 lowest to 99; 50
/// is everyone else's): 22 is niceness 10 on Linux. Their work is ahead of the session's, and the
/// session is the one thread the whole sync waits on: when the cores are busy, the kernel should
/// run the session and the connection tasks first. Measured on W1 (BENCHMARKS.md): about 1.81
/// instead of 1.69 cores busy, the sync about 10 % sooner.
const PREPARING_THREAD_PRIORITY: u8 = 22;

/// Decoded frames waiting for the session. Bounded so that a peer flooding us is slowed by QUIC
/// flow control instead of growing our memory; an honest peer has at most a window in flight.
const RECEIVED_FRAME_QUEUE: usize = 256;

/// QUIC application close codes.
const CLOSE_SHUTDOWN: u32 = 0;
const CLOSE_SESSION_FAILED: u32 = 2;

/// Wakes sessions when the node's feed advanced (a local edit, or a case received on another
/// link). Clones share one signal.
#[derive(Debug, Clone)]
pub struct ChangeNotifier {
    sender: Arc<watch::Sender<u64>>,
}

impl Default for ChangeNotifier {
    fn default() -> ChangeNotifier {
        ChangeNotifier {
            sender: Arc::new(watch::channel(0).0),
        }
    }
}

impl ChangeNotifier {
    /// Tell every session that the feed may have advanced. Cheap; calls coalesce.
    pub fn notify(&self) {
        self.sender
            .send_modify(|counter| *counter = counter.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.sender.subscribe()
    }
}

/// Which side opens the sync stream: the dialing node opens it once the transport welcomed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRole {
    Dialer,
    Acceptor,
}

/// How a session ended without a transport or storage error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// The stop signal fired; the connection was closed politely.
    Stopped,
    /// The session failed (protocol error, timeout, or the peer ended it).
    Failed { message: String },
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("cannot open the sync stream: {0}")]
    OpenStream(#[source] quinn::ConnectionError),
    #[error("the peer opened no sync stream within {0:?}")]
    NoStream(std::time::Duration),
    #[error("cannot send a frame: {0}")]
    Write(#[source] fengqiao_transport::FrameError),
    #[error("cannot read a frame: {0}")]
    Read(#[source] fengqiao_transport::FrameError),
    #[error("the peer sent a bad frame: {0}")]
    BadFrame(#[source] fengqiao_sync::FrameError),
    #[error("cannot encode a frame: {0}")]
    Encode(#[source] fengqiao_sync::FrameError),
    #[error("the peer closed the sync stream")]
    StreamEnded,
    #[error("local storage failed: {0}")]
    Storage(#[source] fengqiao_sync::ReplicaError),
    #[error("a blocking sync task failed: {0}")]
    Blocking(#[source] tokio::task::JoinError),
}

/// Everything one connection's sync needs.
#[derive(Debug)]
pub struct SyncDriver {
    pub connection: PeerConnection,
    pub role: StreamRole,
    pub local_node_id: String,
    pub peer: PeerDescription,
    pub session_config: SessionConfig,
    pub replica: StoreReplica,
    pub notifier: ChangeNotifier,
    pub links: LinkRegistry,
    /// Ticks when the roster changes.
    pub roster_changes: watch::Receiver<u64>,
}

/// The session and its storage, moved to blocking threads call by call.
struct Core {
    session: Session,
    replica: StoreReplica,
}

/// What one blocking step left for the async side to do.
#[derive(Debug, Default)]
struct Step {
    outgoing: Vec<Vec<u8>>,
    events: Vec<SyncEvent>,
    deadline: Option<Instant>,
    failed: bool,
    statistics: SessionStatistics,
}

enum Input {
    Frames(Vec<SyncFrame>),
    Timeout,
    LocalChange,
    /// The roster changed: changes deferred for an unknown maker may pass now.
    RosterChanged,
}

impl SyncDriver {
    /// Run the session until `stop` completes, the session fails, or the connection breaks.
    pub async fn run(
        self,
        stop: impl Future<Output = ()> + Send,
    ) -> Result<SessionEnd, DriverError> {
        let span = tracing::info_span!(
            parent: &self.connection.span,
            "sync_peer",
            peer = %self.peer.node_id,
            peer_name = %self.peer.name,
            address = %self.connection.remote_address,
            relation = ?self.peer.relation,
        );
        let connection = self.connection.connection.clone();
        let generation = self
            .links
            .connected(&self.peer.node_id, self.connection.remote_address);
        let peer_id = self.peer.node_id.clone();
        let links = self.links.clone();
        let outcome = self
            .run_inner(stop, generation)
            .instrument(span.clone())
            .await;
        // A peer closing with the shutdown code is an ordinary event, not a fault to report.
        let peer_shut_down = matches!(
            connection.close_reason(),
            Some(quinn::ConnectionError::ApplicationClosed(close))
                if close.error_code == quinn::VarInt::from_u32(CLOSE_SHUTDOWN)
        );
        let error = match &outcome {
            Ok(SessionEnd::Stopped) => None,
            Ok(SessionEnd::Failed { message }) => Some(message.clone()),
            Err(_) if peer_shut_down => Some("the peer shut down".to_owned()),
            Err(error) => Some(error.to_string()),
        };
        links.disconnected(&peer_id, generation, error);
        // Whatever ended the session, the connection goes with it: the next one starts afresh
        // from the persisted cursor and heads.
        let (code, reason): (u32, &[u8]) = match &outcome {
            Ok(SessionEnd::Stopped) => (CLOSE_SHUTDOWN, b"node shutting down"),
            _ => (CLOSE_SESSION_FAILED, b"sync session ended"),
        };
        connection.close(quinn::VarInt::from_u32(code), reason);
        span.in_scope(|| match &outcome {
            Ok(SessionEnd::Stopped) => tracing::info!("sync session stopped"),
            Ok(SessionEnd::Failed { message }) => {
                tracing::warn!(reason = %message, "sync session failed")
            }
            Err(_) if peer_shut_down => tracing::info!("the peer shut down; sync session over"),
            Err(error) => tracing::warn!(%error, "sync link lost"),
        });
        outcome
    }

    async fn run_inner(
        self,
        stop: impl Future<Output = ()> + Send,
        generation: u64,
    ) -> Result<SessionEnd, DriverError> {
        let SyncDriver {
            connection,
            role,
            local_node_id,
            peer,
            session_config,
            replica,
            notifier,
            links,
            mut roster_changes,
        } = self;
        let codec = FrameCodec::new(session_config.max_frame_size);
        let hello_timeout = session_config.hello_timeout;
        tokio::pin!(stop);

        let streams = async {
            match role {
                StreamRole::Dialer => connection
                    .connection
                    .open_bi()
                    .await
                    .map_err(DriverError::OpenStream),
                StreamRole::Acceptor => {
                    match tokio::time::timeout(hello_timeout, connection.connection.accept_bi())
                        .await
                    {
                        Ok(accepted) => accepted.map_err(DriverError::OpenStream),
                        Err(_elapsed) => Err(DriverError::NoStream(hello_timeout)),
                    }
                }
            }
        };
        let (mut send_stream, receive_stream) = tokio::select! {
            () = &mut stop => return Ok(SessionEnd::Stopped),
            streams = streams => streams?,
        };

        let mut local_changes = notifier.subscribe();
        local_changes.borrow_and_update();
        let peer_for_session = peer.clone();
        let preparing_replica = replica.clone();
        let rebuild_replica = (peer.relation == PeerRelation::Parent).then(|| replica.clone());
        // The parent said it had sent everything on this connection: a rebuild waiting for the
        // roster to name this node a successor is tried again when the roster changes.
        let mut parent_caught_up = false;
        let own_node_id = local_node_id.clone();
        let core = blocking(move || {
            let mut replica = replica;
            let session = Session::new(
                session_config,
                &local_node_id,
                peer_for_session,
                &mut replica,
                Instant::now(),
                // The session compares it with the peer's, which it says after its hello.
                crate::wall_clock::now(),
            )
            .map_err(DriverError::Storage)?;
            Ok(Arc::new(Mutex::new(Core { session, replica })))
        })
        .await?;

        let (frame_sender, mut frames) = mpsc::channel(RECEIVED_FRAME_QUEUE);
        let preparing = start_preparing(preparing_replica);
        let reader = tokio::spawn(
            read_frames(receive_stream, codec, frame_sender, preparing)
                .instrument(tracing::Span::current()),
        );
        let _abort_reader = AbortOnDrop(reader);

        let mut step = run_step(&core, codec, Input::LocalChange).await?;
        // A frame read while batching that is an error is kept for the next turn.
        let mut held_back: Option<Result<SyncFrame, DriverError>> = None;
        loop {
            links.statistics(&peer.node_id, generation, &step.statistics);
            for bytes in step.outgoing.drain(..) {
                write_frame(&mut send_stream, &bytes, codec.max_frame_size())
                    .await
                    .map_err(DriverError::Write)?;
            }
            for event in step.events.drain(..) {
                handle_event(&event, &peer.node_id, generation, &links, &notifier);
                if let (SyncEvent::PeerCaughtUp { .. }, Some(replica)) = (&event, &rebuild_replica)
                {
                    parent_caught_up = true;
                    complete_rebuild(replica.clone(), &own_node_id).await;
                }
                if let SyncEvent::Failed { message } = event {
                    // The error frame (if any) is written above; let it reach the peer.
                    let _ = send_stream.finish();
                    return Ok(SessionEnd::Failed { message });
                }
            }
            if step.failed {
                return Ok(SessionEnd::Failed {
                    message: "the session failed".to_owned(),
                });
            }
            if let Some(frame) = held_back.take() {
                step = run_step(&core, codec, Input::Frames(vec![frame?])).await?;
                continue;
            }
            let deadline = step.deadline;
            let input = tokio::select! {
                biased;
                () = &mut stop => {
                    let _ = send_stream.finish();
                    return Ok(SessionEnd::Stopped);
                }
                received = frames.recv() => {
                    let first = received.unwrap_or(Err(DriverError::StreamEnded))?;
                    let mut batch = vec![first];
                    while batch.len() < FRAMES_PER_BATCH {
                        match frames.try_recv() {
                            Ok(Ok(frame)) => batch.push(frame),
                            Ok(Err(error)) => {
                                held_back = Some(Err(error));
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    Input::Frames(batch)
                }
                () = sleep_until_deadline(deadline) => Input::Timeout,
                changed = local_changes.changed() => {
                    if changed.is_err() {
                        // The notifier is gone with the federation; the stop signal follows.
                        std::future::pending::<()>().await;
                    }
                    Input::LocalChange
                }
                changed = roster_changes.changed() => {
                    if changed.is_err() {
                        // The roster is gone with the federation; the stop signal follows.
                        std::future::pending::<()>().await;
                    }
                    if parent_caught_up
                        && let Some(replica) = &rebuild_replica
                    {
                        complete_rebuild(replica.clone(), &own_node_id).await;
                    }
                    Input::RosterChanged
                }
            };
            step = run_step(&core, codec, input).await?;
        }
    }
}

/// Aborts its task when dropped: a helper task (a stream reader, a roster exchange) ends with the
/// connection task that spawned it, however that one ends.
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn sleep_until_deadline(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await,
        None => std::future::pending().await,
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, DriverError> + Send + 'static,
) -> Result<T, DriverError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(DriverError::Blocking)?
}

/// Start the threads that prepare, ahead of the session, the cases in received frames (see
/// [`StoreReplica::prepare`]: whole documents of cases new here, changes to held ones), as the
/// reader hands them over: one per core, up to [`MAX_PREPARING_THREADS`], because loading and
/// checking a received case costs more than writing it. Each takes up to
/// [`CASES_PREPARED_TOGETHER`] at a time, whatever has arrived, so that the signatures of new
/// cases are verified in one batch. They end when the reader drops the returned
/// sender.
fn start_preparing(replica: StoreReplica) -> Option<std::sync::mpsc::SyncSender<ReceivedChanges>> {
    let (sender, receiver) = std::sync::mpsc::sync_channel::<ReceivedChanges>(RECEIVED_FRAME_QUEUE);
    let receiver = Arc::new(Mutex::new(receiver));
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, MAX_PREPARING_THREADS);
    let mut started = 0;
    for _ in 0..threads {
        let receiver = Arc::clone(&receiver);
        let replica = replica.clone();
        let spawned = std::thread::Builder::new()
            .name("fengqiao-prepare".to_owned())
            .spawn(move || {
                lower_this_threads_priority(PREPARING_THREAD_PRIORITY);
                let mut keys = SignerKeys::default();
                while let Some(cases) = next_cases_to_prepare(&receiver) {
                    replica.prepare(cases, &mut keys);
                }
            });
        match spawned {
            Ok(_) => started += 1,
            // Only slower: the other threads, or the session itself, do the work.
            Err(error) => tracing::warn!(%error, "no thread to prepare received cases ahead"),
        }
    }
    (started > 0).then_some(sender)
}

/// Set the calling thread's priority to `priority` (see [`PREPARING_THREAD_PRIORITY`]). Only
/// lowering needs no privilege: in a process run nicer than that, the call fails unless
/// privileged, and the thread keeps its priority. A failure costs only speed.
fn lower_this_threads_priority(priority: u8) {
    use thread_priority::{ThreadPriority, ThreadPriorityValue, set_current_thread_priority};
    let lowered = ThreadPriorityValue::try_from(priority).and_then(|value| {
        set_current_thread_priority(ThreadPriority::Crossplatform(value))
            .map_err(|error| format!("{error:?}"))
    });
    if let Err(error) = lowered {
        tracing::debug!(%error, priority, "a preparing thread keeps its priority");
    }
}

/// The next cases for a preparing thread: waits for one, then takes what else has arrived.
/// `None` once the reader is gone.
fn next_cases_to_prepare(
    receiver: &Mutex<std::sync::mpsc::Receiver<ReceivedChanges>>,
) -> Option<Vec<ReceivedChanges>> {
    let receiver = receiver.lock().unwrap_or_else(PoisonError::into_inner);
    let mut cases = vec![receiver.recv().ok()?];
    while cases.len() < CASES_PREPARED_TOGETHER {
        match receiver.try_recv() {
            Ok(case) => cases.push(case),
            Err(_) => break,
        }
    }
    Some(cases)
}

async fn run_step(
    core: &Arc<Mutex<Core>>,
    codec: FrameCodec,
    input: Input,
) -> Result<Step, DriverError> {
    let core = Arc::clone(core);
    blocking(move || {
        // Only this connection's task uses the core, one step at a time; a poisoned lock means a
        // step panicked, and the session state is then not to be trusted, but the data on disk
        // is, so the step reports failure and the connection restarts from it.
        let mut guard = core.lock().unwrap_or_else(PoisonError::into_inner);
        let Core { session, replica } = &mut *guard;
        match input {
            // One batch: the session makes its applies durable once, before acknowledging them.
            Input::Frames(frames) => {
                if tracing::enabled!(tracing::Level::TRACE) {
                    for frame in &frames {
                        trace_frame("received", frame);
                    }
                }
                session.handle_frames(replica, Instant::now(), frames)
            }
            Input::Timeout => session.handle_timeout(replica, Instant::now()),
            Input::LocalChange => session.on_local_change(replica, Instant::now()),
            Input::RosterChanged => session.retry_deferred(replica),
        }
        let mut step = Step::default();
        while let Some(frame) = session.poll_transmit() {
            trace_frame("sent", &frame);
            step.outgoing
                .push(codec.encode(&frame).map_err(DriverError::Encode)?);
        }
        while let Some(event) = session.poll_event() {
            step.events.push(event);
        }
        step.deadline = session.poll_timeout();
        step.failed = session.is_failed();
        step.statistics = session.statistics().clone();
        Ok(step)
    })
    .await
}

/// One frame in the trace log: its kind, case, feed position and heads (the first bytes of
/// each), never its contents, which carry personal data. For following a replay of a fault run.
fn trace_frame(direction: &str, frame: &SyncFrame) {
    if !tracing::enabled!(tracing::Level::TRACE) {
        return;
    }
    let short = |heads: &[fengqiao_sync::ChangeHead]| {
        heads
            .iter()
            .map(|head| hex::encode(&head[..4]))
            .collect::<Vec<_>>()
            .join(",")
    };
    match frame {
        SyncFrame::Changes {
            case,
            feed_seq,
            base_heads,
            sender_heads,
            whole,
            bytes,
        } => tracing::trace!(
            direction,
            kind = "changes",
            %case,
            feed_seq,
            base = %short(base_heads),
            heads = %short(sender_heads),
            whole,
            bytes = bytes.len(),
            "frame"
        ),
        SyncFrame::Ack {
            case,
            feed_seq,
            heads,
        } => {
            tracing::trace!(direction, kind = "ack", %case, feed_seq, heads = %short(heads), "frame")
        }
        SyncFrame::Need { case, have_heads } => {
            tracing::trace!(direction, kind = "need", %case, have = %short(have_heads), "frame")
        }
        SyncFrame::Refused {
            case,
            feed_seq,
            reason,
        } => tracing::trace!(direction, kind = "refused", %case, feed_seq, %reason, "frame"),
        SyncFrame::ChangesRefused { case, reasons } => tracing::trace!(
            direction,
            kind = "changes_refused",
            %case,
            reasons = reasons.len(),
            "frame"
        ),
        other => tracing::trace!(direction, kind = other.kind_name(), "frame"),
    }
}

/// The parent has sent everything it owes: a node being rebuilt from it is complete
/// (`crate::rebuild`), once the roster says the parent admitted it as a successor (admitted as
/// a new office, it was sent none of the lost node's cases, and its numbering must not start
/// again). Logged, never fatal to the link: the next catch-up or roster change tries again.
async fn complete_rebuild(replica: StoreReplica, local_node_id: &str) {
    if !replica.roster().is_successor(local_node_id) {
        tracing::info!(
            "the parent has sent everything, but this rebuilt node is not yet admitted as the \
             successor of the lost node (`fengqiao admit … --successor-of OLD_ID` at the \
             parent): it stays rebuilding and registers no case"
        );
        return;
    }
    let completed = tokio::task::spawn_blocking(move || {
        crate::rebuild::complete_if_rebuilding(replica.store(), crate::wall_clock::now())
    })
    .await;
    match completed {
        Ok(Ok(Some(report))) => {
            let missing: u64 = report
                .sequences
                .iter()
                .map(|sequence| sequence.missing_count)
                .sum();
            tracing::info!(
                cases = report.cases_recovered,
                missing,
                "rebuild from the parent complete; case numbering continues after the highest \
                 number that came back"
            );
        }
        Ok(Ok(None)) => {}
        Ok(Err(error)) => tracing::error!(%error, "cannot complete the rebuild from the parent"),
        Err(error) => tracing::error!(%error, "the rebuild's completion did not finish"),
    }
}

fn handle_event(
    event: &SyncEvent,
    peer: &str,
    generation: u64,
    links: &LinkRegistry,
    notifier: &ChangeNotifier,
) {
    match event {
        SyncEvent::PeerHello { feed_head, .. } => {
            tracing::info!(peer_feed_head = feed_head, "sync session open");
        }
        SyncEvent::PeerClock { offset_ms } => {
            let offset = fengqiao_case::clock::describe_offset(offset_ms.saturating_neg());
            if offset_ms.unsigned_abs()
                > fengqiao_case::event_time::CLOCK_SKEW_ALLOWANCE
                    .num_milliseconds()
                    .unsigned_abs()
            {
                tracing::warn!(
                    offset_ms,
                    "this node's clock is {offset} against the peer's: one of the two is wrong"
                );
            } else {
                tracing::debug!(offset_ms, "the peer's clock agrees with ours");
            }
            links.clock_offset(peer, generation, *offset_ms);
        }
        SyncEvent::PeerBacklog { documents } => {
            tracing::info!(documents, "the peer has changed documents to send");
            links.inbound_backlog(peer, generation, *documents);
        }
        SyncEvent::CaseReceived {
            case,
            created,
            changed,
        } => {
            tracing::debug!(%case, created, changed, "case received");
            links.received_one(peer, generation);
            if *changed {
                notifier.notify();
            }
        }
        SyncEvent::PeerCaughtUp { feed_head } => {
            tracing::debug!(peer_feed_head = feed_head, "peer sent everything it owes");
            links.progress(peer, generation, false);
        }
        SyncEvent::PeerHasAll { cursor } => {
            tracing::debug!(cursor, "peer holds everything owed to it");
            links.progress(peer, generation, true);
        }
        SyncEvent::CaseSkipped { case, reason } => {
            tracing::warn!(%case, %reason, "case not exchanged in this session");
        }
        SyncEvent::CaseDeferred { case, reason } => {
            tracing::info!(%case, %reason, "case deferred; asked for again when the roster changes");
        }
        SyncEvent::ChangesQuarantined { case, reasons } => {
            // Each change was logged with its reason when it was quarantined.
            tracing::warn!(
                %case,
                changes = reasons.len(),
                "changes refused on receipt; the rest of the case was applied"
            );
            links.received_one(peer, generation);
            notifier.notify();
        }
        SyncEvent::ChangesRefusedByPeer { case, reasons } => {
            // Recorded by the replica; the case and `fengqiao peers` show it.
            tracing::warn!(
                %case,
                changes = reasons.len(),
                reason = reasons.first().map(String::as_str).unwrap_or_default(),
                "the peer refused changes of ours on receipt; they do not travel on"
            );
        }
        // Logged once, with the outcome, when the driver ends.
        SyncEvent::Failed { .. } => {}
    }
}

/// Read and decode frames until the stream ends or breaks; the last item says why it stopped.
async fn read_frames(
    mut stream: quinn::RecvStream,
    codec: FrameCodec,
    frames: mpsc::Sender<Result<SyncFrame, DriverError>>,
    preparing: Option<std::sync::mpsc::SyncSender<ReceivedChanges>>,
) {
    loop {
        let item = match read_frame(&mut stream, codec.max_frame_size()).await {
            Ok(Some(payload)) => match codec.decode(&payload) {
                Ok((frame, used)) if used == payload.len() => {
                    if let (
                        Some(preparing),
                        SyncFrame::Changes {
                            case, bytes, whole, ..
                        },
                    ) = (&preparing, &frame)
                    {
                        // Never waits: when the preparing threads are behind, the session does
                        // the work itself.
                        let _ = preparing.try_send(ReceivedChanges {
                            case: case.clone(),
                            bytes: bytes.clone(),
                            whole: *whole,
                        });
                    }
                    Ok(frame)
                }
                Ok((_, used)) => Err(DriverError::BadFrame(
                    fengqiao_sync::FrameError::TrailingBytes {
                        extra: payload.len() - used,
                    },
                )),
                Err(error) => Err(DriverError::BadFrame(error)),
            },
            Ok(None) => Err(DriverError::StreamEnded),
            Err(error) => Err(DriverError::Read(error)),
        };
        let last = item.is_err();
        if frames.send(item).await.is_err() || last {
            return;
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The niceness the kernel reports for the calling thread (field 19 of its stat line).
    fn this_threads_niceness() -> i64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("reads own stat");
        let (_, after_name) = stat.rsplit_once(')').expect("a command name");
        after_name
            .split_whitespace()
            .nth(16)
            .expect("a niceness field")
            .parse()
            .expect("a number")
    }

    #[test]
    fn a_preparing_thread_runs_at_niceness_ten_and_others_keep_theirs() {
        let before = this_threads_niceness();
        let lowered = std::thread::spawn(|| {
            lower_this_threads_priority(PREPARING_THREAD_PRIORITY);
            this_threads_niceness()
        })
        .join()
        .expect("thread finishes");
        // Niceness is set, not added. A process already nicer than 10 may end at 10 if it is
        // privileged (raising needs privilege), else it keeps its niceness; never below 10.
        if before < 10 {
            assert_eq!(lowered, 10);
        } else {
            assert!(
                lowered == before || lowered == 10,
                "{lowered} from {before}"
            );
        }
        assert_eq!(
            this_threads_niceness(),
            before,
            "only the calling thread changes"
        );
    }
}
