use clap::Parser;
use gt::cli::Cli;
use gt::error::exit;
use std::io::IsTerminal;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => e.exit(), // help/version exit 0, usage errors exit 2
    };
    init_tracing(cli.global.verbose, cli.global.quiet);
    // Crash tests arm named fail points with FAILPOINTS=name=panic (see tests/).
    #[cfg(feature = "failpoints")]
    let _scenario = fail::FailScenario::setup();
    let code = match gt::cli::run(&cli) {
        Ok(()) => exit::OK,
        Err(e) => {
            let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let (red, bold, reset) = if color {
                ("\x1b[31m", "\x1b[1m", "\x1b[0m")
            } else {
                ("", "", "")
            };
            // An error can quote what an agent wrote: escaped like all such text.
            let safe = gt::cli::output::safe;
            eprintln!("{red}{bold}error:{reset} {}", safe(&e.to_string()));
            if let Some(h) = e.hint() {
                eprintln!("{bold}hint:{reset} {}", safe(&h));
            }
            e.exit_code()
        }
    };
    std::process::exit(code);
}

/// Diagnostics go to stderr. For people (no -v, or -v) they read like the rest of gt's
/// output: `warning: …`, `error: …`, no timestamps or module paths; -q keeps only
/// errors; -vv and more show the full trace format for debugging.
fn init_tracing(verbose: u8, quiet: bool) {
    let level = match (verbose, quiet) {
        (0, true) => "error",
        (0, false) => "warn",
        (1, _) => "info",
        (2, _) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color);
    if verbose >= 2 {
        builder.init();
    } else {
        builder.event_format(Plain { color }).init();
    }
}

/// `warning: message` (the level as a word, then the message and its fields).
struct Plain {
    color: bool,
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Plain
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use tracing::Level;
        let (label, color) = match *event.metadata().level() {
            Level::ERROR => ("error", "\x1b[31m"),
            Level::WARN => ("warning", "\x1b[33m"),
            Level::INFO => ("info", ""),
            _ => ("debug", ""),
        };
        if self.color {
            write!(writer, "{color}\x1b[1m{label}:\x1b[0m ")?;
        } else {
            write!(writer, "{label}: ")?;
        }
        // Fields may quote what an agent wrote (a rejected request's reason, say).
        let mut text = String::new();
        ctx.field_format().format_fields(
            tracing_subscriber::fmt::format::Writer::new(&mut text),
            event,
        )?;
        writeln!(writer, "{}", gt::cli::output::safe(&text))
    }
}
