//! `s3torrent [--config PATH]`, `s3torrent check-config [PATH]`, `s3torrent warm …`,
//! `--help`, `--version`.

use std::path::PathBuf;
use std::process::ExitCode;

use s3torrent::config::{Config, DEFAULT_PATH};
use s3torrent::warm::{Options, Target};

/// mimalloc instead of glibc's malloc: pingora allocates and frees many small buffers per
/// request, and glibc's arenas spent ~24k instructions a pass-through request on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// EX_USAGE from sysexits.h: bad command line or configuration.
const EXIT_USAGE: u8 = 64;

const HELP: &str = "\
s3torrent — S3 reverse-proxy sidecar that answers GET /bucket/key?torrent

Usage:
  s3torrent [--config PATH]          run the sidecar (default config: config/s3torrent.toml)
  s3torrent check-config [PATH]      validate a configuration file, print the effective
                                     configuration (secrets redacted) and exit
  s3torrent warm --config PATH s3://bucket/prefix [--concurrency N] [--page-size N]
                 [--metrics-file PATH] [--directory]
                                     store the torrent of every object under the prefix in
                                     the [store] bucket (skips stored ones: rerun to resume);
                                     N objects at a time (default 4), N keys per listing
                                     page; Prometheus text kept in PATH (textfile collector);
                                     --directory: the prefix's one directory torrent instead
  s3torrent --help | --version

Exit codes: 0 ok, 64 invalid command line or configuration, 1 failed to start (warm: an
object failed).
Environment: S3TORRENT_UPSTREAM_ACCESS_KEY_ID, S3TORRENT_UPSTREAM_SECRET_ACCESS_KEY override
the [upstream] credentials; RUST_LOG sets the log level (default: info).
";

enum Command {
    Run(PathBuf),
    CheckConfig(PathBuf),
    Warm {
        config: PathBuf,
        target: Target,
        options: Options,
    },
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
        [cmd, rest @ ..] if cmd == "warm" => parse_warm(rest),
        _ => Err(format!("unexpected arguments: {}", args.join(" "))),
    }
}

fn parse_warm(args: &[String]) -> Result<Command, String> {
    let (mut config, mut target, mut options) = (None, None, Options::default());
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match arg.as_str() {
            "--config" | "-c" => config = Some(PathBuf::from(value(arg)?)),
            "--concurrency" | "-j" => {
                options.concurrency = value(arg)?
                    .parse()
                    .ok()
                    .filter(|n| (1..=1024).contains(n))
                    .ok_or("--concurrency must be from 1 to 1024")?
            }
            "--metrics-file" => options.metrics_file = Some(PathBuf::from(value(arg)?)),
            "--directory" => options.directory = true,
            "--page-size" => {
                options.page_size = value(arg)?
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or("--page-size must be from 1 to 1000")?
            }
            url if url.starts_with("s3://") && target.is_none() => {
                target = Some(Target::parse(url)?)
            }
            other => return Err(format!("warm: unexpected argument {other:?}")),
        }
    }
    Ok(Command::Warm {
        config: config.unwrap_or_else(|| PathBuf::from(DEFAULT_PATH)),
        target: target.ok_or("warm: name what to warm, s3://bucket/prefix")?,
        options,
    })
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("s3torrent: invalid configuration: {e}");
        ExitCode::from(EXIT_USAGE)
    })
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
        Command::Warm {
            config,
            target,
            options,
        } => {
            let config = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            s3torrent::telemetry::logging::init(&config.log);
            return s3torrent::warm::main(config, target, options);
        }
        Command::CheckConfig(path) | Command::Run(path) => path,
    };
    let config = match load(&path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if matches!(parse_args(&args), Ok(Command::CheckConfig(_))) {
        print!(
            "# {}: ok; effective configuration (secrets redacted):\n{}",
            path.display(),
            config.effective_toml()
        );
        return ExitCode::SUCCESS;
    }

    s3torrent::telemetry::logging::init(&config.log);
    let sidecar = match s3torrent::ops::server::build(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("s3torrent: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    sidecar.run();
    ExitCode::SUCCESS
}
