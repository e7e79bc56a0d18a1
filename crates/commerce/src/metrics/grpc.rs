//! The gRPC server metrics, named like go-grpc-prometheus's (`grpc_server_started_total`,
//! `grpc_server_handled_total`, `grpc_server_handling_seconds`, with the gRPC codes spelled as
//! Go spells them: `OK`, `NotFound`, …), recorded by a tower layer around tonic's routes.
//!
//! Written here because no crate fits: `tonic_prometheus_layer` (0.3, the one with these names)
//! depends on tonic 0.13, takes the code from the response headers only (a unary call that
//! succeeds carries `grpc-status` in its trailers, so it is timed until its headers and an
//! error sent in trailers counts as OK), labels unknown paths verbatim (a client choosing paths
//! chooses the cardinality), and keeps its metrics in process-wide statics.
//!
//! How a call is recorded: started when the request reaches the layer; finished with the code of
//! `grpc-status` in the response headers (a trailers-only response: tonic's errors) or, else, in
//! the trailers at the end of the body, which is when the call's time is taken; a body dropped
//! before its end is a call the client cancelled (`Canceled`). Methods come from the descriptors
//! of the served protos, so every series is created up front and any other path is counted under
//! `grpc_service="unknown", grpc_method="unknown"`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame, SizeHint};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};
use prost::Message as _;
use tonic::Code;
use tower::{Layer, Service};

use super::{LATENCY_BUCKETS, MetricsError};

/// The codes as go-grpc-prometheus labels them (Go's `codes.Code.String()`), by code number.
pub const CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The label of `code`.
pub fn code_name(code: Code) -> &'static str {
    CODE_NAMES
        .get(code as usize)
        .copied()
        .unwrap_or(CODE_NAMES[Code::Unknown as usize])
}

/// The gRPC metrics of one registry, with a handle per served method.
pub struct GrpcMetrics {
    /// By path, `/package.Service/Method`.
    methods: HashMap<Box<str>, Arc<MethodMetrics>>,
    /// Every path that is not a served method; created on first use.
    unknown: OnceLock<Arc<MethodMetrics>>,
    started: IntCounterVec,
    handled: IntCounterVec,
    handling: HistogramVec,
}

impl std::fmt::Debug for GrpcMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcMetrics")
            .field("methods", &self.methods.len())
            .finish_non_exhaustive()
    }
}

/// The series of one method, resolved once so that a call does no label lookup.
struct MethodMetrics {
    started: IntCounter,
    /// By code number.
    handled: [IntCounter; 17],
    handling: Histogram,
}

impl GrpcMetrics {
    /// The metrics of the methods of the commerce API and of `grpc.health.v1`, registered in
    /// `registry`.
    pub fn new(registry: &Registry) -> Result<Self, MetricsError> {
        let started = IntCounterVec::new(
            Opts::new(
                "grpc_server_started_total",
                "Total number of RPCs started on the server.",
            ),
            &["grpc_service", "grpc_method"],
        )?;
        let handled = IntCounterVec::new(
            Opts::new(
                "grpc_server_handled_total",
                "Total number of RPCs completed on the server, regardless of success or failure.",
            ),
            &["grpc_service", "grpc_method", "grpc_code"],
        )?;
        let handling = HistogramVec::new(
            HistogramOpts::new(
                "grpc_server_handling_seconds",
                "Response latency (seconds) of gRPC calls until the last byte of the response, as seen by the server.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["grpc_service", "grpc_method"],
        )?;
        registry.register(Box::new(started.clone()))?;
        registry.register(Box::new(handled.clone()))?;
        registry.register(Box::new(handling.clone()))?;
        let mut metrics = GrpcMetrics {
            methods: HashMap::new(),
            unknown: OnceLock::new(),
            started,
            handled,
            handling,
        };
        for descriptors in [
            crate::grpc::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ] {
            for (service, method) in methods(descriptors)? {
                let path = format!("/{service}/{method}").into_boxed_str();
                let handles = Arc::new(metrics.method(&service, &method));
                metrics.methods.insert(path, handles);
            }
        }
        Ok(metrics)
    }

    /// `(service, method)` of every method with metrics, sorted.
    pub fn methods(&self) -> Vec<(String, String)> {
        let mut methods: Vec<(String, String)> = self
            .methods
            .keys()
            .filter_map(|path| {
                let (service, method) = path.strip_prefix('/')?.split_once('/')?;
                Some((service.to_owned(), method.to_owned()))
            })
            .collect();
        methods.sort();
        methods
    }

    /// Calls finished so far, over every method and code: for checks (the benchmarks assert
    /// that their calls went through the layer), not for the hot path.
    pub fn handled_total(&self) -> u64 {
        self.methods
            .values()
            .chain(self.unknown.get())
            .flat_map(|method| &method.handled)
            .map(IntCounter::get)
            .sum()
    }

    fn method(&self, service: &str, method: &str) -> MethodMetrics {
        MethodMetrics {
            started: self.started.with_label_values(&[service, method]),
            handled: std::array::from_fn(|code| {
                self.handled
                    .with_label_values(&[service, method, CODE_NAMES[code]])
            }),
            handling: self.handling.with_label_values(&[service, method]),
        }
    }

    /// Counts a call of `path` as started.
    fn start(&self, path: &str) -> Call {
        let method = match self.methods.get(path) {
            Some(method) => Arc::clone(method),
            None => Arc::clone(
                self.unknown
                    .get_or_init(|| Arc::new(self.method("unknown", "unknown"))),
            ),
        };
        method.started.inc();
        Call {
            method: Some(method),
            started: Instant::now(),
        }
    }
}

/// `(service, method)` of every method of every service in an encoded `FileDescriptorSet`.
fn methods(descriptors: &[u8]) -> Result<Vec<(String, String)>, prost::DecodeError> {
    let set = prost_types::FileDescriptorSet::decode(descriptors)?;
    let mut methods = Vec::new();
    for file in &set.file {
        for service in &file.service {
            let name = match file.package() {
                "" => service.name().to_owned(),
                package => format!("{package}.{}", service.name()),
            };
            for method in &service.method {
                methods.push((name.clone(), method.name().to_owned()));
            }
        }
    }
    Ok(methods)
}

/// A call in flight; records itself as cancelled if dropped before it finished.
struct Call {
    /// `None` once recorded.
    method: Option<Arc<MethodMetrics>>,
    started: Instant,
}

impl Call {
    fn finish(&mut self, code: Code) {
        if let Some(method) = self.method.take() {
            let index = (code as usize).min(CODE_NAMES.len() - 1);
            method.handled[index].inc();
            method
                .handling
                .observe(self.started.elapsed().as_secs_f64());
        }
    }

    /// Finishes with the code of a `grpc-status` header or trailer; `Unknown` without one.
    fn finish_with(&mut self, headers: Option<&http::HeaderMap>) {
        let code = headers
            .and_then(|headers| headers.get("grpc-status"))
            .map_or(Code::Unknown, |status| Code::from_bytes(status.as_bytes()));
        self.finish(code);
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish(Code::Cancelled);
    }
}

/// The tower layer that records the gRPC metrics; without metrics it only passes calls through,
/// so that the server has one type with metrics on or off.
#[derive(Clone, Debug, Default)]
pub struct GrpcMetricsLayer {
    metrics: Option<Arc<GrpcMetrics>>,
}

impl GrpcMetricsLayer {
    pub fn new(metrics: Option<Arc<GrpcMetrics>>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service of [`GrpcMetricsLayer`].
#[derive(Clone, Debug)]
pub struct GrpcMetricsService<S> {
    inner: S,
    metrics: Option<Arc<GrpcMetrics>>,
}

impl<S, RequestBody, ResponseBody> Service<http::Request<RequestBody>> for GrpcMetricsService<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<ResponseBody>>,
{
    type Response = http::Response<MeteredBody<ResponseBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        let call = self
            .metrics
            .as_ref()
            .map(|metrics| metrics.start(request.uri().path()));
        ResponseFuture {
            inner: self.inner.call(request),
            call,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`GrpcMetricsService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
    }
}

impl<F, ResponseBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<ResponseBody>, E>>,
{
    type Output = Result<http::Response<MeteredBody<ResponseBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let mut call = this.call.take();
        Poll::Ready(match result {
            Ok(response) => {
                if let Some(call) = call.as_mut()
                    && response.headers().contains_key("grpc-status")
                {
                    // Trailers-only: the status is in the headers and the body is empty.
                    call.finish_with(Some(response.headers()));
                }
                Ok(response.map(|inner| MeteredBody {
                    inner,
                    call: call.filter(|call| call.method.is_some()),
                }))
            }
            Err(error) => {
                if let Some(call) = call.as_mut() {
                    call.finish(Code::Unknown);
                }
                Err(error)
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that finishes its call's record when its trailers go out.
    pub struct MeteredBody<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
    }
}

impl<B: Body> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = this.inner.poll_frame(cx);
        if let Some(call) = this.call.as_mut() {
            match &frame {
                Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => {
                    call.finish_with(frame.trailers_ref());
                }
                Poll::Ready(Some(Err(_))) => call.finish(Code::Internal),
                // The end without trailers: no status was sent.
                Poll::Ready(None) => call.finish(Code::Unknown),
                _ => {}
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_follow_the_code_numbers() {
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::Cancelled), "Canceled");
        assert_eq!(code_name(Code::NotFound), "NotFound");
        assert_eq!(code_name(Code::Unauthenticated), "Unauthenticated");
        assert_eq!(Code::from_i32(16), Code::Unauthenticated);
    }

    #[test]
    fn methods_come_from_the_served_descriptors() {
        let metrics = GrpcMetrics::new(&Registry::new()).unwrap();
        let methods = metrics.methods();
        for expected in [
            ("commerce.v1.CartService", "GetCart"),
            ("commerce.v1.OrderService", "CreateOrder"),
            ("grpc.health.v1.Health", "Check"),
        ] {
            assert!(
                methods
                    .iter()
                    .any(|(service, method)| (service.as_str(), method.as_str()) == expected),
                "{expected:?} not in {methods:?}"
            );
        }
    }

    #[test]
    fn a_dropped_call_is_cancelled_and_unknown_paths_share_one_series() {
        let registry = Registry::new();
        let metrics = GrpcMetrics::new(&registry).unwrap();
        drop(metrics.start("/commerce.v1.CartService/GetCart"));
        let mut call = metrics.start("/x.Y/Z");
        call.finish(Code::Unimplemented);
        metrics.start("/a.B/C").finish(Code::Unimplemented);
        let cancelled =
            metrics
                .handled
                .with_label_values(&["commerce.v1.CartService", "GetCart", "Canceled"]);
        assert_eq!(cancelled.get(), 1);
        let unknown = metrics
            .handled
            .with_label_values(&["unknown", "unknown", "Unimplemented"]);
        assert_eq!(unknown.get(), 2);
        assert_eq!(metrics.handled_total(), 3);
    }
}
