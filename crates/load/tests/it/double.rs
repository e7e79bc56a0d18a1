//! A test double of the cart service: answers `GetCart` at once, except during one stall of a
//! chosen length that starts a chosen time after its first call. Not the product: a stand-in
//! with a behaviour the tests can predict.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use commerce::grpc::proto::cart_service_server::{CartService, CartServiceServer};
use commerce::grpc::proto::{
    AddItemRequest, Cart, ClearCartRequest, GetCartRequest, RemoveItemRequest,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct Stalling {
    first_call: Arc<OnceLock<Instant>>,
    stall_after: Duration,
    stall_for: Duration,
}

#[tonic::async_trait]
impl CartService for Stalling {
    async fn get_cart(&self, _: Request<GetCartRequest>) -> Result<Response<Cart>, Status> {
        let first = *self.first_call.get_or_init(Instant::now);
        let (from, until) = (
            first + self.stall_after,
            first + self.stall_after + self.stall_for,
        );
        let now = Instant::now();
        if now >= from && now < until {
            tokio::time::sleep_until(until.into()).await;
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

/// Serves a cart service on a free port of 127.0.0.1 (with TCP_NODELAY, as the server does),
/// for the life of the test; its address.
pub async fn serve_cart<T: CartService>(service: T) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().expect("a bound address").to_string();
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(CartServiceServer::new(service))
            .serve_with_incoming(incoming),
    );
    addr
}

pub struct Double {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Double {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves the double on a free port of 127.0.0.1; `stall_for` zero never stalls.
pub async fn start(stall_after: Duration, stall_for: Duration) -> Double {
    start_on(
        "127.0.0.1:0".parse().expect("an address"),
        stall_after,
        stall_for,
    )
    .await
}

/// Serves the double on `addr` (port 0: a free one).
pub async fn start_on(addr: SocketAddr, stall_after: Duration, stall_for: Duration) -> Double {
    // A port just freed may be taken for a moment by another test's connection: try for 2 s.
    let mut tries = 0;
    let listener = loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => break listener,
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse && tries < 40 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("cannot listen on {addr}: {error}"),
        }
    };
    let addr = listener.local_addr().expect("a bound address");
    let service = Stalling {
        first_call: Arc::new(OnceLock::new()),
        stall_after,
        stall_for,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(CartServiceServer::new(service))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            }),
    );
    Double {
        addr,
        stop: Some(stop),
    }
}
