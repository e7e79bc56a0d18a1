//! Spike recovery: a test double of the cart service that turns slow (150 ms an answer) while
//! it sees a burst (more than 10 requests in 100 ms) and stays slow for 3 s after the burst's
//! last request. Not the product: the real server's spike is measured with
//! `cargo xtask load spike`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use commerce::grpc::proto::cart_service_server::CartService;
use commerce::grpc::proto::{
    AddItemRequest, Cart, ClearCartRequest, GetCartRequest, RemoveItemRequest,
};
use load::render;
use load::report::Report;
use tonic::{Request, Response, Status};

use crate::{double, support};

/// How long the double stays slow after a burst.
const RECOVERY: Duration = Duration::from_secs(3);

struct Recovering {
    state: Mutex<State>,
}

struct State {
    bucket_start: Instant,
    in_bucket: u32,
    slow_until: Option<Instant>,
}

#[tonic::async_trait]
impl CartService for Recovering {
    async fn get_cart(&self, _: Request<GetCartRequest>) -> Result<Response<Cart>, Status> {
        let now = Instant::now();
        let slow = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if now - state.bucket_start >= Duration::from_millis(100) {
                state.bucket_start = now;
                state.in_bucket = 0;
            }
            state.in_bucket += 1;
            if state.in_bucket > 10 {
                state.slow_until = Some(now + RECOVERY);
            }
            state.slow_until.is_some_and(|until| now < until)
        };
        if slow {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        Ok(Response::new(Cart::default()))
    }

    async fn add_item(&self, _: Request<AddItemRequest>) -> Result<Response<Cart>, Status> {
        Err(Status::unimplemented("test double"))
    }

    async fn remove_item(&self, _: Request<RemoveItemRequest>) -> Result<Response<Cart>, Status> {
        Err(Status::unimplemented("test double"))
    }

    async fn clear_cart(&self, _: Request<ClearCartRequest>) -> Result<Response<Cart>, Status> {
        Err(Status::unimplemented("test double"))
    }
}

// 20/s, a spike to 400/s that ends 4 s in (at a step of the series), then 20/s for 8 s.
const PROFILE: &str = r#"
[profiles.spike]
description = "20/s, 400/s for 2 s, 20/s"
warmup = "0s"

[[profiles.spike.scenarios]]
name = "spike"
executor = "ramping-arrival-rate"
start_rate = 20
stages = [
  { duration = "2s", target = 20 },
  { duration = "100ms", target = 400 },
  { duration = "1800ms", target = 400 },
  { duration = "100ms", target = 20 },
  { duration = "8s", target = 20 },
]
mix = { get_cart = 1 }
recovery = { threshold = "p95 < 100ms", window = "2s" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recovery_time_after_a_spike_is_measured() {
    let service = Recovering {
        state: Mutex::new(State {
            bucket_start: Instant::now(),
            in_bucket: 0,
            slow_until: None,
        }),
    };
    let addr = double::serve_cart(service).await;
    let profile = support::profile(PROFILE, "spike");
    let raw = support::run(
        &profile,
        &addr,
        support::any_identities(),
        &support::options(&addr),
    )
    .await;
    let report = Report::from_raw(raw);
    let recovery = report.scenarios[0]
        .recovery
        .clone()
        .expect("a spike scenario with a recovery criterion has a recovery");
    assert_eq!(recovery.spike_start_seconds, 2.0);
    assert_eq!(recovery.spike_end_seconds, 4.0);
    assert!(
        recovery.during_ms.is_some_and(|ms| ms > 100.0),
        "the spike did not slow the double: {recovery:?}"
    );
    assert!(
        recovery.before_ms.is_some_and(|ms| ms < 100.0),
        "slow before the spike: {recovery:?}"
    );
    // The double recovers 3 s after the burst's last request (about the spike's end); the
    // measurement's resolution is the series' step, 1 s.
    let seconds = recovery.recovery_seconds.expect("it recovered");
    assert!(
        (2.0..=4.0).contains(&seconds),
        "recovered {seconds} s after the spike, expected about 3 s: {recovery:?}"
    );
    assert!(report.passed, "{:?}", report.thresholds);

    // In every report.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["scenarios"][0]["recovery"]["recoverySeconds"].as_f64(),
        Some(seconds)
    );
    let text = render::terminal::render(&report);
    assert!(text.contains(&format!("recovered {seconds:.0}s")), "{text}");
    let html = render::html::render(&report);
    assert!(html.contains("chart-recovery-0"), "no recovery chart");
}
