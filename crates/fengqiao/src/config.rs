//! The node directory and its `fengqiao.toml`: tier, region, name, addresses, limits, warnings,
//! automatic escalation rules.
//!
//! Commented examples for each tier are in `config/` at the repository root.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{Datelike, Weekday};
use fengqiao_case::escalation_rules::{EscalationRule, RuleError, validate_rules};
use fengqiao_case::{Limits, Tier, WarningThresholds};
use serde::{Deserialize, Serialize};

/// File name of the config inside a node directory.
pub const CONFIG_FILE: &str = "fengqiao.toml";

/// Config file format version this build writes and reads.
pub const CONFIG_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Config file format version.
    pub version: u32,
    pub node: NodeSection,
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub warnings: WarningThresholds,
    #[serde(default)]
    pub storage: StorageSection,
    /// Replication with the parent and children over QUIC; absent: this node stands alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<FederationSection>,
    /// Automatic escalation (自动上报) to the parent; absent: no rules.
    #[serde(default, skip_serializing_if = "EscalationSection::is_default")]
    pub escalation: EscalationSection,
    /// How far in the past a person may date an event, and whether this node stamps events
    /// while its clock is off against its peers.
    #[serde(default, skip_serializing_if = "ClockSection::is_default")]
    pub clock: ClockSection,
}

/// `[clock]`: the time rule's bound (`fengqiao_case::event_time`) and the clock-skew refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClockSection {
    /// How many days before now a person may date an event (补录, with a reason). Older
    /// records come in through a ledger import, which keeps the ledger's times.
    pub max_backdate_days: u32,
    /// Stamp events even while this node's clock is off by more than 5 minutes against its
    /// peers (`fengqiao run --allow-clock-skew` does the same for one run). Off by default: a
    /// wrong clock moves legal deadlines.
    pub allow_skew: bool,
}

impl Default for ClockSection {
    fn default() -> Self {
        ClockSection {
            max_backdate_days: fengqiao_case::event_time::DEFAULT_MAX_BACKDATE_DAYS,
            allow_skew: false,
        }
    }
}

impl ClockSection {
    fn is_default(&self) -> bool {
        *self == ClockSection::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    pub name: String,
    pub tier: Tier,
    /// Administrative region code of this office (6 digits county, 9 township, 12 village).
    pub region_code: String,
    /// A note of the parent node's address, kept for older configs; the federation reads
    /// `[federation.parent]` instead.
    #[serde(default)]
    pub parent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Defaults to 127.0.0.1:7370: the API is local unless the operator says otherwise. An
    /// address beyond loopback needs `tls_cert` and `tls_key`, or `behind_proxy = true`.
    pub listen: SocketAddr,
    /// A signed-in session ends after this long without a request (default 8 hours).
    #[serde(default = "default_session_idle_seconds")]
    pub session_idle_seconds: u64,
    /// PEM certificate chain and private key the API serves HTTPS with; a relative path is read
    /// from the node directory (`init --listen` beyond loopback writes `https.crt`/`https.key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// The API is reached only through a reverse proxy that terminates TLS: plain HTTP may
    /// listen beyond loopback, and session cookies are marked `Secure`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub behind_proxy: bool,
}

fn default_session_idle_seconds() -> u64 {
    8 * 60 * 60
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 7370)),
            session_idle_seconds: default_session_idle_seconds(),
            tls_cert: None,
            tls_key: None,
            behind_proxy: false,
        }
    }
}

impl HttpSection {
    /// Whether the API serves HTTPS itself.
    pub fn serves_tls(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// Case documents kept loaded in memory.
    pub cache_capacity: usize,
    /// Bytes kept free on the disk holding the node directory: below it, every write is refused
    /// (HTTP 507) and `/api/health` says why, until space is freed. 0 turns the check off.
    pub min_free_bytes: u64,
    /// MiB of the store's pages kept in memory by sled (its page cache). A county holding
    /// 100,000 cases needs about 256 for its 台账 searches to stay fast; a small office's store
    /// never fills it, so a lower value only matters where memory is short.
    pub page_cache_mib: u64,
}

impl StorageSection {
    /// `page_cache_mib` in bytes.
    pub fn page_cache_bytes(&self) -> u64 {
        self.page_cache_mib.saturating_mul(1024 * 1024)
    }
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            cache_capacity: 1024,
            min_free_bytes: fengqiao_store::DEFAULT_MIN_FREE_BYTES,
            page_cache_mib: fengqiao_store::DEFAULT_PAGE_CACHE_BYTES / (1024 * 1024),
        }
    }
}

/// Default of `escalation.check_interval_seconds`.
pub const DEFAULT_ESCALATION_CHECK_SECONDS: u64 = 60;

/// `[escalation]`: rules that escalate a case this node holds to its parent
/// (`[federation.parent]`) without a person asking. All the conditions one rule gives must hold;
/// each rule fires at most once per case (see `fengqiao_case::escalation_rules`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EscalationSection {
    /// How often the node checks its cases against the rules.
    pub check_interval_seconds: u64,
    /// `[[escalation.rules]]`, tried in order: the first that fires escalates the case.
    pub rules: Vec<EscalationRule>,
}

impl Default for EscalationSection {
    fn default() -> Self {
        EscalationSection {
            check_interval_seconds: DEFAULT_ESCALATION_CHECK_SECONDS,
            rules: Vec::new(),
        }
    }
}

impl EscalationSection {
    fn is_default(&self) -> bool {
        *self == EscalationSection::default()
    }
}

/// Default UDP address of the federation's QUIC endpoint. Local only, as the API is: a parent
/// whose children run on other machines sets `federation.listen = "0.0.0.0:7380"`.
pub const DEFAULT_QUIC_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7380);

fn default_quic_listen() -> SocketAddr {
    DEFAULT_QUIC_LISTEN
}

/// `[federation]`: this node's QUIC endpoint, its parent and the children it has admitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationSection {
    /// UDP address of the QUIC endpoint (port 0 picks a free port; `run` writes `quic.addr`).
    #[serde(default = "default_quic_listen")]
    pub listen: SocketAddr,
    /// The office this node reports to (set with `fengqiao join`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<FederationParent>,
    /// Offices admitted as children (set with `fengqiao admit` / `fengqiao revoke`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<FederationOffice>,
}

impl Default for FederationSection {
    fn default() -> Self {
        FederationSection {
            listen: DEFAULT_QUIC_LISTEN,
            parent: None,
            children: Vec::new(),
        }
    }
}

/// An office known to the federation by its node ID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationOffice {
    /// 32 lowercase hex characters, as `fengqiao init` printed it.
    pub node_id: String,
    pub name: String,
    pub region_code: String,
    /// Other names the office goes by: a complaint naming any of them is never sent to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The child this one replaced (`admit --successor-of`): a rebuilt office whose old key was
    /// lost. The roster names it, so the old node's earlier events stay valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor_of: Option<String>,
}

/// The parent office and where to reach its QUIC endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationParent {
    /// UDP address of the parent's QUIC endpoint.
    pub address: SocketAddr,
    pub node_id: String,
    pub name: String,
    pub region_code: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// Length of a node ID in hex characters.
pub const NODE_ID_HEX_LENGTH: usize = 32;

/// Whether `node_id` is written as the federation stores it: 32 lowercase hex characters.
pub fn is_valid_node_id(node_id: &str) -> bool {
    node_id.len() == NODE_ID_HEX_LENGTH
        && node_id
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// Paths inside a node directory.
#[derive(Debug, Clone)]
pub struct NodeDir {
    pub root: PathBuf,
}

impl NodeDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        NodeDir { root: root.into() }
    }
    pub fn config_path(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }
    pub fn key_path(&self) -> PathBuf {
        self.root.join("node.key")
    }
    pub fn store_path(&self) -> PathBuf {
        self.root.join("store")
    }
    /// Written by `run` once the API listens: the actual address (useful with port 0).
    pub fn api_address_path(&self) -> PathBuf {
        self.root.join("api.addr")
    }
    /// The node's CLI token (mode 0600, made by `init`): whoever can read it may act as any
    /// account through the API, as whoever can read the store could.
    pub fn cli_token_path(&self) -> PathBuf {
        self.root.join("cli.token")
    }
    /// Written by `run` once the federation's QUIC endpoint is bound: its actual UDP address.
    pub fn quic_address_path(&self) -> PathBuf {
        self.root.join("quic.addr")
    }
    /// The office LAN certificate `init` makes when the API listens beyond loopback.
    pub fn lan_certificate_path(&self) -> PathBuf {
        self.root.join(LAN_CERTIFICATE_FILE)
    }
    /// Its private key (mode 0600).
    pub fn lan_key_path(&self) -> PathBuf {
        self.root.join(LAN_KEY_FILE)
    }
    /// A path from the config: relative ones are inside the node directory, so a node reads the
    /// same files whatever directory it is started from.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_relative() {
            self.root.join(path)
        } else {
            path.to_path_buf()
        }
    }
    pub fn exists(path: &Path) -> bool {
        path.join(CONFIG_FILE).exists()
    }
}

/// File names of the office LAN certificate and key, as `init` writes them into the config.
pub const LAN_CERTIFICATE_FILE: &str = "https.crt";
pub const LAN_KEY_FILE: &str = "https.key";

/// Why a config is not usable. Each message names the setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config version {found} is not supported: this build reads version {CONFIG_VERSION}")]
    UnsupportedVersion { found: u32 },
    #[error("node.name is empty: give the office's name, e.g. \"芦荻山村调解室\"")]
    EmptyName,
    #[error("node.region_code {code:?} must be digits only (an administrative division code)")]
    RegionNotDigits { code: String },
    #[error(
        "node.region_code {code:?} has {length} digits, but a {tier} node needs {expected} \
         (county 6, township 9, village 12, city 4 or 6)"
    )]
    RegionLength {
        code: String,
        length: usize,
        tier: &'static str,
        expected: &'static str,
    },
    #[error("node.parent is set but empty: remove it or give the parent node's address")]
    EmptyParent,
    #[error("limits.{field} must be at least 1 day")]
    ZeroLimit { field: &'static str },
    #[error("limits: {date} is listed both as a holiday and as a working weekend day")]
    HolidayAndWorkingWeekend { date: chrono::NaiveDate },
    #[error("limits.working_weekends: {date} is a {weekday}, not a weekend day")]
    WorkingWeekendOnWeekday {
        date: chrono::NaiveDate,
        weekday: Weekday,
    },
    #[error("warnings.serious_overdue_days must be at least 1")]
    ZeroSeriousOverdue,
    #[error("storage.cache_capacity must be at least 1 document")]
    ZeroCacheCapacity,
    #[error(
        "{field}: node id {node_id:?} must be 32 lowercase hex characters, as `fengqiao init` \
         printed it"
    )]
    FederationNodeId { field: String, node_id: String },
    #[error("{field}: the office name is empty")]
    FederationEmptyName { field: String },
    #[error(
        "{field}: region code {code:?} is not under this node's region {own}: an office below \
         this one has a longer code starting with {own}"
    )]
    FederationRegionOutside {
        field: String,
        code: String,
        own: String,
    },
    #[error(
        "federation.parent: region code {code:?} must be a prefix of this node's region {own} \
         (a parent governs a larger region)"
    )]
    FederationParentRegion { code: String, own: String },
    #[error("federation: node id {node_id} is listed more than once")]
    FederationDuplicateNodeId { node_id: String },
    #[error("escalation.check_interval_seconds must be at least 1")]
    ZeroEscalationInterval,
    #[error("escalation.rules: {0}")]
    EscalationRule(#[from] RuleError),
    #[error("invalid config: {0}")]
    Syntax(String),
}

/// A tier's name as written in the config file.
pub fn tier_name(tier: Tier) -> &'static str {
    match tier {
        Tier::Village => "village",
        Tier::Township => "township",
        Tier::County => "county",
        Tier::City => "city",
    }
}

/// Check that `code` is an administrative division code of the right length for `tier`.
pub fn validate_region_code(tier: Tier, code: &str) -> Result<(), ConfigError> {
    if code.is_empty() || !code.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(ConfigError::RegionNotDigits {
            code: code.to_owned(),
        });
    }
    let (allowed, expected): (&[usize], &'static str) = match tier {
        Tier::Village => (&[12], "12"),
        Tier::Township => (&[9], "9"),
        Tier::County => (&[6], "6"),
        // A city office is identified by its 4-digit prefix or its 6-digit 市辖区 code.
        Tier::City => (&[4, 6], "4 or 6"),
    };
    if !allowed.contains(&code.len()) {
        return Err(ConfigError::RegionLength {
            code: code.to_owned(),
            length: code.len(),
            tier: tier_name(tier),
            expected,
        });
    }
    Ok(())
}

/// Whether `code` is a region strictly inside `own`: digits, longer, starting with `own`.
pub fn is_region_below(own: &str, code: &str) -> bool {
    code.bytes().all(|byte| byte.is_ascii_digit())
        && code.len() > own.len()
        && code.starts_with(own)
}

impl NodeConfig {
    /// A config with the defaults for everything but the node's own section.
    pub fn new(name: impl Into<String>, tier: Tier, region_code: impl Into<String>) -> NodeConfig {
        NodeConfig {
            version: CONFIG_VERSION,
            node: NodeSection {
                name: name.into(),
                tier,
                region_code: region_code.into(),
                parent: None,
            },
            http: HttpSection::default(),
            limits: Limits::default(),
            warnings: WarningThresholds::default(),
            storage: StorageSection::default(),
            federation: None,
            escalation: EscalationSection::default(),
            clock: ClockSection::default(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.version != CONFIG_VERSION {
            return Err(ConfigError::UnsupportedVersion {
                found: self.version,
            });
        }
        if self.node.name.trim().is_empty() {
            return Err(ConfigError::EmptyName);
        }
        validate_region_code(self.node.tier, &self.node.region_code)?;
        if self
            .node
            .parent
            .as_deref()
            .is_some_and(|parent| parent.trim().is_empty())
        {
            return Err(ConfigError::EmptyParent);
        }
        let limits = &self.limits;
        let periods = [
            ("acceptance_days", limits.acceptance_days),
            ("objection_working_days", limits.objection_working_days),
            ("handling_days", limits.handling_days),
            ("evaluation_days", limits.evaluation_days),
            ("review_request_days", limits.review_request_days),
            ("review_decision_days", limits.review_decision_days),
        ];
        if let Some((field, _)) = periods.iter().find(|(_, days)| *days == 0) {
            return Err(ConfigError::ZeroLimit { field });
        }
        let holidays: BTreeSet<_> = limits.holidays.iter().collect();
        for date in &limits.working_weekends {
            if holidays.contains(date) {
                return Err(ConfigError::HolidayAndWorkingWeekend { date: *date });
            }
            let weekday = date.weekday();
            if !matches!(weekday, Weekday::Sat | Weekday::Sun) {
                return Err(ConfigError::WorkingWeekendOnWeekday {
                    date: *date,
                    weekday,
                });
            }
        }
        if self.warnings.serious_overdue_days == 0 {
            return Err(ConfigError::ZeroSeriousOverdue);
        }
        if self.storage.cache_capacity == 0 {
            return Err(ConfigError::ZeroCacheCapacity);
        }
        if let Some(federation) = &self.federation {
            self.validate_federation(federation)?;
        }
        if self.escalation.check_interval_seconds == 0 {
            return Err(ConfigError::ZeroEscalationInterval);
        }
        validate_rules(&self.escalation.rules)?;
        Ok(())
    }

    fn validate_federation(&self, federation: &FederationSection) -> Result<(), ConfigError> {
        let own = &self.node.region_code;
        let mut seen = BTreeSet::new();
        let mut check_office = |field: String, node_id: &str, name: &str| {
            if !is_valid_node_id(node_id) {
                return Err(ConfigError::FederationNodeId {
                    field,
                    node_id: node_id.to_owned(),
                });
            }
            if name.trim().is_empty() {
                return Err(ConfigError::FederationEmptyName { field });
            }
            if !seen.insert(node_id.to_owned()) {
                return Err(ConfigError::FederationDuplicateNodeId {
                    node_id: node_id.to_owned(),
                });
            }
            Ok(())
        };
        if let Some(parent) = &federation.parent {
            check_office(
                "federation.parent".to_owned(),
                &parent.node_id,
                &parent.name,
            )?;
            let is_prefix = !parent.region_code.is_empty()
                && parent.region_code.bytes().all(|byte| byte.is_ascii_digit())
                && parent.region_code.len() < own.len()
                && fengqiao_case::authority::lies_within(own, &parent.region_code);
            if !is_prefix {
                return Err(ConfigError::FederationParentRegion {
                    code: parent.region_code.clone(),
                    own: own.clone(),
                });
            }
        }
        let below = federation
            .children
            .iter()
            .enumerate()
            .map(|(index, office)| (format!("federation.children[{index}]"), office));
        for (field, office) in below {
            check_office(field.clone(), &office.node_id, &office.name)?;
            if !is_region_below(own, &office.region_code) {
                return Err(ConfigError::FederationRegionOutside {
                    field,
                    code: office.region_code.clone(),
                    own: own.clone(),
                });
            }
        }
        Ok(())
    }

    /// Parse and validate a config file's text.
    ///
    /// Dates may be written as TOML dates (`holidays = [2026-10-01]`) or as strings: people
    /// write the former, the model types read the latter.
    pub fn from_toml(text: &str) -> Result<NodeConfig, ConfigError> {
        let config: NodeConfig = match toml::from_str(text) {
            Ok(config) => config,
            Err(first_error) => {
                let mut table: toml::Table =
                    toml::from_str(text).map_err(|error| ConfigError::Syntax(error.to_string()))?;
                table
                    .iter_mut()
                    .for_each(|(_, value)| dates_as_strings(value));
                // The first error is the one to show: it points at the line and column.
                table
                    .try_into()
                    .map_err(|_: toml::de::Error| ConfigError::Syntax(first_error.to_string()))?
            }
        };
        config.validate()?;
        Ok(config)
    }

    /// The config file's text, with a header saying where the settings are explained.
    pub fn to_toml(&self) -> anyhow::Result<String> {
        let body = toml::to_string_pretty(self).context("cannot encode the node config as TOML")?;
        Ok(format!(
            "# Fengqiao node configuration (see config/*.toml in the Fengqiao sources for every\n\
             # setting explained). The node reads it at start; restart it after a change.\n\n{body}"
        ))
    }
}

/// Turn TOML date and time values into their text, which chrono's serde reads.
pub(crate) fn dates_as_strings(value: &mut toml::Value) {
    match value {
        toml::Value::Datetime(datetime) => *value = toml::Value::String(datetime.to_string()),
        toml::Value::Array(values) => values.iter_mut().for_each(dates_as_strings),
        toml::Value::Table(table) => table
            .iter_mut()
            .for_each(|(_, value)| dates_as_strings(value)),
        _ => {}
    }
}

/// Load and validate `fengqiao.toml` from the node directory `dir`.
pub fn load(dir: &Path) -> anyhow::Result<NodeConfig> {
    let path = NodeDir::new(dir).config_path();
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {}: is {} a node directory? create one with `fengqiao init`",
            path.display(),
            dir.display()
        )
    })?;
    NodeConfig::from_toml(&text).with_context(|| format!("invalid config {}", path.display()))
}

/// Validate `config` and write it to `fengqiao.toml` in `dir`, replacing any previous file
/// atomically (temporary file, fsync, rename).
pub fn save(dir: &Path, config: &NodeConfig) -> anyhow::Result<()> {
    config
        .validate()
        .context("refusing to save an invalid config")?;
    let path = NodeDir::new(dir).config_path();
    let temporary = path.with_extension("toml.tmp");
    let text = config.to_toml()?;
    let mut file = std::fs::File::create(&temporary)
        .with_context(|| format!("cannot create {}", temporary.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    drop(file);
    std::fs::rename(&temporary, &path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    crate::identity::sync_directory(dir)
        .with_context(|| format!("cannot sync directory {}", dir.display()))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn error_text(config: &NodeConfig) -> String {
        config.validate().unwrap_err().to_string()
    }

    #[test]
    fn region_code_length_must_match_the_tier() {
        for (tier, code) in [
            (Tier::Village, "430702001002"),
            (Tier::Township, "430702001"),
            (Tier::County, "430702"),
            (Tier::City, "4307"),
            (Tier::City, "430700"),
        ] {
            NodeConfig::new("office", tier, code).validate().unwrap();
        }
        let village_with_county_code = NodeConfig::new("芦荻山村", Tier::Village, "430702");
        let message = error_text(&village_with_county_code);
        assert!(
            message.contains("6 digits") && message.contains("village node needs 12"),
            "{message}"
        );
        let township = error_text(&NodeConfig::new("乡镇", Tier::Township, "4307020011"));
        assert!(township.contains("township node needs 9"), "{township}");
        let letters = error_text(&NodeConfig::new("x", Tier::County, "43070a"));
        assert!(letters.contains("digits only"), "{letters}");
        let empty = error_text(&NodeConfig::new("x", Tier::County, ""));
        assert!(empty.contains("digits only"), "{empty}");
    }

    #[test]
    fn other_settings_are_checked_with_their_names() {
        let base = NodeConfig::new("武陵区信访超市", Tier::County, "430702");

        let mut config = base.clone();
        config.node.name = "  ".into();
        assert!(error_text(&config).contains("node.name"));

        let mut config = base.clone();
        config.version = 2;
        assert!(error_text(&config).contains("version 2"));

        let mut config = base.clone();
        config.limits.handling_days = 0;
        assert!(error_text(&config).contains("limits.handling_days"));

        let mut config = base.clone();
        let monday = chrono::NaiveDate::from_ymd_opt(2026, 2, 16).unwrap();
        config.limits.working_weekends = vec![monday];
        assert!(error_text(&config).contains("not a weekend day"));

        let mut config = base.clone();
        let saturday = chrono::NaiveDate::from_ymd_opt(2026, 2, 14).unwrap();
        config.limits.working_weekends = vec![saturday];
        config.limits.holidays = vec![saturday];
        assert!(error_text(&config).contains("both as a holiday"));

        let mut config = base.clone();
        config.storage.cache_capacity = 0;
        assert!(error_text(&config).contains("storage.cache_capacity"));

        let mut config = base;
        config.node.parent = Some(String::new());
        assert!(error_text(&config).contains("node.parent"));
    }

    #[test]
    fn saved_config_loads_back_and_load_names_the_file() {
        let temp = tempfile::tempdir().unwrap();
        let mut config = NodeConfig::new("河洑镇调处中心", Tier::Township, "430702001");
        config.node.parent = Some("http://10.0.0.1:7370".into());
        config.limits.holidays = vec![chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap()];
        save(temp.path(), &config).unwrap();
        assert_eq!(load(temp.path()).unwrap(), config);

        std::fs::write(
            temp.path().join(CONFIG_FILE),
            "version = 1\n[node]\nname = \"x\"\ntier = \"village\"\nregion_code = \"430702\"\n",
        )
        .unwrap();
        let message = format!("{:#}", load(temp.path()).unwrap_err());
        assert!(message.contains(CONFIG_FILE), "{message}");
        assert!(message.contains("village node needs 12"), "{message}");

        std::fs::write(
            temp.path().join(CONFIG_FILE),
            "version = 1\n[node]\nnam = 1\n",
        )
        .unwrap();
        let message = format!("{:#}", load(temp.path()).unwrap_err());
        assert!(
            message.contains(CONFIG_FILE) && message.contains("nam"),
            "{message}"
        );

        let missing = format!("{:#}", load(&temp.path().join("nowhere")).unwrap_err());
        assert!(missing.contains("fengqiao init"), "{missing}");
    }

    #[test]
    fn federation_section_is_optional_and_checked() {
        let township = NodeConfig::new("芦荻山乡", Tier::Township, "430702001");
        let text = township.to_toml().unwrap();
        assert!(!text.contains("federation"), "{text}");
        assert_eq!(NodeConfig::from_toml(&text).unwrap().federation, None);

        let office = |node_id: &str, region_code: &str| FederationOffice {
            node_id: node_id.to_owned(),
            name: "office".to_owned(),
            region_code: region_code.to_owned(),
            aliases: Vec::new(),
            successor_of: None,
        };
        let mut config = township.clone();
        config.federation = Some(FederationSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            parent: Some(FederationParent {
                address: SocketAddr::from(([10, 0, 0, 1], 7380)),
                node_id: "a".repeat(32),
                name: "武陵区".to_owned(),
                region_code: "430702".to_owned(),
                aliases: Vec::new(),
            }),
            children: vec![office(&"b".repeat(32), "430702001001")],
        });
        let loaded = NodeConfig::from_toml(&config.to_toml().unwrap()).unwrap();
        assert_eq!(loaded, config);

        let mut bad = config.clone();
        if let Some(federation) = bad.federation.as_mut() {
            federation.children[0].node_id = "B".repeat(32);
        }
        assert!(error_text(&bad).contains("32 lowercase hex"));

        let mut bad = config.clone();
        if let Some(federation) = bad.federation.as_mut() {
            federation.children[0].region_code = "430703001001".to_owned();
        }
        assert!(error_text(&bad).contains("not under this node's region"));

        let mut bad = config.clone();
        if let Some(federation) = bad.federation.as_mut() {
            federation
                .children
                .push(office(&"b".repeat(32), "430702001002"));
        }
        assert!(error_text(&bad).contains("more than once"));

        let mut bad = config;
        if let Some(parent) = bad.federation.as_mut().and_then(|f| f.parent.as_mut()) {
            parent.region_code = "430703".to_owned();
        }
        assert!(error_text(&bad).contains("must be a prefix"));

        let minimal = "version = 1\n[node]\nname = \"x\"\ntier = \"county\"\n\
                       region_code = \"430702\"\n[federation]\n";
        let parsed = NodeConfig::from_toml(minimal).unwrap();
        assert_eq!(parsed.federation.unwrap().listen, DEFAULT_QUIC_LISTEN);
        let unknown = format!("{minimal}listn = \"127.0.0.1:1\"\n");
        assert!(NodeConfig::from_toml(&unknown).is_err());
    }

    #[test]
    fn escalation_section_is_optional_and_checked() {
        let village = NodeConfig::new("芦荻山村", Tier::Village, "430702001001");
        let text = village.to_toml().unwrap();
        assert!(!text.contains("escalation"), "{text}");
        let parsed = NodeConfig::from_toml(&text).unwrap();
        assert_eq!(parsed.escalation.check_interval_seconds, 60);
        assert!(parsed.escalation.rules.is_empty());

        let with_rules = "version = 1\n[node]\nname = \"x\"\ntier = \"village\"\n\
                          region_code = \"430702001001\"\n[escalation]\n\
                          check_interval_seconds = 30\n[[escalation.rules]]\n\
                          name = \"overdue\"\nwhen_overdue = \"overdue\"\n\
                          [[escalation.rules]]\nname = \"land\"\nmin_headcount = 5\n\
                          categories = [\"land_requisition\"]\n";
        let config = NodeConfig::from_toml(with_rules).unwrap();
        assert_eq!(config.escalation.check_interval_seconds, 30);
        let names: Vec<&str> = config
            .escalation
            .rules
            .iter()
            .map(|rule| rule.name.as_str())
            .collect();
        assert_eq!(names, ["overdue", "land"]);
        assert_eq!(
            NodeConfig::from_toml(&config.to_toml().unwrap()).unwrap(),
            config
        );

        let duplicate = with_rules.replace("name = \"land\"", "name = \"overdue\"");
        let message = NodeConfig::from_toml(&duplicate).unwrap_err().to_string();
        assert!(
            message.contains("escalation.rules") && message.contains("\"overdue\" is defined more"),
            "{message}"
        );
        let bare = format!("{with_rules}[[escalation.rules]]\nname = \"bare\"\n");
        let message = NodeConfig::from_toml(&bare).unwrap_err().to_string();
        assert!(message.contains("\"bare\" has no condition"), "{message}");
        let typo = with_rules.replace("min_headcount", "min_headcont");
        let message = NodeConfig::from_toml(&typo).unwrap_err().to_string();
        assert!(message.contains("min_headcont"), "{message}");
        let zero = with_rules.replace("= 30", "= 0");
        let message = NodeConfig::from_toml(&zero).unwrap_err().to_string();
        assert!(
            message.contains("escalation.check_interval_seconds"),
            "{message}"
        );
    }

    /// The commented `[escalation]` example at the end of an example config, uncommented.
    fn uncommented_escalation_example(text: &str) -> String {
        text.lines()
            .skip_while(|line| *line != "# [escalation]")
            .map_while(|line| line.strip_prefix("# "))
            .map(|line| format!("{line}\n"))
            .collect()
    }

    #[test]
    fn example_escalation_rules_are_valid() {
        for text in [
            include_str!("../../../config/village.toml"),
            include_str!("../../../config/township.toml"),
        ] {
            let example = uncommented_escalation_example(text);
            assert!(example.starts_with("[escalation]"), "{example}");
            let config = NodeConfig::from_toml(&format!("{text}\n{example}")).unwrap();
            assert_eq!(config.escalation.rules.len(), 3);
            assert_eq!(
                config.escalation.rules[0].when_overdue,
                Some(fengqiao_case::WarningGrade::SeriouslyOverdue)
            );
        }
    }

    #[test]
    fn example_configs_are_valid() {
        let examples = [
            (include_str!("../../../config/village.toml"), Tier::Village),
            (
                include_str!("../../../config/township.toml"),
                Tier::Township,
            ),
            (include_str!("../../../config/county.toml"), Tier::County),
        ];
        for (text, tier) in examples {
            let config = NodeConfig::from_toml(text).unwrap();
            assert_eq!(config.node.tier, tier);
        }
    }
}
