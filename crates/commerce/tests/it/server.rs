//! The `commerce-server` binary: migrates, serves the API and the health service, and shuts down
//! cleanly on SIGTERM; refuses to start with a policy that does not compile.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use commerce::grpc::identity::request;
use commerce::grpc::proto::GetCartRequest;
use commerce::grpc::proto::cart_service_client::CartServiceClient;
use commerce::ids::TenantId;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::customer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_binary_serves_and_stops_on_sigterm() -> anyhow::Result<()> {
    let services = provision::shared()?;
    // An empty database of its own: the server migrates it on start.
    let db = services.database(&sqlx::migrate::Migrator::DEFAULT).await?;
    let redis = services.redis_namespace();
    let decisions = services.redis_namespace();
    let policy_dir = authz::shipped_policy_dir();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_commerce-server"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--migrate"])
        .args(["--database-url", db.url(), "--redis-url", redis.url()])
        .args(["--redis-prefix", redis.prefix(), "--log-format", "json"])
        .args(["--decision-cache-prefix", decisions.prefix()])
        .arg("--policy-dir")
        .arg(&policy_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting commerce-server")?;
    let outcome = exercise(port).await;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM)?;
    let status = tokio::task::spawn_blocking(move || child.wait()).await??;
    outcome?;
    assert!(status.success(), "exit status {status}");
    Ok(())
}

/// Values the server cannot work with are usage errors that name the flag, before anything
/// starts: a pool of 0 connections panicked in the pool, and a cart lifetime beyond what Redis
/// accepts left entries that never expire.
#[test]
fn server_binary_refuses_out_of_range_flags() -> anyhow::Result<()> {
    for (flag, value) in [
        ("--max-connections", "0"),
        ("--cache-ttl-secs", "0"),
        ("--cache-ttl-secs", "18446744073709551615"),
        ("--decision-cache-ttl-secs", "9223372036854775"),
        ("--decision-cache-l1-ttl-secs", "0"),
        ("--decision-cache-entries", "0"),
        ("--redis-timeout-ms", "0"),
    ] {
        // Nothing listens on these ports: flags are checked before anything is connected to.
        let output = Command::new(env!("CARGO_BIN_EXE_commerce-server"))
            .args(["--database-url", "postgres://nobody@127.0.0.1:1/nothing"])
            .args(["--redis-url", "redis://127.0.0.1:1/"])
            .args([flag, value])
            .stdin(Stdio::null())
            .output()
            .context("running commerce-server")?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains("not in"),
            "{flag} {value}: {stderr}"
        );
    }
    Ok(())
}

/// A database that cannot be reached is named with its address and why: a Unix socket
/// directory by its path, and a server that accepts connections but never answers is given up
/// on in twice the pool's 5 s, not after the system's TCP timeout.
#[test]
fn server_binary_names_an_unreachable_database_and_gives_up() -> anyhow::Result<()> {
    // Accepts and holds every connection without a byte of answer.
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = silent.local_addr()?.port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming() {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("no-such-directory");
    // A port nothing listens on (the listener is dropped at once).
    let refused = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    for (url, expected) in [
        (
            format!("postgres://nobody@127.0.0.1:{refused}/nothing"),
            format!("cannot connect to PostgreSQL at 127.0.0.1:{refused}: Connection refused"),
        ),
        (
            format!("postgres://nobody@127.0.0.1:{port}/nothing"),
            format!("cannot connect to PostgreSQL at 127.0.0.1:{port}: no answer within 5s"),
        ),
        (
            format!(
                "postgres://nobody@localhost/nothing?host={}",
                missing.display()
            ),
            format!(
                "cannot connect to PostgreSQL at {} (port 5432): No such file",
                missing.display()
            ),
        ),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_commerce-server"))
            .args(["--database-url", &url])
            .args(["--redis-url", "redis://127.0.0.1:1/"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting commerce-server")?;
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{url}: commerce-server still waiting for PostgreSQL after 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(
            &mut child.stderr.take().context("stderr is piped")?,
            &mut stderr,
        )?;
        assert_eq!(status.code(), Some(1), "{url}: {stderr}");
        let line = stderr
            .lines()
            .find(|line| line.starts_with("error: "))
            .with_context(|| format!("{url}: no error line in: {stderr}"))?;
        assert!(
            line.contains(&expected),
            "{url}: expected {expected:?} in: {line}"
        );
        // Each cause once: sqlx's errors repeat their source in their own message.
        let cause = line.rsplit(": ").next().unwrap_or_default();
        assert_eq!(line.matches(cause).count(), 1, "{url}: {line}");
        eprintln!("{url}: {line} (after {:.1?})", started.elapsed());
    }
    Ok(())
}

#[test]
fn server_binary_reports_the_file_and_line_of_a_broken_policy() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for file in ["decision.rego", "rbac.rego", "tenancy.rego"] {
        std::fs::copy(
            authz::shipped_policy_dir().join(file),
            dir.path().join(file),
        )
        .with_context(|| format!("copying {file}"))?;
    }
    // Line 5 does not parse.
    let broken = dir.path().join("broken.rego");
    std::fs::write(
        &broken,
        "package authz.extra\n\nimport rego.v1\n\nallow if input.subject.user_id == ]\n",
    )?;
    // Nothing listens on these ports: the policies are loaded before anything is connected to.
    let output = Command::new(env!("CARGO_BIN_EXE_commerce-server"))
        .args(["--database-url", "postgres://nobody@127.0.0.1:1/nothing"])
        .args(["--redis-url", "redis://127.0.0.1:1/"])
        .arg("--policy-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .context("running commerce-server")?;
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // `{file}:{line}:{column}`, in the error chain printed by the binary.
    let expected = format!("{}:5:", broken.display());
    assert!(
        stderr.contains("cannot load the authorization policies") && stderr.contains(&expected),
        "expected the policy error at {expected} in: {stderr}"
    );
    Ok(())
}

async fn exercise(port: u16) -> anyhow::Result<()> {
    let url = format!("http://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let channel = loop {
        match tonic::transport::Channel::from_shared(url.clone())?
            .connect()
            .await
        {
            Ok(channel) => break channel,
            Err(error) if tokio::time::Instant::now() > deadline => {
                return Err(error).context("the server never listened");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let mut health = HealthClient::new(channel.clone());
    for service in ["commerce.v1.CartService", "commerce.v1.OrderService"] {
        let check = HealthCheckRequest {
            service: service.to_owned(),
        };
        let reply = health.check(check).await?.into_inner();
        assert_eq!(reply.status(), ServingStatus::Serving, "{service}");
    }
    // The migrations ran: a cart read reaches the tables.
    let me = customer(TenantId::new_random());
    let cart = CartServiceClient::new(channel)
        .get_cart(request(&me, GetCartRequest::default()))
        .await?
        .into_inner();
    assert!(cart.items.is_empty());
    Ok(())
}
