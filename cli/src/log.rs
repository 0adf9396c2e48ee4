//! The command's `tracing` subscriber: the library's warnings and errors
//! (a failing sink, a key file others can read) on standard error; more
//! with `-v` (info) and `-vv` (debug). Every message and field is made
//! terminal-safe.

use std::fmt::Write as _;
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Metadata, Subscriber, span};

use crate::terminal_safe;

/// Writes events at or above a level to standard error, one line each.
struct Stderr {
    max: Level,
}

/// Installs the subscriber: warnings and errors by default, info with one
/// `-v`, debug with two, trace with more.
pub fn install(verbose: u8) {
    let max = match verbose {
        0 => Level::WARN,
        1 => Level::INFO,
        2 => Level::DEBUG,
        _ => Level::TRACE,
    };
    // Fails only if a subscriber is already set, which `main` does not do.
    let _ = tracing::subscriber::set_global_default(Stderr { max });
}

/// Collects an event's message and its other fields.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let sep = if self.fields.is_empty() { "" } else { ", " };
            let _ = write!(self.fields, "{sep}{}={value:?}", field.name());
        }
    }
}

impl Subscriber for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::from_level(self.max))
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = Line::default();
        event.record(&mut line);
        let metadata = event.metadata();
        let level = match *metadata.level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        let mut text = format!("auditring: {level}: {}", line.message);
        if !line.fields.is_empty() {
            let _ = write!(text, " ({})", line.fields);
        }
        if self.max >= Level::DEBUG {
            let _ = write!(text, " [{}]", metadata.target());
        }
        let _ = writeln!(std::io::stderr().lock(), "{}", terminal_safe::escape(&text));
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}
