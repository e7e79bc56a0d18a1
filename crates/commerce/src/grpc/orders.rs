//! The gRPC order service. Each handler reads the caller, asks [`authorize`] once (order reads
//! name a target tenant, empty meaning the caller's), validates its arguments, and calls
//! [`Orders`] with the rows the grant allows.

use std::sync::Arc;

use authz::PolicyEngine;
use tonic::{Request, Response, Status};

use super::identity;
use super::proto;
use crate::authz::{Action, ListScope, Resource, authorize};
use crate::identity::Caller;
use crate::ids::{OrderId, TenantId};
use crate::orders::{IdempotencyKey, Order, OrderLine, OrderStatus, OrderSummary, Orders};
use crate::orders::{PageSize, PageToken};

/// The `commerce.v1.OrderService` implementation.
#[derive(Clone, Debug)]
pub struct OrderApi {
    orders: Orders,
    policy: Arc<PolicyEngine>,
}

impl OrderApi {
    pub fn new(orders: Orders, policy: Arc<PolicyEngine>) -> Self {
        Self { orders, policy }
    }
}

/// The tenant a read targets: the caller's own when the field is empty.
pub(super) fn target_tenant(caller: &Caller, field: &str) -> Result<TenantId, Status> {
    if field.is_empty() {
        Ok(caller.tenant)
    } else {
        Ok(field.parse()?)
    }
}

#[tonic::async_trait]
impl proto::order_service_server::OrderService for OrderApi {
    async fn create_order(
        &self,
        request: Request<proto::CreateOrderRequest>,
    ) -> Result<Response<proto::Order>, Status> {
        let caller = identity::caller(request.metadata())?;
        // An order is made from the caller's own cart, in the caller's tenant: that is the
        // resource authorized here, so the call acts on the caller's ids.
        authorize(
            &self.policy,
            &caller,
            Action::CreateOrder,
            &Resource::NewOrder,
        )
        .await?;
        let key = request.into_inner().idempotency_key;
        let key = if key.is_empty() {
            None
        } else {
            Some(IdempotencyKey::new(key)?)
        };
        let order = self
            .orders
            .create_order(caller.tenant, caller.user, key.as_ref())
            .await?;
        Ok(Response::new(order.into()))
    }

    async fn get_order(
        &self,
        request: Request<proto::GetOrderRequest>,
    ) -> Result<Response<proto::Order>, Status> {
        let caller = identity::caller(request.metadata())?;
        let message = request.into_inner();
        let tenant = target_tenant(&caller, &message.tenant_id)?;
        let grant = authorize(
            &self.policy,
            &caller,
            Action::GetOrder,
            &Resource::Order { tenant },
        )
        .await?;
        let id: OrderId = message.order_id.parse()?;
        let order = self.orders.get_order(grant.tenant, grant.user, id).await?;
        Ok(Response::new(order.into()))
    }

    async fn list_orders(
        &self,
        request: Request<proto::ListOrdersRequest>,
    ) -> Result<Response<proto::ListOrdersResponse>, Status> {
        let caller = identity::caller(request.metadata())?;
        let message = request.into_inner();
        let tenant = target_tenant(&caller, &message.tenant_id)?;
        let scope = match proto::ListScope::try_from(message.scope) {
            Ok(proto::ListScope::Unspecified | proto::ListScope::Own) => ListScope::Own,
            Ok(proto::ListScope::Tenant) => ListScope::Tenant,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "unknown list scope {}",
                    message.scope
                )));
            }
        };
        let orders = Resource::Orders { tenant, scope };
        let grant = authorize(&self.policy, &caller, Action::ListOrders, &orders).await?;
        let size = PageSize::new(message.page_size)?;
        let after = if message.page_token.is_empty() {
            None
        } else {
            Some(PageToken::parse(&message.page_token)?)
        };
        let page = self
            .orders
            .list_orders(grant.tenant, grant.user, size, after.as_ref())
            .await?;
        Ok(Response::new(proto::ListOrdersResponse {
            orders: page.orders.into_iter().map(Into::into).collect(),
            next_page_token: page.next.map(|token| token.encode()).unwrap_or_default(),
        }))
    }
}

fn status(status: OrderStatus) -> i32 {
    match status {
        OrderStatus::Placed => proto::OrderStatus::Placed as i32,
    }
}

impl From<Order> for proto::Order {
    fn from(order: Order) -> Self {
        proto::Order {
            id: order.id.to_string(),
            tenant_id: order.tenant.to_string(),
            user_id: order.user.to_string(),
            status: status(order.status),
            total_cents: order.total_cents,
            created_at_unix_micros: order.created_at.timestamp_micros(),
            items: order.items.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<OrderLine> for proto::OrderItem {
    fn from(line: OrderLine) -> Self {
        proto::OrderItem {
            product_id: line.product_id.to_string(),
            line_total_cents: line.line_total_cents(),
            sku: line.sku,
            name: line.name,
            unit_price_cents: line.unit_price_cents,
            quantity: line.quantity,
        }
    }
}

impl From<OrderSummary> for proto::OrderSummary {
    fn from(order: OrderSummary) -> Self {
        proto::OrderSummary {
            id: order.id.to_string(),
            user_id: order.user.to_string(),
            status: status(order.status),
            total_cents: order.total_cents,
            created_at_unix_micros: order.created_at.timestamp_micros(),
        }
    }
}
