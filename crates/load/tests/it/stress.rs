//! The breaking point of a stress test: a test double of the cart service that answers in
//! 150 ms whenever it has seen more than 300 requests in the last second, at once otherwise. Steps of
//! 100, 200, 400 and 800/s find 200/s. Not the product: the real server's breaking point is
//! measured with `cargo xtask load stress`.

use std::collections::VecDeque;
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

struct Limited {
    /// When the requests of the last second came.
    recent: Mutex<VecDeque<Instant>>,
}

#[tonic::async_trait]
impl CartService for Limited {
    async fn get_cart(&self, _: Request<GetCartRequest>) -> Result<Response<Cart>, Status> {
        let now = Instant::now();
        let over = {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            while recent
                .front()
                .is_some_and(|&t| now - t > Duration::from_secs(1))
            {
                recent.pop_front();
            }
            recent.push_back(now);
            recent.len() > 300
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
    let service = Limited {
        recent: Mutex::new(VecDeque::new()),
    };
    let addr = double::serve_cart(service).await;
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

/// The same steps in two rounds (`--rounds 2`): each round finds the breaking point, and the
/// report gives both and their median.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_repeat_the_steps_and_report_the_median() {
    let service = Limited {
        recent: Mutex::new(VecDeque::new()),
    };
    let addr = double::serve_cart(service).await;
    let text = PROFILE.replace("\"3s\"", "\"2s\"").replace(
        "  { duration = \"100ms\", target = 800 },\n  { duration = \"2s\", target = 800 },\n",
        "",
    );
    let profiles = load::profile::Profiles::parse("test", &text).unwrap();
    let overrides = load::profile::Overrides {
        rounds: Some(2),
        ..Default::default()
    };
    let profile = profiles.get("steps", &overrides).unwrap();
    let names: Vec<&str> = profile.scenarios.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["steps#1", "steps#2"]);
    let raw = support::run(
        &profile,
        &addr,
        support::any_identities(),
        &support::options(&addr),
    )
    .await;
    let report = Report::from_raw(raw);
    for scenario in &report.scenarios {
        let breaking = scenario.breaking_point.as_ref().unwrap();
        assert_eq!(breaking.breaking_point_rate, Some(200.0), "{breaking:?}");
    }
    assert_eq!(report.rounds.len(), 1);
    let rounds = &report.rounds[0];
    assert_eq!(rounds.scenario, "steps");
    let indexes: Vec<u32> = rounds.rounds.iter().map(|r| r.index).collect();
    assert_eq!(indexes, [1, 2]);
    assert_eq!(rounds.median_breaking_point_rate, Some(200.0));

    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["rounds"][0]["medianBreakingPointRate"].as_f64(),
        Some(200.0)
    );
    let text = render::terminal::render(&report);
    assert!(
        text.contains("breaking point 200/s, 200/s: median 200/s; 2 of 2 rounds passed"),
        "{text}"
    );
    let html = render::html::render(&report);
    assert!(html.contains("<h2>Rounds</h2>"), "no rounds section");
}
