//! User-facing output: what a command prints goes to stdout through here, made printable
//! (text typed at another office may hold control characters); logs go to stderr by `tracing`.

use std::io::Write;

use anyhow::Context;

use super::render;

/// Print JSON as the API sent it, pretty for people who look at it, with every control and
/// text-direction character in a string escaped (the same values for a script).
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("encode JSON")?;
    emit(render::printable_json(&text))
}

/// Print to stdout, through [`render::printable`]: whatever a command prints may hold text typed
/// at another office. A closed pipe (`| head`) ends the output quietly instead of panicking.
pub fn emit(text: impl std::fmt::Display) -> anyhow::Result<()> {
    let text = text.to_string();
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{}", render::printable(&text)).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(error) => Err(error).context("cannot write to stdout"),
    }
}

/// Write a file whole or not at all: `write` fills a temporary file beside `path`, which is
/// synced and renamed over `path` only if it succeeded, so a failure (a download broken off, a
/// full disk) leaves no half file where a person will look for it.
pub fn write_file_whole<T>(
    path: &std::path::Path,
    write: impl FnOnce(&mut std::fs::File) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => std::path::Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(directory)
        .with_context(|| format!("cannot write in {}", directory.display()))?;
    let written = write(file.as_file_mut())?;
    file.as_file()
        .sync_all()
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(written)
}
