//! Each test gets a database and a Redis namespace of its own.

use redis::AsyncCommands as _;
use sqlx::Connection as _;

use crate::MIGRATOR;

#[tokio::test]
async fn databases_are_separate_and_dropped() -> anyhow::Result<()> {
    let services = provision::shared()?;
    let (a, b) = tokio::try_join!(services.database(&MIGRATOR), services.database(&MIGRATOR))?;
    assert_ne!(a.name(), b.name());

    let mut conn_a = sqlx::PgConnection::connect(a.url()).await?;
    sqlx::query("INSERT INTO items (name) VALUES ('only in a')")
        .execute(&mut conn_a)
        .await?;
    conn_a.close().await?;
    let mut conn_b = sqlx::PgConnection::connect(b.url()).await?;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(&mut conn_b)
        .await?;
    assert_eq!(count, 0, "b has the migrated table and none of a's rows");
    conn_b.close().await?;

    let name = a.name().to_owned();
    drop(a);
    let mut admin = sqlx::PgConnection::connect(services.postgres_url()).await?;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut admin)
        .await?;
    assert_eq!(left, 0, "dropping the handle drops the database");
    Ok(())
}

#[tokio::test]
async fn many_databases_in_parallel() -> anyhow::Result<()> {
    let services = provision::shared()?;
    let started = std::time::Instant::now();
    let databases = futures_join_all(services, 8).await?;
    eprintln!("8 databases from the template in {:?}", started.elapsed());
    let mut names: Vec<&str> = databases.iter().map(|db| db.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 8);
    Ok(())
}

async fn futures_join_all(
    services: &'static provision::Services,
    n: usize,
) -> anyhow::Result<Vec<provision::TestDatabase>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(services.database(&MIGRATOR)))
        .collect();
    let mut databases = Vec::with_capacity(n);
    for task in tasks {
        databases.push(task.await??);
    }
    Ok(databases)
}

#[tokio::test]
async fn redis_namespaces_are_separate_and_cleaned() -> anyhow::Result<()> {
    let services = provision::shared()?;
    let a = services.redis_namespace();
    let b = services.redis_namespace();
    assert_ne!(a.prefix(), b.prefix());

    let client = redis::Client::open(a.url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    for i in 0..1500 {
        let _: () = conn.set(format!("{}key{i}", a.prefix()), i).await?;
    }
    let _: () = conn.set(format!("{}key", b.prefix()), "b").await?;
    drop(a);
    let left: Vec<String> = redis::cmd("KEYS").arg("t*").query_async(&mut conn).await?;
    assert_eq!(
        left,
        [format!("{}key", b.prefix())],
        "a's keys are gone, b's are not"
    );
    Ok(())
}
