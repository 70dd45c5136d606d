//! Command line: parse and dispatch, nothing else.
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use staticd::collect::bundler::Globs;
use staticd::collect::missing::{Policy, Rule};
use staticd::collect::{self, cache::Cache, naming::HashAlgo, report::Log, CollectOptions};
use staticd::django::{self, DiscoverOptions};
use staticd::serve::resolve::{self, Failure, Loaded};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// glibc's malloc, over-aligned blocks included (see `staticd::alloc`).
#[global_allocator]
static ALLOCATOR: staticd::alloc::Allocator = staticd::alloc::Allocator;

#[derive(Parser)]
#[command(
    name = "staticd",
    version,
    about = "Django's collectstatic and static tier in one binary",
    // As argparse (Django's parser): a flag given twice is not an error, the last one wins.
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Collect, fingerprint, rewrite and precompress static files into STATIC_ROOT.
    Collect(CollectArgs),
    /// Serve STATIC_URL from STATIC_ROOT (and proxy everything else upstream). Options come
    /// from flags, then STATICD_* variables, then PROJECT/staticd.toml; SIGHUP reloads them.
    Serve(Box<staticd::serve::ServeArgs>),
    /// Check serve's configuration (staticd.toml, STATICD_* variables, flags), discovery and
    /// STATIC_ROOT: exit 0 with a one-line summary, or list every problem and exit 1.
    Check(Box<staticd::serve::ServeArgs>),
    /// Development: collect --watch and serve in one process.
    Dev(Box<DevArgs>),
    /// Delete hashed files of generations older than the last N (only files staticd wrote).
    Prune(PruneArgs),
    /// Print a shell completion script, e.g. `staticd completions bash > /etc/bash_completion.d/staticd`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print a manual page (roff): `staticd man > staticd.1`, `staticd man collect > staticd-collect.1`.
    Man {
        /// The subcommand whose page to print (default: staticd's own).
        command: Option<String>,
    },
    /// Upload STATIC_ROOT's current generation to S3-compatible storage, manifest last.
    Publish(PublishArgs),
}

#[derive(Args, Debug)]
struct PublishArgs {
    /// Where: s3://BUCKET/PREFIX (endpoint, region and the like in staticd.toml's [publish]
    /// and the AWS_* variables; credentials in the AWS_* variables only).
    #[arg(value_name = "s3://BUCKET/PREFIX")]
    url: String,
    #[command(flatten)]
    project: ProjectArgs,
    /// Summary format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// 0 = errors only, 1 = summary, 2 = every object.
    #[arg(short = 'v', long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=3))]
    verbosity: u8,
}

#[derive(Args, Debug)]
struct PruneArgs {
    #[command(flatten)]
    project: ProjectArgs,
    /// Generations whose hashed files stay (the current one included).
    #[arg(long, default_value_t = 2)]
    keep_generations: usize,
    /// Print what would be deleted; delete nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// 0 = errors only, 1 = summary, 2 = every file.
    #[arg(short = 'v', long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=3))]
    verbosity: u8,
    /// Prune the generations published to s3://BUCKET/PREFIX instead of STATIC_ROOT's.
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    remote: Option<String>,
}

#[derive(Args, Debug)]
struct DevArgs {
    #[command(flatten)]
    serve: staticd::serve::ServeArgs,
    /// Digest in hashed names.
    #[arg(long, value_enum, default_value_t = HashAlgo::Blake3)]
    hash: HashAlgo,
    /// Also write .br/.gz variants. Off in development: brotli 11 on every save would
    /// dominate the edit-to-reload time, and the server answers identity just as well.
    #[arg(long)]
    compress: bool,
    /// What a reference to a missing file does, as for `collect --missing`.
    #[arg(long, value_name = "ACTION:PATTERN")]
    missing: Vec<Rule>,
    /// Files a bundler already named by content, as for `collect --bundled`.
    #[arg(long, value_name = "GLOB")]
    bundled: Vec<String>,
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
    /// A directory to add to the Python path, as Django's --pythonpath (put first on
    /// PYTHONPATH for the discovery run).
    #[arg(long, value_name = "DIR")]
    pythonpath: Option<PathBuf>,
    /// Django's own flags, accepted so that a collectstatic command line works unchanged.
    #[command(flatten)]
    django: DjangoFlags,
}

/// Flags every Django management command accepts that mean nothing to staticd: accepted and
/// ignored, so `collectstatic`'s command line can become staticd's by changing the program.
#[derive(Args, Debug, Clone)]
struct DjangoFlags {
    /// Ignored: staticd never prompts (Django: do not ask before overwriting).
    #[arg(long = "noinput", alias = "no-input")]
    noinput: bool,
    /// Ignored: staticd runs no system checks (its discovery imports the settings only).
    #[arg(long)]
    skip_checks: bool,
    /// Ignored: staticd's errors already name the file and line.
    #[arg(long)]
    traceback: bool,
    /// Ignored: staticd prints no colors.
    #[arg(long)]
    no_color: bool,
    /// Ignored: staticd prints no colors.
    #[arg(long)]
    force_color: bool,
}

impl ProjectArgs {
    /// Discovery with default options (no extra ignores, the remembered result when valid).
    fn discover(&self) -> anyhow::Result<django::Discovery> {
        apply_pythonpath(self);
        django::discover(&DiscoverOptions {
            project: self.project.clone(),
            python: self.python.clone(),
            settings: self.settings.clone(),
            ..Default::default()
        })
    }
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
    /// Variant cache directory (default: $XDG_CACHE_HOME/staticd or ~/.cache/staticd).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Don't use the variant cache.
    #[arg(long)]
    no_cache: bool,
    /// Make no delta deploys (RFC 9842 dcb/dcz deltas of changed files against their earlier
    /// versions; see README "Delta deploys").
    #[arg(long)]
    no_dictionaries: bool,
    /// How many earlier generations a changed file gets deltas against.
    #[arg(long, value_name = "K", default_value_t = staticd::delta::DEFAULT_GENERATIONS as u16,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    delta_generations: u16,
    /// The extensions that get deltas, comma-separated.
    #[arg(long, value_name = "EXT,...", value_delimiter = ',',
          default_value = staticd::delta::DEFAULT_EXTENSIONS.join(","))]
    delta_extensions: Vec<String>,
    /// The delta codings made, comma-separated: dcb (brotli), dcz (zstd). dcz alone spares
    /// collect the brotli encoder, the slower of the two.
    #[arg(long, value_name = "CODING,...", value_delimiter = ',', default_value = "dcb,dcz",
          value_parser = parse_delta_coding)]
    delta_codings: Vec<staticd::delta::Coding>,
    /// A second level of the variant cache on S3-compatible storage, shared by every runner
    /// (s3://BUCKET/PREFIX; default: [publish] cache in staticd.toml; the store's settings
    /// as for --publish).
    #[arg(long, value_name = "s3://BUCKET/PREFIX", conflicts_with = "no_cache")]
    cache: Option<String>,
    /// Bound of the variant cache in MiB (least recently used entries go first).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(0..=u64::MAX >> 20))]
    cache_size: u64,
    /// Keep running: re-collect incrementally whenever a source changes.
    #[arg(long)]
    watch: bool,
    /// What a CSS/JS reference to a missing file does, per target: ACTION is error (the
    /// default, as Django), warn (leave it unchanged, print a warning) or ignore (leave it
    /// unchanged); PATTERN is a glob on the target's path under STATIC_ROOT or its basename,
    /// e.g. --missing warn:'*.map'. Repeatable; the last matching rule wins, and these come
    /// after staticd.toml's [collect] missing.
    #[arg(long, value_name = "ACTION:PATTERN")]
    missing: Vec<Rule>,
    /// Files a bundler already named by content (besides those its manifest lists, which are
    /// found by themselves): published under their own name, bytes unchanged, and served
    /// immutable. A glob on the collected path or its basename, e.g. --bundled 'dist/assets/*'.
    /// Repeatable; adds to staticd.toml's [collect] bundled.
    #[arg(long, value_name = "GLOB")]
    bundled: Vec<String>,
    /// Then publish the collected generation to s3://BUCKET/PREFIX (as `staticd publish`).
    #[arg(long, value_name = "s3://BUCKET/PREFIX", conflicts_with_all = ["watch", "dry_run"])]
    publish: Option<String>,
}

/// `--delta-codings`: `dcb` or `dcz`.
fn parse_delta_coding(s: &str) -> Result<staticd::delta::Coding, String> {
    staticd::delta::Coding::from_token(s.trim())
        .ok_or_else(|| format!("{s:?} is not a delta coding (dcb or dcz)"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let (matches, loaded) = match resolve::parse(Cli::command(), &argv) {
        Ok(r) => r,
        Err(Failure::Clap(e)) => e.exit(),
        Err(Failure::Problems(problems)) => {
            for p in &problems {
                eprintln!("error: {p}");
            }
            return ExitCode::FAILURE;
        }
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Collect(args) => run_collect(args),
        Command::Serve(_) => run_serve(loaded.expect("serve's settings"), argv),
        Command::Check(_) => return run_check(&loaded.expect("serve's settings")),
        Command::Dev(args) => run_dev(*args, loaded.expect("dev's settings"), argv),
        Command::Prune(args) => run_prune(args),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "staticd",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Man { command } => man_page(command.as_deref()),
        Command::Publish(args) => run_publish(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One page per command, named as `git` names its pages (`staticd-collect`).
fn man_page(sub: Option<&str>) -> anyhow::Result<()> {
    let mut cmd = Cli::command();
    cmd.build();
    let page = match sub {
        None => cmd,
        Some(name) => {
            let known: Vec<String> = cmd
                .get_subcommands()
                .map(|c| c.get_name().to_string())
                .collect();
            cmd.find_subcommand(name)
                .cloned()
                .ok_or_else(|| {
                    anyhow::anyhow!("no command {name:?}; commands: {}", known.join(", "))
                })?
                .name(format!("staticd-{name}"))
        }
    };
    clap_mangen::Man::new(page).render(&mut std::io::stdout())?;
    Ok(())
}

/// Django's `--pythonpath` inserts one directory in front of `sys.path`; the discovery run
/// gets it first on PYTHONPATH. Set in staticd's own environment (still single-threaded here)
/// so that the remembered discovery, which keys on every environment variable, sees it.
fn apply_pythonpath(project: &ProjectArgs) {
    if let Some(dir) = &project.pythonpath {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        let mut paths = vec![dir];
        if let Some(old) = std::env::var_os("PYTHONPATH") {
            paths.extend(std::env::split_paths(&old));
        }
        if let Ok(joined) = std::env::join_paths(paths) {
            std::env::set_var("PYTHONPATH", joined);
        }
    }
}

/// `staticd collect`. With `--format json` a failure is reported on stdout too, as
/// `{"error": {"kind": …, "message": …, …}}` (see `collect::error::Report`).
fn run_collect(args: CollectArgs) -> anyhow::Result<()> {
    let json = args.format == Format::Json;
    let result = collect_command(args);
    if let (true, Err(e)) = (json, &result) {
        let report = match e.downcast_ref::<collect::Error>() {
            Some(c) => c.report(),
            None => {
                let kind = match e.downcast_ref::<django::DiscoverError>() {
                    Some(_) => "discovery",
                    None => "other",
                };
                collect::error::Report::other(kind, format!("{e:#}"))
            }
        };
        println!("{}", serde_json::json!({ "error": report }));
    }
    result
}

fn collect_command(args: CollectArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    apply_pythonpath(&args.project);
    warnings_to_stderr();
    let (discovery, report) = django::discover_reporting(&DiscoverOptions {
        project: args.project.project.clone(),
        python: args.project.python.clone(),
        settings: args.project.settings.clone(),
        extra_ignore: args.ignore.clone(),
        no_default_ignore: args.no_default_ignore,
        memo: !args.no_cache,
    })?;
    let (missing, bundled) = collect_rules(
        &args.project.project,
        args.missing.clone(),
        args.bundled.clone(),
    )?;
    // Read (and check) the store's settings before collecting, not after.
    let publish = match &args.publish {
        Some(url) => Some(staticd::remote::publish::options(
            url,
            &args.project.project,
            args.verbosity >= 1,
        )?),
        None => None,
    };
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
        cache: if args.no_cache {
            None
        } else {
            let local = Cache::new(args.cache_dir.clone(), args.cache_size * 1024 * 1024);
            let cfg = staticd::remote::PublishConfig::load(&args.project.project)?;
            match (args.cache.as_ref().or(cfg.cache.as_ref()), local) {
                (Some(url), Some(local)) => {
                    let remote = staticd::remote::cache::RemoteCache::new(url, &cfg)?;
                    Some(local.with_remote(std::sync::Arc::new(remote)))
                }
                (Some(_), None) => anyhow::bail!(
                    "--cache needs a local cache directory too: pass --cache-dir (no $HOME or $XDG_CACHE_HOME here)"
                ),
                (None, local) => local,
            }
        },
        progress: true,
        reuse_stage: false,
        on_publish: None,
        missing,
        deltas: (!args.no_dictionaries).then(|| staticd::delta::Options {
            generations: usize::from(args.delta_generations),
            extensions: (args.delta_extensions.iter())
                .map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase())
                .filter(|e| !e.is_empty())
                .collect(),
            codings: args.delta_codings.clone(),
        }),
        bundled,
    };
    let json = args.format == Format::Json;
    let log = Log::new(args.verbosity, json);
    log.line(3, format!("timing: {report}"));
    if args.watch {
        return collect::watch::watch(&discovery, &opts, &log);
    }
    let summary = collect::collect(&discovery, &opts, &log)?;
    for w in &summary.warnings {
        log.warn(w.warning(&opts.missing));
    }
    log.line(
        3,
        collect::report::timing_line("total", started.elapsed(), "discovery and collect"),
    );
    let published = match &publish {
        Some(p) => {
            if !json && args.verbosity >= 1 {
                println!("\n{}", summary.django_line());
            }
            let s = staticd::remote::publish(
                &discovery.static_root,
                &discovery.storage.manifest_name,
                discovery.storage.manifest && !args.no_post_process,
                p,
                &log,
            )?;
            Some(s)
        }
        None => None,
    };
    if json {
        // The collect summary, with the publish's under "publish" when there was one.
        let mut v = serde_json::to_value(&summary)?;
        if let (Some(p), Some(obj)) = (&published, v.as_object_mut()) {
            obj.insert("publish".into(), serde_json::to_value(p)?);
        }
        println!("{v}");
    } else if args.verbosity >= 1 {
        match &published {
            Some(p) => println!("{}", publish_line(p)),
            None => println!("\n{}", summary.django_line()),
        }
    }
    Ok(())
}

/// What `serve` needs besides its settings: the sockets systemd passed (taken now, while
/// the process has one thread) and how to read the settings again on SIGHUP.
fn start(argv: Vec<OsString>) -> anyhow::Result<staticd::serve::Start> {
    let inherited = staticd::serve::listen::take_activation()?;
    let reread: staticd::serve::reconfigure::Reread =
        Box::new(move || match resolve::parse(Cli::command(), &argv) {
            Ok((_, Some(loaded))) => Ok(loaded),
            Ok((_, None)) => Err(Failure::Problems(Vec::new())),
            Err(f) => Err(f),
        });
    Ok(staticd::serve::Start {
        reread: Some(reread),
        inherited,
    })
}

fn run_serve(loaded: Loaded, argv: Vec<OsString>) -> anyhow::Result<()> {
    let start = start(argv)?;
    staticd::serve::run(loaded, start)
}

/// `staticd check`: every problem on stderr and exit 1, or the summary on stdout.
fn run_check(loaded: &Loaded) -> ExitCode {
    match staticd::serve::check::check(loaded) {
        Ok(summary) => {
            println!("staticd check: {summary}");
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("error: {p}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Warnings of the library (e.g. publish falling back to per-file renames, a remote cache out
/// of reach) go to stderr; nothing below: object_store reports each retry at info level.
fn warnings_to_stderr() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_max_level(tracing::Level::WARN)
        .try_init();
}

fn run_publish(args: PublishArgs) -> anyhow::Result<()> {
    warnings_to_stderr();
    let opts =
        staticd::remote::publish::options(&args.url, &args.project.project, args.verbosity >= 1)?;
    let discovery = args.project.discover()?;
    let json = args.format == Format::Json;
    let log = Log::new(args.verbosity, json);
    let s = staticd::remote::publish(
        &discovery.static_root,
        &discovery.storage.manifest_name,
        discovery.storage.manifest,
        &opts,
        &log,
    )?;
    if json {
        println!("{}", serde_json::to_string(&s)?);
    } else if args.verbosity >= 1 {
        println!("{}", publish_line(&s));
    }
    Ok(())
}

/// The text summary of a publish.
fn publish_line(s: &staticd::remote::PublishSummary) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    format!(
        "{} object{} uploaded ({} bytes) to {}, {} already there; manifest {}{}.",
        s.uploaded,
        plural(s.uploaded),
        s.uploaded_bytes,
        s.target,
        s.unchanged + s.raced,
        s.manifest,
        s.generation
            .map(|g| format!(" (generation {g})"))
            .unwrap_or_default()
    )
}

fn run_dev(args: DevArgs, mut loaded: Loaded, argv: Vec<OsString>) -> anyhow::Result<()> {
    let start = start(argv)?;
    let project = args
        .serve
        .project
        .clone()
        .ok_or_else(|| anyhow::anyhow!("staticd dev needs a PROJECT directory"))?;
    let (missing, bundled) = collect_rules(&project, args.missing.clone(), args.bundled.clone())?;
    let discovery = django::discover(&DiscoverOptions {
        project,
        python: args.serve.python.clone(),
        settings: args.serve.settings.clone(),
        ..Default::default()
    })?;
    // The server notices each published generation by itself (see serve::reload); being told
    // right after the swap saves it waiting out the debounce of the filesystem events.
    let (tx, rx) = staticd::serve::reload::channel();
    let published = tx.clone();
    let opts = CollectOptions {
        hash: args.hash,
        compress: args.compress,
        cache: Cache::new(None, 1024 * 1024 * 1024),
        on_publish: Some(collect::OnPublish(std::sync::Arc::new(move || {
            let _ = published.try_send(staticd::serve::reload::Wake::Published);
        }))),
        missing,
        bundled,
        ..Default::default()
    };
    let serve = &mut loaded.args;
    serve.root.get_or_insert(discovery.static_root.clone());
    serve.static_url.get_or_insert(discovery.static_url.clone());
    std::thread::spawn(move || {
        let log = Log::new(1, true);
        if let Err(e) = collect::watch::watch(&discovery, &opts, &log) {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    });
    staticd::serve::run_with(loaded, start, (tx, rx))
}

/// The missing-reference policy and the bundled globs: `[collect] missing` and `bundled` of
/// `PROJECT/staticd.toml` (if there is one), then the command line's (whose rules therefore
/// win).
fn collect_rules(
    project: &Path,
    missing: Vec<Rule>,
    bundled: Vec<String>,
) -> anyhow::Result<(Policy, Globs)> {
    let path = project.join(django::config::FILE_NAME);
    let cfg = django::config::load(project)?;
    if cfg.is_some() {
        serve_sections_valid(&path)?;
    }
    let section = |f: fn(&django::config::CollectConfig) -> &[String]| {
        cfg.as_ref().map(|c| (path.as_path(), f(&c.collect)))
    };
    Ok((
        Policy::new(section(|c| &c.missing), missing)?,
        Globs::new(section(|c| &c.bundled), bundled)?,
    ))
}

/// The file collect reads is serve's too: its serve sections are checked here as well, so
/// a typo in a section name (which collect's own reader leaves to serve) is never silent.
fn serve_sections_valid(path: &Path) -> anyhow::Result<()> {
    let cmd = Cli::command();
    let serve = cmd.find_subcommand("serve").expect("the serve command");
    resolve::read_file(serve, path)
        .map(|_| ())
        .map_err(|problems| {
            let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            anyhow::anyhow!("{}", lines.join("\n"))
        })
}

fn run_prune(args: PruneArgs) -> anyhow::Result<()> {
    let log = Log::new(args.verbosity, false);
    if let Some(url) = &args.remote {
        // The store's record names the manifest: no Django needed, only [publish].
        let target = staticd::remote::Target::parse(url)?;
        let cfg = staticd::remote::PublishConfig::load(&args.project.project)?;
        let p = staticd::remote::prune::prune(
            target.clone(),
            &cfg,
            args.keep_generations,
            args.dry_run,
            &log,
        )?;
        if args.verbosity >= 1 {
            println!(
                "{}",
                pruned_line(&p, "object", &format!(" from {target}"), args.dry_run)
            );
        }
        return Ok(());
    }
    let discovery = args.project.discover()?;
    let p = collect::prune(&discovery, args.keep_generations, args.dry_run, &log)?;
    if args.verbosity >= 1 {
        println!("{}", pruned_line(&p, "file", "", args.dry_run));
    }
    Ok(())
}

/// `3 files (1234 bytes) deleted; 2 generations kept.` (`where` after the verb).
fn pruned_line(p: &collect::Pruned, what: &str, place: &str, dry_run: bool) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let verb = if dry_run {
        "would be deleted"
    } else {
        "deleted"
    };
    format!(
        "{} {what}{} ({} bytes) {verb}{place}; {} generation{} kept.",
        p.files,
        plural(p.files),
        p.bytes,
        p.kept_generations,
        plural(p.kept_generations)
    )
}
