//! The node's service layer: ties the case lifecycle to the store, with the operator and `now`
//! passed in. The HTTP API is a thin shell over it.
//!
//! Every method is synchronous and may block on disk (each write is flushed before it returns):
//! async callers run them on a blocking thread.

use std::collections::HashMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};

use anyhow::{Context, bail};
use chrono::{DateTime, Datelike, Utc};
use fengqiao_accounts::{Action, Actor, RoleError};
use fengqiao_case::appending::TimeRule;
use fengqiao_case::authority::{Hierarchy, KindTag, StandaloneOffice, lies_within};
use fengqiao_case::clock::{ClockError, DEFAULT_MAX_AHEAD_MS, HybridClock, judge_clock};
use fengqiao_case::deadlines::local_date;
use fengqiao_case::event_time::{self, Backdating, ClaimedTime};
use fengqiao_case::model::ReceivedAheadNote;
use fengqiao_case::model::sync::PeerRefusal;
use fengqiao_case::{
    AppendEvent, CaseDocument, CaseError, CaseHeader, CaseId, CaseListItem, CaseSummary, CaseView,
    Category, ClockHealth, DirectiveListItem, DirectiveStatus, DocumentError, EventKind,
    HybridTimestamp, ImportBatch, ImportMark, ImportOutcome, ImportRow, ImportRowReport,
    ImportedCases, Measures, NewEvent, NodeId, NodeInfo, RegisterCase, SCHEMA_VERSION, Status,
    Tier, WarningGrade, appending, import, input_bounds, lifecycle, summary, warnings,
};
use fengqiao_store::{CaseFilter, DirectiveScope, NewCase, Store, StoreError, StoreOptions};

use crate::config::{self, NodeConfig, NodeDir};
use crate::identity::NodeIdentity;

/// What `fengqiao init` needs to create a node directory.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub name: String,
    pub tier: Tier,
    pub region_code: String,
    pub listen: Option<SocketAddr>,
    pub parent: Option<String>,
    /// Further host names and addresses the office LAN reaches the node by, for the certificate
    /// `init` makes when `listen` is beyond loopback.
    pub lan_names: Vec<String>,
}

/// File in the node directory locked while a process has the node open.
const LOCK_FILE: &str = "node.lock";

/// Store meta key remembering which node identity the store was created with.
const META_NODE_ID: &str = "node_id";

/// Store meta key of the roster snapshot: written by the live roster (`federation/roster.rs`),
/// read at open for the policies (`service/policy.rs`) and by `audit verify`. Here, with the
/// node's other meta keys, so the service reads it without depending on the federation.
pub const ROSTER_META_KEY: &str = "roster";

/// Store meta prefix of the imported rows: `import/row/<row key>` holds the case number the row
/// became, written in the transaction that writes the case.
const IMPORTED_ROW_META_PREFIX: &str = "import/row/";

/// Create a node directory: config file and identity key, the CLI token and the first admin.
/// Refuses an existing node directory.
pub fn init_node(dir: &Path, options: InitOptions) -> anyhow::Result<NodeConfig> {
    init_node_with_admin(dir, options).map(|(config, _password)| config)
}

/// [`init_node`], also answering the first admin's one-time password (for `init` to print once).
pub fn init_node_with_admin(
    dir: &Path,
    options: InitOptions,
) -> anyhow::Result<(NodeConfig, String)> {
    let node_dir = NodeDir::new(dir);
    if NodeDir::exists(dir) {
        bail!(
            "{} is already a node directory (it has {}): a node is created once",
            dir.display(),
            config::CONFIG_FILE
        );
    }
    for leftover in [
        node_dir.key_path(),
        node_dir.store_path(),
        node_dir.cli_token_path(),
    ] {
        if leftover.exists() {
            bail!(
                "{} has no {} but already holds {}: an earlier init was interrupted or this is \
                 part of another node; remove it or choose an empty directory",
                dir.display(),
                config::CONFIG_FILE,
                leftover.display()
            );
        }
    }
    let mut config = NodeConfig::new(options.name.trim(), options.tier, options.region_code);
    if let Some(listen) = options.listen {
        config.http.listen = listen;
    }
    config.node.parent = options.parent.filter(|parent| !parent.trim().is_empty());
    // Validate before touching the disk: a typo in the region code must not leave a half node.
    config.validate()?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let identity = NodeIdentity::generate()?;
    identity.save_new(&node_dir.key_path())?;
    write_secret_file(&node_dir.cli_token_path(), &accounts::new_cli_token()?)?;
    let admin_password = {
        // A new store with one account: the free-space reserve guards a running node's
        // writes, and a node must be creatable on a small disk whose reserve is then lowered.
        let options = StoreOptions {
            min_free_bytes: 0,
            ..StoreOptions::new(config.storage.cache_capacity, identity.actor().to_vec())
        };
        let store = Store::open(&node_dir.store_path(), options)
            .context("cannot create the node's store")?;
        accounts::create_first_admin(&store, crate::wall_clock::now())
            .context("cannot create the first admin account")?
    };
    if !config.http.listen.ip().is_loopback() && !config.http.serves_tls() {
        // Passwords cross the office LAN only inside TLS (`api/tls.rs`): a node that listens
        // there gets its own certificate, trusted by its fingerprint.
        let names = lan_certificate_names(config.http.listen, &options.lan_names);
        let certificate = crate::api::tls::generate_lan_certificate(
            &names,
            &config.node.name,
            crate::wall_clock::now(),
        )?;
        write_secret_file(&node_dir.lan_key_path(), certificate.key_pem.trim_end())?;
        std::fs::write(
            node_dir.lan_certificate_path(),
            &certificate.certificate_pem,
        )
        .with_context(|| format!("cannot write {}", node_dir.lan_certificate_path().display()))?;
        config.http.tls_cert = Some(config::LAN_CERTIFICATE_FILE.into());
        config.http.tls_key = Some(config::LAN_KEY_FILE.into());
    }
    // The config goes last: its presence is what marks a complete node directory.
    config::save(dir, &config)?;
    tracing::info!(node_id = identity.node_id(), dir = %dir.display(), "node created");
    Ok((config, admin_password))
}

/// The names a LAN certificate is made for: this machine (so the local CLI and browser reach it),
/// the address it listens on unless that is every address, the machine's host name, and what
/// the operator named.
fn lan_certificate_names(listen: SocketAddr, named: &[String]) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    // Linux keeps it here; elsewhere the operator names it with --lan-name.
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        names.push(host.trim().to_owned());
    }
    names.extend(named.iter().map(|name| name.trim().to_owned()));
    names.retain(|name| !name.is_empty());
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|name| seen.insert(name.clone()));
    names
}

/// Write a new file only its owner may read (0600), whole or not at all.
fn write_secret_file(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&temporary)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    file.write_all(format!("{text}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Why the service refused or failed a request. Each kind maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    InvalidInput(String),
    /// One field of the request is refused: `field` is its path in the request
    /// (`petitioners.id_number`, `location.region_code`), `why` says what is wrong (for a
    /// petitioner, starting with which one: `petitioner 2: …`), so a form can show it beside
    /// the field.
    #[error("invalid {field}: {why}")]
    InvalidField { field: String, why: String },
    #[error("no case {0}")]
    NotFound(CaseId),
    #[error("case {0} already exists")]
    AlreadyExists(CaseId),
    /// The lifecycle refused the event for the case's current state; the message is for the operator.
    #[error(transparent)]
    Refused(CaseError),
    /// This node has no authority to make the event (the authority table, or the lifecycle's
    /// own check of who acts); the message says who may.
    #[error(transparent)]
    Forbidden(CaseError),
    #[error(transparent)]
    Storage(StoreError),
    /// The disk holding the node is below its free-space reserve: nothing was written.
    #[error("disk full (磁盘空间不足), nothing was written: {0}")]
    DiskFull(StoreError),
    #[error("case document: {0}")]
    Document(DocumentError),
    /// The event sends the case to an office that replication can never carry it to.
    #[error(
        "node {node} (region {node_region}) can never receive a case located in region \
         {case_region}: the federation carries a case down only into the region it lies in, so \
         send it to an office whose region contains the case's location"
    )]
    Unreachable {
        node: NodeId,
        node_region: String,
        case_region: String,
    },
    /// The person's role does not allow the action (the role table); the message names the rule.
    #[error(transparent)]
    NotPermitted(RoleError),
    /// No account proved who is asking, or the proof no longer counts.
    #[error("{0}")]
    Unauthenticated(String),
    /// Too many failed sign-ins for this account or from this address: try again after a while.
    #[error("too many failed sign-ins: try again in {retry_after_seconds} s")]
    Throttled { retry_after_seconds: u64 },
    #[error("account {0} already exists")]
    AccountExists(String),
    #[error("no account {0}")]
    NoSuchAccount(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// This node's clock is off against its peers beyond the allowance: it stamps no events
    /// until the clock is corrected or it is told to proceed; the message says which.
    #[error("{0}")]
    ClockSkewed(String),
    /// This node is being rebuilt from its parent and hands out no case number until every case
    /// of its office has come back (`rebuild.rs`).
    #[error("{0}")]
    Rebuilding(String),
}

impl From<RoleError> for ServiceError {
    fn from(error: RoleError) -> ServiceError {
        ServiceError::NotPermitted(error)
    }
}

impl ServiceError {
    /// The HTTP status this error is answered with.
    pub fn http_status(&self) -> u16 {
        match self {
            ServiceError::InvalidInput(_) | ServiceError::InvalidField { .. } => 400,
            ServiceError::Unauthenticated(_) => 401,
            ServiceError::NotPermitted(_) => 403,
            ServiceError::NotFound(_) | ServiceError::NoSuchAccount(_) => 404,
            ServiceError::AlreadyExists(_) | ServiceError::AccountExists(_) => 409,
            ServiceError::Throttled { .. } => 429,
            // The request was well formed; the case's current state does not allow it.
            ServiceError::Refused(_) => 409,
            ServiceError::Forbidden(_) | ServiceError::Unreachable { .. } => 403,
            ServiceError::Storage(_) | ServiceError::Document(_) | ServiceError::Internal(_) => 500,
            // 507 Insufficient Storage: the request was fine and may be sent again once the
            // operator has freed space.
            ServiceError::DiskFull(_) => 507,
            // 503: the request was fine; the node will take it once its clock is right.
            ServiceError::ClockSkewed(_) => 503,
            // 503: the node will take it once its rebuild has completed.
            ServiceError::Rebuilding(_) => 503,
        }
    }
}

impl From<CaseError> for ServiceError {
    fn from(error: CaseError) -> ServiceError {
        match error {
            CaseError::InvalidInput { field, why } => ServiceError::InvalidField {
                field: field.to_owned(),
                why,
            },
            CaseError::Document(document) => ServiceError::Document(document),
            // Our own key failed to sign our own event: nothing the caller did.
            CaseError::Signature(signature) => ServiceError::Internal(signature.to_string()),
            CaseError::Unauthorized(_)
            | CaseError::NotHolder { .. }
            | CaseError::NotReceiver { .. }
            | CaseError::NotDirectiveParty { .. } => ServiceError::Forbidden(error),
            other => ServiceError::Refused(other),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> ServiceError {
        match error {
            StoreError::NotFound(number) => ServiceError::NotFound(number),
            StoreError::AlreadyExists(number) => ServiceError::AlreadyExists(number),
            StoreError::AccountExists(login) => ServiceError::AccountExists(login),
            StoreError::InvalidCaseNumber { .. } => ServiceError::InvalidInput(error.to_string()),
            StoreError::Document(document) => ServiceError::Document(document),
            StoreError::DiskFull { .. } => ServiceError::DiskFull(error),
            other => ServiceError::Storage(other),
        }
    }
}

impl From<DocumentError> for ServiceError {
    fn from(error: DocumentError) -> ServiceError {
        ServiceError::Document(error)
    }
}

/// Filters of [`Node::list`]; every one that is set must match.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<Status>,
    pub holder: Option<NodeId>,
    pub category: Option<Category>,
    /// Region code prefix: a village code, or a township's for all its villages.
    pub region_prefix: Option<String>,
    /// Only cases with a deadline (status or directive) already passed.
    pub overdue_only: bool,
    /// Only cases with any warning (预警 or worse) at `now`: read from the deadline index, up to
    /// the warning rule's horizon (`warnings::warning_horizon`).
    pub warned_only: bool,
    /// Only cases with a petitioner whose name contains this, from the store's name index; ask
    /// only once `Store::petitioner_names_indexed` (a store an earlier build wrote lacks names
    /// until its migration is through).
    pub petitioner_name: Option<String>,
    pub limit: Option<usize>,
}

/// What a page of [`Node::list_page`] asks beyond a [`ListFilter`]: the 台账's filters that only
/// a page reads (a warning grade, registration days in China time, a text search) and the page.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// Only cases whose worst warning at `now` is this grade.
    pub grade: Option<WarningGrade>,
    /// Registered on or after this day (China time).
    pub registered_from: Option<chrono::NaiveDate>,
    /// Registered on or before this day (China time).
    pub registered_to: Option<chrono::NaiveDate>,
    /// A case number or part of one, or a petitioner's name or part of one.
    pub text: Option<String>,
    pub skip: usize,
    pub take: usize,
}

/// Period and category of [`Node::stats`]: cases registered in `[from, to)`.
#[derive(Debug, Clone, Default)]
pub struct StatsQuery {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub category: Option<Category>,
    /// Whether the cases a ledger import registered count; by default they do.
    pub imported: ImportedCases,
}

/// An open node: config, identity and store, held exclusively by this process.
#[derive(Debug)]
pub struct Node {
    dir: NodeDir,
    config: NodeConfig,
    identity: NodeIdentity,
    store: Store,
    /// Orders this node's events after every event it made or received.
    clock: Mutex<HybridClock>,
    /// The supervisors' measures, kept current by the store as summaries are committed.
    stats_rollup: stats::StatsRollup,
    /// Held by an import batch from looking its rows up to writing them.
    import_lock: Mutex<()>,
    /// Who lies above whom, for the authority table: the federation's live roster once the
    /// federation has started (`set_hierarchy`), none before (see `Node::hierarchy`).
    hierarchy: RwLock<Option<FederationHierarchy>>,
    /// Its people: the sign-in throttle, the CLI token, the session expiry.
    accounts: accounts::AccountBook,
    /// The federation's policy versions held (`service/policy.rs`): every case derives with the
    /// one it was registered under.
    policies: Arc<policy::SharedPolicies>,
    /// What the federation's links measured of their peers' clocks, once it has started
    /// (`set_peer_clocks`); none on a standalone node, whose clock nobody can judge.
    peer_clocks: RwLock<Option<Arc<dyn PeerClocks>>>,
    /// Stamp events even while the clock is skewed: `[clock] allow_skew`, or `fengqiao run
    /// --allow-clock-skew` (`allow_clock_skew`).
    allow_clock_skew: std::sync::atomic::AtomicBool,
    /// Holds the node directory's lock for as long as the node is open.
    _lock: File,
}

/// The peers' wall clocks as the node's links measured them: each the peer's clock minus ours,
/// in milliseconds (`fengqiao_sync::SyncEvent::PeerClock`), the parent's apart.
pub trait PeerClocks: Send + Sync + std::fmt::Debug {
    /// (the parent's offset, each child's offset), for those that said their time.
    fn offsets(&self) -> (Option<i64>, Vec<i64>);
}

/// The federation's hierarchy as the node holds it: weakly, because the live roster holds the
/// node (its store), and a cycle would keep the node open after the federation stops. A newtype
/// so that `Node` stays `Debug`.
#[derive(Clone)]
struct FederationHierarchy(Weak<dyn Hierarchy + Send + Sync>);

impl std::fmt::Debug for FederationHierarchy {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("FederationHierarchy")
    }
}

/// Meta key of the hybrid clock's latest time: 8 bytes of wall milliseconds, 4 of counter.
const CLOCK_META_KEY: &str = "hybrid_clock";

fn encode_clock(stamped: HybridTimestamp) -> [u8; 12] {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&stamped.wall_ms.to_be_bytes());
    bytes[8..].copy_from_slice(&stamped.counter.to_be_bytes());
    bytes
}

/// The stored clock, or zero when none is stored (a new node) or it cannot be read: the wall
/// clock then takes over, which is what a node did before it kept one.
fn decode_clock(bytes: Option<&[u8]>) -> HybridTimestamp {
    let Some(bytes) = bytes else {
        return HybridTimestamp::ZERO;
    };
    match (bytes.get(..8), bytes.get(8..12)) {
        (Some(wall), Some(counter)) if bytes.len() == 12 => HybridTimestamp {
            wall_ms: i64::from_be_bytes(wall.try_into().unwrap_or_default()),
            counter: u32::from_be_bytes(counter.try_into().unwrap_or_default()),
        },
        _ => {
            tracing::warn!("the stored hybrid clock is unreadable; resuming from the wall clock");
            HybridTimestamp::ZERO
        }
    }
}

fn lock_ignoring_poison<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One ledger row built in memory and ready to write.
struct BuiltCase {
    document: CaseDocument,
    summary: CaseSummary,
}

impl Node {
    /// Open the node in `dir`: load its config and key, lock it, open its store.
    pub fn open(dir: &Path) -> anyhow::Result<Node> {
        let node_dir = NodeDir::new(dir);
        let mut config = config::load(dir)?;
        let identity = NodeIdentity::load(&node_dir.key_path())?;
        let lock = lock_node_directory(dir)?;
        let options = StoreOptions {
            min_free_bytes: config.storage.min_free_bytes,
            page_cache_bytes: config.storage.page_cache_bytes(),
            ..StoreOptions::new(config.storage.cache_capacity, identity.actor().to_vec())
        };
        let store_path = node_dir.store_path();
        let store = Store::open(&store_path, options).map_err(|error| {
            let message = error.to_string();
            // sled's own lock, in case something other than a Fengqiao node holds the store.
            if message.contains("could not acquire lock") {
                anyhow::anyhow!(
                    "the store {} is in use by another process: is `fengqiao run {}` already running?",
                    store_path.display(),
                    dir.display()
                )
            } else {
                anyhow::Error::new(error)
                    .context(format!("cannot open the store {}", store_path.display()))
            }
        })?;
        check_store_belongs_to_node(&store, &identity)
            .with_context(|| format!("cannot open the node in {}", dir.display()))?;
        tracing::info!(
            node_id = identity.node_id(),
            tier = config::tier_name(config.node.tier),
            region = %config.node.region_code,
            cases = store.case_count(),
            "node opened"
        );
        let stored_clock = store
            .meta_get(CLOCK_META_KEY)
            .context("cannot read the node's hybrid clock")?;
        let clock = HybridClock::new(decode_clock(stored_clock.as_deref()), DEFAULT_MAX_AHEAD_MS);
        // Observing before the node is handed out, so that no commit escapes the rollup; it
        // counts the stored summaries later (`Node::prepare_stats`), not while the node opens.
        let policies = policy::stored_policies(&store);
        policy::warn_if_local_settings_ignored(&config);
        config.warnings = policy::effective_warnings(&policies, &config);
        let stats_rollup = stats::StatsRollup::observe(&store, &config.warnings);
        let accounts = accounts::AccountBook::open(
            &node_dir.cli_token_path(),
            config.http.session_idle_seconds,
        )?;
        let allow_clock_skew = config.clock.allow_skew;
        Ok(Node {
            dir: node_dir,
            config,
            identity,
            store,
            clock: Mutex::new(clock),
            stats_rollup,
            import_lock: Mutex::new(()),
            hierarchy: RwLock::new(None),
            accounts,
            policies: Arc::new(policy::SharedPolicies::new(policies)),
            peer_clocks: RwLock::new(None),
            allow_clock_skew: std::sync::atomic::AtomicBool::new(allow_clock_skew),
            _lock: lock,
        })
    }

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    pub fn identity(&self) -> &NodeIdentity {
        &self.identity
    }

    pub fn node_id(&self) -> &str {
        self.identity.node_id()
    }

    pub fn dir(&self) -> &NodeDir {
        &self.dir
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn info(&self) -> NodeInfo {
        NodeInfo {
            schema_version: SCHEMA_VERSION,
            node_id: self.identity.node_id().to_owned(),
            name: self.config.node.name.clone(),
            tier: self.config.node.tier,
            region_code: self.config.node.region_code.clone(),
            case_count: self.store.case_count(),
            clock: self.clock_health(),
        }
    }

    /// Give the node what its federation's links measure of their peers' clocks, against which
    /// it judges its own before stamping each event.
    pub fn set_peer_clocks(&self, peer_clocks: Arc<dyn PeerClocks>) {
        *self
            .peer_clocks
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(peer_clocks);
    }

    /// Stamp events even while the clock is skewed (`fengqiao run --allow-clock-skew`).
    pub fn allow_clock_skew(&self) {
        self.allow_clock_skew
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// How this node's clock stands against its peers' (`fengqiao_case::clock::judge_clock`):
    /// against its parent, or a county against the median of its children. `None` before any
    /// of them said its time, and on a node without a federation.
    pub fn clock_health(&self) -> Option<ClockHealth> {
        let peer_clocks = self
            .peer_clocks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        let (parent, children) = peer_clocks.offsets();
        judge_clock(
            parent,
            &children,
            self.allow_clock_skew
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Register a new case. Without a number the node assigns the next one for its region and the
    /// year (China time) of `registered_at`.
    pub fn register(
        &self,
        actor: &Actor,
        now: DateTime<Utc>,
        request: RegisterCase,
    ) -> Result<CaseView, ServiceError> {
        actor.permit(Action::Event(KindTag::Register))?;
        let operator = actor.operator.as_str();
        let registered_at = request.registered_at.unwrap_or(now);
        event_time::check_claimed_time(
            ClaimedTime {
                field: "registered_at",
                at: registered_at,
                reason: request.backdated_reason.as_deref(),
            },
            now,
            [],
            self.backdating(),
        )?;
        self.check_location(&request)?;
        let given_number = request.number.clone();
        if let Some(number) = &given_number {
            self.check_case_number(number, now)?;
            if self.store.contains(number)? {
                return Err(ServiceError::AlreadyExists(number.clone()));
            }
        }
        // Judge the header before taking a number, so a refused registration leaves no gap.
        let provisional_number = given_number
            .clone()
            .unwrap_or_else(|| self.number_for(registered_at, 0));
        lifecycle::validate_header(&header_from(&request, provisional_number), registered_at)?;
        let number = match given_number {
            Some(number) => number,
            None => self.assign_number(registered_at)?,
        };
        let header = header_from(&request, number);
        let register = NewEvent {
            backdated_reason: backdated_reason(request.backdated_reason.as_deref()),
            ..self.new_event(
                EventKind::Register {
                    header: None,
                    policy_version: 0,
                },
                registered_at,
                now,
                operator,
            )?
        };
        let (mut document, event, state) = appending::register(
            header.clone(),
            register,
            self.identity.actor(),
            &self.policies(),
            &self.identity,
        )?;
        let case_summary = summary::summarize(&header, &state);
        self.store.create_cases(&mut [NewCase {
            document: &mut document,
            summary: &case_summary,
        }])?;
        let warnings = warnings::warnings(&case_summary, now, &self.config.warnings);
        Ok(CaseView {
            header,
            state,
            events: vec![event],
            warnings,
            // Nothing has been sent anywhere yet, nor received.
            refused_by_peers: Vec::new(),
            received_ahead: None,
        })
    }

    /// Give the node the federation's hierarchy (its live roster), against which the authority
    /// table judges every event this node makes from now on. The node keeps it weakly: the
    /// federation owns the roster, and once the federation stops the node is standalone again.
    pub fn set_hierarchy(&self, hierarchy: Arc<dyn Hierarchy + Send + Sync>) {
        *self
            .hierarchy
            .write()
            .unwrap_or_else(PoisonError::into_inner) =
            Some(FederationHierarchy(Arc::downgrade(&hierarchy)));
    }

    /// The hierarchy set by the federation or, without one (a standalone node, before the
    /// federation starts or after it stopped), one that knows only this node with nobody above
    /// it: such a node holds and handles its own cases but supervises or takes over nothing.
    fn hierarchy(&self) -> Arc<dyn Hierarchy + Send + Sync> {
        let set = self
            .hierarchy
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        set.and_then(|FederationHierarchy(hierarchy)| hierarchy.upgrade())
            .unwrap_or_else(|| {
                Arc::new(StandaloneOffice {
                    node: self.identity.node_id().to_owned(),
                    region_code: self.config.node.region_code.clone(),
                })
            })
    }

    /// Append one event to a case, checked by the lifecycle rules and the authority table. `at`
    /// defaults to `now`.
    pub fn append(
        &self,
        actor: &Actor,
        now: DateTime<Utc>,
        number: &str,
        request: AppendEvent,
    ) -> Result<CaseView, ServiceError> {
        // The person's role first, then (in `appending::append`) the office's authority: the
        // one place a person's role is judged for an event.
        actor.permit(Action::Event(KindTag::of(&request.kind)))?;
        let at = request.at.unwrap_or(now);
        // Plausible before the clock ticks; the rest of the time rule (what the event follows)
        // is judged on the case, in `appending::append_with_time_rule`.
        event_time::check_time("at", at, now)?;
        let event = NewEvent {
            backdated_reason: backdated_reason(request.backdated_reason.as_deref()),
            ..self.new_event(request.kind, at, now, &actor.operator)?
        };
        let time_rule = TimeRule {
            now,
            backdating: self.backdating(),
        };
        let policies = self.policies();
        let hierarchy = self.hierarchy();
        let outcome = self.store.update_case(number, |document| {
            if let Some(receiver) = sent_to(&event.kind) {
                let region = document.header()?.location.region_code;
                check_receiver_reachable(receiver, &region, hierarchy.as_ref())?;
            }
            // The limits of the policy the case was registered under, never this node's own.
            let limits = policies
                .limits_for_case(&document.events()?)
                .map_err(|error| ServiceError::Internal(format!("case {number}: {error}")))?;
            let (_event, state, header) = fengqiao_case::appending::append_with_time_rule(
                document,
                event,
                time_rule,
                limits,
                &self.identity,
                hierarchy.as_ref(),
            )?;
            let events = document.events()?;
            let case_summary = summary::summarize(&header, &state);
            Ok::<_, ServiceError>((case_summary.clone(), (header, state, events, case_summary)))
        })?;
        let ((header, state, events, case_summary), _feed_position) = outcome?;
        let warnings = warnings::warnings(&case_summary, now, &self.config.warnings);
        let refused_by_peers = self.refusals_by_peers(number)?;
        Ok(CaseView {
            header,
            state,
            events,
            warnings,
            refused_by_peers,
            received_ahead: self.received_ahead_flag(number),
        })
    }

    /// The note the federation kept if case `number` arrived with an event stamped beyond the
    /// clock allowance ahead of this node's clock (`ReceivedAheadNote`); an unreadable note is
    /// skipped with a log line.
    fn received_ahead_flag(&self, number: &str) -> Option<String> {
        let value = match self.store.meta_get(&ReceivedAheadNote::meta_key(number)) {
            Ok(value) => value?,
            Err(error) => {
                tracing::warn!(case = %number, %error, "cannot read the received-time note");
                return None;
            }
        };
        match serde_json::from_slice::<ReceivedAheadNote>(&value) {
            Ok(note) => Some(fengqiao_case::clock::received_ahead_flag(&note)),
            Err(error) => {
                tracing::warn!(case = %number, %error, "unreadable received-time note skipped");
                None
            }
        }
    }

    /// Peers that refused changes this node sent them for case `number` (the federation records
    /// them as peers say so); unreadable records are skipped with a log line, never an error for
    /// the reader of the case.
    fn refusals_by_peers(&self, number: &str) -> Result<Vec<PeerRefusal>, ServiceError> {
        let records = self
            .store
            .meta_scan(&PeerRefusal::meta_prefix_of_case(number), 64)?;
        Ok(records
            .into_iter()
            .filter_map(|(key, value)| match serde_json::from_slice(&value) {
                Ok(refusal) => Some(refusal),
                Err(error) => {
                    tracing::warn!(%key, %error, "unreadable refusal record skipped");
                    None
                }
            })
            .collect())
    }

    /// Everything about one case. The read is recorded in the access log (who, which case, when),
    /// because the case holds petitioners' personal data; `operator` is `None` when the caller
    /// did not name themselves.
    pub fn get(
        &self,
        operator: Option<&str>,
        now: DateTime<Utc>,
        number: &str,
    ) -> Result<CaseView, ServiceError> {
        let (header, events) = self.stored_case(number)?;
        let record = serde_json::json!({
            "at": now,
            "operator": operator,
            "action": "read_case",
            "case": number,
        });
        self.store.log_access(record.to_string().as_bytes())?;
        let state = self.derive_case(&header, &events)?;
        let case_summary = summary::summarize(&header, &state);
        let warnings = warnings::warnings(&case_summary, now, &self.config.warnings);
        let refused_by_peers = self.refusals_by_peers(number)?;
        Ok(CaseView {
            header,
            state,
            events,
            warnings,
            refused_by_peers,
            // This node's own note, apart from the flags every replica derives alike (in the
            // derived state it made two replicas with the same events disagree: the nemesis
            // with skewed clocks found it).
            received_ahead: self.received_ahead_flag(number),
        })
    }

    /// Case `number`'s header and events as stored.
    fn stored_case(
        &self,
        number: &str,
    ) -> Result<(CaseHeader, Vec<fengqiao_case::Event>), ServiceError> {
        let loaded = self
            .store
            .with_case(number, |document| -> Result<_, DocumentError> {
                Ok((document.header()?, document.events()?))
            })?
            .ok_or_else(|| ServiceError::NotFound(number.to_owned()))?;
        Ok(loaded?)
    }

    /// Case summaries matching `filter`, each with its warnings at `now`.
    pub fn list(
        &self,
        now: DateTime<Utc>,
        filter: &ListFilter,
    ) -> Result<Vec<CaseListItem>, ServiceError> {
        let summaries = self.store.list(&self.store_filter(now, filter)?)?;
        Ok(summaries
            .into_iter()
            .map(|case_summary| self.list_item(now, case_summary))
            .collect())
    }

    /// A listed summary with its warnings at `now`.
    fn list_item(&self, now: DateTime<Utc>, mut case_summary: CaseSummary) -> CaseListItem {
        // Names are personal data, read through a case read that the access log records; the
        // summary keeps them only for the store's name index.
        case_summary.petitioner_names = Vec::new();
        CaseListItem {
            warnings: warnings::warnings(&case_summary, now, &self.config.warnings),
            summary: case_summary,
        }
    }

    /// One page of the cases matching `filter` and `page`, most urgent first (worst warning
    /// grade, then earliest open deadline, then number: the grade only worsens as the earliest
    /// deadline passes, so that is the store's deadline order), and how many match in all; only
    /// the page's cases are read and graded (`Store::list_page`). A `page.text` search by name
    /// asks only once `Store::petitioner_names_indexed`, as [`ListFilter::petitioner_name`].
    pub fn list_page(
        &self,
        now: DateTime<Utc>,
        filter: &ListFilter,
        page: &PageRequest,
    ) -> Result<(Vec<CaseListItem>, usize), ServiceError> {
        let mut store_filter = self.store_filter(now, filter)?;
        if let Some(grade) = page.grade {
            let Some((from, to)) =
                warnings::grade_deadline_range(grade, now, &self.config.warnings)
            else {
                return Ok((Vec::new(), 0));
            };
            store_filter.deadline_from = from;
            store_filter.deadline_before = [store_filter.deadline_before, to]
                .into_iter()
                .flatten()
                .min();
        }
        store_filter.registered_from = page
            .registered_from
            .map(fengqiao_case::deadlines::start_of_local_day);
        store_filter.registered_before = page
            .registered_to
            .and_then(|to| to.succ_opt())
            .map(fengqiao_case::deadlines::start_of_local_day);
        store_filter.text = page.text.clone().filter(|text| !text.is_empty());
        let found = self.store.list_page(&store_filter, page.skip, page.take)?;
        Ok((
            found
                .summaries
                .into_iter()
                .map(|case_summary| self.list_item(now, case_summary))
                .collect(),
            found.total,
        ))
    }

    fn store_filter(
        &self,
        now: DateTime<Utc>,
        filter: &ListFilter,
    ) -> Result<CaseFilter, ServiceError> {
        if let Some(prefix) = &filter.region_prefix
            && !prefix.bytes().all(|byte| byte.is_ascii_digit())
        {
            return Err(ServiceError::InvalidInput(format!(
                "region {prefix:?} must be a region code (digits), or its prefix"
            )));
        }
        Ok(CaseFilter {
            status: filter.status,
            holder: filter.holder.clone(),
            category: filter.category,
            region_prefix: filter.region_prefix.clone(),
            // The store keeps an index of the earliest open deadline: overdue means it has passed,
            // warned that it falls within the 预警 window (the warning rule's own equivalence).
            deadline_before: [
                filter.overdue_only.then_some(now),
                filter
                    .warned_only
                    .then(|| warnings::warning_horizon(now, &self.config.warnings)),
            ]
            .into_iter()
            .flatten()
            .min(),
            petitioner_name: filter.petitioner_name.clone(),
            limit: filter.limit,
            ..CaseFilter::default()
        })
    }

    /// The numbers of the cases with a petitioner whose name contains `text`, from the store's
    /// name index; `None` while the index is not whole yet (a store an earlier build wrote, whose
    /// names migration has not finished), when the caller must read the documents instead.
    pub fn cases_with_petitioner_named(
        &self,
        text: &str,
    ) -> Result<Option<std::collections::HashSet<CaseId>>, ServiceError> {
        if !self.store.petitioner_names_indexed() {
            return Ok(None);
        }
        let found = self.store.list(&CaseFilter {
            petitioner_name: Some(text.to_owned()),
            ..CaseFilter::default()
        })?;
        Ok(Some(
            found.into_iter().map(|summary| summary.number).collect(),
        ))
    }

    /// Brings the store up to this build where that takes a pass over the documents: today,
    /// the petitioners' names of summaries an earlier build wrote (`Store::complete_petitioner_names`).
    /// Run beside serving, once the node is up; searches by name read the documents until it
    /// is done, and a node stopped meanwhile resumes where it was. `stop_requested` is asked
    /// between batches, so a stopping node is not held up by it.
    pub fn complete_store_migrations(
        &self,
        stop_requested: &dyn Fn() -> bool,
    ) -> Result<(), ServiceError> {
        Ok(self.store.complete_petitioner_names(stop_requested)?)
    }

    /// Reads the store's indexes into its cache once after a start, and its petitioners' names
    /// into memory (`Store::warm_indexes`), so the first 台账 pages and searches do not each
    /// wait for their part to come from disk.
    pub fn warm_store_indexes(
        &self,
        stop_requested: &dyn Fn() -> bool,
    ) -> Result<(), ServiceError> {
        let started = std::time::Instant::now();
        let keys = self.store.warm_indexes(stop_requested)?;
        tracing::info!(
            keys,
            seconds = started.elapsed().as_secs_f64(),
            "case indexes read into the cache, petitioners' names into memory"
        );
        Ok(())
    }

    /// Supervision directives on the node's cases, most urgent first. With `open_only`, those not
    /// yet crossed off.
    pub fn directives(
        &self,
        now: DateTime<Utc>,
        open_only: bool,
    ) -> Result<Vec<DirectiveListItem>, ServiceError> {
        let thresholds = &self.config.warnings;
        let mut items = Vec::new();
        // The store's directive index holds only the cases with directives (few), so this reads
        // no other summary.
        let with_directives = self.store.list(&CaseFilter {
            directives: Some(if open_only {
                DirectiveScope::Open
            } else {
                DirectiveScope::Any
            }),
            ..CaseFilter::default()
        })?;
        for case_summary in &with_directives {
            let case_warnings = warnings::warnings(case_summary, now, thresholds);
            for directive in &case_summary.directives {
                if open_only && directive.status == DirectiveStatus::CrossedOff {
                    continue;
                }
                items.push(DirectiveListItem::of(
                    &case_summary.number,
                    &case_summary.holder,
                    directive,
                    &case_warnings,
                ));
            }
        }
        items.sort_by(|left, right| {
            (left.directive.due, &left.case, &left.directive.id).cmp(&(
                right.directive.due,
                &right.case,
                &right.directive.id,
            ))
        });
        Ok(items)
    }

    /// The supervisors' measures over the cases registered in the period, judged at `now`.
    /// Answered from the rollup the store keeps current (`service/stats.rs`), not a scan.
    pub fn stats(&self, now: DateTime<Utc>, query: &StatsQuery) -> Result<Measures, ServiceError> {
        stats::check_period(query)?;
        self.stats_from_rollup(now, query)
    }

    /// Import ledger rows, each with its history: every row is checked in full first; rows whose
    /// number is already stored are reported `already_present`, and rows without a number that
    /// an earlier run registered (the same row key, `fengqiao_case::import::row_key`) are
    /// reported `already_imported` with the case they became, so re-running an import is safe
    /// for every row; if any row is rejected, or with `dry_run`, nothing is written; otherwise
    /// every new case is written in one atomic store call, with the row key of each case the
    /// node numbered. Every event made carries the import's mark (`ImportMark`).
    pub fn import(
        &self,
        actor: &Actor,
        now: DateTime<Utc>,
        batch: ImportBatch,
    ) -> Result<Vec<ImportRowReport>, ServiceError> {
        actor.permit(Action::Import)?;
        let operator = actor.operator.as_str();
        let import_id = match &batch.import_id {
            Some(import_id) => {
                import::check_import_id(import_id)?;
                import_id.clone()
            }
            None => new_import_id(now)?,
        };
        // The rows' keys are looked up, then written with their cases: one import at a time, so
        // that two runs of the same ledger at once cannot both find a row new.
        let _one_import_at_a_time = lock_ignoring_poison(&self.import_lock);
        let mut reports = Vec::with_capacity(batch.rows.len());
        // (row index, row key, whether the node assigns its number, the case built with a
        // stand-in number)
        let mut built: Vec<(usize, String, bool, BuiltCase)> = Vec::new();
        let mut first_line_of_number: HashMap<CaseId, u64> = HashMap::new();
        let mut first_line_of_key: HashMap<String, u64> = HashMap::new();
        for (index, row) in batch.rows.iter().enumerate() {
            let row_key = import::row_key(row);
            let mark = ImportMark {
                import_id: import_id.clone(),
                row_key: row_key.clone(),
            };
            let mut report = ImportRowReport {
                line: row.line,
                number: row.case.number.clone(),
                outcome: ImportOutcome::Imported,
                error: None,
                field: None,
            };
            let checked = match self.check_import_row(
                row,
                &row_key,
                now,
                &mut first_line_of_number,
                &mut first_line_of_key,
            ) {
                Err(why) => Err(RowRefusal::whole(why)),
                Ok(RowNumber::AlreadyPresent) => {
                    report.outcome = ImportOutcome::AlreadyPresent;
                    Ok(())
                }
                Ok(RowNumber::AlreadyImported(number)) => {
                    report.outcome = ImportOutcome::AlreadyImported;
                    report.number = Some(number);
                    Ok(())
                }
                Ok(RowNumber::Given(number)) => self
                    .build_import_case(operator, now, row, number, &mark)
                    .map(|case| built.push((index, row_key, false, case))),
                Ok(RowNumber::Assign) => {
                    // A stand-in with sequence 0, which the node never assigns.
                    let stand_in = self.number_for(row.case.registered_at.unwrap_or(now), 0);
                    self.build_import_case(operator, now, row, stand_in, &mark)
                        .map(|case| built.push((index, row_key, true, case)))
                }
            };
            if let Err(refusal) = checked {
                report.outcome = ImportOutcome::Rejected;
                report.error = Some(refusal.message());
                report.field = refusal.field;
            }
            reports.push(report);
        }
        let rejected = reports
            .iter()
            .filter(|report| report.outcome == ImportOutcome::Rejected)
            .count();
        if batch.dry_run || rejected > 0 || built.is_empty() {
            tracing::info!(
                rows = reports.len(),
                rejected,
                dry_run = batch.dry_run,
                "import checked, nothing written"
            );
            return Ok(reports);
        }
        // Numbers are taken only now that the whole batch is known to be written.
        let mut row_keys: Vec<(String, Vec<u8>)> = Vec::new();
        for (index, row_key, assign, case) in &mut built {
            if *assign {
                let row = &batch.rows[*index];
                let registered_at =
                    self.event_time(row.case.registered_at, now, "registered_at")?;
                let number = self.assign_number(registered_at)?;
                let mark = ImportMark {
                    import_id: import_id.clone(),
                    row_key: row_key.clone(),
                };
                *case = self
                    .build_import_case(operator, now, row, number.clone(), &mark)
                    .map_err(|refusal| {
                        ServiceError::Internal(format!("line {}: {}", row.line, refusal.message()))
                    })?;
                row_keys.push((imported_row_meta_key(row_key), number.clone().into_bytes()));
                reports[*index].number = Some(number);
            }
        }
        let mut new_cases: Vec<NewCase<'_>> = built
            .iter_mut()
            .map(|(_, _, _, case)| NewCase {
                document: &mut case.document,
                summary: &case.summary,
            })
            .collect();
        // The row keys go in the cases' own transaction: a crash leaves both or neither.
        self.store
            .create_cases_with_meta(&mut new_cases, &row_keys)?;
        tracing::info!(
            rows = reports.len(),
            imported = new_cases.len(),
            import_id = %import_id,
            "import written"
        );
        Ok(reports)
    }

    /// The number question of an import row: given and new, stored already, imported already
    /// by an earlier run, or to be assigned.
    fn check_import_row(
        &self,
        row: &ImportRow,
        row_key: &str,
        now: DateTime<Utc>,
        first_line_of_number: &mut HashMap<CaseId, u64>,
        first_line_of_key: &mut HashMap<String, u64>,
    ) -> Result<RowNumber, String> {
        let Some(number) = &row.case.number else {
            if let Some(first_line) = first_line_of_key.get(row_key) {
                return Err(format!(
                    "the same row as line {first_line} of this batch (same content, no case \
                     number): give the later one `repeat` to import both"
                ));
            }
            first_line_of_key.insert(row_key.to_owned(), row.line);
            let imported = self
                .store
                .meta_get(&imported_row_meta_key(row_key))
                .map_err(|error| error.to_string())?;
            return match imported {
                Some(number) => Ok(RowNumber::AlreadyImported(
                    String::from_utf8_lossy(&number).into_owned(),
                )),
                None => Ok(RowNumber::Assign),
            };
        };
        self.check_case_number(number, now)
            .map_err(|error| error.to_string())?;
        if let Some(first_line) = first_line_of_number.get(number) {
            return Err(format!(
                "case number {number} already appears on line {first_line} of this batch"
            ));
        }
        first_line_of_number.insert(number.clone(), row.line);
        if self
            .store
            .contains(number)
            .map_err(|error| error.to_string())?
        {
            return Ok(RowNumber::AlreadyPresent);
        }
        Ok(RowNumber::Given(number.clone()))
    }

    /// Register one import row and apply its whole history in memory, every event marked as
    /// imported. The ledger's times are kept as they stand (a registration or event time only
    /// has to lie between 2000 and now, and each event not before the one it follows).
    fn build_import_case(
        &self,
        operator: &str,
        now: DateTime<Utc>,
        row: &ImportRow,
        number: CaseId,
        mark: &ImportMark,
    ) -> Result<BuiltCase, RowRefusal> {
        let request = &row.case;
        let registered_at = request.registered_at.unwrap_or(now);
        event_time::check_time("registered_at", registered_at, now)
            .map_err(|error| RowRefusal::of_case("case", error))?;
        self.check_location(request).map_err(RowRefusal::whole)?;
        let header = header_from(request, number);
        let register = self
            .new_imported_event(
                EventKind::Register {
                    header: None,
                    policy_version: 0,
                },
                registered_at,
                now,
                operator,
                mark,
            )
            .map_err(RowRefusal::whole)?;
        // Registered under the newest policy version held; its history derives with it.
        let policies = self.policies();
        let (mut document, _event, mut state) = appending::register(
            header.clone(),
            register,
            self.identity.actor(),
            &policies,
            &self.identity,
        )
        .map_err(|error| RowRefusal::of_case("case", error))?;
        let limits = &policies.current().limits;
        let mut header = header;
        let mut previous_at = registered_at;
        for (position, entry) in row.history.iter().enumerate() {
            let place = format!("history[{position}]");
            let at = entry.at.unwrap_or(now);
            event_time::check_time("at", at, now)
                .map_err(|error| RowRefusal::of_case(&place, error))?;
            if at < previous_at {
                return Err(RowRefusal {
                    field: Some(format!("{place}.at")),
                    why: format!(
                        "{} {at} is before the event it follows ({previous_at})",
                        entry.kind.name()
                    ),
                });
            }
            previous_at = at;
            let event = self
                .new_imported_event(entry.kind.clone(), at, now, operator, mark)
                .map_err(RowRefusal::whole)?;
            let (_event, new_state, new_header) = appending::append(
                &mut document,
                event,
                limits,
                &self.identity,
                self.hierarchy().as_ref(),
            )
            .map_err(|error| RowRefusal::of_case(&place, error))?;
            state = new_state;
            header = new_header;
        }
        let summary = summary::summarize(&header, &state);
        Ok(BuiltCase { document, summary })
    }

    /// An event of a ledger import: stamped now like any other, marked with the import.
    fn new_imported_event(
        &self,
        kind: EventKind,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
        operator: &str,
        mark: &ImportMark,
    ) -> Result<NewEvent, ServiceError> {
        Ok(NewEvent {
            imported: Some(mark.clone()),
            ..self.new_event(kind, at, now, operator)?
        })
    }

    fn new_event(
        &self,
        kind: EventKind,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
        operator: &str,
    ) -> Result<NewEvent, ServiceError> {
        Ok(NewEvent {
            id: new_event_id()?,
            kind,
            at,
            node: self.identity.node_id().to_owned(),
            operator: operator.to_owned(),
            hlc: self.tick_clock(now)?,
            imported: None,
            backdated_reason: None,
        })
    }

    /// The hybrid clock's time for a local event at `now`. The clock's latest time is written
    /// with the event's own commit, so after a restart it resumes after every event it stamped,
    /// even if the wall clock was set back meanwhile.
    fn tick_clock(&self, now: DateTime<Utc>) -> Result<HybridTimestamp, ServiceError> {
        // A clock days off moves every deadline counted from what it stamps: refuse, saying so.
        if let Some(health) = self.clock_health()
            && health.skewed
            && !health.allowed
        {
            return Err(ServiceError::ClockSkewed(health.message));
        }
        let stamped = lock_ignoring_poison(&self.clock).tick(now);
        self.store
            .meta_put_unflushed(CLOCK_META_KEY, &encode_clock(stamped))?;
        Ok(stamped)
    }

    /// Take in the hybrid time of an event received from a peer, so that what this node does
    /// next is ordered after it. A time too far ahead of our clock is refused, not taken in.
    pub fn observe_clock(
        &self,
        received: HybridTimestamp,
        now: DateTime<Utc>,
    ) -> Result<HybridTimestamp, ClockError> {
        lock_ignoring_poison(&self.clock).observe(received, now)
    }

    /// A ledger's time, or `now`: plausible (`event_time::check_time`); an import keeps the
    /// ledger's past times as they stand.
    fn event_time(
        &self,
        given: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        field: &'static str,
    ) -> Result<DateTime<Utc>, ServiceError> {
        let at = given.unwrap_or(now);
        event_time::check_time(field, at, now)?;
        Ok(at)
    }

    /// How far in the past a person may date what they record here (`[clock]`).
    fn backdating(&self) -> Backdating {
        Backdating::Within {
            max_days: self.config.clock.max_backdate_days,
        }
    }

    /// A node registers only matters located in its own jurisdiction.
    fn check_location(&self, request: &RegisterCase) -> Result<(), ServiceError> {
        let own = &self.config.node.region_code;
        let code = &request.location.region_code;
        if !lies_within(code, own) {
            return Err(ServiceError::InvalidField {
                field: "location.region_code".to_owned(),
                why: format!("{code:?} is outside this node's jurisdiction ({own})"),
            });
        }
        Ok(())
    }

    /// A given case number must be `{region code}-{year}-{sequence}` within this node's region.
    fn check_case_number(&self, number: &str, now: DateTime<Utc>) -> Result<(), ServiceError> {
        let parts = input_bounds::parse_case_number(number, now).map_err(|why| {
            ServiceError::InvalidInput(format!(
                "case number {number:?} {why}: expected REGION-YEAR-SEQUENCE, e.g. {}",
                self.number_for(now, 123)
            ))
        })?;
        let own = &self.config.node.region_code;
        if !lies_within(parts.region_code, own) {
            return Err(ServiceError::InvalidInput(format!(
                "case number {number} belongs to region {}, outside this node's jurisdiction ({own})",
                parts.region_code
            )));
        }
        Ok(())
    }

    fn number_for(&self, registered_at: DateTime<Utc>, sequence: u64) -> CaseId {
        format!(
            "{}-{:04}-{sequence:0width$}",
            self.config.node.region_code,
            local_date(registered_at).year(),
            width = input_bounds::SEQUENCE_DIGITS
        )
    }

    /// The next free number: imported ledgers may already hold numbers of this node's own series,
    /// so taken ones are skipped (each skip uses up its sequence for good).
    fn assign_number(&self, registered_at: DateTime<Utc>) -> Result<CaseId, ServiceError> {
        if let Some(why) = crate::rebuild::numbering_blocked(&self.store)
            .map_err(|error| ServiceError::Internal(error.to_string()))?
        {
            return Err(ServiceError::Rebuilding(why));
        }
        let prefix = format!(
            "{}-{:04}",
            self.config.node.region_code,
            local_date(registered_at).year()
        );
        loop {
            let sequence = self.store.next_case_sequence(&prefix)?;
            let number = self.number_for(registered_at, sequence);
            if !self.store.contains(&number)? {
                return Ok(number);
            }
            tracing::debug!(case = %number, "assigned number already taken by an import; skipping");
        }
    }
}

/// A reason as the event keeps it: trimmed, and none when blank (the time rule has judged it).
fn backdated_reason(given: Option<&str>) -> Option<String> {
    given
        .map(str::trim)
        .filter(|reason| !reason.is_empty())
        .map(str::to_owned)
}

enum RowNumber {
    Given(CaseId),
    AlreadyPresent,
    AlreadyImported(CaseId),
    Assign,
}

/// Store meta key of the row index: an imported row's key to the number of the case it became.
fn imported_row_meta_key(row_key: &str) -> String {
    format!("{IMPORTED_ROW_META_PREFIX}{row_key}")
}

/// Why an import row is refused, and where in the row (a path into `ImportRow`, such as
/// `history[1].text`), so that the importer can name the ledger's own column.
#[derive(Debug)]
struct RowRefusal {
    field: Option<String>,
    why: String,
}

impl RowRefusal {
    fn whole(error: impl ToString) -> RowRefusal {
        RowRefusal {
            field: None,
            why: error.to_string(),
        }
    }

    /// A refusal of the part of the row at `place` (`case`, `history[2]`): a field it names is
    /// a field of that part.
    fn of_case(place: &str, error: CaseError) -> RowRefusal {
        match error {
            CaseError::InvalidInput { field, why } => RowRefusal {
                field: Some(format!("{place}.{field}")),
                why,
            },
            other if place == "case" => RowRefusal::whole(other),
            other => RowRefusal {
                field: Some(place.to_owned()),
                why: other.to_string(),
            },
        }
    }

    /// The message, starting with the field when there is one.
    fn message(&self) -> String {
        match &self.field {
            Some(field) => format!("{field}: {}", self.why),
            None => self.why.clone(),
        }
    }
}

fn header_from(request: &RegisterCase, number: CaseId) -> CaseHeader {
    CaseHeader {
        number,
        channel: request.channel,
        petitioners: request.petitioners.clone(),
        headcount: request.headcount,
        respondent: request.respondent.clone(),
        category: request.category,
        matter_type: request.matter_type,
        litigation_related: request.litigation_related,
        summary: request.summary.clone(),
        location: request.location.clone(),
        ownership: request.ownership.clone(),
    }
}

/// 16 random bytes, hex: unique across replicas without coordination.
/// An import's id when the client gave none: the China time it started and 4 random bytes.
fn new_import_id(now: DateTime<Utc>) -> Result<String, ServiceError> {
    let random = new_event_id()?;
    Ok(format!(
        "{}-{}",
        now.with_timezone(&fengqiao_case::deadlines::china_offset())
            .format("%Y%m%dT%H%M%S"),
        &random[..8]
    ))
}

fn new_event_id() -> Result<String, ServiceError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| {
        ServiceError::Internal(format!(
            "the operating system's random source failed: {error}"
        ))
    })?;
    Ok(hex::encode(bytes))
}

/// Lock `node.lock` so that one process at a time has the node open; the lock goes with the file
/// handle, also when the process is killed.
fn lock_node_directory(dir: &Path) -> anyhow::Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "the node in {} is in use by another process: is `fengqiao run {}` already running?",
            dir.display(),
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// A store written under one key must not be reopened under another: events would be attributed
/// to a different node than the one that made them.
fn check_store_belongs_to_node(store: &Store, identity: &NodeIdentity) -> anyhow::Result<()> {
    match store.meta_get(META_NODE_ID)? {
        None => store.meta_put(META_NODE_ID, identity.node_id().as_bytes())?,
        Some(stored) if stored == identity.node_id().as_bytes() => {}
        Some(stored) => bail!(
            "the store was created by node {} but node.key is node {}: the key file was replaced",
            String::from_utf8_lossy(&stored),
            identity.node_id()
        ),
    }
    Ok(())
}

pub mod accounts;
pub mod audit;
pub mod auto_escalation;
pub mod ledger_rows;
mod permitted_events;
pub mod policy;
mod stats;

/// The office an assignment or forward sends the case to, if the event names one.
fn sent_to(kind: &EventKind) -> Option<&str> {
    match kind {
        EventKind::Assign { to_node, .. } => Some(to_node),
        EventKind::Forward {
            to_node: Some(to_node),
            ..
        } => Some(to_node),
        _ => None,
    }
}

/// Refuse to send a case located in `case_region` to `receiver` when the routing rules would
/// never carry it there (down only into the region a case lies in, `authority::lies_within`):
/// the case would wait on that office for ever. An office the hierarchy does not know is let through: a roster entry may still be on
/// its way, and a node outside any federation knows no office but itself.
fn check_receiver_reachable(
    receiver: &str,
    case_region: &str,
    hierarchy: &dyn Hierarchy,
) -> Result<(), ServiceError> {
    match hierarchy.region_of(receiver) {
        Some(node_region) if !lies_within(case_region, &node_region) => {
            Err(ServiceError::Unreachable {
                node: receiver.to_owned(),
                node_region,
                case_region: case_region.to_owned(),
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
