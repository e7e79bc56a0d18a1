//! Local servers: they start, answer, and leave nothing behind — after a drop, a kill or Ctrl-C.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use provision::{Choice, Config, Provider, Services};
use sqlx::Connection as _;

use crate::{eventually, exists, process_alive};

fn local() -> Config {
    Config {
        choice: Choice::Local,
        ..Config::from_env().expect("PERF_SERVICES is valid")
    }
}

#[tokio::test]
async fn local_servers_answer_and_vanish_on_drop() -> anyhow::Result<()> {
    let services = Services::start_with(&local())?;
    assert_eq!(services.provider(), Provider::Local);
    eprintln!("local provider ready in {:?}", services.startup_time());
    assert!(
        services.startup_time() < Duration::from_secs(15),
        "start-up took {:?}",
        services.startup_time()
    );

    let mut pg = sqlx::PgConnection::connect(services.postgres_url()).await?;
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut pg).await?;
    assert_eq!(one, 1);
    let fsync: String = sqlx::query_scalar("SHOW fsync").fetch_one(&mut pg).await?;
    assert_eq!(fsync, "off", "configured for benchmarking");
    pg.close().await?;

    let client = redis::Client::open(services.redis_url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let pong: String = redis::cmd("PING").query_async(&mut conn).await?;
    assert_eq!(pong, "PONG");
    let save: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("save")
        .query_async(&mut conn)
        .await?;
    assert_eq!(save, ["save", ""], "no persistence");
    drop(conn);

    let (pg_pid, redis_pid) = services.local_pids().expect("local servers have pids");
    let dir = services
        .local_dir()
        .expect("local servers have a directory")
        .to_owned();
    assert!(process_alive(pg_pid) && process_alive(redis_pid) && exists(&dir));
    drop(services);
    // Drop waits for the servers, so they are gone at once.
    assert!(
        !process_alive(pg_pid),
        "postgres {pg_pid} survived the drop"
    );
    assert!(
        !process_alive(redis_pid),
        "redis-server {redis_pid} survived the drop"
    );
    assert!(!exists(&dir), "{} survived the drop", dir.display());
    Ok(())
}

#[test]
fn a_test_that_panics_leaves_nothing_behind() {
    let services = Services::start_with(&local()).expect("local services");
    let (pg_pid, redis_pid) = services.local_pids().expect("local servers have pids");
    let dir = services
        .local_dir()
        .expect("local servers have a directory")
        .to_owned();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _services = services;
        panic!("a failing assertion in a test");
    }));
    assert!(outcome.is_err());
    assert!(!process_alive(pg_pid) && !process_alive(redis_pid) && !exists(&dir));
}

/// Starts `perf-services` (the crate's binary) and reads the pids and directory it prints.
fn hold_services() -> anyhow::Result<(std::process::Child, u32, u32, PathBuf)> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_perf-services"));
    command
        .env("PERF_SERVICES", "local")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    crate::with_default_sigint(&mut command);
    let mut child = command.spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let (mut pids, mut dir) = (None, None);
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(rest) = line.strip_prefix("# postgres_pid=") {
            let (pg, redis) = rest
                .split_once(" redis_pid=")
                .expect("both pids on one line");
            pids = Some((pg.parse()?, redis.parse()?));
        } else if let Some(path) = line.strip_prefix("# dir=") {
            dir = Some(PathBuf::from(path));
        } else if line.starts_with("# ready") {
            break;
        }
    }
    let (pg, redis) = pids.ok_or_else(|| anyhow::anyhow!("perf-services printed no pids"))?;
    let dir = dir.ok_or_else(|| anyhow::anyhow!("perf-services printed no directory"))?;
    assert!(process_alive(pg) && process_alive(redis) && exists(&dir));
    Ok((child, pg, redis, dir))
}

fn assert_cleaned_up(pg: u32, redis: u32, dir: &std::path::Path) {
    assert!(
        eventually(10, || !process_alive(pg)),
        "orphan postgres {pg}"
    );
    assert!(
        eventually(10, || !process_alive(redis)),
        "orphan redis-server {redis}"
    );
    assert!(
        eventually(10, || !exists(dir)),
        "{} left behind",
        dir.display()
    );
}

#[test]
fn a_killed_process_leaves_no_orphans() -> anyhow::Result<()> {
    let (mut child, pg, redis, dir) = hold_services()?;
    child.kill()?; // SIGKILL: no destructor runs.
    child.wait()?;
    assert_cleaned_up(pg, redis, &dir);
    Ok(())
}

#[test]
fn ctrl_c_leaves_no_orphans() -> anyhow::Result<()> {
    let (mut child, pg, redis, dir) = hold_services()?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )?;
    let status = child.wait()?;
    assert!(!status.success(), "SIGINT ends the process: {status}");
    assert_cleaned_up(pg, redis, &dir);
    Ok(())
}

#[test]
fn shared_services_are_one_per_process() -> anyhow::Result<()> {
    let first = provision::shared()?;
    let second = provision::shared()?;
    assert!(std::ptr::eq(first, second));
    Ok(())
}
