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

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use h2::client::SendRequest;
use http::header::{CONTENT_TYPE, HeaderValue, TE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, StatusCode, Uri};
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

/// One HTTP/2 connection to a gRPC server.
pub struct Connection {
    addr: String,
    authority: Authority,
    connect_timeout: Duration,
    /// The connection's sender and its number (counting the connections opened); `None`
    /// after it broke: the next call opens a new one.
    sender: Mutex<Option<(u64, SendRequest<Bytes>)>>,
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
        let sender = handshake(addr, connect_timeout).await?;
        Ok(Connection {
            addr: addr.to_owned(),
            authority,
            connect_timeout,
            sender: Mutex::new(Some((0, sender))),
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

        let (number, mut sender) = self.ready_sender().await?;
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
        let (parts, mut body) = response.into_parts();
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
    async fn ready_sender(&self) -> Result<(u64, SendRequest<Bytes>), Status> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (number, sender) = match self.current() {
                Some(current) => current,
                None => self.reconnect().await?,
            };
            match sender.ready().await {
                Ok(sender) => return Ok((number, sender)),
                Err(error) => {
                    let status = self.broken(number, error);
                    if attempt >= 2 {
                        return Err(status);
                    }
                }
            }
        }
    }

    fn current(&self) -> Option<(u64, SendRequest<Bytes>)> {
        self.sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn reconnect(&self) -> Result<(u64, SendRequest<Bytes>), Status> {
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
        let sender = match handshake(&self.addr, self.connect_timeout).await {
            Ok(sender) => sender,
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
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((number, sender.clone()));
        Ok((number, sender))
    }

    /// The status of a call whose connection (number `number`) broke: it is forgotten, and
    /// the next call opens a new one.
    fn broken(&self, number: u64, error: h2::Error) -> Status {
        let mut slot = self
            .sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Unless another call has already replaced it.
        if slot.as_ref().is_some_and(|(current, _)| *current == number) {
            *slot = None;
        }
        Status::unavailable(format!("the connection to {} broke: {error}", self.addr))
    }
}

async fn handshake(addr: &str, timeout: Duration) -> Result<SendRequest<Bytes>, ConnectError> {
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
            .handshake::<_, Bytes>(tcp)
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
    Ok(sender)
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
