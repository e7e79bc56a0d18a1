//! The HTTP listener of `/metrics` (`commerce-server --metrics-addr`), apart from the gRPC port
//! so that the API's port never answers plain HTTP and the scrape port can stay internal.

use std::future::Future;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use tokio::net::TcpListener;

use super::Metrics;

/// Serves `GET /metrics` (Prometheus' text format, version 0.0.4) on `listener` until `shutdown`
/// resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
                    metrics.encode(),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
