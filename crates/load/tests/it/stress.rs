//! The breaking point of a stress test: a test double of the cart service that answers in
//! 150 ms whenever it sees more than 30 requests in 100 ms (300/s), at once otherwise. Steps of
//! 100, 200, 400 and 800/s find 200/s. Not the product: the real server's breaking point is
//! measured with `cargo xtask load stress`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use commerce::grpc::proto::cart_service_server::{CartService, CartServiceServer};
use commerce::grpc::proto::{
    AddItemRequest, Cart, ClearCartRequest, GetCartRequest, RemoveItemRequest,
};
use load::render;
use load::report::Report;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use crate::support;

struct Limited {
    /// The start of the current 100 ms and the requests seen in it.
    bucket: Mutex<(Instant, u32)>,
}

#[tonic::async_trait]
impl CartService for Limited {
    async fn get_cart(&self, _: Request<GetCartRequest>) -> Result<Response<Cart>, Status> {
        let now = Instant::now();
        let over = {
            let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
            if now - bucket.0 >= Duration::from_millis(100) {
                *bucket = (now, 0);
            }
            bucket.1 += 1;
            bucket.1 > 30
        };
        if over {
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

const PROFILE: &str = r#"
[profiles.steps]
description = "100, 200, 400 and 800/s, 3 s each"
warmup = "0s"

[[profiles.steps.scenarios]]
name = "steps"
executor = "ramping-arrival-rate"
start_rate = 100
stages = [
  { duration = "3s", target = 100 },
  { duration = "100ms", target = 200 },
  { duration = "3s", target = 200 },
  { duration = "100ms", target = 400 },
  { duration = "3s", target = 400 },
  { duration = "100ms", target = 800 },
  { duration = "3s", target = 800 },
]
mix = { get_cart = 1 }
breaking_point = { threshold = "p95 < 50ms" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaking_point_is_the_last_step_sustained() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().expect("a bound address").to_string();
    let double = Limited {
        bucket: Mutex::new((Instant::now(), 0)),
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(CartServiceServer::new(double))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let profile = support::profile(PROFILE, "steps");
    let raw = support::run(
        &profile,
        &addr,
        support::any_identities(),
        &support::options(&addr),
    )
    .await;
    let report = Report::from_raw(raw);
    let breaking = report.scenarios[0]
        .breaking_point
        .clone()
        .expect("a scenario with a breaking_point criterion has one");
    let rates: Vec<f64> = breaking.steps.iter().map(|s| s.rate).collect();
    assert_eq!(rates, [100.0, 200.0, 400.0, 800.0]);
    let sustained: Vec<bool> = breaking.steps.iter().map(|s| s.sustained).collect();
    assert_eq!(sustained, [true, true, false, false], "{breaking:?}");
    assert_eq!(breaking.breaking_point_rate, Some(200.0));
    assert!(breaking.broke);
    // The steps answered their rate.
    for step in &breaking.steps[..2] {
        assert!(
            (step.answered_rps - step.rate).abs() < step.rate * 0.1,
            "{step:?}"
        );
    }

    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["scenarios"][0]["breakingPoint"]["breakingPointRate"].as_f64(),
        Some(200.0)
    );
    let text = render::terminal::render(&report);
    assert!(text.contains("breaking point . 200/s"), "{text}");
    let html = render::html::render(&report);
    assert!(html.contains("chart-steps-0"), "no steps chart");
}
