//! Per-test isolation: a fresh database from a migrated template, a Redis key namespace.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use sqlx::migrate::Migrator;
use sqlx::{Connection as _, Executor as _, PgConnection};

use crate::Error;

/// Advisory lock key that serialises template creation across processes sharing a server.
const TEMPLATE_LOCK: i64 = 0x7072_6f76_6973_696f; // "provisio"

/// A single-threaded runtime for the blocking parts of this crate.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::io("starting a tokio runtime"))
}

pub(crate) async fn check_postgres(url: &str) -> Result<(), Error> {
    let mut conn = PgConnection::connect(url).await?;
    conn.execute("SELECT 1").await?;
    conn.close().await?;
    Ok(())
}

pub(crate) async fn check_redis(url: &str) -> Result<(), Error> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let _: String = redis::cmd("PING").query_async(&mut conn).await?;
    Ok(())
}

pub(crate) fn check_postgres_blocking(url: &str) -> Result<(), String> {
    runtime().map_err(|err| err.to_string())?.block_on(async {
        tokio::time::timeout(Duration::from_secs(2), check_postgres(url))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|err| crate::error::chain(&err))
    })
}

pub(crate) fn check_redis_blocking(url: &str) -> Result<(), String> {
    let ping = || -> Result<(), redis::RedisError> {
        let client = redis::Client::open(url)?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(1))?;
        let _: String = redis::cmd("PING").query(&mut conn)?;
        Ok(())
    };
    ping().map_err(|err| err.to_string())
}

/// Runs a statement built from names this crate generated itself (`test_<uuid>`,
/// `template_<hex>`), which are valid unquoted identifiers, so the string is safe to run.
async fn ddl(conn: &mut PgConnection, statement: String) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
        .execute(conn)
        .await
        .map(drop)
}

/// A database of its own, cloned from a template that already has the migrations. It is
/// dropped (with any connections still open to it) when this handle drops.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDatabase {
    /// Connection URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let statement = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let admin_url = self.admin_url.clone();
        // Drop may run inside the caller's runtime, which we must not block on; a thread with a
        // runtime of its own does the work, and we wait so nothing is left when the test returns.
        let outcome = std::thread::spawn(move || -> Result<(), Error> {
            runtime()?.block_on(async {
                let mut conn = PgConnection::connect(&admin_url).await?;
                ddl(&mut conn, statement).await?;
                Ok(())
            })
        })
        .join();
        if let Ok(Err(err)) = outcome {
            // A server that is already gone took the database with it; anything else is worth
            // a line, but not a panic in a destructor.
            if !is_connection_refused(&err) {
                eprintln!(
                    "provision: could not drop database {}: {}",
                    self.name,
                    crate::error::chain(&err)
                );
            }
        }
    }
}

fn is_connection_refused(err: &Error) -> bool {
    matches!(err, Error::Postgres(sqlx::Error::Io(io)) if io.kind() == std::io::ErrorKind::ConnectionRefused)
}

/// Creates a fresh database from the template for `migrator` (creating the template first if
/// this server does not have it yet).
pub(crate) async fn database(admin_url: &str, migrator: &Migrator) -> Result<TestDatabase, Error> {
    let template = template_name(migrator);
    let mut admin = PgConnection::connect(admin_url).await?;
    ensure_template(&mut admin, admin_url, &template, migrator).await?;
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    ddl(
        &mut admin,
        format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""),
    )
    .await?;
    admin.close().await?;
    Ok(TestDatabase {
        url: with_database(admin_url, &name)?,
        name,
        admin_url: admin_url.to_owned(),
    })
}

/// The template's name is derived from the migrations themselves, so a changed migration gets a
/// new template instead of silently reusing a stale one on a long-lived server.
fn template_name(migrator: &Migrator) -> String {
    let mut hash = Sha256::new();
    for migration in migrator.iter() {
        hash.update(migration.version.to_le_bytes());
        hash.update(&migration.checksum);
    }
    let digest = hash.finalize();
    let hex: String = digest
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("template_{hex}")
}

async fn ensure_template(
    admin: &mut PgConnection,
    admin_url: &str,
    template: &str,
    migrator: &Migrator,
) -> Result<(), Error> {
    // Templates already made by this process, per server: the common case skips the lock.
    static READY: Mutex<Option<HashSet<(String, String)>>> = Mutex::new(None);
    let key = (admin_url.to_owned(), template.to_owned());
    let is_ready = |ready: &Mutex<Option<HashSet<(String, String)>>>| {
        ready
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .as_ref()
            .is_some_and(|set| set.contains(&key))
    };
    if is_ready(&READY) {
        return Ok(());
    }

    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(TEMPLATE_LOCK)
        .execute(&mut *admin)
        .await?;
    let result = create_template_locked(admin, admin_url, template, migrator).await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(TEMPLATE_LOCK)
        .execute(&mut *admin)
        .await?;
    result?;
    READY
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .get_or_insert_default()
        .insert(key);
    Ok(())
}

async fn create_template_locked(
    admin: &mut PgConnection,
    admin_url: &str,
    template: &str,
    migrator: &Migrator,
) -> Result<(), Error> {
    let state: Option<bool> =
        sqlx::query_scalar("SELECT datistemplate FROM pg_database WHERE datname = $1")
            .bind(template)
            .fetch_optional(&mut *admin)
            .await?;
    match state {
        // Marked as a template only after its migrations succeeded: ready.
        Some(true) => return Ok(()),
        // Left behind by a process that died half-way: start over.
        Some(false) => {
            ddl(admin, format!("DROP DATABASE \"{template}\" WITH (FORCE)")).await?;
        }
        None => {}
    }
    ddl(admin, format!("CREATE DATABASE \"{template}\"")).await?;
    if let Err(err) = migrate(&with_database(admin_url, template)?, template, migrator).await {
        let _ = ddl(admin, format!("DROP DATABASE \"{template}\" WITH (FORCE)")).await;
        return Err(err);
    }
    // No connections allowed: CREATE DATABASE ... TEMPLATE fails while anyone is connected to it.
    ddl(
        admin,
        format!("ALTER DATABASE \"{template}\" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"),
    )
    .await?;
    Ok(())
}

async fn migrate(url: &str, template: &str, migrator: &Migrator) -> Result<(), Error> {
    // Through a one-connection pool: `Migrator::run(&mut PgConnection)` makes the future
    // non-`Send` (sqlx's `Acquire` is implemented per lifetime), and callers spawn this.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?;
    let outcome = migrator.run(&pool).await;
    pool.close().await;
    outcome.map_err(|source| Error::Migrate {
        template: template.to_owned(),
        source,
    })
}

/// `url` with its database (the path) replaced by `database`.
fn with_database(url: &str, database: &str) -> Result<String, Error> {
    let mut parsed = url::Url::parse(url).map_err(|_| Error::BadUrl(url.to_owned()))?;
    parsed.set_path(&format!("/{database}"));
    Ok(parsed.into())
}

/// A Redis key namespace of its own: every key of the test starts with [`RedisNamespace::prefix`].
/// The keys are deleted when this handle drops.
#[derive(Debug)]
pub struct RedisNamespace {
    url: String,
    prefix: String,
}

impl RedisNamespace {
    pub(crate) fn new(url: &str) -> RedisNamespace {
        let id = uuid::Uuid::new_v4().simple().to_string();
        RedisNamespace {
            url: url.to_owned(),
            prefix: format!("t{}:", &id[..12]),
        }
    }

    /// Connection URL of the Redis server.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key prefix this namespace owns, such as `t3f9c0a1b2d4e:`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Drop for RedisNamespace {
    fn drop(&mut self) {
        let clean = || -> Result<(), redis::RedisError> {
            let client = redis::Client::open(self.url.as_str())?;
            let mut conn = client.get_connection_with_timeout(Duration::from_secs(1))?;
            conn.set_read_timeout(Some(Duration::from_secs(5)))?;
            let keys: Vec<String> = redis::cmd("SCAN")
                .cursor_arg(0)
                .arg("MATCH")
                .arg(format!("{}*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .clone()
                .iter(&mut conn)?
                .collect::<Result<_, _>>()?;
            for batch in keys.chunks(500) {
                redis::cmd("UNLINK").arg(batch).exec(&mut conn)?;
            }
            Ok(())
        };
        // Best effort: an unreachable server (stopped by the test, or gone) has nothing to clean.
        let _ = clean();
    }
}
