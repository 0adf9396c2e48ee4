//! `auditring`: key management and verification of auditring logs.
//!
//! Exit status: 0 success (for `verify`: the log is intact), 1 the log shows
//! tampering, 2 usage or I/O error, 3 the log is authentic but incomplete.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use auditring::verify::{Report, Status, Verifier};
use auditring::{PublicKey, SigningKey};
use clap::{Parser, Subcommand};

/// Exit status for usage and I/O errors.
const USAGE_OR_IO: u8 = 2;

#[derive(Parser)]
#[command(
    name = "auditring",
    version,
    about = "Keys and verification for auditring's signed audit logs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate an ECDSA P-256 signing key (PKCS#8 PEM, file mode 0600).
    Keygen {
        /// Where to write the private key; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public key (SPKI PEM) of a private key, for verifiers.
    Pubkey {
        /// The private key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Verify log files (oldest first) against trusted public keys.
    ///
    /// Exit status: 0 intact, 1 tampered, 3 incomplete (loss, unsealed
    /// tail, no close seal), 2 usage or I/O error.
    Verify {
        /// A trusted public key (PEM or DER); repeat for rotated keys.
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Print only the verdict line.
        #[arg(long, short)]
        quiet: bool,
        /// The log files, oldest first.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keygen { out } => keygen(&out),
        Command::Pubkey { key } => pubkey(&key),
        Command::Verify {
            keys,
            json,
            quiet,
            files,
        } => verify(&keys, json, quiet, &files),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("auditring: {message}");
            ExitCode::from(USAGE_OR_IO)
        }
    }
}

fn keygen(out: &Path) -> Result<u8, String> {
    let key = SigningKey::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(out).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => format!(
            "{} already exists: refusing to overwrite a key (remove it first, or choose another path)",
            out.display()
        ),
        _ => format!("cannot create {}: {e}", out.display()),
    })?;
    file.write_all(key.to_pkcs8_pem().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    eprintln!(
        "wrote private key {} (key id {})",
        out.display(),
        key.key_id()
    );
    eprintln!(
        "public key for verifiers: auditring pubkey --key {}",
        out.display()
    );
    Ok(0)
}

fn pubkey(path: &Path) -> Result<u8, String> {
    let key = SigningKey::from_file(path).map_err(|e| e.to_string())?;
    print!("{}", key.public_key().to_pem());
    Ok(0)
}

fn verify(keys: &[PathBuf], json: bool, quiet: bool, files: &[PathBuf]) -> Result<u8, String> {
    let keys = keys
        .iter()
        .map(|p| PublicKey::from_file(p).map_err(|e| format!("{}: {e}", p.display())))
        .collect::<Result<Vec<_>, _>>()?;
    let total: u64 = files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .map(|m| m.len())
                .map_err(|e| format!("cannot read {}: {e}", f.display()))
        })
        .sum::<Result<u64, _>>()?;
    let started = Instant::now();
    let show_progress = !json && !quiet && std::io::stderr().is_terminal() && total > 64 << 20;
    let mut last_draw = Instant::now();
    let report = Verifier::new(keys)
        .verify_files(files, |done| {
            if show_progress && last_draw.elapsed().as_millis() >= 200 {
                last_draw = Instant::now();
                draw_progress(done, total, started);
            }
        })
        .map_err(|e| e.to_string())?;
    if show_progress {
        eprint!("\r{:60}\r", "");
    }
    let status = report.status();
    if json {
        let out = serde_json::json!({
            "status": status,
            "report": report,
        });
        println!("{out}");
    } else {
        print_human(&report, quiet, started.elapsed().as_secs_f64());
    }
    Ok(status.exit_code() as u8)
}

fn draw_progress(done: u64, total: u64, started: Instant) {
    let width = 30;
    let fraction = if total == 0 {
        1.0
    } else {
        done as f64 / total as f64
    };
    let filled = ((fraction * width as f64) as usize).min(width);
    let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9) / 1e6;
    eprint!(
        "\rverifying [{}{}] {:5.1}% {:.0} MB/s",
        "#".repeat(filled),
        " ".repeat(width - filled),
        fraction * 100.0,
        rate
    );
}

fn print_human(report: &Report, quiet: bool, seconds: f64) {
    if !quiet {
        for finding in &report.findings {
            println!("{finding}");
        }
        if report.findings_not_kept > 0 {
            println!("... and {} more findings", report.findings_not_kept);
        }
    }
    let verdict = match report.status() {
        Status::Intact => "INTACT",
        Status::Incomplete => "INCOMPLETE",
        Status::Tampered => "TAMPERED",
    };
    println!(
        "{verdict}: {} lines, {} events ({} sealed), {} seals, {} run(s), {} dropped; {} tamper and {} incompleteness finding(s); {:.1} MB in {:.2}s",
        report.lines,
        report.events,
        report.sealed_events,
        report.seals,
        report.streams,
        report.dropped,
        report.tamper,
        report.incomplete,
        report.bytes as f64 / 1e6,
        seconds
    );
}
