//! `fdbox ls`: what the holder daemon holds.

use anyhow::{Context, Result};
use clap::Args;
use fdbox_host::Device;
use fdbox_host::device::daemon::{DaemonDevice, default_socket_path};
use std::path::PathBuf;

/// Arguments of `fdbox ls`.
#[derive(Args)]
pub struct LsArgs {
    /// The daemon's socket [default: as for `fdbox daemon`]
    #[arg(long, env = "FDBOX_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,

    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

/// List boxes, their seal, and their entries.
pub fn run(args: LsArgs) -> Result<()> {
    let socket = args.socket.unwrap_or_else(default_socket_path);
    let device = DaemonDevice::connect(&socket).with_context(|| {
        format!(
            "no fdbox daemon answers at {} (`fdbox run` starts one)",
            socket.display()
        )
    })?;
    let mut boxes = Vec::new();
    for status in device.boxes()? {
        let entries = device.entries(&status.name)?;
        boxes.push((status, entries));
    }
    if args.json {
        let json: Vec<_> = boxes
            .iter()
            .map(|(status, entries)| {
                serde_json::json!({
                    "name": status.name.as_str(),
                    "sealed": status.sealed,
                    "bytes": bytes(entries),
                    "entries": entries.iter().map(|e| serde_json::json!({
                        "name": e.name.as_str(),
                        "kind": e.kind.as_str(),
                        "size": e.size,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    if boxes.is_empty() {
        println!("no boxes at {}", socket.display());
    }
    for (status, entries) in &boxes {
        let seal = if status.sealed { "sealed" } else { "unsealed" };
        println!(
            "{}  ({seal}, {} entries, {} bytes)",
            printable(status.name.as_str()),
            entries.len(),
            bytes(entries)
        );
        for e in entries {
            let size = e.size.map(|s| format!("  {s} bytes")).unwrap_or_default();
            println!(
                "  {}  {}{size}",
                printable(e.name.as_str()),
                e.kind.as_str()
            );
        }
    }
    Ok(())
}

/// The bytes a box's files and memory files hold together.
fn bytes(entries: &[fdbox_host::device::EntryInfo]) -> u64 {
    entries.iter().filter_map(|e| e.size).sum()
}

/// A name as it may be shown on a terminal: a guest chooses names, and a
/// newline or an escape sequence in one must not reach the operator's
/// screen. Control characters (and backslashes, so the escape is
/// unambiguous) are escaped as Rust does (`\n`, `\u{1b}`); everything else
/// is shown as it is.
fn printable(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_control() || c == '\\' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            super::printable("a\nb\u{1b}[2Jc\\d é"),
            "a\\nb\\u{1b}[2Jc\\\\d é"
        );
    }
}
