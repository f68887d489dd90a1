//! Backup and restore of a node: the backup file's body (framing, gzip, checksum), its writing
//! by a running node (`GET /api/backup`, `fengqiao backup`) and its restore into a new node
//! directory (`fengqiao restore`).
//!
//! The file's header type and layout are `fengqiao_case::model::backup`. The body, inside gzip,
//! is a sequence of records, each a tag byte and length-prefixed fields: the node directory's
//! files (config, key, CLI token, LAN certificate), the store snapshot's entries
//! (`fengqiao_store::Snapshot`: every case at one feed position, the node's meta, counters,
//! logs and accounts), then an end record with the counts. The SHA-256 after the body covers
//! every byte before it, so a cut or damaged file is refused before anything is written.
//!
//! What a restored node does not keep: its sign-in sessions (people sign in again) and what it
//! knew of each peer's sync progress (`PEER_SYNC_META_PREFIX`): it may lack changes made after
//! the snapshot that those records say a peer has, so it compares with each peer afresh.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use fengqiao_case::model::backup::{
    BACKUP_FORMAT_VERSION, BACKUP_MAGIC, BackupHeader, MAX_BACKUP_HEADER_BYTES,
};
use fengqiao_store::{SnapshotCounts, SnapshotEntry, StoreError, StoreRestore};
use sha2::{Digest, Sha256};

use crate::config::{self, NodeDir};
use crate::federation::PEER_SYNC_META_PREFIX;
use crate::service::Node;

/// Body record tags.
const RECORD_FILE: u8 = 1;
const RECORD_STORE_ENTRY: u8 = 2;
const RECORD_END: u8 = 3;

/// Bytes of the SHA-256 trailer.
const CHECKSUM_BYTES: usize = 32;

/// A field longer than this is damage: refused before it is read into memory.
const MAX_FIELD_BYTES: u32 = 1 << 30;

/// What a backup holds, as its writer counted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub header: BackupHeader,
    pub files: u64,
    pub cases: u64,
    pub entries: u64,
}

/// Why a backup could not be written.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the backup: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot read {path} for the backup: {error}")]
    File { path: String, error: std::io::Error },
}

/// Counts every byte written through it into a SHA-256.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buffer)?;
        self.hasher.update(&buffer[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn write_field(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let length = u32::try_from(bytes.len())
        .ok()
        .filter(|length| *length <= MAX_FIELD_BYTES)
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a record field of {} bytes is too long", bytes.len()),
            )
        })?;
    out.write_all(&length.to_be_bytes())?;
    out.write_all(bytes)
}

/// The files of a node directory a backup holds, those that exist: what `fengqiao run` needs
/// beside the store.
fn node_files(node_dir: &NodeDir) -> Vec<(&'static str, PathBuf)> {
    vec![
        (config::CONFIG_FILE, node_dir.config_path()),
        ("node.key", node_dir.key_path()),
        ("cli.token", node_dir.cli_token_path()),
        (
            config::LAN_CERTIFICATE_FILE,
            node_dir.lan_certificate_path(),
        ),
        (config::LAN_KEY_FILE, node_dir.lan_key_path()),
    ]
}

/// The files a restore may write, by name: nothing else in a backup is taken.
fn is_node_file(name: &str) -> bool {
    [
        config::CONFIG_FILE,
        "node.key",
        "cli.token",
        config::LAN_CERTIFICATE_FILE,
        config::LAN_KEY_FILE,
    ]
    .contains(&name)
}

/// Secrets are written readable by their owner only.
fn is_secret_file(name: &str) -> bool {
    matches!(name, "node.key" | "cli.token") || name == config::LAN_KEY_FILE
}

/// Takes a backup of the running `node` into `out`. `started` is told the header once the
/// snapshot has begun (or why it could not), before any byte is written: the API answers with
/// its status then. Writes go on while it runs.
pub fn write_backup(
    node: &Node,
    now: DateTime<Utc>,
    started: impl FnOnce(Result<&BackupHeader, &StoreError>),
    out: impl Write,
) -> Result<BackupSummary, BackupError> {
    let snapshot = match node.store().snapshot(&[PEER_SYNC_META_PREFIX]) {
        Ok(snapshot) => snapshot,
        Err(error) => {
            started(Err(&error));
            return Err(error.into());
        }
    };
    let header = BackupHeader {
        format_version: BACKUP_FORMAT_VERSION,
        node_id: node.node_id().to_owned(),
        office: node.config().node.name.clone(),
        feed_position: snapshot.position(),
        taken_at: now,
        software_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    started(Ok(&header));
    let mut hashing = HashingWriter {
        inner: out,
        hasher: Sha256::new(),
    };
    let header_json = serde_json::to_vec(&header)
        .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, error))?;
    hashing.write_all(BACKUP_MAGIC)?;
    write_field(&mut hashing, &header_json)?;
    let mut body = flate2::write::GzEncoder::new(&mut hashing, flate2::Compression::fast());
    let mut files = 0u64;
    for (name, path) in node_files(node.dir()) {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => {
                return Err(BackupError::File {
                    path: path.display().to_string(),
                    error,
                });
            }
        };
        body.write_all(&[RECORD_FILE])?;
        write_field(&mut body, name.as_bytes())?;
        write_field(&mut body, &bytes)?;
        files += 1;
    }
    let counts: SnapshotCounts = snapshot.write_to(|entry: SnapshotEntry| {
        body.write_all(&[RECORD_STORE_ENTRY])?;
        write_field(&mut body, entry.tree.as_bytes())?;
        write_field(&mut body, &entry.key)?;
        write_field(&mut body, &entry.value)?;
        Ok::<(), BackupError>(())
    })?;
    body.write_all(&[RECORD_END])?;
    body.write_all(&files.to_be_bytes())?;
    body.write_all(&counts.cases.to_be_bytes())?;
    body.write_all(&counts.entries.to_be_bytes())?;
    body.finish()?;
    let checksum = hashing.hasher.finalize();
    let mut out = hashing.inner;
    out.write_all(&checksum)?;
    out.flush()?;
    Ok(BackupSummary {
        header,
        files,
        cases: counts.cases,
        entries: counts.entries,
    })
}

/// Reads a backup file's header and checks its whole checksum, reading nothing else: `Ok` means
/// the file is whole, as its writer finished it, and of a format this build restores.
pub fn check_backup_file(path: &Path) -> anyhow::Result<BackupHeader> {
    let damaged = || {
        format!(
            "{} is damaged or truncated: its checksum does not match its contents, so it is not \
             restored (take a new backup, or use another copy)",
            path.display()
        )
    };
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let length = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    let mut reader = BufReader::new(&mut file);
    let header = read_header(&mut reader, path)?;
    let header_end = BACKUP_MAGIC.len() as u64 + 4 + header.1;
    let Some(body_length) = length.checked_sub(header_end + CHECKSUM_BYTES as u64) else {
        bail!(damaged());
    };
    let mut hasher = Sha256::new();
    hasher.update(BACKUP_MAGIC);
    hasher.update((header.1 as u32).to_be_bytes());
    hasher.update(&header.2);
    let copied = std::io::copy(
        &mut (&mut reader).take(body_length),
        &mut HasherSink(&mut hasher),
    )
    .with_context(|| format!("cannot read {}", path.display()))?;
    let mut stored = [0u8; CHECKSUM_BYTES];
    if copied != body_length || reader.read_exact(&mut stored).is_err() {
        bail!(damaged());
    }
    if hasher.finalize().as_slice() != stored {
        bail!(damaged());
    }
    Ok(header.0)
}

struct HasherSink<'h>(&'h mut Sha256);

impl Write for HasherSink<'_> {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        self.0.update(buffer);
        Ok(buffer.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The header, its length and its bytes; refuses what is not a backup or is of another format
/// version, naming it.
fn read_header(
    reader: &mut impl Read,
    path: &Path,
) -> anyhow::Result<(BackupHeader, u64, Vec<u8>)> {
    let not_a_backup = || {
        format!(
            "{} is not a Fengqiao backup (it does not begin as one; a backup is written by \
             `fengqiao backup --to FILE`)",
            path.display()
        )
    };
    let mut magic = [0u8; BACKUP_MAGIC.len()];
    reader.read_exact(&mut magic).with_context(not_a_backup)?;
    if &magic != BACKUP_MAGIC {
        bail!(not_a_backup());
    }
    let mut length = [0u8; 4];
    reader
        .read_exact(&mut length)
        .with_context(|| format!("{} is truncated: it ends inside its header", path.display()))?;
    let length = u32::from_be_bytes(length);
    if length > MAX_BACKUP_HEADER_BYTES {
        bail!(
            "{} is damaged: its header claims {length} bytes",
            path.display()
        );
    }
    let mut bytes = vec![0u8; length as usize];
    reader
        .read_exact(&mut bytes)
        .with_context(|| format!("{} is truncated: it ends inside its header", path.display()))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is damaged: its header is not readable", path.display()))?;
    let version = value
        .get("format_version")
        .and_then(serde_json::Value::as_u64);
    if version != Some(u64::from(BACKUP_FORMAT_VERSION)) {
        let found = version.map_or_else(|| "no".to_owned(), |version| version.to_string());
        bail!(
            "{} is a backup of format version {found}; this build of fengqiao restores version \
             {BACKUP_FORMAT_VERSION} (restore it with the fengqiao version that wrote it, {})",
            path.display(),
            value
                .get("software_version")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("unknown")
        );
    }
    let header: BackupHeader = serde_json::from_value(value)
        .with_context(|| format!("{} is damaged: its header is not readable", path.display()))?;
    Ok((header, u64::from(length), bytes))
}

/// What a restore wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreSummary {
    pub header: BackupHeader,
    pub cases: u64,
}

/// Writes the node in the backup `file` into `dir`, which must not exist or be empty. The file
/// is checked whole first (magic, format version, checksum); the node is written beside `dir`
/// and moved into place only once complete, so `dir` never holds half a node.
pub fn restore(file: &Path, dir: &Path) -> anyhow::Result<RestoreSummary> {
    refuse_non_empty(dir)?;
    let header = check_backup_file(file)?;
    let parent = match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".fengqiao-restore-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot create a directory in {}", parent.display()))?;
    let cases = write_node(file, staging.path())?;
    refuse_non_empty(dir)?;
    if dir.exists() {
        std::fs::remove_dir(dir).with_context(|| format!("cannot replace {}", dir.display()))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, dir).with_context(|| {
        format!(
            "cannot move the restored node from {} to {}",
            staged.display(),
            dir.display()
        )
    })?;
    Ok(RestoreSummary { header, cases })
}

fn refuse_non_empty(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let mut entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    if entries.next().is_some() {
        bail!(
            "{} is not empty: a restore writes only into a new or empty directory, and never \
             over a node (choose another directory, or move this one away first)",
            dir.display()
        );
    }
    Ok(())
}

/// Reads a field of at most [`MAX_FIELD_BYTES`].
fn read_field(reader: &mut impl Read) -> anyhow::Result<Vec<u8>> {
    let mut length = [0u8; 4];
    reader.read_exact(&mut length)?;
    let length = u32::from_be_bytes(length);
    if length > MAX_FIELD_BYTES {
        bail!("a record field claims {length} bytes");
    }
    let mut bytes = vec![0u8; length as usize];
    reader.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn read_u64(reader: &mut impl Read) -> anyhow::Result<u64> {
    let mut bytes = [0u8; 8];
    reader.read_exact(&mut bytes)?;
    Ok(u64::from_be_bytes(bytes))
}

/// Writes the body of a checked backup into the empty directory `dir`; answers the cases.
fn write_node(file: &Path, dir: &Path) -> anyhow::Result<u64> {
    let opened = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let mut reader = BufReader::new(opened);
    read_header(&mut reader, file)?;
    let mut body = BufReader::new(flate2::read::GzDecoder::new(reader));
    let node_dir = NodeDir::new(dir);
    let mut store = StoreRestore::create(&node_dir.store_path())
        .with_context(|| format!("cannot create the store in {}", dir.display()))?;
    let (mut files, mut entries) = (0u64, 0u64);
    let unreadable = || format!("{} is damaged: its body does not read", file.display());
    loop {
        let mut tag = [0u8; 1];
        body.read_exact(&mut tag).with_context(unreadable)?;
        match tag[0] {
            RECORD_FILE => {
                let name = String::from_utf8(read_field(&mut body).with_context(unreadable)?)
                    .with_context(unreadable)?;
                let bytes = read_field(&mut body).with_context(unreadable)?;
                if !is_node_file(&name) {
                    bail!(
                        "{}: the backup holds an unexpected file {name:?}",
                        file.display()
                    );
                }
                write_file(&dir.join(&name), &bytes, is_secret_file(&name))?;
                files += 1;
            }
            RECORD_STORE_ENTRY => {
                let tree = String::from_utf8(read_field(&mut body).with_context(unreadable)?)
                    .with_context(unreadable)?;
                let key = read_field(&mut body).with_context(unreadable)?;
                let value = read_field(&mut body).with_context(unreadable)?;
                store
                    .add(&tree, &key, &value)
                    .with_context(|| format!("cannot restore {}", file.display()))?;
                entries += 1;
            }
            RECORD_END => {
                let written_files = read_u64(&mut body).with_context(unreadable)?;
                let written_cases = read_u64(&mut body).with_context(unreadable)?;
                let written_entries = read_u64(&mut body).with_context(unreadable)?;
                if (written_files, written_entries) != (files, entries) {
                    bail!(
                        "{} is damaged: it says it holds {written_files} files and \
                         {written_entries} store entries, but {files} and {entries} were read",
                        file.display()
                    );
                }
                let cases = store
                    .finish()
                    .with_context(|| format!("cannot restore {}", file.display()))?;
                if cases != written_cases {
                    bail!(
                        "{} is damaged: it says it holds {written_cases} cases, but {cases} \
                         were restored",
                        file.display()
                    );
                }
                if !NodeDir::exists(dir) || !node_dir.key_path().exists() {
                    bail!(
                        "{} holds no node configuration or key: it cannot make a node",
                        file.display()
                    );
                }
                return Ok(cases);
            }
            other => bail!("{} is damaged: unknown record {other}", file.display()),
        }
    }
}

/// Writes a restored file (a secret readable by its owner only), synced to disk.
fn write_file(path: &Path, bytes: &[u8], secret: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let mut writer = BufWriter::new(file);
    writer
        .write_all(bytes)
        .and_then(|()| writer.flush())
        .with_context(|| format!("cannot write {}", path.display()))?;
    writer
        .get_ref()
        .sync_all()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
