//! Soak: a test double of the cart service that leaks memory on purpose (32 KiB kept per
//! `GetCart`) fails the memory thresholds of a short soak, and the fitted trend is the leak's.
//! Not the product: the real server's soak is measured with `cargo xtask load soak`.

use std::sync::Mutex;
use std::time::Duration;

use commerce::grpc::proto::cart_service_server::{CartService, CartServiceServer};
use commerce::grpc::proto::{
    AddItemRequest, Cart, ClearCartRequest, GetCartRequest, RemoveItemRequest,
};
use load::render;
use load::report::Report;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use crate::support;

/// Bytes kept for good on every call.
const LEAK: usize = 32 * 1024;
/// What the leaky double keeps.
static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

struct Leaky;

#[tonic::async_trait]
impl CartService for Leaky {
    async fn get_cart(&self, _: Request<GetCartRequest>) -> Result<Response<Cart>, Status> {
        // Written, so that the pages are resident.
        let kept = vec![0x5a_u8; LEAK];
        KEPT.lock().unwrap_or_else(|p| p.into_inner()).push(kept);
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
[profiles.leak]
description = "100/s for 15 s"
warmup = "0s"
thresholds = ["memory_growth_per_hour < 1MB", "memory_growth_per_100k < 50MB", "error_rate < 1%"]

[[profiles.leak.scenarios]]
name = "reads"
executor = "constant-arrival-rate"
rate = 100
duration = "15s"
mix = { get_cart = 1 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaking_server_fails_a_short_soak() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().expect("a bound address").to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(CartServiceServer::new(Leaky))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let profile = support::profile(PROFILE, "leak");
    let mut options = support::options(&addr);
    // The double runs in this process: its memory is this process's.
    options.server_pid = Some(std::process::id());
    let raw = support::run(&profile, &addr, support::any_identities(), &options).await;
    let report = Report::from_raw(raw);

    assert!(!report.passed, "a leak of 32 KiB a request passed");
    let outcome = |name: &str| {
        report
            .thresholds
            .iter()
            .find(|t| t.threshold.starts_with(name))
            .unwrap_or_else(|| panic!("no outcome for {name}: {:?}", report.thresholds))
    };
    assert!(!outcome("memory_growth_per_hour").passed);
    assert!(!outcome("memory_growth_per_100k").passed);
    assert!(outcome("error_rate").passed, "{:?}", report.thresholds);

    // The fitted growth per request is the leak, within the noise of the allocator and of
    // the generator's own memory (the same process).
    let trend = report.memory_trend.as_ref().expect("a trend over 15 samples");
    let per_request = trend.growth_bytes_per_100k_requests.unwrap() / 1e5;
    assert!(
        (0.7 * LEAK as f64..1.3 * LEAK as f64).contains(&per_request),
        "{per_request:.0} bytes a request, leaked {LEAK}: {trend:?}"
    );
    assert!(trend.second_half_mean_bytes > trend.first_half_mean_bytes + 10e6);

    // In every report.
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["memoryTrend"]["growthBytesPerHour"].as_f64().unwrap() > 1e9);
    let text = render::terminal::render(&report);
    assert!(text.contains("server memory trend"), "{text}");
    let html = render::html::render(&report);
    assert!(html.contains("Memory trend"), "no trend in the HTML");
}
