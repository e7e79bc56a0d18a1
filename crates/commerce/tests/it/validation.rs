//! Bad input through the gRPC API gets the documented code and a message, never a panic or
//! `UNKNOWN`; a database that cannot be reached is `UNAVAILABLE`.

use std::sync::Arc;
use std::time::Duration;

use commerce::Commerce;
use commerce::cache::CartCache;
use commerce::grpc::identity::request;
use commerce::grpc::proto::{
    AddItemRequest, ClearCartRequest, CreateOrderRequest, GetCartRequest, GetOrderRequest,
    ListOrdersRequest, RemoveItemRequest,
};
use commerce::ids::TenantId;
use tonic::{Code, Request, Status};

use crate::support::{Api, Env, customer, failure};

fn check(status: &Status, expected: Code, case: &str) {
    assert_eq!(status.code(), expected, "{case}: {status:?}");
    assert!(!status.message().is_empty(), "{case}: no message");
}

fn add(product_id: &str, quantity: u32) -> AddItemRequest {
    AddItemRequest {
        product_id: product_id.to_owned(),
        quantity,
    }
}

fn list(page_size: u32, page_token: &str) -> ListOrdersRequest {
    ListOrdersRequest {
        page_size,
        page_token: page_token.to_owned(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_right_code() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let mut api = env.serve().await?;
    let tenant = TenantId::new_random();
    let ids = env.products(tenant, &[(100, 10)]).await?;
    let product = ids[0].to_string();
    let me = customer(tenant);

    for quantity in [0, 100, u32::MAX] {
        let status = failure(
            api.carts
                .add_item(request(&me, add(&product, quantity)))
                .await,
        )?;
        check(
            &status,
            Code::InvalidArgument,
            &format!("quantity {quantity}"),
        );
        assert!(status.message().contains("quantity"), "{status:?}");
    }
    for page_size in [0, 101] {
        let status = failure(
            api.orders
                .list_orders(request(&me, list(page_size, "")))
                .await,
        )?;
        check(
            &status,
            Code::InvalidArgument,
            &format!("page size {page_size}"),
        );
        assert!(status.message().contains("page size"), "{status:?}");
    }
    for malformed in ["", "42", "not-a-uuid", "'; DROP TABLE products; --"] {
        let status = failure(api.carts.add_item(request(&me, add(malformed, 1))).await)?;
        check(&status, Code::InvalidArgument, malformed);
        let remove = RemoveItemRequest {
            product_id: malformed.to_owned(),
        };
        let status = failure(api.carts.remove_item(request(&me, remove)).await)?;
        check(&status, Code::InvalidArgument, malformed);
        let get = GetOrderRequest {
            order_id: malformed.to_owned(),
            tenant_id: String::new(),
        };
        let status = failure(api.orders.get_order(request(&me, get)).await)?;
        check(&status, Code::InvalidArgument, malformed);
    }
    let get = GetOrderRequest {
        order_id: uuid::Uuid::new_v4().to_string(),
        tenant_id: "acme".to_owned(),
    };
    let status = failure(api.orders.get_order(request(&me, get)).await)?;
    check(&status, Code::InvalidArgument, "malformed target tenant");
    for (tenant_id, user_id) in [("acme", ""), ("", "bob")] {
        let get = GetCartRequest {
            tenant_id: tenant_id.to_owned(),
            user_id: user_id.to_owned(),
        };
        let status = failure(api.carts.get_cart(request(&me, get)).await)?;
        check(&status, Code::InvalidArgument, "malformed cart owner");
    }
    let status = failure(
        api.orders
            .list_orders(request(&me, list(10, "garbage")))
            .await,
    )?;
    check(&status, Code::InvalidArgument, "page token");
    // Well-formed tokens whose times PostgreSQL cannot hold: a black-box client sent the
    // first one (a timestamp near the year -217000) and got INTERNAL.
    let token = |micros: i64| format!("{:016x}{}", micros as u64, uuid::Uuid::nil().simple());
    for absurd in [
        token(-6_848_000_000_000_000_000),
        token(9_000_000_000_000_000_000),
        token(i64::MIN),
    ] {
        let status = failure(
            api.orders
                .list_orders(request(&me, list(10, &absurd)))
                .await,
        )?;
        check(
            &status,
            Code::InvalidArgument,
            &format!("page token {absurd}"),
        );
        assert!(status.message().contains("page token"), "{status:?}");
    }
    let unknown_scope = ListOrdersRequest {
        page_size: 10,
        scope: 7,
        ..Default::default()
    };
    let status = failure(api.orders.list_orders(request(&me, unknown_scope)).await)?;
    check(&status, Code::InvalidArgument, "scope");
    let long_key = CreateOrderRequest {
        idempotency_key: "k".repeat(129),
    };
    let status = failure(api.orders.create_order(request(&me, long_key)).await)?;
    check(&status, Code::InvalidArgument, "idempotency key");
    let status = failure(
        api.orders
            .get_order(request(
                &me,
                GetOrderRequest {
                    order_id: uuid::Uuid::new_v4().to_string(),
                    tenant_id: String::new(),
                },
            ))
            .await,
    )?;
    check(&status, Code::NotFound, "unknown order");
    // None of it created a cart.
    let cart = api
        .carts
        .get_cart(request(&me, GetCartRequest::default()))
        .await?
        .into_inner();
    assert_eq!(cart.version, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_identity_are_unauthenticated() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let mut api = env.serve().await?;
    let product = uuid::Uuid::new_v4().to_string();
    let outcomes = [
        failure(api.carts.add_item(Request::new(add(&product, 1))).await)?,
        failure(
            api.carts
                .get_cart(Request::new(GetCartRequest::default()))
                .await,
        )?,
        failure(
            api.carts
                .clear_cart(Request::new(ClearCartRequest {}))
                .await,
        )?,
        failure(
            api.carts
                .remove_item(Request::new(RemoveItemRequest {
                    product_id: product.clone(),
                }))
                .await,
        )?,
        failure(
            api.orders
                .create_order(Request::new(CreateOrderRequest::default()))
                .await,
        )?,
        failure(
            api.orders
                .get_order(Request::new(GetOrderRequest::default()))
                .await,
        )?,
        failure(api.orders.list_orders(Request::new(list(10, ""))).await)?,
    ];
    for status in &outcomes {
        check(status, Code::Unauthenticated, "no metadata");
    }

    // Present but malformed: a tenant that is not a UUID, an unknown role.
    let mut bad_tenant = Request::new(GetCartRequest::default());
    bad_tenant
        .metadata_mut()
        .insert("x-tenant-id", "acme".parse()?);
    bad_tenant
        .metadata_mut()
        .insert("x-user-id", uuid::Uuid::new_v4().to_string().parse()?);
    let status = failure(api.carts.get_cart(bad_tenant).await)?;
    check(&status, Code::Unauthenticated, "malformed tenant");
    let mut bad_role = request(&customer(TenantId::new_random()), GetCartRequest::default());
    bad_role.metadata_mut().insert("x-roles", "root".parse()?);
    let status = failure(api.carts.get_cart(bad_role).await)?;
    check(&status, Code::Unauthenticated, "unknown role");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_unavailable() -> anyhow::Result<()> {
    // Nothing listens on port 1; the pool gives up after its acquire timeout.
    let pool = commerce::db::pool_options()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("postgres://nobody@127.0.0.1:1/nothing")?;
    let engine = authz::PolicyEngine::new(authz::PolicySet::shipped()?);
    let commerce = Commerce::new(pool, CartCache::disabled(), Arc::new(engine));
    let mut api = Api::start(commerce).await?;
    let me = customer(TenantId::new_random());
    let status = failure(
        api.carts
            .get_cart(request(&me, GetCartRequest::default()))
            .await,
    )?;
    check(&status, Code::Unavailable, "get cart");
    let status = failure(
        api.orders
            .create_order(request(&me, CreateOrderRequest::default()))
            .await,
    )?;
    check(&status, Code::Unavailable, "create order");
    assert!(
        !status.message().contains("127.0.0.1"),
        "no internals leak: {status:?}"
    );
    Ok(())
}

/// A cart whose total does not fit in 64 bits of cents is the caller's cart that cannot be
/// priced (`FAILED_PRECONDITION`, with a message), not an internal error; the add that would
/// overflow it is refused and leaves the cart as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_total_that_overflows_is_a_failed_precondition() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let mut api = env.serve().await?;
    let tenant = TenantId::new_random();
    let ids = env.products(tenant, &[(i64::MAX / 2, 10)]).await?;
    let product = ids[0].to_string();
    let me = customer(tenant);
    let cart = api
        .carts
        .add_item(request(&me, add(&product, 2)))
        .await?
        .into_inner();
    assert_eq!(cart.total_cents, i64::MAX - 1);
    let status = failure(api.carts.add_item(request(&me, add(&product, 1))).await)?;
    check(
        &status,
        Code::FailedPrecondition,
        "add beyond i64::MAX cents",
    );
    assert!(status.message().contains("cannot be priced"), "{status:?}");
    let cart = api
        .carts
        .get_cart(request(&me, GetCartRequest::default()))
        .await?
        .into_inner();
    assert_eq!(cart.items[0].quantity, 2, "the refused add changed nothing");
    Ok(())
}

/// Sends `body` as the raw protobuf of a request to `path`, as a client with a broken encoder
/// (or a hostile one) would.
async fn raw_call(api: &Api, path: &'static str, body: Vec<u8>) -> anyhow::Result<Status> {
    /// Writes the bytes it is given; reads nothing (every call here must fail).
    #[derive(Clone, Default)]
    struct Raw;
    struct RawEncoder;
    struct RawDecoder;
    impl tonic::codec::Codec for Raw {
        type Encode = Vec<u8>;
        type Decode = ();
        type Encoder = RawEncoder;
        type Decoder = RawDecoder;
        fn encoder(&mut self) -> RawEncoder {
            RawEncoder
        }
        fn decoder(&mut self) -> RawDecoder {
            RawDecoder
        }
    }
    impl tonic::codec::Encoder for RawEncoder {
        type Item = Vec<u8>;
        type Error = Status;
        fn encode(
            &mut self,
            item: Vec<u8>,
            buf: &mut tonic::codec::EncodeBuf<'_>,
        ) -> Result<(), Status> {
            bytes::BufMut::put_slice(buf, &item);
            Ok(())
        }
    }
    impl tonic::codec::Decoder for RawDecoder {
        type Item = ();
        type Error = Status;
        fn decode(&mut self, _: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<()>, Status> {
            Ok(Some(()))
        }
    }
    let channel = tonic::transport::Channel::from_shared(api.server.url())?
        .connect()
        .await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await?;
    let me = customer(TenantId::new_random());
    let call = grpc
        .unary(
            request(&me, body),
            http::uri::PathAndQuery::from_static(path),
            Raw,
        )
        .await;
    match call {
        Ok(_) => anyhow::bail!("{path} accepted a malformed message"),
        Err(status) => Ok(status),
    }
}

/// A message that does not decode is the caller's mistake: `INVALID_ARGUMENT` with the
/// decoder's message (tonic's default codec says `INTERNAL`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_protobuf_is_an_invalid_argument() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let api = env.serve().await?;
    let product_id = uuid::Uuid::new_v4().to_string();
    // AddItemRequest { product_id = 1 (string), quantity = 2 (uint32) }.
    let mut truncated = vec![0x0a, product_id.len() as u8];
    truncated.extend_from_slice(&product_id.as_bytes()[..10]);
    let invalid_utf8 = vec![0x0a, 0x02, 0xff, 0xfe, 0x10, 0x01];
    let wrong_wire_type = vec![0x08, 0x05, 0x10, 0x01];
    for (case, body) in [
        ("truncated", truncated),
        ("invalid UTF-8 in a string", invalid_utf8),
        ("wrong wire type", wrong_wire_type),
    ] {
        for path in [
            "/commerce.v1.CartService/AddItem",
            "/commerce.v1.CartService/RemoveItem",
        ] {
            let status = raw_call(&api, path, body.clone()).await?;
            check(&status, Code::InvalidArgument, &format!("{case} to {path}"));
            assert!(
                status
                    .message()
                    .starts_with("the message could not be decoded"),
                "{case}: {status:?}"
            );
        }
    }
    // A well-formed message through the same raw path still works as usual (the decoder's
    // answer, not a transport failure): an unknown product is NOT_FOUND.
    let mut fine = vec![0x0a, product_id.len() as u8];
    fine.extend_from_slice(product_id.as_bytes());
    fine.extend_from_slice(&[0x10, 0x01]);
    let status = raw_call(&api, "/commerce.v1.CartService/AddItem", fine).await?;
    check(&status, Code::NotFound, "a decodable message");
    Ok(())
}
