//! The gRPC API: the generated protobuf code ([`proto`]), the tonic services over [`Commerce`],
//! and the helpers that serve them (the `commerce-server` binary, tests and benchmarks all use
//! [`router`] / [`serve`] / [`LocalServer`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Server;
use tonic::transport::server::{Router, TcpIncoming};
use tower::layer::util::{Identity, Stack};

use crate::Commerce;
use crate::metrics::GrpcMetricsLayer;

mod cart;
pub mod codec;
pub mod identity;
mod orders;
mod status;

pub use cart::CartApi;
pub use orders::OrderApi;
pub use status::to_status;

/// The code generated from `proto/commerce/v1/commerce.proto`.
// Generated code spells out full paths; that is its style, not ours to lint.
#[allow(unused_qualifications)]
pub mod proto {
    tonic::include_proto!("commerce.v1");
}

/// The encoded `FileDescriptorSet` of `commerce.proto`: the served methods, for the gRPC metrics.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("commerce_descriptor");

use proto::cart_service_server::CartServiceServer;
use proto::order_service_server::OrderServiceServer;

/// The router [`router`] builds: the services behind the gRPC metrics layer.
pub type CommerceRouter = Router<Stack<GrpcMetricsLayer, Identity>>;

/// The cart service, the order service and the standard gRPC health service (reporting both as
/// serving), with a tracing span per call, and the gRPC metrics when `commerce` records metrics
/// (see [`Commerce::with_metrics`]).
pub async fn router(commerce: Commerce) -> CommerceRouter {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<CartServiceServer<CartApi>>().await;
    reporter.set_serving::<OrderServiceServer<OrderApi>>().await;
    let metrics = commerce.metrics().map(|metrics| Arc::clone(metrics.grpc()));
    Server::builder()
        .trace_fn(|request| tracing::info_span!("grpc", path = %request.uri().path()))
        .layer(GrpcMetricsLayer::new(metrics))
        .add_service(health)
        .add_service(CartServiceServer::new(CartApi::new(
            commerce.carts,
            Arc::clone(&commerce.policy),
        )))
        .add_service(OrderServiceServer::new(OrderApi::new(
            commerce.orders,
            commerce.policy,
        )))
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes the calls in flight.
///
/// Accepted connections get `TCP_NODELAY`, which tonic sets only when it binds the listener
/// itself (`serve_with_incoming*` ignores the builder's setting). Without it, a response that
/// goes out in two segments waits for the client's delayed ACK: `AddItem` took 43 ms instead of
/// 1.3 ms (`cargo bench -p cart -- cart/grpc/add_item`).
pub async fn serve(
    listener: TcpListener,
    commerce: Commerce,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    router(commerce)
        .await
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// A server on an ephemeral port of 127.0.0.1, running on the current tokio runtime: for
/// end-to-end tests and benchmarks.
#[derive(Debug)]
pub struct LocalServer {
    addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl LocalServer {
    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn start(commerce: Commerce) -> std::io::Result<Self> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, commerce, async {
            // A dropped sender stops the server too.
            let _ = stopped.await;
        }));
        Ok(Self {
            addr,
            shutdown,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for `XxxClient::connect`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting calls, waits for the calls in flight, and returns how serving ended.
    pub async fn stop(self) -> Result<(), tonic::transport::Error> {
        let _ = self.shutdown.send(());
        match self.task.await {
            Ok(result) => result,
            // The server task only panics on a bug; surface it where the caller can see it.
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(_) => Ok(()),
        }
    }
}
