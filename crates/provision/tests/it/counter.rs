//! `RoundTripCounter`: the servers' own counters, exact per database (PostgreSQL) and per
//! command (Redis).

use sqlx::Connection as _;

use crate::MIGRATOR;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_exactly_what_was_executed() -> anyhow::Result<()> {
    let services = provision::shared()?;
    let database = services.database(&MIGRATOR).await?;
    let counter = services.round_trip_counter(&database);
    let mut conn = sqlx::PgConnection::connect(database.url()).await?;
    let redis_client = redis::Client::open(services.redis_url())?;
    let mut redis = redis_client.get_multiplexed_async_connection().await?;

    // Read from inside this runtime, as the harness does from inside a benchmark's `block_on`.
    let before = counter.read();
    for _ in 0..3 {
        sqlx::query("SELECT count(*) FROM items WHERE name = $1")
            .bind("x")
            .execute(&mut conn)
            .await?;
    }
    sqlx::query("INSERT INTO items (name) VALUES ('counted')")
        .execute(&mut conn)
        .await?;
    // STRLEN: a command no other test of this binary sends, since Redis counts server-wide.
    for _ in 0..2 {
        let _: i64 = redis::cmd("STRLEN")
            .arg("round-trip-counter-test")
            .query_async(&mut redis)
            .await?;
    }
    let after = counter.read();

    let (before_pg, after_pg) = (before.postgres.unwrap(), after.postgres.unwrap());
    let grown = |key: &str| {
        after_pg.get(key).copied().unwrap_or(0) - before_pg.get(key).copied().unwrap_or(0)
    };
    assert_eq!(
        grown("SELECT count(*) FROM items WHERE name = $1"),
        3,
        "{after_pg:#?}"
    );
    assert_eq!(
        grown("INSERT INTO items (name) VALUES ($1)"),
        1,
        "{after_pg:#?}"
    );
    let total = |map: &std::collections::BTreeMap<String, u64>| map.values().sum::<u64>();
    assert_eq!(total(&after_pg) - total(&before_pg), 4, "{after_pg:#?}");

    let (before_redis, after_redis) = (before.redis.unwrap(), after.redis.unwrap());
    let strlen =
        |map: &std::collections::BTreeMap<String, u64>| map.get("strlen").copied().unwrap_or(0);
    assert_eq!(strlen(&after_redis) - strlen(&before_redis), 2);
    assert!(!after_redis.contains_key("info"), "reading is not counted");
    conn.close().await?;
    Ok(())
}

#[test]
fn a_server_without_the_extension_is_reported_not_hidden() {
    // A PostgreSQL URL that nothing listens on: both servers unavailable, each with a reason.
    let counter = provision::RoundTripCounter::connect(
        "postgres://postgres@127.0.0.1:1/postgres",
        "nothing",
        "redis://127.0.0.1:1",
    );
    let read = counter.read();
    let postgres = read.postgres.unwrap_err();
    assert!(
        postgres.starts_with("PostgreSQL statements not counted"),
        "{postgres}"
    );
    let redis = read.redis.unwrap_err();
    assert!(redis.starts_with("Redis commands not counted"), "{redis}");
}
