//! Which provider is chosen, how fast, and what the user is told when none works.

use std::time::{Duration, Instant};

use provision::{Choice, Config, Error, Provider, Services};

fn config(choice: Choice) -> Config {
    Config {
        choice,
        ..Config::from_env().expect("PERF_SERVICES is valid")
    }
}

#[test]
fn env_provider_uses_the_given_urls_untouched() -> anyhow::Result<()> {
    // Real servers to point at; the URLs get parameters a rewriting provider would lose.
    let local = Services::start_with(&Config {
        database_url: None,
        redis_url: None,
        ..config(Choice::Local)
    })?;
    let database_url = format!(
        "{}?application_name=env-provider-test&connect_timeout=5",
        local.postgres_url()
    );
    let redis_url = format!("{}/3", local.redis_url());
    let env = Services::start_with(&Config {
        database_url: Some(database_url.clone()),
        redis_url: Some(redis_url.clone()),
        ..config(Choice::Env)
    })?;
    assert_eq!(env.provider(), Provider::Env);
    assert_eq!(env.postgres_url(), database_url);
    assert_eq!(env.redis_url(), redis_url);
    assert_eq!(env.local_pids(), None, "nothing is started for env URLs");
    Ok(())
}

#[test]
fn auto_prefers_the_environment_when_both_urls_are_set() -> anyhow::Result<()> {
    let local = Services::start_with(&config(Choice::Local))?;
    let auto = Services::start_with(&Config {
        database_url: Some(local.postgres_url().to_owned()),
        redis_url: Some(local.redis_url().to_owned()),
        ..config(Choice::Auto)
    })?;
    assert_eq!(auto.provider(), Provider::Env);
    Ok(())
}

#[test]
fn env_provider_reports_an_unreachable_server() {
    let started = Instant::now();
    let err = Services::start_with(&Config {
        database_url: Some("postgres://postgres@127.0.0.1:1/postgres".into()),
        redis_url: Some("redis://127.0.0.1:1".into()),
        ..config(Choice::Env)
    })
    .expect_err("nothing listens on port 1");
    assert!(
        matches!(
            err,
            Error::Unreachable {
                what: "DATABASE_URL",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn env_provider_needs_both_urls() {
    let err = Services::start_with(&Config {
        database_url: Some("postgres://localhost/x".into()),
        redis_url: None,
        ..config(Choice::Env)
    })
    .expect_err("REDIS_URL is missing");
    assert_eq!(
        err.to_string(),
        "PERF_SERVICES=env needs both DATABASE_URL and REDIS_URL, but REDIS_URL is not set"
    );
}

#[test]
fn forced_local_without_binaries_names_the_packages() {
    let empty = tempfile::tempdir().expect("temporary directory");
    let err = Services::start_with(&Config {
        search_path: Some(empty.path().as_os_str().to_owned()),
        postgres_roots: Vec::new(),
        ..config(Choice::Local)
    })
    .expect_err("no binaries on an empty PATH");
    let message = err.to_string();
    assert!(matches!(err, Error::BinariesNotFound(_)), "{err:?}");
    assert!(message.contains("package: postgresql"), "{message}");
    assert!(message.contains("package: redis-server"), "{message}");
}

#[test]
fn nothing_available_names_all_three_ways() {
    let empty = tempfile::tempdir().expect("temporary directory");
    let err = Services::start_with(&Config {
        database_url: None,
        redis_url: None,
        docker_host: Some(format!("unix://{}/docker.sock", empty.path().display())),
        search_path: Some(empty.path().as_os_str().to_owned()),
        postgres_roots: Vec::new(),
        ..config(Choice::Auto)
    })
    .expect_err("no way to get services");
    let message = err.to_string();
    for needle in [
        "DATABASE_URL",
        "REDIS_URL",
        "Docker engine",
        "apt-get install -y postgresql redis-server",
    ] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from: {message}"
        );
    }
}

#[test]
fn docker_decision_is_made_in_under_two_seconds() {
    // Whatever this machine has, probing the configured engine is bounded.
    let started = Instant::now();
    let verdict = provision::docker_probe(&config(Choice::Auto));
    let elapsed = started.elapsed();
    eprintln!("docker probe: {verdict:?} in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "probe took {elapsed:?}");

    // An address that swallows packets is the slow case for a client without its own timeout
    // (where a proxy answers for every address instead, it must not pass for Docker either).
    let started = Instant::now();
    let verdict = provision::docker_probe(&Config {
        docker_host: Some("tcp://10.255.255.1:2375".into()),
        ..config(Choice::Auto)
    });
    let elapsed = started.elapsed();
    eprintln!("docker probe of a black hole: {verdict:?} in {elapsed:?}");
    assert!(verdict.is_err());
    assert!(elapsed < Duration::from_secs(2), "probe took {elapsed:?}");
}

#[test]
fn without_an_engine_auto_falls_through_to_local_binaries_quickly() -> anyhow::Result<()> {
    let auto = config(Choice::Auto);
    if provision::docker_probe(&auto).is_ok() {
        eprintln!("a Docker engine answers here; the fall-through is exercised where none does");
        return Ok(());
    }
    let started = Instant::now();
    let err = Services::start_with(&Config {
        choice: Choice::Docker,
        ..auto.clone()
    })
    .expect_err("forcing Docker without an engine fails");
    assert!(matches!(err, Error::DockerUnavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "forced Docker took {:?} to fail",
        started.elapsed()
    );

    let services = Services::start_with(&Config {
        database_url: None,
        redis_url: None,
        ..auto
    })?;
    assert_eq!(services.provider(), Provider::Local);
    Ok(())
}

#[test]
fn finds_postgres_in_the_debian_versioned_directory() -> anyhow::Result<()> {
    // Debian's `postgresql` package puts initdb and postgres in /usr/lib/postgresql/<major>/bin,
    // off the PATH. A PATH holding only redis-server must still find them there.
    let redis_dir = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .find(|dir| dir.join("redis-server").is_file())
        .ok_or_else(|| anyhow::anyhow!("redis-server is not on PATH"))?;
    assert!(
        !redis_dir.join("initdb").exists(),
        "{} must not hold initdb for this test",
        redis_dir.display()
    );
    let services = Services::start_with(&Config {
        search_path: Some(redis_dir.into_os_string()),
        postgres_roots: vec!["/usr/lib/postgresql".into()],
        ..config(Choice::Local)
    })?;
    assert_eq!(services.provider(), Provider::Local);
    Ok(())
}
