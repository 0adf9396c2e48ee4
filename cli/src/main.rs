//! `auditring`: key management, verification, statistics and a readable
//! tail of auditring logs.
//!
//! Exit status: 0 success (for `verify`: the log is intact), 1 the log shows
//! tampering, 2 usage or I/O error, 3 the log is authentic but incomplete.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use auditring::Checkpoint;
use auditring::verify::{Report, Status, Verifier, VerifierState};
use auditring::{PublicKey, SigningKey};
use clap::{Parser, Subcommand};

mod fleet;
mod log;
mod logstats;
mod plot;
mod report;
mod runs;
mod stats;
mod tail;
mod terminal_safe;

/// Exit status for usage and I/O errors.
const USAGE_OR_IO: u8 = 2;

#[derive(Parser)]
#[command(
    name = "auditring",
    version,
    about = "Keys and verification for auditring's signed audit logs"
)]
struct Cli {
    /// Show more of the library's diagnostics on standard error: -v info,
    /// -vv debug (default: warnings and errors).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
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
    /// Record simulated gateway decisions into a signed log file (a load
    /// generator for trying the pipeline and the verifier). Continues an
    /// existing log. Prints `sealed <n>` after every batch it knows is
    /// written (and synced, with `--fsync every-batch`).
    Demo {
        /// The private signing key.
        #[arg(long)]
        key: PathBuf,
        /// The log file.
        #[arg(long)]
        out: PathBuf,
        /// Events to record; 0 records until killed.
        #[arg(long, default_value_t = 10_000)]
        events: u64,
        /// Events per seal.
        #[arg(long, default_value_t = 1024)]
        max_batch: usize,
        /// When to fsync: never, every-batch, or a number of milliseconds.
        #[arg(long, default_value = "every-batch")]
        fsync: String,
        /// Rotate the file at this many bytes.
        #[arg(long)]
        rotate_bytes: Option<u64>,
    },
    /// Latency percentiles and event counts per action and decision, read
    /// from a log (verified on the way when --key is given), and the
    /// runtime's stage histograms (.hgrm files). Several logs (or .hgrm
    /// files of the same stage) are compared: the plot overlays them and a
    /// table gives the differences.
    Stats {
        /// A trusted public key; with it, every log is verified in the same pass.
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
        /// Also write a latency percentile plot (SVG) to this file.
        #[arg(long)]
        plot: Option<PathBuf>,
        /// Also print each histogram in the HdrHistogram percentile-distribution format.
        #[arg(long)]
        distribution: bool,
        /// Logs (each its active file; its rotated files are found, or
        /// give them together) and .hgrm files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Write a self-contained HTML report of logs: the verification
    /// verdict and findings, counts, latency tables and plots per action
    /// and decision, and the pipeline's stage histograms (the .hgrm files
    /// beside the log, or given). Exit status as for `verify`.
    Report {
        /// A trusted public key (PEM or DER); repeat for rotated keys.
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// Where to write the HTML page.
        #[arg(long)]
        out: PathBuf,
        /// Logs and .hgrm files; several logs are compared.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print a log's records readably; with --follow, keep printing new ones.
    Tail {
        /// Keep printing records as they are written (follows rotation).
        #[arg(long, short)]
        follow: bool,
        /// How many of the last records to print first.
        #[arg(long, short = 'n', default_value_t = 20)]
        lines: usize,
        /// A trusted public key: verify the log first, show nothing if it
        /// is tampered, and show only sealed lines.
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
        /// The log file.
        file: PathBuf,
    },
    /// Verify a log against trusted public keys.
    ///
    /// Given one path (the active file), its rotated files (PATH.1,
    /// PATH.2, ...) are found and ordered by their chain; given several,
    /// they are read in the order given.
    ///
    /// Exit status: 0 intact, 1 tampered, 3 incomplete (loss, unsealed
    /// tail, torn line, no close seal), 2 usage or I/O error.
    Verify {
        /// A trusted public key (PEM or DER); repeat for rotated keys.
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        #[command(flatten)]
        options: VerifyOptions,
        /// The log: its active file, or its files oldest first.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the checkpoint of a log's last verified seal (one JSON line),
    /// to keep elsewhere and check later with `verify --expect`.
    ///
    /// Exit status: 0 printed, 1 the log is tampered (nothing printed), 3
    /// no verified seal, 2 usage or I/O error.
    Head {
        /// A trusted public key (PEM or DER); repeat for rotated keys.
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// The log: its active file, or its files oldest first.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Ship a gateway's log to NATS JetStream (a sidecar): every sealed
    /// batch, once, in order, at a lower priority than the gateway.
    /// SIGTERM or SIGINT stops it cleanly: the cursor saved, the final
    /// report line printed.
    ///
    /// Exit status: 0, 1 if the server was found behind the cursor, 2
    /// usage or I/O error.
    Ship(fleet::ShipOptions),
    /// Collect every gateway's batches from NATS JetStream: verify each
    /// chain, archive it, checkpoint it, and report per gateway. SIGTERM or
    /// SIGINT ends it after the poll under way, with the final report.
    ///
    /// Exit status: 0, 1 if a gateway is tampered, 2 usage or I/O error.
    Collect(fleet::CollectOptions),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    log::install(cli.verbose);
    let result = match cli.command {
        Command::Keygen { out } => keygen(&out),
        Command::Pubkey { key } => pubkey(&key),
        Command::Demo {
            key,
            out,
            events,
            max_batch,
            fsync,
            rotate_bytes,
        } => demo(&key, &out, events, max_batch, &fsync, rotate_bytes),
        Command::Verify {
            keys,
            options,
            files,
        } => verify(&keys, &options, &files),
        Command::Head { keys, files } => head(&keys, &files),
        Command::Ship(options) => fleet::ship(&options),
        Command::Collect(options) => fleet::collect(&options),
        Command::Stats {
            keys,
            plot,
            distribution,
            files,
        } => stats::run(&keys, plot.as_deref(), distribution, &files),
        Command::Report { keys, out, files } => report::run(&keys, &out, &files),
        Command::Tail {
            follow,
            lines,
            keys,
            file,
        } => load_keys(&keys).and_then(|keys| tail::run(&file, lines, follow, keys)),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("auditring: {}", terminal_safe::escape(&message));
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

fn demo(
    key: &Path,
    out: &Path,
    events: u64,
    max_batch: usize,
    fsync: &str,
    rotate_bytes: Option<u64>,
) -> Result<u8, String> {
    use auditring::sink::{FileSink, FsyncPolicy};
    use auditring::{AuditPayload, Decision, FullPolicy, Runtime};

    let key = SigningKey::from_file(key).map_err(|e| e.to_string())?;
    let policy = match fsync {
        "never" => FsyncPolicy::Never,
        "every-batch" => FsyncPolicy::EveryBatch,
        ms => FsyncPolicy::Interval(std::time::Duration::from_millis(ms.parse().map_err(
            |_| format!("--fsync {ms:?}: use never, every-batch, or a number of milliseconds"),
        )?)),
    };
    let mut sink = FileSink::builder(out).fsync(policy);
    if let Some(bytes) = rotate_bytes {
        sink = sink.rotate_bytes(bytes);
    }
    let sink = sink.open().map_err(|e| e.to_string())?;
    let runtime = Runtime::<AuditPayload>::builder()
        .signing_key(key)
        .sink(sink)
        .max_batch(max_batch)
        .max_delay(std::time::Duration::from_millis(5))
        .full_policy(FullPolicy::Block)
        .build()
        .map_err(|e| e.to_string())?;
    let mut recorder = runtime.recorder().map_err(|e| e.to_string())?;
    let mut stdout = std::io::stdout();
    let mut reported = 0;
    let mut i = 0u64;
    while events == 0 || i < events {
        recorder
            .record(|e| {
                e.set_session_id("demo-session")
                    .set_agent_id("demo-agent")
                    .set_action(if i.is_multiple_of(3) {
                        "http.post"
                    } else {
                        "http.get"
                    })
                    .set_resource("https://api.example.com/v1/orders");
                e.decision = if i.is_multiple_of(10) {
                    Decision::Deny
                } else {
                    Decision::Allow
                };
                if i.is_multiple_of(10) {
                    e.set_deny_reason("demo deny");
                }
                e.enforcement_latency_us = 5 + i % 20;
                e.response_size = i;
            })
            .map_err(|e| e.to_string())?;
        i += 1;
        if i.is_multiple_of(256) {
            let sealed = runtime.stats().sealed;
            if sealed != reported {
                reported = sealed;
                let _ = writeln!(stdout, "sealed {sealed}");
                let _ = stdout.flush();
            }
        }
    }
    drop(recorder);
    let report = runtime.shutdown().map_err(|e| e.to_string())?;
    let _ = writeln!(stdout, "sealed {}", report.sealed);
    eprintln!(
        "recorded {} events into {} ({} seals, {} sink errors)",
        report.sealed,
        out.display(),
        report.seals,
        report.sink_errors
    );
    Ok(0)
}

fn load_keys(keys: &[PathBuf]) -> Result<Vec<PublicKey>, String> {
    keys.iter()
        .map(|p| PublicKey::from_file(p).map_err(|e| format!("{}: {e}", p.display())))
        .collect()
}

/// The log's files, opened: one path is an active file whose rotated
/// files are found (safely against a rotation meanwhile); several are
/// taken as given.
fn log_files(files: &[PathBuf]) -> Result<Vec<(PathBuf, std::fs::File)>, String> {
    match files {
        [one] => auditring::verify::log_files_opened(one)
            .map_err(|e| format!("cannot list the files of {}: {e}", one.display())),
        many => many
            .iter()
            .map(|p| {
                std::fs::File::open(p)
                    .map(|f| (p.clone(), f))
                    .map_err(|e| format!("cannot read {}: {e}", p.display()))
            })
            .collect(),
    }
}

/// How `verify` reports, and what it checks and keeps beyond the log.
#[derive(clap::Args)]
struct VerifyOptions {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Print only the verdict line.
    #[arg(long, short)]
    quiet: bool,
    /// A checkpoint file (from `auditring head` or --checkpoint-out):
    /// the log must still contain that seal, else the finding is
    /// `truncated` (exit 1).
    #[arg(long)]
    expect: Option<PathBuf>,
    /// Write the checkpoint of the last verified seal reached to this
    /// file (not written when the log is tampered).
    #[arg(long)]
    checkpoint_out: Option<PathBuf>,
    /// Continue from a state saved by --state-out: only the bytes
    /// appended since are read.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Save the verifier's state here, to --resume later.
    #[arg(long)]
    state_out: Option<PathBuf>,
}

fn read_checkpoint(path: &Path) -> Result<Checkpoint, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read checkpoint {}: {e}", path.display()))?;
    Checkpoint::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn verify(keys: &[PathBuf], options: &VerifyOptions, files: &[PathBuf]) -> Result<u8, String> {
    let keys = load_keys(keys)?;
    let files = log_files(files)?;
    let mut verifier = Verifier::new(keys);
    if let Some(path) = &options.expect {
        verifier = verifier.expect_checkpoint(read_checkpoint(path)?);
    }
    let total: u64 = files
        .iter()
        .map(|(path, file)| {
            file.metadata()
                .map(|m| m.len())
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
        })
        .sum::<Result<u64, _>>()?;
    let started = Instant::now();
    let show_progress =
        !options.json && !options.quiet && std::io::stderr().is_terminal() && total > 64 << 20;
    let mut last_draw = Instant::now();
    let mut pass = match &options.resume {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read state {}: {e}", path.display()))?;
            verifier.resume(
                VerifierState::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))?,
            )
        }
        None => verifier.start(),
    };
    pass.feed_opened(files, &mut |done| {
        if show_progress && last_draw.elapsed().as_millis() >= 200 {
            last_draw = Instant::now();
            draw_progress(done, total, started);
        }
    })
    .map_err(|e| e.to_string())?;
    if show_progress {
        eprint!("\r{:60}\r", "");
    }
    if let Some(path) = &options.state_out {
        write_file(path, &pass.state().to_json())?;
    }
    let checkpoint = pass.checkpoint();
    let report = pass.finish();
    let status = report.status();
    if let Some(path) = &options.checkpoint_out {
        match checkpoint {
            Some(c) if status != Status::Tampered => write_file(path, &(c.to_json() + "\n"))?,
            _ => eprintln!(
                "auditring: no checkpoint written to {}: the log {}",
                path.display(),
                if status == Status::Tampered {
                    "is tampered"
                } else {
                    "has no verified seal"
                }
            ),
        }
    }
    // A closed output (`| head`) ends the listing, not the verdict.
    let _ = if options.json {
        let out = serde_json::json!({
            "status": status,
            "report": report,
            "checkpoint": checkpoint,
        });
        writeln!(std::io::stdout().lock(), "{out}")
    } else {
        print_human(&report, options.quiet, started.elapsed().as_secs_f64())
    };
    Ok(status.exit_code() as u8)
}

fn head(keys: &[PathBuf], files: &[PathBuf]) -> Result<u8, String> {
    let keys = load_keys(keys)?;
    let files = log_files(files)?;
    let verifier = Verifier::new(keys);
    let mut pass = verifier.start();
    pass.feed_opened(files, &mut |_| {})
        .map_err(|e| e.to_string())?;
    let checkpoint = pass.checkpoint();
    let report = pass.finish();
    if report.status() == Status::Tampered {
        eprintln!(
            "auditring: the log is TAMPERED ({} finding(s)): no checkpoint printed; run `auditring verify` for details",
            report.tamper
        );
        return Ok(1);
    }
    let Some(checkpoint) = checkpoint else {
        eprintln!("auditring: the log has no verified seal: nothing to anchor");
        return Ok(3);
    };
    let _ = writeln!(std::io::stdout().lock(), "{}", checkpoint.to_json());
    eprintln!(
        "checkpoint: {checkpoint}; keep it elsewhere and check with `auditring verify --expect FILE`"
    );
    Ok(0)
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

fn print_human(report: &Report, quiet: bool, seconds: f64) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if !quiet {
        for finding in &report.findings {
            // A finding's detail can quote the log (a damaged seal line).
            writeln!(out, "{}", terminal_safe::escape(&finding.to_string()))?;
        }
        if report.findings_not_kept > 0 {
            writeln!(out, "... and {} more findings", report.findings_not_kept)?;
        }
    }
    let verdict = match report.status() {
        Status::Intact => "INTACT",
        Status::Incomplete => "INCOMPLETE",
        Status::Tampered => "TAMPERED",
    };
    writeln!(
        out,
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
    )
}
