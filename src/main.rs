//! Command line: parse and dispatch, nothing else.
use clap::{Args, Parser, Subcommand, ValueEnum};
use staticd::collect::{self, naming::HashAlgo, report::Log, CollectOptions};
use staticd::django::{self, DiscoverOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "staticd",
    version,
    about = "Django's collectstatic and static tier in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Collect, fingerprint, rewrite and precompress static files into STATIC_ROOT.
    Collect(CollectArgs),
    /// Serve STATIC_URL from STATIC_ROOT (and proxy everything else upstream).
    Serve(Box<staticd::serve::ServeArgs>),
}

/// Where the project's facts come from (shared by every subcommand that takes a project).
#[derive(Args, Debug, Clone)]
struct ProjectArgs {
    /// Directory with manage.py (or staticd.toml).
    #[arg(default_value = ".")]
    project: PathBuf,
    /// Settings module (default: the one manage.py sets).
    #[arg(long)]
    settings: Option<String>,
    /// Python interpreter of the project (default: $VIRTUAL_ENV, PROJECT/.venv, python3).
    #[arg(long)]
    python: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct CollectArgs {
    #[command(flatten)]
    project: ProjectArgs,
    /// Delete the files of STATIC_ROOT before publishing (directories stay).
    #[arg(short = 'c', long)]
    clear: bool,
    /// Print what would be collected; change nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Ignore files, directories or paths matching this glob (repeatable).
    #[arg(short = 'i', long = "ignore", value_name = "PATTERN")]
    ignore: Vec<String>,
    /// Don't use the default ignore patterns (CVS, .*, *~).
    #[arg(long)]
    no_default_ignore: bool,
    /// Copy only: no hashed names, no rewriting, no manifest, no compression.
    #[arg(long)]
    no_post_process: bool,
    /// Symlink the unhashed originals to their sources instead of copying them.
    #[arg(short = 'l', long)]
    link: bool,
    /// 0 = errors only, 1 = summary, 2 = every file, 3 = everything.
    #[arg(short = 'v', long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=3))]
    verbosity: u8,
    /// Summary format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Digest in hashed names: blake3 (default) or md5 (Django's exact names).
    #[arg(long, value_enum, default_value_t = HashAlgo::Blake3)]
    hash: HashAlgo,
    /// Rewrite ES module imports even if the storage does not enable them.
    #[arg(long)]
    js_modules: bool,
    /// Write no .br/.gz/.zst variants.
    #[arg(long)]
    no_compress: bool,
    /// Also write .zst variants (off by default; see README).
    #[arg(long)]
    zstd: bool,
    /// Accepted for compatibility with collectstatic: staticd never prompts.
    #[arg(long = "noinput", alias = "no-input", hide = true)]
    _noinput: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Collect(args) => run_collect(args),
        Command::Serve(args) => staticd::serve::run(*args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_collect(args: CollectArgs) -> anyhow::Result<()> {
    // Warnings of the library (e.g. publish falling back to per-file renames) go to stderr.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
    let discovery = django::discover(&DiscoverOptions {
        project: args.project.project.clone(),
        python: args.project.python.clone(),
        settings: args.project.settings.clone(),
        extra_ignore: args.ignore.clone(),
        no_default_ignore: args.no_default_ignore,
    })?;
    let opts = CollectOptions {
        clear: args.clear,
        dry_run: args.dry_run,
        no_post_process: args.no_post_process,
        link: args.link,
        verbosity: args.verbosity,
        hash: args.hash,
        js_modules: args.js_modules,
        compress: !args.no_compress,
        zstd: args.zstd,
        progress: true,
    };
    let json = args.format == Format::Json;
    let log = Log::new(args.verbosity, json);
    let summary = collect::collect(&discovery, &opts, &log)?;
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    } else if args.verbosity >= 1 {
        println!("\n{}", summary.django_line());
    }
    Ok(())
}
