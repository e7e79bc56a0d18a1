//! Reading the servers' own counters of what they executed: PostgreSQL's `pg_stat_statements`
//! for one database, Redis' `INFO commandstats`. The bench harness reads them around each
//! measured iteration of a counting pass and writes the differences to `roundtrips.json`.
//!
//! Server-side counters rather than a count kept by the client: they see every statement and
//! command whoever sends it (the pool, the cache, a script's own calls), so a change that adds
//! a round trip anywhere shows up, and they are exact.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use bench_format::ServerCounters;
use sqlx::{Connection as _, PgConnection};

/// How long one reading may take before it is reported as unavailable.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the cumulative counters of one suite's database and of the Redis server. Reading
/// happens on a thread of its own (with its own connections and runtime), so [`read`] can be
/// called from anywhere, inside another runtime's `block_on` included.
///
/// [`read`]: RoundTripCounter::read
pub struct RoundTripCounter {
    requests: Mutex<mpsc::Sender<mpsc::Sender<ServerCounters>>>,
}

impl std::fmt::Debug for RoundTripCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoundTripCounter").finish_non_exhaustive()
    }
}

impl RoundTripCounter {
    /// Counts what is executed in database `database` of the PostgreSQL server at `admin_url`
    /// (a connection URL of another database on it, from which `pg_stat_statements` is read so
    /// that reading it is not counted) and on the Redis server at `redis_url`.
    ///
    /// Never fails: a server whose counters cannot be read (`pg_stat_statements` not loaded,
    /// no permission, unreachable) is reported as unavailable, with the reason, in every
    /// reading.
    pub fn connect(admin_url: &str, database: &str, redis_url: &str) -> RoundTripCounter {
        RoundTripCounter::start(
            Some((admin_url.to_owned(), database.to_owned())),
            redis_url.to_owned(),
        )
    }

    /// Counts the commands executed on the Redis server at `redis_url`, for a suite that has
    /// no PostgreSQL database: its statements are reported as not counted, with that reason.
    pub fn redis_only(redis_url: &str) -> RoundTripCounter {
        RoundTripCounter::start(None, redis_url.to_owned())
    }

    fn start(postgres: Option<(String, String)>, redis_url: String) -> RoundTripCounter {
        let (requests, incoming) = mpsc::channel::<mpsc::Sender<ServerCounters>>();
        std::thread::Builder::new()
            .name("round-trip-counter".to_owned())
            .spawn(move || serve(postgres.as_ref(), &redis_url, &incoming))
            .map_err(|err| eprintln!("provision: cannot start the round-trip counter: {err}"))
            .ok();
        RoundTripCounter {
            requests: Mutex::new(requests),
        }
    }

    /// The counters now.
    pub fn read(&self) -> ServerCounters {
        let unavailable = |reason: &str| ServerCounters {
            postgres: Err(format!("PostgreSQL statements not counted: {reason}")),
            redis: Err(format!("Redis commands not counted: {reason}")),
        };
        let (reply, answer) = mpsc::channel();
        let sent = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(reply);
        if sent.is_err() {
            return unavailable("the counter thread is gone");
        }
        answer
            .recv_timeout(READ_TIMEOUT)
            .unwrap_or_else(|_| unavailable("reading the counters timed out"))
    }
}

fn serve(
    postgres: Option<&(String, String)>,
    redis_url: &str,
    incoming: &mpsc::Receiver<mpsc::Sender<ServerCounters>>,
) {
    let runtime = match crate::isolate::runtime() {
        Ok(runtime) => runtime,
        Err(err) => {
            let reason = crate::error::chain(&err);
            for reply in incoming {
                let _ = reply.send(ServerCounters {
                    postgres: Err(format!("PostgreSQL statements not counted: {reason}")),
                    redis: Err(format!("Redis commands not counted: {reason}")),
                });
            }
            return;
        }
    };
    let mut postgres = match postgres {
        Some((admin_url, database)) => runtime.block_on(Postgres::connect(admin_url, database)),
        None => Err("PostgreSQL statements not counted: the suite uses no database".to_owned()),
    };
    let mut redis = Redis::connect(redis_url);
    for reply in incoming {
        let counters = ServerCounters {
            postgres: match &mut postgres {
                Ok(pg) => runtime.block_on(pg.read()),
                Err(reason) => Err(reason.clone()),
            },
            redis: match &mut redis {
                Ok(redis) => redis.read(),
                Err(reason) => Err(reason.clone()),
            },
        };
        let _ = reply.send(counters);
    }
}

struct Postgres {
    conn: PgConnection,
    database: String,
}

impl Postgres {
    async fn connect(admin_url: &str, database: &str) -> Result<Postgres, String> {
        let fail = |what: &str, err: sqlx::Error| {
            format!("PostgreSQL statements not counted: {what}: {err}")
        };
        let mut conn = PgConnection::connect(admin_url)
            .await
            .map_err(|err| fail("cannot connect", err))?;
        // Creating the extension in the administrative database only makes its view readable
        // there; the statistics cover every database of the server.
        // `IF NOT EXISTS` does not make two sessions creating it at once safe (one of them
        // fails on the catalog's unique index), and both sides of a paired run connect at
        // once: what counts is that it exists afterwards.
        if let Err(err) = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&mut conn)
            .await
        {
            let exists: Result<bool, _> = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')",
            )
            .fetch_one(&mut conn)
            .await;
            if !matches!(exists, Ok(true)) {
                return Err(fail("cannot create the pg_stat_statements extension", err));
            }
        }
        let mut postgres = Postgres {
            conn,
            database: database.to_owned(),
        };
        postgres.read().await.map_err(|reason| {
            format!(
                "{reason} (the server must load it: shared_preload_libraries = \
                 'pg_stat_statements'; provision's own servers do)"
            )
        })?;
        Ok(postgres)
    }

    async fn read(&mut self) -> Result<BTreeMap<String, u64>, String> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT query, calls FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)",
        )
        .bind(&self.database)
        .fetch_all(&mut self.conn)
        .await
        .map_err(|err| format!("PostgreSQL statements not counted: {err}"))?;
        let mut counts = BTreeMap::new();
        for (query, calls) in rows {
            // The same normalised text can have several entries (per user, top-level or not).
            *counts.entry(collapse_whitespace(&query)).or_insert(0) +=
                u64::try_from(calls).unwrap_or(0);
        }
        Ok(counts)
    }
}

struct Redis {
    conn: redis::Connection,
}

impl Redis {
    fn connect(url: &str) -> Result<Redis, String> {
        let fail = |err: redis::RedisError| format!("Redis commands not counted: {err}");
        let client = redis::Client::open(url).map_err(fail)?;
        let conn = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .map_err(fail)?;
        let mut redis = Redis { conn };
        redis.read()?;
        Ok(redis)
    }

    fn read(&mut self) -> Result<BTreeMap<String, u64>, String> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.conn)
            .map_err(|err| format!("Redis commands not counted: {err}"))?;
        Ok(parse_commandstats(&info))
    }
}

/// Parses `INFO commandstats` (`cmdstat_get:calls=12,usec=...`) into calls per command. The
/// `info` command itself is left out: it is how the counters are read.
fn parse_commandstats(info: &str) -> BTreeMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = fields
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))?
                .parse()
                .ok()?;
            (name != "info").then(|| (name.to_owned(), calls))
        })
        .collect()
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_are_parsed_without_the_info_command() {
        let info = "# Commandstats\r\ncmdstat_get:calls=12,usec=30,usec_per_call=2.50,\
                    rejected_calls=0,failed_calls=0\r\ncmdstat_info:calls=3,usec=1\r\n\
                    cmdstat_client|setinfo:calls=2,usec=1\r\n";
        let parsed = parse_commandstats(info);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed["get"], 12);
        assert_eq!(parsed["client|setinfo"], 2);
    }

    #[test]
    fn statements_are_keyed_by_their_text_on_one_line() {
        assert_eq!(
            collapse_whitespace("SELECT  a\n   FROM t\tWHERE x = $1"),
            "SELECT a FROM t WHERE x = $1"
        );
    }
}
