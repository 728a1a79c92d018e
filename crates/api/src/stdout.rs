//! A command's output on stdout. A reader that stops early (`| head`, `| grep -q`) is no failure
//! of the command: the rest is dropped without a word, where `print!` would panic (exit 101)
//! and skip what the command still had to do.

use std::io::Write;

/// Writes `text` at once; an error other than the reader gone is the command's.
pub fn emit(text: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("cannot write the output: {e}")),
        _ => Ok(()),
    }
}

/// Writes a line of a report whose loss harms nothing (the same is stored or printed
/// elsewhere): whatever fails is dropped.
pub fn say(line: &str) {
    let _ = emit(&format!("{line}\n"));
}
