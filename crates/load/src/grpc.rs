//! A lean gRPC client for unary calls, on the `h2` crate: one HTTP/2 connection, reconnected
//! when it breaks.
//!
//! Written here rather than using tonic's client because of how a request reaches the wire.
//! Under tonic, hyper hands a request's body to h2 only once h2 has opened the stream and
//! granted it send capacity, which happens when h2's connection task writes the HEADERS
//! frame; the DATA frame then follows in a second write (strace of the generator: a `writev`
//! of the HEADERS, then one of the DATA, for every call). The server is woken twice per call,
//! and at a low, evenly spaced rate, where each wake-up finds an idle CPU, that about doubled
//! the median measured against an independent generator (`load/cross-check.sh`: h2load,
//! which writes both frames at once). Here the encoded message is handed to h2 together with
//! the request, before the connection task runs, so both frames leave in one write (on the
//! generator's default single-threaded runtime; with more threads, h2's connection task may
//! run in between). HTTP/2 itself (framing, HPACK, flow control) is h2's; the status is read
//! by tonic's code, in tonic's order (grpc-status first, then the HTTP status).
//!
//! A call's time on the wire ([`Wire`]) is stamped at the socket, as wrk does around its
//! `write` and `read`: from the write that carried the request to the read that carried the
//! end of its answer. What the generator's own code does before the write (building the
//! request, h2's framing, waking tasks) and after the read (decoding) then stays out of the
//! figures; see [`Wire`].

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use h2::client::SendRequest;
use http::header::{CONTENT_TYPE, HeaderValue, TE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, StatusCode, Uri};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::{Code, Status};

/// The gRPC message prefix: a compression flag and a 32-bit length.
const PREFIX: usize = 5;
/// Responses larger than this are refused (tonic's default limit too).
const MAX_RESPONSE: usize = 4 << 20;
/// HTTP/2 flow-control windows: large enough that no response of this API waits for one.
const WINDOW: u32 = 1 << 20;
/// After a failed attempt to connect, calls fail at once for this long rather than each
/// trying (and waiting for) a connection of its own.
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("`{0}` is not a valid server address (expected HOST:PORT)")]
    Address(String),
    #[error("cannot connect to {addr}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to {addr}: no answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("{addr} did not complete an HTTP/2 handshake")]
    Handshake {
        addr: String,
        #[source]
        source: h2::Error,
    },
}

/// The connection in use: its number, its sender and its socket's clock.
type Current = (u64, SendRequest<Bytes>, Arc<SocketClock>);

/// When a call's bytes crossed the socket: the write that carried its request and the read
/// that carried the end of its answer (for an operation of several calls, the first call's
/// write and the last call's read).
///
/// Both are bounds on the side of a longer time: the write is the first one that began after
/// the request was handed to h2 (h2 writes what is queued when its connection task next
/// runs; should the request have missed that write, the real one came later), and the read is
/// the latest one that returned bytes before the answer was taken (a read carrying another
/// stream's bytes may have followed the one that carried this answer). The first write is
/// `None` when no answer came (nothing shows the request was written); the last read is `None`
/// unless the last call's answer was read to its end (the call failed, or timed out).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wire {
    pub first_write: Option<Instant>,
    pub last_read: Option<Instant>,
}

/// One HTTP/2 connection to a gRPC server.
pub struct Connection {
    addr: String,
    authority: Authority,
    connect_timeout: Duration,
    /// The connection's sender, its number (counting the connections opened) and the clock
    /// of its socket; `None` after it broke: the next call opens a new one.
    sender: Mutex<Option<Current>>,
    /// Held while a new connection is being opened, so that callers who find it broken at
    /// the same time open one between them.
    reconnecting: tokio::sync::Mutex<()>,
    /// Connections opened after the first.
    opened: AtomicU64,
    /// When the last attempt to connect failed, and why.
    last_failure: Mutex<Option<(Instant, String)>>,
}

impl Connection {
    /// Opens a connection to `addr` (`HOST:PORT`) now, so that the first calls do not pay for
    /// it.
    pub async fn open(addr: &str, connect_timeout: Duration) -> Result<Connection, ConnectError> {
        let authority = authority(addr)?;
        let (sender, clock) = handshake(addr, connect_timeout).await?;
        Ok(Connection {
            addr: addr.to_owned(),
            authority,
            connect_timeout,
            sender: Mutex::new(Some((0, sender, clock))),
            reconnecting: tokio::sync::Mutex::new(()),
            opened: AtomicU64::new(0),
            last_failure: Mutex::new(None),
        })
    }

    /// Calls `path` (`/package.Service/Method`) with `request` and its metadata, and decodes
    /// the answer. Every failure is a [`Status`]: the server's, or one describing what went
    /// wrong on the way (`UNAVAILABLE` for a connection that cannot be made or broke).
    pub async fn unary<Req, Res>(
        &self,
        path: &'static str,
        request: tonic::Request<Req>,
    ) -> Result<Res, Status>
    where
        Req: prost::Message,
        Res: prost::Message + Default,
    {
        self.unary_on_wire(path, request, &mut Wire::default())
            .await
    }

    /// [`Connection::unary`], noting in `wire` when the call crossed the socket: its write, if
    /// `wire` has none yet, and its read, if an answer came.
    pub async fn unary_on_wire<Req, Res>(
        &self,
        path: &'static str,
        request: tonic::Request<Req>,
        wire: &mut Wire,
    ) -> Result<Res, Status>
    where
        Req: prost::Message,
        Res: prost::Message + Default,
    {
        let (metadata, _, message) = request.into_parts();
        let mut head = http::Request::new(());
        *head.method_mut() = Method::POST;
        *head.uri_mut() = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(PathAndQuery::from_static(path))
            .build()
            .map_err(|error| Status::internal(format!("bad request path {path}: {error}")))?;
        *head.headers_mut() = metadata.into_headers();
        let headers = head.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(TE, HeaderValue::from_static("trailers"));
        let body = encode(&message)?;

        // Until this call's answer has been read to its end, the operation has no end on the
        // wire: if the call fails, it ends when the generator gave up on it.
        wire.last_read = None;
        let (number, mut sender, clock) = self.ready_sender().await?;
        // Noted before the request is queued: the writes are serial, so on any runtime the
        // first write that begins after this one is no later than the one carrying the request.
        let queued = clock.writes_begun();
        let queued_at = Instant::now();
        let (response, mut stream) = sender
            .send_request(head, false)
            .map_err(|error| self.broken(number, error))?;
        // Before the connection task runs: the DATA frame goes out with the HEADERS.
        stream
            .send_data(body, true)
            .map_err(|error| self.broken(number, error))?;
        let failed = |error: h2::Error| {
            if error.is_io() || error.is_go_away() {
                self.broken(number, error)
            } else {
                // The stream's own failure (e.g. reset): the connection is fine.
                Status::from(error)
            }
        };
        let response = response.await.map_err(failed)?;
        // An answer came, so the request was written: by the first write after `queued`, or
        // later. If that write is no longer kept, the time it was queued is earlier still.
        if wire.first_write.is_none() {
            wire.first_write = Some(clock.write_after(queued).unwrap_or(queued_at));
        }
        let (parts, mut body) = response.into_parts();
        if body.is_end_stream() {
            // The headers were the whole answer (e.g. "trailers-only").
            wire.last_read = clock.last_read();
        }
        // A "trailers-only" answer: the status is in the headers, there is no message.
        if let Some(status) = status_of(&parts.headers) {
            return Err(match status.code() {
                Code::Ok => Status::internal("the server answered OK without a message"),
                _ => status,
            });
        }
        if parts.status != StatusCode::OK {
            return Err(status_of_http(parts.status));
        }
        let mut received = Bytes::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(failed)?;
            // Flow control: the data is ours now, the window may open again.
            let _ = body.flow_control().release_capacity(chunk.len());
            if received.len() + chunk.len() > MAX_RESPONSE + PREFIX {
                return Err(Status::resource_exhausted(format!(
                    "the response is larger than {MAX_RESPONSE} bytes"
                )));
            }
            received = if received.is_empty() {
                chunk
            } else {
                let mut joined = BytesMut::from(received);
                joined.extend_from_slice(&chunk);
                joined.freeze()
            };
        }
        let trailers = body.trailers().await.map_err(failed)?;
        wire.last_read = clock.last_read();
        let status = trailers.as_ref().and_then(status_of).unwrap_or_else(|| {
            // What tonic reports for an answer without a status.
            Status::unknown("the response ended without a grpc-status")
        });
        if status.code() != Code::Ok {
            return Err(status);
        }
        decode(received)
    }

    /// A sender ready for one more stream, and its connection's number. A connection found
    /// broken before the request goes out is replaced, once, without failing the call (as
    /// tonic's channel reconnects).
    async fn ready_sender(&self) -> Result<Current, Status> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (number, sender, clock) = match self.current() {
                Some(current) => current,
                None => self.reconnect().await?,
            };
            match sender.ready().await {
                Ok(sender) => return Ok((number, sender, clock)),
                Err(error) => {
                    let status = self.broken(number, error);
                    if attempt >= 2 {
                        return Err(status);
                    }
                }
            }
        }
    }

    fn current(&self) -> Option<Current> {
        self.sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn reconnect(&self) -> Result<Current, Status> {
        let _one_at_a_time = self.reconnecting.lock().await;
        if let Some(current) = self.current() {
            return Ok(current);
        }
        // Callers that waited while an attempt failed, or that come right after, share its
        // failure: an outage then shows as errors at once, not as a queue of attempts.
        if let Some((when, why)) = &*self
            .last_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            && when.elapsed() < RETRY_AFTER
        {
            return Err(Status::unavailable(why.clone()));
        }
        let (sender, clock) = match handshake(&self.addr, self.connect_timeout).await {
            Ok(opened) => opened,
            Err(error) => {
                // The error and its sources, `outer: inner`, as anyhow writes them.
                let why = format!("{:#}", anyhow::Error::new(error));
                *self
                    .last_failure
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some((Instant::now(), why.clone()));
                return Err(Status::unavailable(why));
            }
        };
        let number = self.opened.fetch_add(1, Ordering::Relaxed) + 1;
        *self
            .sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((number, sender.clone(), Arc::clone(&clock)));
        Ok((number, sender, clock))
    }

    /// The status of a call whose connection (number `number`) broke: it is forgotten, and
    /// the next call opens a new one.
    fn broken(&self, number: u64, error: h2::Error) -> Status {
        let mut slot = self
            .sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Unless another call has already replaced it.
        if slot
            .as_ref()
            .is_some_and(|(current, ..)| *current == number)
        {
            *slot = None;
        }
        Status::unavailable(format!("the connection to {} broke: {error}", self.addr))
    }
}

async fn handshake(
    addr: &str,
    timeout: Duration,
) -> Result<(SendRequest<Bytes>, Arc<SocketClock>), ConnectError> {
    let clock = Arc::new(SocketClock::new());
    let connect = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|source| ConnectError::Io {
                addr: addr.to_owned(),
                source,
            })?;
        tcp.set_nodelay(true).map_err(|source| ConnectError::Io {
            addr: addr.to_owned(),
            source,
        })?;
        h2::client::Builder::new()
            .enable_push(false)
            .initial_window_size(WINDOW)
            .initial_connection_window_size(WINDOW)
            .handshake::<_, Bytes>(Stamped {
                inner: tcp,
                clock: Arc::clone(&clock),
            })
            .await
            .map_err(|source| ConnectError::Handshake {
                addr: addr.to_owned(),
                source,
            })
    };
    let (sender, connection) =
        tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| ConnectError::Timeout {
                addr: addr.to_owned(),
                timeout,
            })??;
    // The connection's own task reads and writes the socket; it ends when the connection
    // closes, and the next call then finds the sender broken.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((sender, clock))
}

/// How many writes of the last ones a [`SocketClock`] keeps the time of. Calls that see more
/// writes on their connection while they are in flight (a server stall under a high rate)
/// fall back to the time their request was queued, which is earlier than its write.
const WRITES_KEPT: usize = 1024;

/// When a connection's socket was written and read: the times of the last [`WRITES_KEPT`]
/// writes, by number, and of the last read that returned bytes.
struct SocketClock {
    origin: Instant,
    writes: Mutex<WriteLog>,
    /// Nanoseconds from `origin` to the end of the last read that returned bytes; 0: none yet.
    last_read: AtomicU64,
}

struct WriteLog {
    /// Writes made so far, each counted when it returns (and stamped with when it began): a
    /// write still under way when a call notes this count is numbered after it, and began
    /// earlier than the call's request was queued, which errs on the side of a longer time.
    begun: u64,
    /// Write `k` (counting from 1) in slot `k % WRITES_KEPT`: its number and when it began.
    times: Box<[(u64, Instant)]>,
}

impl SocketClock {
    fn new() -> SocketClock {
        let origin = Instant::now();
        SocketClock {
            origin,
            writes: Mutex::new(WriteLog {
                begun: 0,
                times: vec![(0, origin); WRITES_KEPT].into_boxed_slice(),
            }),
            last_read: AtomicU64::new(0),
        }
    }

    fn log(&self) -> std::sync::MutexGuard<'_, WriteLog> {
        self.writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The number of writes made so far.
    fn writes_begun(&self) -> u64 {
        self.log().begun
    }

    /// Notes a write that began at `at`, if it wrote bytes (`polled` is its outcome).
    fn wrote(&self, at: Instant, polled: &Poll<std::io::Result<usize>>) {
        if !matches!(polled, Poll::Ready(Ok(n)) if *n > 0) {
            return;
        }
        let mut log = self.log();
        log.begun += 1;
        let k = log.begun;
        log.times[(k % WRITES_KEPT as u64) as usize] = (k, at);
    }

    /// When the first write after the first `begun` writes began, if it did and is still kept.
    fn write_after(&self, begun: u64) -> Option<Instant> {
        let k = begun + 1;
        let (number, at) = self.log().times[(k % WRITES_KEPT as u64) as usize];
        (number == k).then_some(at)
    }

    fn read(&self, at: Instant) {
        let nanos = u64::try_from(at.saturating_duration_since(self.origin).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        self.last_read.fetch_max(nanos, Ordering::Relaxed);
    }

    /// When the last read that returned bytes ended.
    fn last_read(&self) -> Option<Instant> {
        match self.last_read.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(self.origin + Duration::from_nanos(nanos)),
        }
    }
}

/// A socket that notes in its [`SocketClock`] when it was written and read.
///
/// Written here: what is needed is the time of the system calls themselves, which no
/// HTTP/2 client exposes; a wrapper around the transport is how hyper and h2 expect that to
/// be done (as tokio's own `tokio-io-timeout` and `hyper-timeout` wrap a stream).
struct Stamped {
    inner: TcpStream,
    clock: Arc<SocketClock>,
}

impl AsyncRead for Stamped {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.read(Instant::now());
        }
        polled
    }
}

impl AsyncWrite for Stamped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let at = Instant::now();
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.clock.wrote(at, &polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let at = Instant::now();
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.clock.wrote(at, &polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// `addr` as the `:authority` of the requests: a host and a port.
fn authority(addr: &str) -> Result<Authority, ConnectError> {
    match addr.parse::<Authority>() {
        Ok(authority) if authority.port_u16().is_some() && !addr.contains('@') => Ok(authority),
        _ => Err(ConnectError::Address(addr.to_owned())),
    }
}

/// A message in gRPC's framing: uncompressed, its length, its protobuf encoding.
fn encode(message: &impl prost::Message) -> Result<Bytes, Status> {
    let len = message.encoded_len();
    let prefix = u32::try_from(len)
        .map_err(|_| Status::internal(format!("a request of {len} bytes is too large")))?;
    let mut buf = BytesMut::with_capacity(PREFIX + len);
    buf.put_u8(0);
    buf.put_u32(prefix);
    message
        .encode(&mut buf)
        .map_err(|error| Status::internal(format!("cannot encode the request: {error}")))?;
    Ok(buf.freeze())
}

/// The one message of a unary response.
fn decode<Res: prost::Message + Default>(mut body: Bytes) -> Result<Res, Status> {
    if body.len() < PREFIX {
        return Err(Status::internal(
            "the server answered OK without a complete message",
        ));
    }
    let compressed = body.get_u8();
    let len = body.get_u32() as usize;
    if compressed != 0 {
        return Err(Status::internal(
            "the server compressed a response it was not asked to compress",
        ));
    }
    if body.len() != len {
        return Err(Status::internal(format!(
            "the response announced {len} bytes and carried {}",
            body.len()
        )));
    }
    Res::decode(body)
        .map_err(|error| Status::internal(format!("cannot decode the response: {error}")))
}

/// The gRPC status in `headers` (trailers, or the headers of a trailers-only answer).
fn status_of(headers: &HeaderMap) -> Option<Status> {
    headers.get("grpc-status")?;
    const DETAILS: &str = "grpc-status-details-bin";
    if headers.contains_key(DETAILS) {
        // Details are not used here, and tonic's parser panics on a malformed value.
        let mut headers = headers.clone();
        headers.remove(DETAILS);
        return Status::from_header_map(&headers);
    }
    Status::from_header_map(headers)
}

/// gRPC's mapping of an HTTP status that is not 200 (doc/http-grpc-status-mapping.md).
fn status_of_http(status: StatusCode) -> Status {
    let code = match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(code, format!("the server answered HTTP {status}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_framed_and_read_back() {
        let request = tonic_health::pb::HealthCheckRequest {
            service: "commerce".to_owned(),
        };
        let framed = encode(&request).unwrap();
        assert_eq!(framed[0], 0);
        assert_eq!(
            u32::from_be_bytes(framed[1..5].try_into().unwrap()) as usize,
            framed.len() - PREFIX
        );
        let back: tonic_health::pb::HealthCheckRequest = decode(framed).unwrap();
        assert_eq!(back, request);
    }

    #[test]
    fn a_truncated_or_compressed_answer_is_an_error() {
        let framed = encode(&tonic_health::pb::HealthCheckRequest {
            service: "commerce".to_owned(),
        })
        .unwrap();
        let cut = framed.slice(..framed.len() - 1);
        let error = decode::<tonic_health::pb::HealthCheckRequest>(cut).unwrap_err();
        assert_eq!(error.code(), Code::Internal);
        assert!(error.message().contains("announced"), "{error}");
        let mut compressed = BytesMut::from(&framed[..]);
        compressed[0] = 1;
        let error =
            decode::<tonic_health::pb::HealthCheckRequest>(compressed.freeze()).unwrap_err();
        assert!(error.message().contains("compressed"), "{error}");
        assert!(decode::<tonic_health::pb::HealthCheckRequest>(Bytes::new()).is_err());
    }

    #[test]
    fn statuses_come_from_trailers_and_http() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("5"));
        trailers.insert(
            "grpc-message",
            HeaderValue::from_static("no%20such%20order"),
        );
        trailers.insert(
            "grpc-status-details-bin",
            HeaderValue::from_static("not base64!"),
        );
        let status = status_of(&trailers).unwrap();
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "no such order");
        assert!(status_of(&HeaderMap::new()).is_none());
        assert_eq!(
            status_of_http(StatusCode::SERVICE_UNAVAILABLE).code(),
            Code::Unavailable
        );
        assert_eq!(
            status_of_http(StatusCode::NOT_FOUND).code(),
            Code::Unimplemented
        );
    }

    #[test]
    fn addresses_need_a_port() {
        assert!(authority("127.0.0.1:50051").is_ok());
        assert!(authority("localhost:50051").is_ok());
        assert!(authority("[::1]:50051").is_ok());
        assert!(authority("localhost").is_err());
        assert!(authority("http://x:1/").is_err());
        assert!(authority("user@x:1").is_err());
    }
}
