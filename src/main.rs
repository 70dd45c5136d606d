//! Command line: parse and dispatch, nothing else.
use clap::{Args, Parser, Subcommand, ValueEnum};
use staticd::collect::missing::{Policy, Rule};
use staticd::collect::{self, cache::Cache, naming::HashAlgo, report::Log, CollectOptions};
use staticd::django::{self, DiscoverOptions};
use std::path::{Path, PathBuf};
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
    /// Development: collect --watch and serve in one process.
    Dev(Box<DevArgs>),
    /// Delete hashed files of generations older than the last N (only files staticd wrote).
    Prune(PruneArgs),
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

impl ProjectArgs {
    /// Discovery with default options (no extra ignores, the remembered result when valid).
    fn discover(&self) -> anyhow::Result<django::Discovery> {
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
    /// Then publish the collected generation to s3://BUCKET/PREFIX (as `staticd publish`).
    #[arg(long, value_name = "s3://BUCKET/PREFIX", conflicts_with_all = ["watch", "dry_run"])]
    publish: Option<String>,
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
        Command::Dev(args) => run_dev(*args),
        Command::Prune(args) => run_prune(args),
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

fn run_collect(args: CollectArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    warnings_to_stderr();
    let (discovery, report) = django::discover_reporting(&DiscoverOptions {
        project: args.project.project.clone(),
        python: args.project.python.clone(),
        settings: args.project.settings.clone(),
        extra_ignore: args.ignore.clone(),
        no_default_ignore: args.no_default_ignore,
        memo: !args.no_cache,
    })?;
    let missing = missing_policy(&args.project.project, args.missing.clone())?;
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

fn run_dev(args: DevArgs) -> anyhow::Result<()> {
    let project = args
        .serve
        .project
        .clone()
        .ok_or_else(|| anyhow::anyhow!("staticd dev needs a PROJECT directory"))?;
    let missing = missing_policy(&project, args.missing.clone())?;
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
        ..Default::default()
    };
    let mut serve = args.serve;
    serve.root.get_or_insert(discovery.static_root.clone());
    serve.static_url.get_or_insert(discovery.static_url.clone());
    std::thread::spawn(move || {
        let log = Log::new(1, true);
        if let Err(e) = collect::watch::watch(&discovery, &opts, &log) {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    });
    staticd::serve::run_with(serve, (tx, rx))
}

/// The missing-reference policy: `[collect] missing` of `PROJECT/staticd.toml` (if there is
/// one), then the `--missing` rules, which therefore win.
fn missing_policy(project: &Path, cli: Vec<Rule>) -> anyhow::Result<Policy> {
    let path = project.join(django::config::FILE_NAME);
    let cfg = django::config::load(project)?;
    let file = cfg
        .as_ref()
        .map(|c| (path.as_path(), c.collect.missing.as_slice()));
    Policy::new(file, cli)
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
