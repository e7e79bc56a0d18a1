//! Shared helpers: profiles written inline, identities of a test double, a run in one call.

use std::time::Duration;

use load::engine::{self, RunOptions, StopHandle};
use load::ops::{Client, Identities, TenantData};
use load::profile::{Overrides, Profile, Profiles};
use load::record::RawRun;
use uuid::Uuid;

/// The one profile `name` of a profiles file given as text.
pub fn profile(text: &str, name: &str) -> Profile {
    Profiles::parse("test", text)
        .and_then(|profiles| profiles.get(name, &Overrides::default()))
        .expect("the test's profile is valid")
}

/// Identities for a test double that does not look at them.
pub fn any_identities() -> Identities {
    Identities {
        tenants: vec![TenantData {
            id: Uuid::new_v4(),
            users: vec![Uuid::new_v4(), Uuid::new_v4()],
            products: vec![Uuid::new_v4()],
            orders: vec![],
        }],
    }
}

pub fn options(target: &str) -> RunOptions {
    RunOptions {
        max_lag: Duration::from_secs(10),
        seed: 7,
        abort_on_fail: false,
        progress: None,
        server_pid: None,
        target: target.to_owned(),
        connections: 2,
        metrics_addr: None,
        chaos: None,
    }
}

/// Runs `profile` against `addr`.
pub async fn run(
    profile: &Profile,
    addr: &str,
    identities: Identities,
    options: &RunOptions,
) -> RawRun {
    let client = Client::connect(
        addr,
        options.connections,
        identities,
        Duration::from_secs(10),
    )
    .await
    .expect("the server is up");
    engine::run(profile, &client, options, &StopHandle::default()).await
}

/// Waits up to 5 s for something to listen on `addr` (a server started in process).
pub async fn wait_listening(addr: std::net::SocketAddr) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on {addr} after 5 s");
}
