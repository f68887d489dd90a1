//! The Debian package and its systemd unit. The package is built as `scripts/package` builds it,
//! over the debug binary the tests already have (no release build in CI), and read with
//! `dpkg-deb`: the binary, the unit, the example configs, the maintainer script making the
//! `fengqiao` user and `/var/lib/fengqiao`. The unit's `ExecStart=` command line then runs a
//! node directory made by `fengqiao init`, as systemd would: `READY=1` on `NOTIFY_SOCKET` once
//! the API answers, journal lines on the journal stream, JSON lines with `--log-format json`,
//! and on SIGTERM `STOPPING=1` and exit 0 within the unit's stop timeout.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fengqiao_tests::{VILLAGE_REGION, fengqiao_binary, http_get, path_str, run_cli_ok};

/// The unit as the repository keeps it; the package must carry exactly this file.
const UNIT_IN_REPOSITORY: &str = "config/debian/fengqiao.service";
/// The data directory the unit runs, replaced by a temporary node directory here.
const DATA_DIRECTORY: &str = "/var/lib/fengqiao";
/// The binary the unit names, replaced by the one under test.
const INSTALLED_BINARY: &str = "/usr/bin/fengqiao";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lies in the workspace")
        .to_path_buf()
}

/// A unit file's `[Service]`-and-other directives, each key with every value it was given.
#[derive(Debug)]
struct Unit {
    directives: BTreeMap<String, Vec<String>>,
}

impl Unit {
    fn parse(text: &str) -> Unit {
        let mut directives: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("unit line without `=`: {line}"));
            directives
                .entry(key.trim().to_owned())
                .or_default()
                .push(value.trim().to_owned());
        }
        Unit { directives }
    }

    /// The one value of `key` (a directive given once).
    fn value(&self, key: &str) -> &str {
        match self.directives.get(key).map(Vec::as_slice) {
            Some([value]) => value,
            other => panic!("the unit should set {key} once, has {other:?}"),
        }
    }

    fn seconds(&self, key: &str) -> Duration {
        let value = self.value(key);
        let digits = value.strip_suffix('s').unwrap_or(value);
        Duration::from_secs(
            digits
                .parse()
                .unwrap_or_else(|_| panic!("{key}={value} is not in seconds")),
        )
    }
}

fn unit_in_repository() -> String {
    let path = workspace_root().join(UNIT_IN_REPOSITORY);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The directives the issue asks of the service, and a stop timeout above the node's own.
fn check_unit_directives(unit: &Unit) {
    assert_eq!(unit.value("Type"), "notify");
    assert_eq!(unit.value("User"), "fengqiao");
    assert_eq!(unit.value("ProtectSystem"), "strict");
    assert_eq!(unit.value("ReadWritePaths"), DATA_DIRECTORY);
    assert_eq!(unit.value("ProtectHome"), "yes");
    assert_eq!(unit.value("PrivateTmp"), "yes");
    assert_eq!(unit.value("NoNewPrivileges"), "yes");
    assert_eq!(unit.value("Restart"), "on-failure");
    assert_eq!(unit.value("KillSignal"), "SIGTERM");
    assert_eq!(
        unit.value("ExecStart"),
        format!("{INSTALLED_BINARY} run {DATA_DIRECTORY}")
    );
    // The node gives up on requests still running STOP_WAIT after SIGTERM, then waits a moment
    // for blocking work: systemd must not SIGKILL it before that.
    assert!(
        unit.seconds("TimeoutStopSec") >= fengqiao::api::STOP_WAIT + Duration::from_secs(5),
        "TimeoutStopSec={} leaves the node's own stop wait ({:?}) no room",
        unit.value("TimeoutStopSec"),
        fengqiao::api::STOP_WAIT
    );
    // QUIC (UDP), HTTP (TCP) and the notify socket stay reachable under the hardening.
    let families = unit.value("RestrictAddressFamilies");
    for family in ["AF_INET", "AF_INET6", "AF_UNIX"] {
        assert!(families.split_whitespace().any(|given| given == family));
    }
}

fn run(command: &mut Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{what}: cannot run: {error}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap_or_else(|error| panic!("{what}: not UTF-8: {error}"))
}

/// The cargo-deb version `scripts/install-cargo-deb` pins (its `version=` line).
fn pinned_cargo_deb_version() -> String {
    let path = workspace_root().join("scripts/install-cargo-deb");
    let script = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    script
        .lines()
        .find_map(|line| line.strip_prefix("version="))
        .unwrap_or_else(|| panic!("{} pins no version", path.display()))
        .trim()
        .to_owned()
}

/// Why the package cannot be built here, if it cannot: the pinned cargo-deb or dpkg-deb
/// missing (scripts/package would install cargo-deb, minutes of building inside a test).
fn package_tools_missing() -> Option<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let pinned = format!("cargo-deb {}", pinned_cargo_deb_version());
    match Command::new(&cargo).args(["deb", "--version"]).output() {
        Ok(output) if output.status.success() => {
            let installed = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            if installed != pinned {
                return Some(format!(
                    "{installed} is installed, scripts/package pins {pinned}"
                ));
            }
        }
        Ok(output) => {
            return Some(format!(
                "`cargo deb --version` failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Err(error) => return Some(format!("cannot run {cargo}: {error}")),
    }
    match Command::new("dpkg-deb").arg("--version").output() {
        Ok(output) if output.status.success() => None,
        Ok(output) => Some(format!("`dpkg-deb --version` failed ({})", output.status)),
        Err(error) => Some(format!("cannot run dpkg-deb: {error}")),
    }
}

#[test]
fn the_package_holds_the_binary_the_unit_the_configs_and_makes_the_user_and_data_directory() {
    if let Some(reason) = package_tools_missing() {
        eprintln!(
            "package: SKIPPED building and inspecting the .deb: {reason}; scripts/install-cargo-deb \
             installs cargo-deb (the unit's command line is still tested from {UNIT_IN_REPOSITORY})"
        );
        return;
    }
    let work = tempfile::tempdir().expect("temporary directory");
    let output_dir = work.path().join("out");
    std::fs::create_dir(&output_dir).expect("output directory");
    // As scripts/package builds it, over the debug binary `cargo build --bins` made.
    let binary = fengqiao_binary();
    run(
        Command::new("bash")
            .arg(workspace_root().join("scripts/package"))
            .args([
                "--no-build",
                "--profile",
                "dev",
                "--no-strip",
                "--fast",
                "--quiet",
            ])
            .arg("--output")
            .arg(&output_dir)
            .env("CARGO_TARGET_DIR", target_dir_of(&binary))
            .current_dir(workspace_root())
            .stdin(Stdio::null()),
        "scripts/package",
    );
    let debs: Vec<PathBuf> = std::fs::read_dir(&output_dir)
        .expect("read the output directory")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "deb"))
        .collect();
    let [deb] = debs.as_slice() else {
        panic!("scripts/package should make one .deb, made {debs:?}");
    };

    let info = run(
        Command::new("dpkg-deb").arg("--info").arg(deb),
        "dpkg-deb --info",
    );
    assert!(info.contains("Package: fengqiao"), "{info}");
    assert!(info.contains("Section: net"), "{info}");
    let depends = info
        .lines()
        .find_map(|line| line.trim().strip_prefix("Depends:"))
        .unwrap_or_else(|| panic!("no Depends:\n{info}"));
    assert!(depends.contains("adduser"), "{depends}");
    assert!(depends.contains("libc6"), "{depends}");
    for script in ["postinst", "prerm", "postrm"] {
        assert!(info.contains(script), "no {script} in the package:\n{info}");
    }

    let contents = run(
        Command::new("dpkg-deb").arg("--contents").arg(deb),
        "dpkg-deb --contents",
    );
    let mode_of = |path: &str| -> String {
        contents
            .lines()
            .find(|line| line.ends_with(&format!(" .{path}")))
            .map(|line| {
                line.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .unwrap_or_else(|| panic!("the package has no {path}:\n{contents}"))
    };
    assert_eq!(mode_of(INSTALLED_BINARY), "-rwxr-xr-x");
    assert_eq!(
        mode_of("/usr/lib/systemd/system/fengqiao.service"),
        "-rw-r--r--"
    );
    let examples = "/usr/share/doc/fengqiao/examples";
    for file in ["village.toml", "township.toml", "county.toml"] {
        assert_eq!(mode_of(&format!("{examples}/{file}")), "-rw-r--r--");
    }
    mode_of(&format!("{examples}/grafana/fengqiao-county.json"));
    mode_of("/usr/share/doc/fengqiao/README.md");
    mode_of("/usr/share/doc/fengqiao/copyright");

    // The files themselves: what the repository holds, and a binary that runs.
    let root = work.path().join("root");
    run(
        Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root),
        "dpkg-deb -x",
    );
    let packaged_unit =
        std::fs::read_to_string(root.join("usr/lib/systemd/system/fengqiao.service"))
            .expect("read the packaged unit");
    assert_eq!(
        packaged_unit,
        unit_in_repository(),
        "the package's unit is not {UNIT_IN_REPOSITORY}"
    );
    check_unit_directives(&Unit::parse(&packaged_unit));
    for file in ["village.toml", "township.toml", "county.toml"] {
        let packaged = std::fs::read(root.join(format!("usr/share/doc/fengqiao/examples/{file}")))
            .expect("read a packaged example");
        let original =
            std::fs::read(workspace_root().join("config").join(file)).expect("read an example");
        assert_eq!(
            packaged, original,
            "examples/{file} differs from config/{file}"
        );
    }
    let version = run(
        Command::new(root.join("usr/bin/fengqiao")).arg("--version"),
        "the packaged fengqiao --version",
    );
    assert_eq!(
        version.trim(),
        format!("fengqiao {}", env!("CARGO_PKG_VERSION"))
    );

    // The maintainer scripts: the user and the data directory, then cargo-deb's systemd part.
    let control = work.path().join("control");
    run(
        Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control),
        "dpkg-deb -e",
    );
    let postinst = std::fs::read_to_string(control.join("postinst")).expect("read postinst");
    assert!(
        postinst.contains("adduser --system --group --home \"$FENGQIAO_DATA\""),
        "{postinst}"
    );
    assert!(
        postinst.contains("FENGQIAO_DATA=/var/lib/fengqiao"),
        "{postinst}"
    );
    assert!(
        postinst.contains(
            "install -d -o \"$FENGQIAO_USER\" -g \"$FENGQIAO_USER\" -m 0750 \"$FENGQIAO_DATA\""
        ),
        "{postinst}"
    );
    // The unit is enabled and started after `set -e` and after the user exists (cargo-deb puts
    // its part at the token, wherever the token is).
    let enable = postinst
        .find("deb-systemd-helper enable fengqiao.service")
        .unwrap_or_else(|| panic!("postinst does not enable the unit:\n{postinst}"));
    let start = postinst
        .find("deb-systemd-invoke $_dh_action fengqiao.service")
        .unwrap_or_else(|| panic!("postinst does not start the unit:\n{postinst}"));
    let user = postinst.find("adduser --system").expect("adduser");
    let strict = postinst.find("set -e").expect("set -e");
    assert!(
        strict < user && user < enable && enable < start,
        "{postinst}"
    );
    assert_eq!(
        postinst.matches("deb-systemd-helper enable").count(),
        1,
        "{postinst}"
    );
    assert!(!postinst.contains("#DEBHELPER#"), "{postinst}");
    for script in ["postinst", "prerm", "postrm"] {
        let path = control.join(script);
        let mode = std::fs::metadata(&path).expect("maintainer script").mode();
        assert_eq!(mode & 0o111, 0o111, "{script} is not executable");
        run(
            Command::new("sh").arg("-n").arg(&path),
            &format!("sh -n {script}"),
        );
    }
}

/// `target/` holding `<profile>/fengqiao`, so cargo-deb packages exactly the binary under test.
fn target_dir_of(binary: &Path) -> PathBuf {
    binary
        .parent()
        .and_then(Path::parent)
        .expect("the binary lies in target/<profile>/")
        .to_path_buf()
}

/// What systemd gives a service's stderr: a file whose device and inode JOURNAL_STREAM names.
#[derive(Debug, Clone, Copy)]
enum JournalStream {
    /// JOURNAL_STREAM names the node's stderr.
    Stderr,
    /// JOURNAL_STREAM is set but names another stream (a child whose stderr was redirected).
    Elsewhere,
}

/// The node the unit's command line started, with the notify socket it reports to.
struct UnitProcess {
    child: Child,
    notifications: UnixDatagram,
    log_path: PathBuf,
}

impl Drop for UnitProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl UnitProcess {
    /// Run `ExecStart=` with the binary under test and `node_dir` in place of the data
    /// directory, `extra_args` after it, its stderr a file, NOTIFY_SOCKET a socket listened on.
    fn start(
        exec_start: &str,
        node_dir: &Path,
        extra_args: &[&str],
        journal: JournalStream,
        name: &str,
    ) -> UnitProcess {
        let work = node_dir.parent().expect("the node directory has a parent");
        let socket_path = work.join(format!("{name}.notify"));
        let notifications = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
        notifications
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("socket timeout");
        let log_path = work.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).expect("create the log file");
        let stream = log.metadata().expect("the log file's metadata");
        let journal_stream = match journal {
            JournalStream::Stderr => format!("{}:{}", stream.dev(), stream.ino()),
            JournalStream::Elsewhere => format!("{}:{}", stream.dev(), stream.ino() + 1),
        };
        let mut words = exec_start.split_whitespace();
        let program = words.next().expect("ExecStart names a program");
        assert_eq!(program, INSTALLED_BINARY);
        let arguments: Vec<String> = words
            .map(|word| {
                if word == DATA_DIRECTORY {
                    path_str(node_dir).to_owned()
                } else {
                    word.to_owned()
                }
            })
            .collect();
        assert!(
            arguments
                .iter()
                .any(|argument| argument == path_str(node_dir)),
            "ExecStart={exec_start} does not name {DATA_DIRECTORY}"
        );
        let child = Command::new(fengqiao_binary())
            .args(&arguments)
            .args(extra_args)
            // As systemd starts it: no RUST_LOG, so the node logs at its own default (info).
            .env_remove("RUST_LOG")
            .env_remove("FENGQIAO_LOG_FORMAT")
            .env("NOTIFY_SOCKET", &socket_path)
            .env("JOURNAL_STREAM", journal_stream)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the unit's command line");
        UnitProcess {
            child,
            notifications,
            log_path,
        }
    }

    /// Wait for a notification holding `state` (e.g. `READY=1`); fails if the node exits.
    fn wait_for_notification(&mut self, state: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut buffer = [0_u8; 4096];
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            match self.notifications.recv(&mut buffer) {
                Ok(length) => {
                    let message = String::from_utf8_lossy(&buffer[..length]).into_owned();
                    if message.lines().any(|line| line == state) {
                        return message;
                    }
                    seen.push(message);
                }
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if let Some(status) = self.child.try_wait().expect("poll the node") {
                        panic!(
                            "the node exited ({status}) before {state}; notified {seen:?}; log:\n{}",
                            self.log()
                        );
                    }
                }
                Err(error) => panic!("reading the notify socket: {error}"),
            }
        }
        panic!(
            "no {state} within {within:?}; notified {seen:?}; log:\n{}",
            self.log()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// SIGTERM, then `STOPPING=1` and a clean exit within `stop_timeout`.
    fn stop(mut self, stop_timeout: Duration) -> String {
        let sent = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("send SIGTERM");
        assert!(status.success(), "kill -TERM failed");
        self.wait_for_notification("STOPPING=1", stop_timeout);
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the node") {
                assert!(
                    status.success(),
                    "the node exited with {status} after SIGTERM; log:\n{}",
                    self.log()
                );
                break;
            }
            assert!(
                sent.elapsed() < stop_timeout,
                "the node did not exit within the unit's TimeoutStopSec ({stop_timeout:?}) of \
                 SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.log()
    }
}

/// Start the unit's command line, check READY=1 arrives with the API already answering, stop
/// it with SIGTERM; returns its stderr.
fn serve_once(
    unit: &Unit,
    node_dir: &Path,
    extra_args: &[&str],
    journal: JournalStream,
    name: &str,
) -> String {
    let address_file = node_dir.join("api.addr");
    let _ = std::fs::remove_file(&address_file);
    let mut node = UnitProcess::start(unit.value("ExecStart"), node_dir, extra_args, journal, name);
    let ready = node.wait_for_notification("READY=1", unit.seconds("TimeoutStartSec"));
    assert!(ready.contains("STATUS=serving on 127.0.0.1:"), "{ready}");
    // Ready means serving: the address is written and the health check answers on the first
    // try, with no waiting.
    let address: SocketAddr = std::fs::read_to_string(&address_file)
        .expect("api.addr is written before READY=1")
        .trim()
        .parse()
        .expect("api.addr holds an address");
    let (status, health) = http_get(address, "/api/health").expect("/api/health answers");
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["region_code"], VILLAGE_REGION, "{health}");
    node.stop(unit.seconds("TimeoutStopSec"))
}

#[test]
fn the_units_command_line_notifies_readiness_logs_for_the_journal_and_stops_on_sigterm() {
    let unit = Unit::parse(&unit_in_repository());
    check_unit_directives(&unit);
    let work = tempfile::tempdir().expect("temporary directory");
    let node_dir = work.path().join("node");
    // As the README says: the unit only runs a node directory `fengqiao init` made.
    run_cli_ok(&[
        "init",
        path_str(&node_dir),
        "--name",
        "芦荻山村调解室",
        "--tier",
        "village",
        "--region",
        VILLAGE_REGION,
        "--listen",
        "127.0.0.1:0",
    ]);
    let cli_token = std::fs::read_to_string(node_dir.join("cli.token")).expect("cli.token");
    let started_on = chrono::Utc::now().format("%Y-%m-%dT").to_string();

    // Under systemd: stderr is the journal stream; lines carry priorities, no timestamps.
    let journal = serve_once(&unit, &node_dir, &[], JournalStream::Stderr, "journal");
    let lines: Vec<&str> = journal.lines().filter(|line| !line.is_empty()).collect();
    assert!(!lines.is_empty(), "the node logged nothing");
    for line in &lines {
        let priority = line
            .strip_prefix('<')
            .and_then(|rest| rest.split_once('>'))
            .map(|(priority, _)| priority);
        assert!(
            matches!(
                priority,
                Some("0" | "1" | "2" | "3" | "4" | "5" | "6" | "7")
            ),
            "a journal line without a priority prefix: {line:?}\n{journal}"
        );
    }
    let ended_on = chrono::Utc::now().format("%Y-%m-%dT").to_string();
    assert!(
        !journal.contains(&started_on) && !journal.contains(&ended_on),
        "journal lines carry a timestamp (the journal adds its own):\n{journal}"
    );
    assert!(
        !journal.contains('\u{1b}'),
        "colours in the journal:\n{journal}"
    );
    for expected in [
        "api listening",
        "SIGTERM received, stopping",
        "node stopped",
    ] {
        assert!(
            lines
                .iter()
                .any(|line| line.starts_with("<6>") && line.contains(expected)),
            "no info line (<6>) saying {expected:?}:\n{journal}"
        );
    }
    assert!(
        !journal.contains(cli_token.trim()),
        "the CLI token was logged"
    );

    // --log-format json: one JSON object per line, whatever the stream.
    let json = serve_once(
        &unit,
        &node_dir,
        &["--log-format", "json"],
        JournalStream::Stderr,
        "json",
    );
    let events: Vec<serde_json::Value> = json
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("not a JSON line ({error}): {line:?}"))
        })
        .collect();
    for event in &events {
        assert!(event.is_object(), "{event}");
        assert!(event["timestamp"].is_string(), "{event}");
        assert!(event["level"].is_string(), "{event}");
        assert!(event["fields"]["message"].is_string(), "{event}");
    }
    let listening = events
        .iter()
        .find(|event| event["fields"]["message"] == "api listening")
        .unwrap_or_else(|| panic!("no JSON event for the API listening:\n{json}"));
    assert_eq!(listening["level"], "INFO", "{listening}");
    assert!(
        listening["fields"]["address"]
            .as_str()
            .is_some_and(|address| address.starts_with("127.0.0.1:")),
        "{listening}"
    );
    assert!(!json.contains(cli_token.trim()), "the CLI token was logged");

    // JOURNAL_STREAM naming another stream (inherited, stderr redirected): today's text lines.
    let text = serve_once(&unit, &node_dir, &[], JournalStream::Elsewhere, "text");
    let listening = text
        .lines()
        .find(|line| line.contains("api listening"))
        .unwrap_or_else(|| panic!("no line for the API listening:\n{text}"));
    assert!(
        listening.starts_with(&started_on) || listening.starts_with(&ended_on),
        "a text line starts with its timestamp: {listening:?}"
    );
    assert!(listening.contains(" INFO "), "{listening:?}");
}
