//! Where logs go and in which form: always stderr (stdout is for what the user asked for), as
//! text for a terminal, as priority-prefixed lines for systemd's journal, or as JSON lines for
//! log shippers.
//!
//! For the journal the node writes `<N>` syslog priority prefixes on stderr lines, which systemd
//! turns into the entry's priority when stderr is its journal stream (`SyslogLevelPrefix=`, on by
//! default), rather than sending entries to journald's socket with `tracing-journald`: the
//! prefixes need no second channel nor crate, go wherever systemd sends the service's stderr
//! (the journal, or a file a drop-in names), never lose a line to a socket the sandbox hides,
//! and a test reads them from a pipe as the journal would.

use clap::ValueEnum;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The environment variable through which `fengqiao run --log-format` can also be set (a
/// systemd drop-in's `Environment=`).
pub const LOG_FORMAT_ENV: &str = "FENGQIAO_LOG_FORMAT";

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Text with a timestamp and the level; coloured on a terminal
    Text,
    /// For systemd's journal: each line starts with its syslog priority (`<6>` info, `<4>`
    /// warning, …), without a timestamp (the journal adds one) or colours. The default when
    /// stderr is the journal stream systemd names in JOURNAL_STREAM
    Journal,
    /// One JSON object per line (timestamp, level, target, fields), for log shippers
    Json,
}

/// Set up the log for this process: `-v` wins over RUST_LOG; servers log `info` by default,
/// clients only warnings. `format` is the one asked for; without one, [`LogFormat::Journal`]
/// when stderr is systemd's journal stream, else [`LogFormat::Text`].
pub fn init_tracing(verbose: u8, serving: bool, format: Option<LogFormat>) {
    let default_level = if serving { 1 } else { 0 };
    let levels = ["warn", "info", "debug", "trace"];
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if verbose == 0 && !directives.trim().is_empty() => {
            EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new(levels[default_level]))
        }
        _ => {
            let level = (default_level + usize::from(verbose)).min(levels.len() - 1);
            EnvFilter::new(levels[level])
        }
    };
    let format = format.unwrap_or_else(|| {
        if stderr_is_journal_stream() {
            LogFormat::Journal
        } else {
            LogFormat::Text
        }
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr is a file on a full disk) is lost; by
        // default tracing-subscriber reports that with `eprintln!`, which panics when stderr
        // fails, and so would every request that logs while the disk is full.
        .log_internal_errors(false);
    // A second initialization (tests calling `run` twice) is harmless; keep the first.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Journal => builder
            .with_ansi(false)
            .event_format(JournalLines::default())
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

/// Whether stderr is the stream systemd connected to the journal: `JOURNAL_STREAM` holds that
/// stream's `device:inode`, and only counts while stderr is still it (a child of a service that
/// redirected its stderr inherits the variable but not the stream; systemd.exec(5)).
fn stderr_is_journal_stream() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    match (
        value.to_str().and_then(parse_journal_stream),
        stderr_identity(),
    ) {
        (Some(named), Some(stderr)) => named == stderr,
        _ => false,
    }
}

/// `device:inode` as systemd writes JOURNAL_STREAM (both decimal).
fn parse_journal_stream(value: &str) -> Option<(u64, u64)> {
    let (device, inode) = value.trim().split_once(':')?;
    Some((device.parse().ok()?, inode.parse().ok()?))
}

/// The device and inode of the file stderr is open on.
#[cfg(unix)]
fn stderr_identity() -> Option<(u64, u64)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let stderr = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let metadata = std::fs::File::from(stderr).metadata().ok()?;
    Some((metadata.dev(), metadata.ino()))
}

#[cfg(not(unix))]
fn stderr_identity() -> Option<(u64, u64)> {
    None
}

/// The syslog priority systemd reads from a `<N>` line prefix (sd-daemon(3)): err, warning,
/// info, debug.
fn journal_priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// tracing-subscriber's text line without timestamp, level word or colours, behind the level's
/// `<N>` priority. A message or field spanning several lines (an error's chain) has every line
/// prefixed, since the journal makes each line its own entry and would give the rest `info`.
#[derive(Debug)]
struct JournalLines {
    line: Format<Full, ()>,
}

impl Default for JournalLines {
    fn default() -> JournalLines {
        JournalLines {
            line: tracing_subscriber::fmt::format()
                .without_time()
                .with_level(false)
                .with_ansi(false),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JournalLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut text = String::new();
        self.line
            .format_event(context, Writer::new(&mut text), event)?;
        let priority = journal_priority(*event.metadata().level());
        for line in text.trim_end_matches('\n').split('\n') {
            writeln!(writer, "<{priority}>{line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_is_read_as_device_and_inode() {
        assert_eq!(parse_journal_stream("8:4194311"), Some((8, 4_194_311)));
        assert_eq!(parse_journal_stream("64769:12\n"), Some((64_769, 12)));
        assert_eq!(parse_journal_stream(""), None);
        assert_eq!(parse_journal_stream("8"), None);
        assert_eq!(parse_journal_stream("8:x"), None);
        assert_eq!(parse_journal_stream("-1:2"), None);
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(journal_priority(Level::ERROR), 3);
        assert_eq!(journal_priority(Level::WARN), 4);
        assert_eq!(journal_priority(Level::INFO), 6);
        assert_eq!(journal_priority(Level::DEBUG), 7);
        assert_eq!(journal_priority(Level::TRACE), 7);
    }

    #[test]
    fn a_journal_line_has_its_priority_on_every_line_and_no_timestamp() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Captured(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Captured {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(Level::DEBUG)
            .event_format(JournalLines::default())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(address = "127.0.0.1:7370", "api listening");
            tracing::warn!(error = %"first\nsecond", "cannot reach the parent");
        });
        let bytes = captured
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let text = String::from_utf8(bytes).expect("utf-8 log");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "<6>fengqiao::cli::logging::tests: api listening address=\"127.0.0.1:7370\"",
                "<4>fengqiao::cli::logging::tests: cannot reach the parent error=first",
                "<4>second",
            ],
            "{text}"
        );
    }
}
