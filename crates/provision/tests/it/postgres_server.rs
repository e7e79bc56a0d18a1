//! A PostgreSQL server of one's own can be stopped and started on the same URL, with its data.

use sqlx::Connection as _;

use crate::{MIGRATOR, process_alive};

async fn count_items(url: &str) -> Result<i64, sqlx::Error> {
    let mut connection = sqlx::PgConnection::connect(url).await?;
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM items")
        .fetch_one(&mut connection)
        .await?;
    connection.close().await?;
    Ok(count)
}

#[tokio::test]
async fn stop_and_start_keep_the_url_and_the_data() -> anyhow::Result<()> {
    let mut server = tokio::task::spawn_blocking(provision::PostgresServer::launch).await??;
    let url = server.url().to_owned();
    let database = server.database(&MIGRATOR).await?;
    let mut connection = sqlx::PgConnection::connect(database.url()).await?;
    sqlx::query("INSERT INTO items (name) VALUES ('kept')")
        .execute(&mut connection)
        .await?;
    assert_eq!(count_items(database.url()).await?, 1);
    let first_pid = server.pid();

    let mut server = tokio::task::spawn_blocking(move || server.stop().map(|()| server)).await??;
    assert!(
        sqlx::query("SELECT 1")
            .execute(&mut connection)
            .await
            .is_err(),
        "an open connection breaks"
    );
    assert!(
        count_items(database.url()).await.is_err(),
        "a stopped server refuses connections"
    );
    if let Some(pid) = first_pid {
        assert!(!process_alive(pid));
    }

    let server = tokio::task::spawn_blocking(move || server.start().map(|()| server)).await??;
    assert_eq!(server.url(), url);
    assert_eq!(count_items(database.url()).await?, 1, "the data survived");

    drop(connection);
    drop(database);
    let pid = server.pid();
    tokio::task::spawn_blocking(move || drop(server)).await?;
    if let Some(pid) = pid {
        assert!(!process_alive(pid), "postgres {pid} survived the drop");
    }
    Ok(())
}
