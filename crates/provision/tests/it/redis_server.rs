//! A Redis server of one's own can be stopped and started on the same URL.

use crate::process_alive;

fn ping(url: &str) -> redis::RedisResult<String> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_connection_with_timeout(std::time::Duration::from_secs(1))?;
    redis::cmd("PING").query(&mut conn)
}

#[test]
fn stop_and_start_keep_the_url() -> anyhow::Result<()> {
    let mut server = provision::RedisServer::launch()?;
    let url = server.url().to_owned();
    assert_eq!(ping(&url)?, "PONG");
    let first_pid = server.pid();

    server.stop()?;
    assert!(ping(&url).is_err(), "a stopped server refuses connections");
    if let Some(pid) = first_pid {
        assert!(!process_alive(pid));
    }

    server.start()?;
    assert_eq!(server.url(), url);
    assert_eq!(ping(&url)?, "PONG");

    let pid = server.pid();
    drop(server);
    if let Some(pid) = pid {
        assert!(!process_alive(pid), "redis-server {pid} survived the drop");
    }
    Ok(())
}
