//! The command line: `init`, `run`, `demo`, `import`, the federation's `admit` / `revoke` /
//! `join` / `peers` / `policy`, and the case / directive / stats commands that talk to a running node
//! through its HTTP API.
//!
//! What the user asked for goes to stdout (tables, or the API's JSON with `--json`); logs go to
//! stderr through `tracing`, so scripts can read one without the other.

pub mod audit;
pub mod case;
pub mod directive;
pub mod export;
pub mod federation;
pub mod global;
pub mod logging;
pub mod output;
pub mod policy;
pub mod readiness;
pub mod render;
pub mod report;
pub mod stats;
pub mod user;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use fengqiao_case::{Category, Measures, NodeInfo, Tier};

use self::global::{GlobalOptions, connect, shutdown_signal, tokio_runtime};
use self::logging::{LOG_FORMAT_ENV, LogFormat, init_tracing};
use self::output::{emit, print_json};
use crate::client::NodeClient;
use crate::import::values::{parse_date, parse_labelled};
use crate::import::{DEFAULT_BATCH_ROWS, ImportOptions, LedgerFormat};

/// Fengqiao: petition and dispute case handling for village, township and county offices.
#[derive(Debug, Parser)]
#[command(
    name = "fengqiao",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a node directory: configuration and identity key
    Init(InitArgs),
    /// Serve a node's API until Ctrl-C or SIGTERM
    Run(RunArgs),
    /// Show the node's identity, tier, region and case count
    #[command(visible_alias = "node-info")]
    Info,
    /// Register, list, show and move cases through their lifecycle
    #[command(subcommand)]
    Case(case::CaseCommand),
    /// Supervision directives (督办单): issue, acknowledge, report, cross off, list
    #[command(subcommand)]
    Directive(directive::DirectiveCommand),
    /// The supervisors' measures (及时受理率, 按期办结率, …) for a period
    Stats(StatsArgs),
    /// Import an existing ledger (CSV or JSON lines): checked whole, then written; safe to run again
    #[command(
        long_about = crate::import::IMPORT_HELP,
        after_help = crate::import::ledger::csv_columns_help()
    )]
    Import(ImportArgs),
    /// Export the 台账 (Excel or CSV) in the columns `fengqiao import` reads, with the ledger's
    /// filters
    Export(export::ExportArgs),
    /// The monthly supervision report (Excel): the month's measures office by office, overdue
    /// cases, open directives
    Report(report::ReportArgs),
    /// Start a demonstration federation on this machine (county, 2 townships, 4 villages)
    Demo(crate::demo::DemoArgs),
    /// Admit a child office (parent side; edits the config; a running node applies it at once)
    Admit(federation::AdmitArgs),
    /// Revoke an admitted child (parent side; edits the config; a running node applies it at once)
    Revoke(federation::RevokeArgs),
    /// Set this node's parent (child side; edits the config, then restart the node)
    Join(federation::JoinArgs),
    /// The federation links of a running node: connected, since, last sync, pending
    Peers,
    /// The federation roster a running node holds: which node ID is which office, admitted by whom
    Roster,
    /// The federation's policy (limits, working-day calendar, warnings): show, issue (county)
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// The audit trail: a case's who-did-what log, or a check of every signature on the node
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Changes received from peers and refused by the receipt checks (not applied)
    Quarantine(audit::QuarantineArgs),
    /// The node's accounts (admin): add, list, disable, reset-password, set-role
    #[command(subcommand)]
    User(user::UserCommand),
    /// Bearer tokens for scripts (admin): create, list, revoke
    #[command(subcommand)]
    Token(user::TokenCommand),
    /// Who the CLI is signed in as on the node
    Whoami,
    /// Take a backup of a running node (admin): every case at one moment, config, key, accounts
    Backup(BackupArgs),
    /// Make a node directory from a backup file (checked whole first; DIR must be new or empty)
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup file to write (written beside it first, then renamed: a cut stream never
    /// leaves a file that looks whole)
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A file `fengqiao backup` wrote
    pub file: PathBuf,
    /// The node directory to create: must not exist, or be empty
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to create the node in
    pub dir: PathBuf,
    /// The office's name, e.g. 芦荻山村调解室
    #[arg(long)]
    pub name: String,
    /// village | township | county | city (村 / 乡镇 / 县区 / 市)
    #[arg(long, value_parser = parse_labelled::<Tier>)]
    pub tier: Tier,
    /// Administrative region code: 6 digits county, 9 township, 12 village
    #[arg(long, value_name = "CODE")]
    pub region: String,
    /// Address the API listens on [default: 127.0.0.1:7370]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// The parent node's address (for the federation)
    #[arg(long, value_name = "ADDR")]
    pub parent: Option<String>,
    /// A host name or address the office LAN reaches this node by (repeatable). With --listen
    /// beyond loopback, init makes a self-signed HTTPS certificate for this machine's names and
    /// these, and prints its fingerprint.
    #[arg(long = "lan-name", value_name = "NAME")]
    pub lan_names: Vec<String>,
    #[command(flatten)]
    pub restore: federation::RestoreFromParentArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The node directory (or --dir)
    pub dir: Option<PathBuf>,
    /// Listen on this address instead of the configured one (port 0 picks a free port)
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// The federation's QUIC endpoint listens on this UDP address instead of the configured
    /// one (port 0 picks a free port; the bound address is written to `quic.addr`)
    #[arg(long, value_name = "ADDR")]
    pub quic_listen: Option<SocketAddr>,
    /// Record events even while this node's clock is more than 5 minutes off against its peers
    /// (as `[clock] allow_skew = true` does). Without it such a node refuses to record, because
    /// deadlines counted from a wrong clock are wrong
    #[arg(long)]
    pub allow_clock_skew: bool,
    /// FOR TESTING ONLY: run the node's clock this many seconds ahead of the system's (behind
    /// when negative), to see how the federation treats an office whose clock is wrong
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub clock_offset_seconds: Option<i64>,
    /// How logs are written on stderr: text (the default on a terminal), journal (the default
    /// under systemd: syslog priority prefixes, no timestamps) or json (one object per line, for
    /// log shippers)
    #[arg(long, value_enum, env = LOG_FORMAT_ENV, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// First day of the period (China time), e.g. 2026-01-01
    #[arg(long, value_parser = parse_date, value_name = "DATE")]
    pub from: Option<NaiveDate>,
    /// Last day of the period, included
    #[arg(long, value_parser = parse_date, value_name = "DATE")]
    pub to: Option<NaiveDate>,
    /// Only this category (wage_arrears, 拖欠工资, …)
    #[arg(long, value_parser = parse_labelled::<Category>)]
    pub category: Option<Category>,
    /// Leave out the cases a ledger import registered (history as the old ledger records it).
    /// By default they are counted
    #[arg(long)]
    pub without_imported: bool,
    /// The whole subtree, then each child office with its link's health, then its own offices
    /// (a county: township, then village)
    #[arg(long)]
    pub by_child: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The ledger file (with --template: the template to write)
    pub file: PathBuf,
    /// Write an empty ledger to fill in (.xlsx) to FILE instead: the columns' headers, and a
    /// second sheet explaining each column and the values it takes. Needs no node
    #[arg(long)]
    pub template: bool,
    /// File format [default: from the extension: .csv, .jsonl]
    #[arg(long, value_enum)]
    pub format: Option<LedgerFormat>,
    /// Only validate every row on the node; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Rows per upload batch (each batch is atomic on the node: its cases and their row
    /// identities are written together or not at all)
    #[arg(long = "batch", value_name = "N", default_value_t = DEFAULT_BATCH_ROWS)]
    pub batch_rows: usize,
}

/// Entry point of the binary: parse, run, report errors with their context chain.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version are "errors" to clap too; they print to stdout and exit 0.
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::debug!(error = ?error, "command failed");
            // Refusals quote what was sent and names of cases and offices: escaped like output.
            eprintln!("error: {}", render::printable(&format!("{error:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let global = cli.global;
    // A running node logs what it does; the demo's request log would drown its own output.
    let serving = matches!(cli.command, Command::Run(_));
    let log_format = match &cli.command {
        Command::Run(args) => args.log_format,
        _ => None,
    };
    init_tracing(global.verbose, serving, log_format);
    match cli.command {
        Command::Init(args) => init(args),
        Command::Run(args) => run_node(args, &global),
        Command::Info => {
            let client = connect(&global)?;
            let info: serde_json::Value = client.get("/api/health", &[])?;
            if global.json {
                return print_json(&info);
            }
            let info: NodeInfo =
                serde_json::from_value(info).context("unexpected answer from /api/health")?;
            emit(render::node_info_text(&info, client.base_url()))
        }
        Command::Case(command) => case::run(command, &connect(&global)?, global.json),
        Command::Directive(command) => directive::run(command, &connect(&global)?, global.json),
        Command::Stats(args) => stats(args, &connect(&global)?, global.json),
        Command::Import(args) if args.template => crate::import::write_template_file(&args.file),
        Command::Import(args) => {
            let options = ImportOptions {
                format: args.format,
                dry_run: args.dry_run,
                batch_rows: args.batch_rows,
                json: global.json,
            };
            crate::import::import_file(&connect(&global)?, &args.file, &options).map(|_| ())
        }
        Command::Export(args) => export::run(&args, &connect(&global)?),
        Command::Report(args) => report::run(&args, &connect(&global)?),
        Command::Demo(args) => crate::demo::run(args, &global),
        Command::Admit(args) => federation::admit(args, &global),
        Command::Revoke(args) => federation::revoke(args, &global),
        Command::Join(args) => federation::join(args, &global),
        Command::Peers => federation::peers(&connect(&global)?, global.json),
        Command::Roster => federation::roster(&connect(&global)?, global.json),
        Command::Policy(command) => policy::run(command, &connect(&global)?, global.json),
        Command::Audit(command) => audit::run(command, &connect(&global)?, global.json),
        Command::Quarantine(args) => audit::quarantine(args, &connect(&global)?, global.json),
        Command::User(command) => user::run_user(command, &connect(&global)?, global.json),
        Command::Token(command) => user::run_token(command, &connect(&global)?, global.json),
        Command::Whoami => user::whoami(&connect(&global)?, global.json),
        Command::Backup(args) => backup(&args, &connect(&global)?, global.json),
        Command::Restore(args) => restore(&args, global.json),
    }
}

fn init(args: InitArgs) -> anyhow::Result<()> {
    args.restore.check(&args.dir, &args.region)?;
    let options = crate::service::InitOptions {
        name: args.name,
        tier: args.tier,
        region_code: args.region,
        listen: args.listen,
        parent: args.parent,
        lan_names: args.lan_names,
    };
    let (config, admin_password) = crate::service::init_node_with_admin(&args.dir, options)
        .with_context(|| format!("cannot create a node in {}", args.dir.display()))?;
    // The id is derived from the key init just wrote; failing to read it back is worth a warning,
    // not a failed init.
    let key_path = crate::config::NodeDir::new(&args.dir).key_path();
    let node_id = match crate::identity::NodeIdentity::load(&key_path) {
        Ok(identity) => Some(identity.node_id().to_owned()),
        Err(error) => {
            tracing::warn!(%error, "cannot read the new node's identity back");
            None
        }
    };
    let node_dir = crate::config::NodeDir::new(&args.dir);
    let fingerprint = match &config.http.tls_cert {
        Some(certificate) => Some(crate::api::tls::fingerprint_of_pem_file(
            &node_dir.resolve(certificate),
        )?),
        None => None,
    };
    emit(render::init_text(
        &args.dir,
        &config,
        node_id.as_deref(),
        &admin_password,
        fingerprint.as_deref(),
    ))?;
    match federation::restore_from_parent(&args.dir, &args.restore)? {
        Some(text) => emit(text),
        None => Ok(()),
    }
}

fn run_node(args: RunArgs, global: &GlobalOptions) -> anyhow::Result<()> {
    let Some(dir) = args.dir.or_else(|| global.dir.clone()) else {
        bail!("which node? pass its directory: fengqiao run NODE_DIR");
    };
    if !crate::config::NodeDir::exists(&dir) {
        bail!(
            "{} is not a node directory (no {}): create one with `fengqiao init {} --name … \
             --tier … --region …`",
            dir.display(),
            crate::config::CONFIG_FILE,
            dir.display()
        );
    }
    let runtime = tokio_runtime()?;
    let shutdown = {
        let _entered = runtime.enter();
        let signal = shutdown_signal()?;
        async move {
            signal.await;
            readiness::notify_stopping();
        }
    };
    if let Some(seconds) = args.clock_offset_seconds {
        let offset = chrono::TimeDelta::try_seconds(seconds)
            .filter(|offset| offset.num_days().abs() <= 3650)
            .with_context(|| format!("--clock-offset-seconds {seconds} is more than ten years"))?;
        tracing::warn!(
            seconds,
            "--clock-offset-seconds: this node's clock is moved on purpose (for testing only)"
        );
        crate::wall_clock::set_offset_for_testing(offset);
    }
    tracing::info!(dir = %dir.display(), "starting node");
    let allow_clock_skew = args.allow_clock_skew;
    let served = runtime.block_on(async move {
        let mut server = crate::api::BoundServer::bind(&dir, args.listen).await?;
        if allow_clock_skew {
            tracing::warn!("--allow-clock-skew: events are recorded even while the clock is off");
            server.node().allow_clock_skew();
        }
        server.start_federation(args.quic_listen).await?;
        // The one moment the node is ready: store open, API bound (a request now waits at most
        // for the serving loop that `run` starts at once), federation started.
        readiness::notify_ready(server.local_addr());
        server.run(shutdown).await
    });
    // Dropping a runtime waits for its blocking threads without end; one stuck on a disk that
    // does not answer would keep the process alive after SIGTERM. `serve` has already waited
    // for the requests as long as it should (`api::STOP_WAIT`); what is left is abandoned.
    runtime.shutdown_timeout(RUNTIME_STOP_WAIT);
    served?;
    tracing::info!("node stopped");
    Ok(())
}

/// How long a stopped node's runtime waits for blocking work still running (none, after a
/// clean stop) before the process exits without it.
const RUNTIME_STOP_WAIT: Duration = Duration::from_secs(1);

fn stats(args: StatsArgs, client: &NodeClient, json: bool) -> anyhow::Result<()> {
    if let (Some(from), Some(to)) = (args.from, args.to)
        && to < from
    {
        bail!("--to {to} is before --from {from}");
    }
    let query = stats_query(&args);
    if args.by_child {
        let breakdown = client.get("/api/stats/children", &query)?;
        if json {
            return print_json(&breakdown);
        }
        let breakdown: fengqiao_case::model::stats::StatsBreakdown =
            serde_json::from_value(breakdown)
                .context("unexpected answer from /api/stats/children")?;
        return emit(stats::stats_by_child_text(&breakdown));
    }
    let measures = client.get("/api/stats", &query)?;
    if json {
        return print_json(&measures);
    }
    let measures: Measures =
        serde_json::from_value(measures).context("unexpected answer from /api/stats")?;
    emit(render::stats_text(&measures))
}

/// Streams the node's backup into a temporary file beside `--to`, checks it whole (checksum,
/// header), then renames it into place.
fn backup(args: &BackupArgs, client: &NodeClient, json: bool) -> anyhow::Result<()> {
    let target = &args.to;
    let directory = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = target
        .file_name()
        .with_context(|| format!("--to {} names no file", target.display()))?;
    let mut partial = tempfile::Builder::new()
        .prefix(&format!(".{}.", file_name.to_string_lossy()))
        .suffix(".partial")
        .tempfile_in(&directory)
        .with_context(|| format!("cannot write a file in {}", directory.display()))?;
    let partial_path = partial.path().to_path_buf();
    let bytes = {
        let mut out = std::io::BufWriter::new(partial.as_file_mut());
        let bytes = client.download("/api/backup", &[], &mut out)?;
        std::io::Write::flush(&mut out)
            .with_context(|| format!("cannot write {}", partial_path.display()))?;
        bytes
    };
    partial
        .as_file()
        .sync_all()
        .with_context(|| format!("cannot write {}", partial.path().display()))?;
    let header = crate::backup::check_backup_file(partial.path())
        .context("the backup the node sent is not whole; nothing was written")?;
    partial
        .persist(target)
        .with_context(|| format!("cannot write {}", target.display()))?;
    if json {
        return print_json(&serde_json::json!({
            "file": target.display().to_string(),
            "bytes": bytes,
            "header": header,
        }));
    }
    emit(format!(
        "backup of {} ({}) at feed position {} written to {} ({bytes} bytes)",
        header.office,
        header.node_id,
        header.feed_position,
        target.display()
    ))
}

fn restore(args: &RestoreArgs, json: bool) -> anyhow::Result<()> {
    let restored = crate::backup::restore(&args.file, &args.dir)?;
    if json {
        return print_json(&serde_json::json!({
            "dir": args.dir.display().to_string(),
            "cases": restored.cases,
            "header": restored.header,
        }));
    }
    emit(format!(
        "restored {} ({}) into {}: {} cases as at feed position {} ({}). Start it with \
         `fengqiao run {}`; it syncs again with its peers",
        restored.header.office,
        restored.header.node_id,
        args.dir.display(),
        restored.cases,
        restored.header.feed_position,
        restored
            .header
            .taken_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        args.dir.display()
    ))
}

/// The query `stats` sends (`stats::period_query`, which `report` asks with too).
pub fn stats_query(args: &StatsArgs) -> Vec<(&'static str, String)> {
    stats::period_query(args.from, args.to, args.category, args.without_imported)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_before_or_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "fengqiao",
            "--json",
            "case",
            "list",
            "--node",
            "http://127.0.0.1:1",
        ])
        .unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.node.as_deref(), Some("http://127.0.0.1:1"));
    }

    #[test]
    fn usage_errors_exit_with_2() {
        let error = Cli::try_parse_from(["fengqiao", "case", "reply", "N", "--outcome", "maybe"])
            .unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().contains("maybe"));
    }

    #[test]
    fn stats_period_is_china_days_with_the_last_day_included() {
        let cli = Cli::try_parse_from([
            "fengqiao",
            "stats",
            "--from",
            "2026-01-01",
            "--to",
            "2026-03-31",
            "--category",
            "拖欠工资",
        ])
        .unwrap();
        let Command::Stats(args) = cli.command else {
            panic!("stats expected")
        };
        assert_eq!(
            stats_query(&args),
            vec![
                ("from", "2025-12-31T16:00:00Z".to_owned()),
                ("to", "2026-03-31T16:00:00Z".to_owned()),
                ("category", "wage_arrears".to_owned()),
            ]
        );
    }

    #[test]
    fn init_accepts_chinese_tier_names() {
        let cli = Cli::try_parse_from([
            "fengqiao",
            "init",
            "/tmp/x",
            "--name",
            "芦荻山乡",
            "--tier",
            "乡镇",
            "--region",
            "430702001",
        ])
        .unwrap();
        let Command::Init(args) = cli.command else {
            panic!("init expected")
        };
        assert_eq!(args.tier, Tier::Township);
    }
}
