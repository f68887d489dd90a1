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
