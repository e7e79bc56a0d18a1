//! Soak: a test double of the cart service that leaks memory on purpose (32 KiB kept per
//! `GetCart`) fails the memory thresholds of a short soak, and the fitted trend is the leak's.
//! Not the product: the real server's soak is measured with `cargo xtask load soak`.
//!
//! The double runs in a process of its own (this test binary, run again for the ignored test
//! `leaky_server_child`), so that its resident memory is its own: the other tests of this
//! binary run in threads of this process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use commerce::grpc::proto::cart_service_server::CartService;
use commerce::grpc::proto::{
    AddItemRequest, Cart, ClearCartRequest, GetCartRequest, RemoveItemRequest,
};
use load::render;
use load::report::Report;
use tonic::{Request, Response, Status};

use crate::{double, support};

/// Bytes kept for good on every call.
const LEAK: usize = 32 * 1024;
/// Set in the child's environment: only then does `leaky_server_child` serve.
const CHILD: &str = "LOAD_TEST_LEAKY_CHILD";
/// The child's line announcing its address.
const LISTENING: &str = "leaky double listening on ";

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

/// The leaky double's process: serves until its stdin closes (the parent ended or died).
#[tokio::test]
#[ignore = "the server of a_leaking_server_fails_a_short_soak, which runs it in a child process"]
async fn leaky_server_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let addr = double::serve_cart(Leaky).await;
    println!("{LISTENING}{addr}");
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
    })
    .await
    .expect("stdin is read to its end");
}

/// The child, killed when the test ends however it ends.
struct ChildServer(Child);

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_child() -> (ChildServer, String) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = ChildServer(
        Command::new(exe)
            .args([
                "soak::leaky_server_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the test binary runs again"),
    );
    let stdout = child.0.stdout.take().expect("a piped stdout");
    // Read on a thread of its own, so that a child that never announces fails the test
    // instead of hanging it. libtest writes "test NAME ... " before the test's own output, on
    // the same line: the announcement is looked for anywhere in a line.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let addr = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| {
                line.split_once(LISTENING)
                    .map(|(_, addr)| addr.trim().to_owned())
            });
        let _ = tx.send(addr);
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .ok()
        .flatten()
        .expect("the child announces its address within a minute");
    (child, addr)
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
    let (child, addr) = start_child();
    let profile = support::profile(PROFILE, "leak");
    let mut options = support::options(&addr);
    options.server_pid = Some(child.0.id());
    let raw = support::run(&profile, &addr, support::any_identities(), &options).await;
    drop(child);
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

    // The fitted growth per request is the leak, within the allocator's noise.
    let trend = report
        .memory_trend
        .as_ref()
        .expect("a trend over 15 samples");
    let per_request = trend.growth_bytes_per_100k_requests.unwrap() / 1e5;
    assert!(
        (0.7 * LEAK as f64..1.5 * LEAK as f64).contains(&per_request),
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
