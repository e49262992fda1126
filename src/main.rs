use clap::Parser;
use gt::cli::Cli;
use gt::error::exit;
use std::io::IsTerminal;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => e.exit(), // help/version exit 0, usage errors exit 2
    };
    init_tracing(cli.global.verbose);
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
            eprintln!("{red}{bold}error:{reset} {e}");
            if let Some(h) = e.hint() {
                eprintln!("{bold}hint:{reset} {h}");
            }
            e.exit_code()
        }
    };
    std::process::exit(code);
}

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .init();
}
