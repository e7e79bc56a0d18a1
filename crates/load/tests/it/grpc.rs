//! The lean gRPC client (`load::grpc`) against tonic servers: answers, the server's statuses
//! (trailers-only, and in trailers after a response began), and a connection that breaks and
//! comes back.

use std::future::Future;
use std::time::{Duration, Instant};

use commerce::grpc::proto::cart_service_server::{CartService, CartServiceServer};
use commerce::grpc::proto::{
    AddItemRequest, Cart, ClearCartRequest, GetCartRequest, RemoveItemRequest,
};
use load::grpc::{Connection, Wire};
use tokio::net::TcpListener;
use tonic::{Code, Request, Response, Status};

use crate::double;

const GET_CART: &str = "/commerce.v1.CartService/GetCart";

/// Fails the test instead of hanging it.
async fn within<T>(call: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("an answer within 10 s")
}

async fn get_cart(connection: &Connection) -> Result<Cart, Status> {
    get_cart_on_wire(connection, &mut Wire::default()).await
}

async fn get_cart_on_wire(connection: &Connection, wire: &mut Wire) -> Result<Cart, Status> {
    within(connection.unary_on_wire::<_, Cart>(
        GET_CART,
        Request::new(GetCartRequest::default()),
        wire,
    ))
    .await
}

#[tokio::test]
async fn answers_and_statuses_reach_the_caller() {
    let server = double::start(Duration::ZERO, Duration::ZERO).await;
    let connection = Connection::open(&server.addr.to_string(), Duration::from_secs(5))
        .await
        .expect("the double is up");
    get_cart(&connection).await.expect("GetCart answers");

    // A handler's error: tonic answers "trailers-only" (the status in the headers).
    let error = within(connection.unary::<_, Cart>(
        "/commerce.v1.CartService/AddItem",
        Request::new(AddItemRequest {
            product_id: "p".to_owned(),
            quantity: 1,
        }),
    ))
    .await
    .unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented, "{error:?}");
    assert_eq!(error.message(), "test double");

    // A method tonic's router does not know: trailers-only too.
    let error = within(connection.unary::<_, Cart>(
        "/commerce.v1.NoSuchService/Nothing",
        Request::new(GetCartRequest::default()),
    ))
    .await
    .unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented, "{error:?}");
}

/// A cart service whose carts are never empty.
struct Priced;

#[tonic::async_trait]
impl CartService for Priced {
    async fn get_cart(&self, _: Request<GetCartRequest>) -> Result<Response<Cart>, Status> {
        Ok(Response::new(Cart {
            items: vec![],
            total_cents: 1_234,
            version: 7,
        }))
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

async fn serve_priced(max_encoding: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().expect("a bound address").to_string();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(CartServiceServer::new(Priced).max_encoding_message_size(max_encoding))
            .serve_with_incoming(incoming),
    );
    addr
}

#[tokio::test]
async fn the_message_is_decoded_and_a_status_in_the_trailers_is_read() {
    let addr = serve_priced(usize::MAX).await;
    let connection = Connection::open(&addr, Duration::from_secs(5))
        .await
        .expect("the server is up");
    let cart = get_cart(&connection).await.expect("GetCart answers");
    assert_eq!((cart.total_cents, cart.version), (1_234, 7));

    // The response cannot be encoded within 1 byte: tonic has sent the headers already and
    // puts OUT_OF_RANGE in the trailers.
    let addr = serve_priced(1).await;
    let connection = Connection::open(&addr, Duration::from_secs(5))
        .await
        .expect("the server is up");
    let error = get_cart(&connection).await.unwrap_err();
    assert_eq!(error.code(), Code::OutOfRange, "{error:?}");
}

#[tokio::test]
async fn a_connection_that_breaks_is_opened_again() {
    let server = double::start(Duration::ZERO, Duration::ZERO).await;
    let addr = server.addr;
    let connection = Connection::open(&addr.to_string(), Duration::from_secs(1))
        .await
        .expect("the double is up");
    get_cart(&connection).await.expect("GetCart answers");

    drop(server);
    let deadline = Instant::now() + Duration::from_secs(10);
    let error = loop {
        match get_cart(&connection).await {
            Err(error) => break error,
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(_) => panic!("calls still succeed 10 s after the server stopped"),
        }
    };
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");

    let _server = double::start_on(addr, Duration::ZERO, Duration::ZERO).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match get_cart(&connection).await {
            Ok(_) => break,
            Err(error) if Instant::now() < deadline => {
                assert_eq!(error.code(), Code::Unavailable, "{error:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("no answer 10 s after the server came back: {error:?}"),
        }
    }
}

#[tokio::test]
async fn bad_addresses_and_closed_ports_are_errors_not_panics() {
    let error = Connection::open("no-port", Duration::from_secs(1))
        .await
        .err()
        .expect("an address without a port is refused");
    assert!(error.to_string().contains("HOST:PORT"), "{error}");

    // A port nobody listens on: bind one, then free it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let error = Connection::open(&addr, Duration::from_secs(1))
        .await
        .err()
        .expect("nobody listens");
    assert!(error.to_string().contains("cannot connect"), "{error}");
}

#[tokio::test]
async fn the_wire_times_lie_within_the_call_and_span_the_server() {
    wire_times_lie_within_the_call_and_span_the_server().await;
}

/// With h2's connection task on another thread than the caller's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wire_times_hold_on_a_multi_threaded_runtime() {
    wire_times_lie_within_the_call_and_span_the_server().await;
}

async fn wire_times_lie_within_the_call_and_span_the_server() {
    // The double holds its first answer for 300 ms from the moment it received the request.
    let stall = Duration::from_millis(300);
    let server = double::start(Duration::ZERO, stall).await;
    let connection = Connection::open(&server.addr.to_string(), Duration::from_secs(5))
        .await
        .expect("the double is up");
    let mut wire = Wire::default();
    let before = Instant::now();
    get_cart_on_wire(&connection, &mut wire)
        .await
        .expect("GetCart answers");
    let after = Instant::now();
    let (write, read) = (wire.first_write.unwrap(), wire.last_read.unwrap());
    assert!(
        before <= write && write <= read && read <= after,
        "{wire:?}"
    );
    // Written before the server received it, read after the server answered.
    assert!(read - write >= stall, "{:?} on the wire", read - write);

    // A second call of the same operation: the first write stays, the last read moves on.
    let error = within(connection.unary_on_wire::<_, Cart>(
        "/commerce.v1.CartService/AddItem",
        Request::new(AddItemRequest {
            product_id: "p".to_owned(),
            quantity: 1,
        }),
        &mut wire,
    ))
    .await
    .unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented, "{error:?}");
    assert_eq!(wire.first_write, Some(write));
    let again = wire.last_read.unwrap();
    assert!(after <= again && again <= Instant::now(), "{wire:?}");

    // A further call of the operation that gets no answer: the operation has no end on the
    // wire any more (it ends when the generator gives up), and keeps its first write.
    drop(server);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let outcome = get_cart_on_wire(&connection, &mut wire).await;
        if outcome.is_err() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "calls still succeed 10 s after the server stopped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        wire.last_read = Some(again);
    }
    assert_eq!(
        wire,
        Wire {
            first_write: Some(write),
            last_read: None
        }
    );

    // An operation whose only call gets no answer has no wire times at all.
    let mut none = Wire::default();
    let outcome = get_cart_on_wire(&connection, &mut none).await;
    assert!(outcome.is_err());
    assert_eq!(none, Wire::default());
}

/// A bare HTTP/2 server (h2's) that answers every call with an empty message at once and its
/// `grpc-status` trailer `pause` later: a gap tonic's server never leaves.
async fn serve_late_trailers(pause: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().expect("a bound address").to_string();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("a connection");
        let mut connection = h2::server::handshake(tcp).await.expect("an HTTP/2 client");
        while let Some(Ok((_request, mut respond))) = connection.accept().await {
            tokio::spawn(async move {
                let head = http::Response::builder()
                    .header("content-type", "application/grpc")
                    .body(())
                    .expect("a response head");
                let mut body = respond
                    .send_response(head, false)
                    .expect("the stream is open");
                // An empty Cart: no compression, length 0.
                body.send_data(bytes::Bytes::from_static(&[0; 5]), false)
                    .expect("the stream is open");
                tokio::time::sleep(pause).await;
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                body.send_trailers(trailers).expect("the stream is open");
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_answer_ends_with_its_trailers() {
    let pause = Duration::from_millis(200);
    let addr = serve_late_trailers(pause).await;
    let connection = Connection::open(&addr, Duration::from_secs(5))
        .await
        .expect("the server is up");
    let mut wire = Wire::default();
    get_cart_on_wire(&connection, &mut wire)
        .await
        .expect("GetCart answers");
    let (write, read) = (wire.first_write.unwrap(), wire.last_read.unwrap());
    // The message came at once; the answer ended only with the trailers.
    assert!(read - write >= pause, "{:?} on the wire", read - write);
}
