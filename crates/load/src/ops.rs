//! The operations a scenario mixes, the identities and data they act on, and the gRPC client
//! that performs them over several HTTP/2 connections.
//!
//! Every request carries real identity metadata (`x-tenant-id`, `x-user-id`, `x-roles`, as the
//! API gateway sets them) and names data that exists: users, products and orders from the
//! [`Identities`] the set-up loaded (or the user supplied with `--identities`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use commerce::grpc::identity;
use commerce::grpc::proto::{
    AddItemRequest, Cart, CreateOrderRequest, GetCartRequest, GetOrderRequest, ListOrdersRequest,
    ListOrdersResponse, ListScope, Order,
};
use commerce::identity::{Caller, Role, Roles};
use commerce::ids::{TenantId, UserId};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use uuid::Uuid;

use crate::grpc::{ConnectError, Connection, Wire};

/// The methods called, as `/package.Service/Method`.
const GET_CART: &str = "/commerce.v1.CartService/GetCart";
const ADD_ITEM: &str = "/commerce.v1.CartService/AddItem";
const CREATE_ORDER: &str = "/commerce.v1.OrderService/CreateOrder";
const GET_ORDER: &str = "/commerce.v1.OrderService/GetOrder";
const LIST_ORDERS: &str = "/commerce.v1.OrderService/ListOrders";
const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";

/// One kind of request (k6's "iteration"): what a virtual user does once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// A customer reads their own cart (mostly cart-cache and decision-cache hits).
    GetCart,
    /// A customer adds one unit of a catalog product to their cart.
    AddItem,
    /// A customer puts one product in their cart and places the order (two calls: an order
    /// needs a cart that is not empty), with a fresh idempotency key.
    CreateOrder,
    /// A customer lists their own orders, newest first, 20 a page.
    ListOrders,
    /// A customer reads one of their own orders.
    GetOrder,
    /// A tenant administrator lists all orders of the tenant, 20 a page.
    AdminListOrders,
    /// A support agent reads a customer's cart.
    SupportGetCart,
    /// A customer never seen before reads their (empty) cart: every call is a new subject, so
    /// the decision cache misses and the policy is evaluated.
    GetCartNewUser,
    /// `grpc.health.v1.Health/Check`: the gRPC stack's own ceiling, no data touched.
    Health,
}

impl Operation {
    pub const ALL: [Operation; 9] = [
        Operation::GetCart,
        Operation::AddItem,
        Operation::CreateOrder,
        Operation::ListOrders,
        Operation::GetOrder,
        Operation::AdminListOrders,
        Operation::SupportGetCart,
        Operation::GetCartNewUser,
        Operation::Health,
    ];

    /// Its name in profiles, thresholds and reports.
    pub fn name(self) -> &'static str {
        match self {
            Operation::GetCart => "get_cart",
            Operation::AddItem => "add_item",
            Operation::CreateOrder => "create_order",
            Operation::ListOrders => "list_orders",
            Operation::GetOrder => "get_order",
            Operation::AdminListOrders => "admin_list_orders",
            Operation::SupportGetCart => "support_get_cart",
            Operation::GetCartNewUser => "get_cart_new_user",
            Operation::Health => "health",
        }
    }

    pub fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.name() == name)
    }

    /// Whether it changes data (the "write" side of a read/write mix).
    pub fn writes(self) -> bool {
        matches!(self, Operation::AddItem | Operation::CreateOrder)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The data a run acts on: tenants, their users, products and historical orders. `commerce-load
/// serve` writes it for other clients; `--identities FILE` reads it for `--target`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Identities {
    pub tenants: Vec<TenantData>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TenantData {
    pub id: Uuid,
    /// Customers with a cart.
    pub users: Vec<Uuid>,
    /// Active catalog products with ample stock.
    pub products: Vec<Uuid>,
    /// Existing orders and their owners (for `get_order`).
    #[serde(default)]
    pub orders: Vec<OrderRef>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OrderRef {
    pub id: Uuid,
    pub user: Uuid,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentitiesError {
    #[error("cannot read the identities file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    // The cause is in the message, not a `source` too: a chain would print it twice.
    #[error("the identities file {path} is not valid: {cause}")]
    Parse {
        path: String,
        cause: serde_json::Error,
    },
    #[error("{0}")]
    Missing(String),
}

impl Identities {
    pub fn read(path: &std::path::Path) -> Result<Identities, IdentitiesError> {
        let text = std::fs::read_to_string(path).map_err(|source| IdentitiesError::Read {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|cause| IdentitiesError::Parse {
            path: path.display().to_string(),
            cause,
        })
    }

    /// Checks that every operation of `operations` has the data it needs.
    pub fn check_supports(
        &self,
        operations: impl IntoIterator<Item = Operation>,
    ) -> Result<(), IdentitiesError> {
        if self.tenants.is_empty() {
            return Err(IdentitiesError::Missing(
                "the identities name no tenant".to_owned(),
            ));
        }
        for op in operations {
            let lacking = match op {
                Operation::Health | Operation::GetCartNewUser | Operation::AdminListOrders => None,
                Operation::GetCart
                | Operation::ListOrders
                | Operation::SupportGetCart
                | Operation::AddItem
                | Operation::CreateOrder
                    if self.tenants.iter().any(|t| t.users.is_empty()) =>
                {
                    Some("users")
                }
                Operation::AddItem | Operation::CreateOrder
                    if self.tenants.iter().any(|t| t.products.is_empty()) =>
                {
                    Some("products")
                }
                Operation::GetOrder if self.tenants.iter().any(|t| t.orders.is_empty()) => {
                    Some("orders")
                }
                _ => None,
            };
            if let Some(what) = lacking {
                return Err(IdentitiesError::Missing(format!(
                    "`{op}` needs {what} in every tenant of the identities"
                )));
            }
        }
        Ok(())
    }
}

/// The outcome of one operation: `Ok` or the gRPC status of the call that failed.
pub type Outcome = Result<(), tonic::Status>;

/// The name of a gRPC code as ghz (grpc-go's `codes.Code.String()`) writes it: `OK`,
/// `Canceled`, `Unavailable`, `DeadlineExceeded`...
pub fn code_name(outcome: &Outcome) -> &'static str {
    use tonic::Code;
    let Err(status) = outcome else { return "OK" };
    match status.code() {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// The clients of a run: `connections` HTTP/2 connections, used in turn, and the data.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    connections: Vec<Connection>,
    next_connection: AtomicUsize,
    identities: Identities,
    /// Users with a `create_order` in flight, by tenant then index: an order empties the cart,
    /// so two at once for one user would make the second fail for a reason of our making.
    busy: Vec<Vec<AtomicBool>>,
    next_order_user: AtomicUsize,
    timeout: Duration,
}

impl Client {
    /// Opens `connections` HTTP/2 connections to `addr` (`HOST:PORT`).
    pub async fn connect(
        addr: &str,
        connections: usize,
        identities: Identities,
        timeout: Duration,
    ) -> Result<Client, ConnectError> {
        let mut opened = Vec::with_capacity(connections.max(1));
        for _ in 0..connections.max(1) {
            opened.push(Connection::open(addr, Duration::from_secs(5)).await?);
        }
        let busy = identities
            .tenants
            .iter()
            .map(|tenant| {
                tenant
                    .users
                    .iter()
                    .map(|_| AtomicBool::new(false))
                    .collect()
            })
            .collect();
        Ok(Client {
            inner: Arc::new(ClientInner {
                connections: opened,
                next_connection: AtomicUsize::new(0),
                identities,
                busy,
                next_order_user: AtomicUsize::new(0),
                timeout,
            }),
        })
    }

    pub fn identities(&self) -> &Identities {
        &self.inner.identities
    }

    /// The next connection, in turn.
    fn connection(&self) -> &Connection {
        let i = self.inner.next_connection.fetch_add(1, Ordering::Relaxed);
        &self.inner.connections[i % self.inner.connections.len()]
    }

    /// Performs `op` once, with data picked by `rng`; `None` when it was not sent because the
    /// data it needs is busy (every user of the tenant has an order in flight: the generator
    /// has more orders in flight than the data set has users). That is the generator's limit,
    /// not the server's: it is counted as dropped, not as an error.
    ///
    /// With the outcome comes when the operation crossed the socket ([`Wire`]): its last read
    /// is `None` when it timed out.
    pub async fn perform(&self, op: Operation, rng: &mut impl Rng) -> Option<(Outcome, Wire)> {
        let timeout = self.inner.timeout;
        let mut wire = Wire::default();
        match tokio::time::timeout(timeout, self.perform_untimed(op, rng, &mut wire)).await {
            Ok(outcome) => outcome.map(|outcome| (outcome, wire)),
            Err(_) => Some((
                Err(tonic::Status::deadline_exceeded(format!(
                    "no answer within {}",
                    humantime::format_duration(timeout)
                ))),
                Wire {
                    last_read: None,
                    ..wire
                },
            )),
        }
    }

    async fn perform_untimed(
        &self,
        op: Operation,
        rng: &mut impl Rng,
        wire: &mut Wire,
    ) -> Option<Outcome> {
        let ids = &self.inner.identities;
        let tenant_index = rng.random_range(0..ids.tenants.len());
        let tenant = &ids.tenants[tenant_index];
        let customer = |user: Uuid| Caller {
            tenant: TenantId(tenant.id),
            user: UserId(user),
            roles: Roles::of(&[Role::Customer]),
        };
        let outcome = match op {
            Operation::GetCart => {
                let caller = customer(pick(rng, &tenant.users));
                self.get_cart(&caller, GetCartRequest::default(), wire)
                    .await
            }
            Operation::GetCartNewUser => {
                let caller = customer(Uuid::new_v4());
                self.get_cart(&caller, GetCartRequest::default(), wire)
                    .await
            }
            Operation::SupportGetCart => {
                let user = pick(rng, &tenant.users);
                let caller = Caller {
                    tenant: TenantId(tenant.id),
                    // Support agents are users of their own; the policy lets them read any cart.
                    user: UserId(Uuid::from_u128(0x5u128 << 120 | tenant_index as u128)),
                    roles: Roles::of(&[Role::Support]),
                };
                let request = GetCartRequest {
                    tenant_id: tenant.id.to_string(),
                    user_id: user.to_string(),
                };
                self.get_cart(&caller, request, wire).await
            }
            Operation::AddItem => {
                let caller = customer(pick(rng, &tenant.users));
                let product = pick(rng, &tenant.products);
                self.add_item(&caller, product, wire).await
            }
            Operation::CreateOrder => {
                let claim = self.claim_order_user(tenant_index)?;
                let caller = customer(tenant.users[claim.user]);
                match self
                    .add_item(&caller, pick(rng, &tenant.products), wire)
                    .await
                {
                    Err(status) => Err(status),
                    Ok(()) => {
                        let mut request = tonic::Request::new(CreateOrderRequest {
                            idempotency_key: Uuid::new_v4().to_string(),
                        });
                        identity::attach(&mut request, &caller);
                        self.connection()
                            .unary_on_wire::<_, Order>(CREATE_ORDER, request, wire)
                            .await
                            .map(drop)
                    }
                }
            }
            Operation::ListOrders => {
                let caller = customer(pick(rng, &tenant.users));
                self.list_orders(&caller, ListScope::Own, wire).await
            }
            Operation::AdminListOrders => {
                let caller = Caller {
                    tenant: TenantId(tenant.id),
                    user: UserId(Uuid::from_u128(0xAu128 << 120 | tenant_index as u128)),
                    roles: Roles::of(&[Role::TenantAdmin]),
                };
                self.list_orders(&caller, ListScope::Tenant, wire).await
            }
            Operation::GetOrder => {
                let order = tenant.orders[rng.random_range(0..tenant.orders.len())];
                let caller = customer(order.user);
                let mut request = tonic::Request::new(GetOrderRequest {
                    order_id: order.id.to_string(),
                    tenant_id: String::new(),
                });
                identity::attach(&mut request, &caller);
                self.connection()
                    .unary_on_wire::<_, Order>(GET_ORDER, request, wire)
                    .await
                    .map(drop)
            }
            Operation::Health => self
                .connection()
                .unary_on_wire::<_, HealthCheckResponse>(
                    HEALTH_CHECK,
                    tonic::Request::new(HealthCheckRequest {
                        service: String::new(),
                    }),
                    wire,
                )
                .await
                .map(drop),
        };
        Some(outcome)
    }

    async fn get_cart(&self, caller: &Caller, request: GetCartRequest, wire: &mut Wire) -> Outcome {
        let mut request = tonic::Request::new(request);
        identity::attach(&mut request, caller);
        self.connection()
            .unary_on_wire::<_, Cart>(GET_CART, request, wire)
            .await
            .map(drop)
    }

    async fn add_item(&self, caller: &Caller, product: Uuid, wire: &mut Wire) -> Outcome {
        let mut request = tonic::Request::new(AddItemRequest {
            product_id: product.to_string(),
            quantity: 1,
        });
        identity::attach(&mut request, caller);
        self.connection()
            .unary_on_wire::<_, Cart>(ADD_ITEM, request, wire)
            .await
            .map(drop)
    }

    async fn list_orders(&self, caller: &Caller, scope: ListScope, wire: &mut Wire) -> Outcome {
        let mut request = tonic::Request::new(ListOrdersRequest {
            page_size: 20,
            page_token: String::new(),
            tenant_id: String::new(),
            scope: scope.into(),
        });
        identity::attach(&mut request, caller);
        self.connection()
            .unary_on_wire::<_, ListOrdersResponse>(LIST_ORDERS, request, wire)
            .await
            .map(drop)
    }

    /// Takes the next user of the tenant, in turn, who has no order in flight.
    fn claim_order_user(&self, tenant: usize) -> Option<Claim<'_>> {
        let flags = &self.inner.busy[tenant];
        for _ in 0..flags.len() {
            let user = self.inner.next_order_user.fetch_add(1, Ordering::Relaxed) % flags.len();
            if !flags[user].swap(true, Ordering::Acquire) {
                return Some(Claim {
                    flag: &flags[user],
                    user,
                });
            }
        }
        None
    }
}

fn pick(rng: &mut impl Rng, list: &[Uuid]) -> Uuid {
    list[rng.random_range(0..list.len())]
}

/// A user's `create_order` slot, released on drop.
struct Claim<'a> {
    flag: &'a AtomicBool,
    user: usize,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.flag.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_named_as_ghz_names_them() {
        assert_eq!(code_name(&Ok(())), "OK");
        assert_eq!(code_name(&Err(tonic::Status::cancelled("x"))), "Canceled");
        assert_eq!(
            code_name(&Err(tonic::Status::deadline_exceeded("x"))),
            "DeadlineExceeded"
        );
    }

    #[test]
    fn names_round_trip() {
        for op in Operation::ALL {
            assert_eq!(Operation::from_name(op.name()), Some(op));
        }
        assert_eq!(Operation::from_name("GetCart"), None);
    }

    #[test]
    fn an_operation_without_its_data_is_refused_up_front() {
        let ids = Identities {
            tenants: vec![TenantData {
                id: Uuid::nil(),
                users: vec![Uuid::nil()],
                products: vec![],
                orders: vec![],
            }],
        };
        ids.check_supports([Operation::GetCart, Operation::Health])
            .unwrap();
        let error = ids.check_supports([Operation::AddItem]).unwrap_err();
        assert!(
            error.to_string().contains("`add_item` needs products"),
            "{error}"
        );
        let error = ids.check_supports([Operation::GetOrder]).unwrap_err();
        assert!(error.to_string().contains("orders"), "{error}");
        let empty = Identities { tenants: vec![] };
        assert!(empty.check_supports([Operation::Health]).is_err());
    }
}
