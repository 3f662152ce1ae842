//! `s3torrent [--config PATH]`, `s3torrent check-config [PATH]`, `--help`, `--version`.

use std::path::PathBuf;
use std::process::ExitCode;

use s3torrent::config::{Config, DEFAULT_PATH};

/// EX_USAGE from sysexits.h: bad command line or configuration.
const EXIT_USAGE: u8 = 64;

const HELP: &str = "\
s3torrent — S3 reverse-proxy sidecar that answers GET /bucket/key?torrent

Usage:
  s3torrent [--config PATH]          run the sidecar (default config: config/s3torrent.toml)
  s3torrent check-config [PATH]      validate a configuration file, print the effective
                                     configuration (secrets redacted) and exit
  s3torrent --help | --version

Exit codes: 0 ok, 64 invalid command line or configuration, 1 failed to start.
Environment: S3TORRENT_UPSTREAM_ACCESS_KEY_ID, S3TORRENT_UPSTREAM_SECRET_ACCESS_KEY override
the [upstream] credentials; RUST_LOG sets the log level (default: info).
";

enum Command {
    Run(PathBuf),
    CheckConfig(PathBuf),
    Help,
    Version,
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    let default = || PathBuf::from(DEFAULT_PATH);
    match args {
        [] => Ok(Command::Run(default())),
        [flag] if flag == "--help" || flag == "-h" => Ok(Command::Help),
        [flag] if flag == "--version" || flag == "-V" => Ok(Command::Version),
        [flag, path] if flag == "--config" || flag == "-c" => Ok(Command::Run(path.into())),
        [cmd] if cmd == "check-config" => Ok(Command::CheckConfig(default())),
        [cmd, path] if cmd == "check-config" => Ok(Command::CheckConfig(path.into())),
        _ => Err(format!("unexpected arguments: {}", args.join(" "))),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("s3torrent: {e}\n\n{HELP}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let path = match command {
        Command::Help => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("s3torrent {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::CheckConfig(path) | Command::Run(path) => path,
    };
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("s3torrent: invalid configuration: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if matches!(parse_args(&args), Ok(Command::CheckConfig(_))) {
        print!(
            "# {}: ok; effective configuration (secrets redacted):\n{}",
            path.display(),
            config.effective_toml()
        );
        return ExitCode::SUCCESS;
    }

    s3torrent::logging::init(&config.log);
    let sidecar = match s3torrent::server::build(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("s3torrent: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    sidecar.run();
    ExitCode::SUCCESS
}
