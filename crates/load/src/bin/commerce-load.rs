//! `commerce-load`: load tests of the commerce gRPC API (`cargo xtask load` builds and runs
//! it). Exit codes: 0 every threshold held, 1 a threshold failed (or `--abort-on-fail` stopped
//! the run), 2 bad usage, bad input, a failed set-up or an interrupted run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use load::engine::{self, RunOptions, StopHandle};
use load::ops::{Client, Identities};
use load::profile::{ChaosEvent, Overrides, Profiles};
use load::report::{self, Report};
use load::setup::{self, DataSpec, Environment};
use load::{EXIT_ERROR, EXIT_FAIL, EXIT_PASS};

/// Load tests of the commerce gRPC API: runs a profile of `load/profiles.toml` against a
/// commerce-server it starts (with PostgreSQL, Redis and a data set) or against `--target`,
/// prints a summary and writes JSON and HTML reports.
#[derive(Debug, Parser)]
#[command(
    name = "commerce-load",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Flags {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Set up as for a run and keep the server up for other clients (ghz, k6, h2load, grpcurl)
    /// until Ctrl-C or stdin closes; prints its address and writes the identities file.
    Serve(ServeArgs),
    /// Merge the JSON reports of generators that ran the same profile at the same time into
    /// one report (histograms added, series aligned on wall-clock time).
    Merge(MergeArgs),
    /// List the profiles and their scenarios.
    List(ProfilesArg),
}

#[derive(Debug, Args)]
struct ProfilesArg {
    /// The profiles file.
    #[arg(
        long,
        env = "COMMERCE_LOAD_PROFILES",
        default_value = "load/profiles.toml"
    )]
    profiles: PathBuf,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The profile to run (`commerce-load list` shows them).
    #[arg(required = true)]
    profile: Option<String>,
    #[command(flatten)]
    profiles: ProfilesArg,
    /// Only this scenario of the profile (it then starts at once).
    #[arg(long)]
    scenario: Option<String>,
    /// Length of each scenario (e.g. 30s, 10m, 2h); ramping stages are scaled to it.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Peak arrival rate of each arrival-rate scenario, requests per second; every level of
    /// the scenario is scaled by the same factor.
    #[arg(long)]
    rate: Option<f64>,
    /// Outages during the run, from the end of the warm-up: e.g.
    /// `redis-down@10s,redis-up@20s` or `postgres-down@10s,postgres-up@20s` (replaces the
    /// profile's own). The run then starts PostgreSQL and Redis of its own; not with --target.
    #[arg(long, value_parser = parse_chaos, conflicts_with = "target")]
    chaos: Option<ChaosEvents>,
    /// Warm-up before each scenario, not in the results (default: the profile's, else 5s).
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// Run the scenarios this many times, one round after the other (NAME#1, NAME#2...),
    /// and report each round and their median (default: the profile's `rounds`, else 1).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(load::profile::MAX_ROUNDS)))]
    rounds: Option<u32>,
    /// Where to write the JSON report [default: target/load/PROFILE.json].
    #[arg(long)]
    json: Option<PathBuf>,
    /// Where to write the HTML report [default: target/load/PROFILE.html].
    #[arg(long)]
    html: Option<PathBuf>,
    /// Stop as soon as a latency or error-rate threshold fails (checked every progress
    /// interval, from 5 s of data on); exit 1.
    #[arg(long)]
    abort_on_fail: bool,
    /// Load a server that is already up (HOST:PORT) instead of starting one; needs
    /// --identities.
    #[arg(long, requires = "identities")]
    target: Option<String>,
    /// The data the requests use, for --target: a JSON file as `commerce-load serve` writes.
    #[arg(long, requires = "target")]
    identities: Option<PathBuf>,
    /// HTTP/2 connections to the server; requests use them in turn.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    connections: u16,
    /// A request unanswered after this long fails with DeadlineExceeded (at most 1h).
    #[arg(long, default_value = "10s", value_parser = parse_limit)]
    timeout: Duration,
    /// A request the generator could not send within this long of its due time is dropped
    /// (counted and reported) rather than sent (at most 1h).
    #[arg(long, default_value = "10s", value_parser = parse_limit)]
    max_lag: Duration,
    /// Threads of the generator's runtime.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Seed of the choices of operations and data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds between progress lines on stderr (0: none).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    progress: u64,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
struct ServerArgs {
    /// The commerce-server executable [default: next to this one].
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Tenants in the data set.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
    tenants: u32,
    /// Users (each with a cart) per tenant.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    users: u32,
    /// Catalog products per tenant.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(3..=100_000))]
    products: u32,
    /// Historical orders per user.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=100))]
    orders_per_user: u32,
    /// Directory of the reports, the server's log and the identities file.
    #[arg(long, env = "COMMERCE_LOAD_OUT_DIR", default_value = "target/load")]
    out_dir: PathBuf,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
struct MergeArgs {
    /// JSON reports written by commerce-load.
    #[arg(required = true, num_args = 2..)]
    reports: Vec<PathBuf>,
    /// Where to write the merged JSON report.
    #[arg(long, default_value = "target/load/merged.json")]
    json: PathBuf,
    /// Where to write the merged HTML report.
    #[arg(long, default_value = "target/load/merged.html")]
    html: PathBuf,
}

/// The events of `--chaos` (a type of their own: clap would read a `Vec` as repeated flags).
#[derive(Clone, Debug)]
struct ChaosEvents(Vec<ChaosEvent>);

fn parse_chaos(text: &str) -> Result<ChaosEvents, String> {
    load::profile::parse_chaos(text).map(ChaosEvents)
}

/// A duration above 0 and at most an hour.
fn parse_limit(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() || duration > Duration::from_secs(3_600) {
        return Err("must be above 0 and at most 1h".to_owned());
    }
    Ok(duration)
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM (a CI job's or a Kubernetes Job's stop): both end a
/// run with its reports written.
async fn interrupted() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "Ctrl-C";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        _ = term.recv() => "SIGTERM",
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|error| format!("{error} (e.g. 30s, 10m, 2h, 1m30s)"))
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    let threads = match &flags.command {
        None => flags.run.threads,
        Some(_) => 0,
    };
    // One thread by default, as h2load: every wake-up between the tasks of a request (the
    // dispatcher, tonic's connection task, the request) stays on it, where more threads add
    // cross-thread wake-ups to each round trip. `--threads` for more.
    let mut builder = match threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        0 => tokio::runtime::Builder::new_multi_thread(),
        n => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(usize::from(n));
            builder
        }
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let outcome = runtime.block_on(async {
        match flags.command {
            Some(Command::Serve(args)) => serve(args).await,
            Some(Command::Merge(args)) => merge(&args),
            Some(Command::List(args)) => list(&args.profiles),
            None => run(flags.run).await,
        }
    });
    // Requests still in flight after a stop must not hold the process.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn list(path: &Path) -> anyhow::Result<u8> {
    let profiles = Profiles::read(path)?;
    for (name, description) in profiles.names() {
        println!("{name:<18} {description}");
        let profile = profiles.get(name, &Overrides::default())?;
        // A profile of rounds lists its scenarios once, as `--scenario` names them.
        let rounds = profile
            .scenarios
            .iter()
            .filter_map(|s| s.round.as_ref().map(|r| r.index))
            .max();
        if let Some(rounds) = rounds {
            println!("    ({rounds} rounds: each scenario runs as NAME#1 … NAME#{rounds})");
        }
        for s in profile
            .scenarios
            .iter()
            .filter(|s| s.round.as_ref().is_none_or(|r| r.index == 1))
        {
            let name = s.round.as_ref().map_or(s.name.as_str(), |r| r.of.as_str());
            println!(
                "    {:<16} {}; {}",
                name,
                s.load.describe(),
                s.mix.describe()
            );
        }
    }
    Ok(EXIT_PASS)
}

fn data_spec(args: &ServerArgs) -> DataSpec {
    DataSpec {
        tenants: args.tenants as usize,
        users_per_tenant: args.users as usize,
        products: args.products as usize,
        orders_per_user: args.orders_per_user as usize,
    }
}

fn server_bin(args: &ServerArgs) -> anyhow::Result<PathBuf> {
    if let Some(path) = &args.server_bin {
        return Ok(path.clone());
    }
    let me = std::env::current_exe().context("cannot find this executable's path")?;
    Ok(me.with_file_name("commerce-server"))
}

/// Starts the environment (with PostgreSQL and Redis of its own for `own_services`), or gives
/// up on Ctrl-C.
async fn start_environment(args: &ServerArgs, own_services: bool) -> anyhow::Result<Environment> {
    let binary = server_bin(args)?;
    if !binary.exists() {
        bail!(
            "{} does not exist: build it (`cargo xtask load` does) or pass --server-bin",
            binary.display()
        );
    }
    let spec = data_spec(args);
    tokio::select! {
        environment = Environment::start(&binary, &spec, &args.out_dir, own_services, |step| eprintln!("commerce-load: {step}")) => {
            Ok(environment?)
        }
        signal = interrupted() => bail!("interrupted during the set-up ({signal})"),
    }
}

async fn run(args: RunArgs) -> anyhow::Result<u8> {
    let Some(name) = args.profile.as_deref() else {
        bail!("name a profile (`commerce-load list` shows them)");
    };
    let profiles = Profiles::read(&args.profiles.profiles)?;
    let overrides = Overrides {
        scenario: args.scenario.clone(),
        duration: args.duration,
        rate: args.rate,
        warmup: args.warmup,
        chaos: args.chaos.clone().map(|c| c.0),
        rounds: args.rounds,
    };
    let profile = profiles.get(name, &overrides)?;
    let json_path = args
        .json
        .clone()
        .unwrap_or_else(|| args.server.out_dir.join(format!("{name}.json")));
    let html_path = args
        .html
        .clone()
        .unwrap_or_else(|| args.server.out_dir.join(format!("{name}.html")));
    // Before the run: a report that cannot be written should not cost a run first.
    check_report_paths(&[&json_path, &html_path])?;

    let mut environment = None;
    if args.target.is_some() && !profile.chaos.is_empty() {
        bail!(
            "profile {name} takes the server's dependencies down ({}), which needs the \
             PostgreSQL and Redis commerce-load starts: it cannot run with --target",
            profile.chaos.describe()
        );
    }
    let (target, identities, server_pid) = match (&args.target, &args.identities) {
        (Some(target), Some(path)) => (target.clone(), Identities::read(path)?, None),
        _ => {
            let env = start_environment(&args.server, !profile.chaos.is_empty()).await?;
            eprintln!(
                "commerce-load: commerce-server (pid {}) serving on {}, PostgreSQL and Redis from {}",
                env.server_pid().unwrap_or_default(),
                env.addr,
                env.provider()
            );
            let parts = (
                env.addr.to_string(),
                env.identities.clone(),
                env.server_pid(),
            );
            environment = Some(env);
            parts
        }
    };
    identities.check_supports(profile.operations())?;
    let client = Client::connect(
        &target,
        usize::from(args.connections),
        identities,
        args.timeout,
    )
    .await?;

    eprintln!(
        "commerce-load: profile {} ({} scenario(s), {} warm-up, {} measured) against {target}",
        profile.name,
        profile.scenarios.len(),
        humantime::format_duration(profile.warmup),
        humantime::format_duration(profile.duration())
    );
    if !profile.chaos.is_empty() {
        eprintln!(
            "commerce-load: outages (from the end of the warm-up): {}",
            profile.chaos.describe()
        );
    }
    let stop = StopHandle::default();
    let interrupt = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let signal = interrupted().await;
            eprintln!("commerce-load: interrupted ({signal}); writing the reports of what ran");
            stop.stop(format!("interrupted ({signal})"));
        })
    };
    let options = RunOptions {
        max_lag: args.max_lag,
        seed: args.seed,
        abort_on_fail: args.abort_on_fail,
        progress: (args.progress > 0).then(|| Duration::from_secs(args.progress)),
        server_pid,
        target: target.clone(),
        connections: usize::from(args.connections),
        metrics_addr: environment.as_ref().map(|env| env.metrics_addr),
        chaos: environment.as_ref().and_then(Environment::chaos_driver),
    };
    let raw = engine::run(&profile, &client, &options, &stop).await;
    interrupt.abort();
    drop(client);
    if let Some(mut env) = environment.take() {
        env.stop_server();
        drop(env);
    }
    let interrupted = raw
        .stopped_early
        .as_deref()
        .is_some_and(|why| why.starts_with("interrupted"));
    let report = Report::from_raw(raw);
    write_reports(&report, &json_path, &html_path)?;
    Ok(if interrupted {
        EXIT_ERROR
    } else if report.passed {
        EXIT_PASS
    } else {
        EXIT_FAIL
    })
}

/// Makes sure the reports can be written, before anything is run: creates their directories
/// and tries to create each file (removing it again if it was not there), so that a mistyped
/// or unwritable path is an error now rather than after a run of many minutes.
fn check_report_paths(paths: &[&Path]) -> anyhow::Result<()> {
    for path in paths {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // A file where a directory should be: say so, rather than "File exists".
            if let Some(file) = dir
                .ancestors()
                .find(|a| !a.as_os_str().is_empty() && a.exists() && !a.is_dir())
            {
                bail!("{} is not a directory", file.display());
            }
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        if path.is_dir() {
            bail!(
                "{} is a directory: give the report a file's path",
                path.display()
            );
        }
        // A dangling symbolic link exists too: opening it creates the file it points to,
        // which stays (removing the link would not remove that file, and would lose the link).
        let existed = path.symlink_metadata().is_ok();
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        if !existed {
            // Best effort: an empty file left behind is harmless, and the run writes it.
            let _ = std::fs::remove_file(path);
        }
    }
    Ok(())
}

fn write_reports(report: &Report, json: &Path, html: &Path) -> anyhow::Result<()> {
    print!("{}", load::render::terminal::render(report));
    let text = serde_json::to_string_pretty(report).context("cannot serialise the report")?;
    std::fs::write(json, text + "\n")
        .with_context(|| format!("cannot write {}", json.display()))?;
    std::fs::write(html, load::render::html::render(report))
        .with_context(|| format!("cannot write {}", html.display()))?;
    println!("  reports: {} and {}", json.display(), html.display());
    Ok(())
}

fn merge(args: &MergeArgs) -> anyhow::Result<u8> {
    let runs = args
        .reports
        .iter()
        .map(|path| report::read_raw(path))
        .collect::<Result<Vec<_>, _>>()?;
    let merged = report::merge(runs)?;
    check_report_paths(&[&args.json, &args.html])?;
    let report = Report::from_raw(merged);
    write_reports(&report, &args.json, &args.html)?;
    Ok(if report.passed { EXIT_PASS } else { EXIT_FAIL })
}

async fn serve(args: ServeArgs) -> anyhow::Result<u8> {
    let environment = start_environment(&args.server, false).await?;
    let identities_path = args.server.out_dir.join("identities.json");
    setup::write_identities(&identities_path, &environment.identities)?;
    let tenant = &environment.identities.tenants[0];
    let user = tenant.users[0];
    println!(
        "commerce-server (pid {}) is serving",
        environment.server_pid().unwrap_or_default()
    );
    println!("  gRPC:        {} (plaintext HTTP/2)", environment.addr);
    println!("  metrics:     http://{}/metrics", environment.metrics_addr);
    println!("  server log:  {}", environment.server_log.display());
    println!(
        "  identities:  {} (tenants, users, products, orders)",
        identities_path.display()
    );
    println!(
        "  a customer:  x-tenant-id: {}  x-user-id: {user}  x-roles: customer",
        tenant.id
    );
    println!(
        "  try:         grpcurl -plaintext -import-path crates/commerce/proto -proto commerce/v1/commerce.proto \\\n                 -H 'x-tenant-id: {}' -H 'x-user-id: {user}' {} commerce.v1.CartService/GetCart",
        tenant.id, environment.addr
    );
    println!(
        "  or load it:  cargo xtask load smoke --target {} --identities {}",
        environment.addr,
        identities_path.display()
    );
    println!("Ctrl-C or closing stdin stops it.");
    let stdin_closed = async {
        use tokio::io::AsyncReadExt as _;
        let mut stdin = tokio::io::stdin();
        let mut buffer = [0u8; 256];
        while let Ok(n) = stdin.read(&mut buffer).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::select! {
        signal = interrupted() => eprintln!("commerce-load: interrupted ({signal}); stopping"),
        _ = stdin_closed => eprintln!("commerce-load: stdin closed; stopping"),
    }
    drop(environment);
    Ok(EXIT_PASS)
}
