//! The gRPC cart service. Each handler reads the caller, asks [`authorize`] once, validates its
//! arguments, and calls [`Carts`]. Writes act on the caller's own cart; `GetCart` may name
//! another cart, which the policy then has to allow (support reads any tenant's carts).

use std::sync::Arc;

use authz::PolicyEngine;
use tonic::{Request, Response, Status};

use super::identity;
use super::orders::target_tenant;
use super::proto;
use crate::authz::{Action, Resource, authorize};
use crate::cart::{Cart, CartLine, Carts, Quantity};
use crate::ids::{ProductId, UserId};

/// The `commerce.v1.CartService` implementation.
#[derive(Clone, Debug)]
pub struct CartApi {
    carts: Carts,
    policy: Arc<PolicyEngine>,
}

impl CartApi {
    pub fn new(carts: Carts, policy: Arc<PolicyEngine>) -> Self {
        Self { carts, policy }
    }
}

#[tonic::async_trait]
impl proto::cart_service_server::CartService for CartApi {
    async fn add_item(
        &self,
        request: Request<proto::AddItemRequest>,
    ) -> Result<Response<proto::Cart>, Status> {
        let caller = identity::caller(request.metadata())?;
        let cart = Resource::own_cart(&caller);
        authorize(&self.policy, &caller, Action::AddCartItem, &cart).await?;
        let message = request.into_inner();
        let product: ProductId = message.product_id.parse()?;
        let quantity = Quantity::new(message.quantity)?;
        let cart = self
            .carts
            .add_item(caller.tenant, caller.user, product, quantity)
            .await?;
        Ok(Response::new(cart.into()))
    }

    async fn remove_item(
        &self,
        request: Request<proto::RemoveItemRequest>,
    ) -> Result<Response<proto::Cart>, Status> {
        let caller = identity::caller(request.metadata())?;
        let cart = Resource::own_cart(&caller);
        authorize(&self.policy, &caller, Action::RemoveCartItem, &cart).await?;
        let product: ProductId = request.into_inner().product_id.parse()?;
        let cart = self
            .carts
            .remove_item(caller.tenant, caller.user, product)
            .await?;
        Ok(Response::new(cart.into()))
    }

    async fn get_cart(
        &self,
        request: Request<proto::GetCartRequest>,
    ) -> Result<Response<proto::Cart>, Status> {
        let caller = identity::caller(request.metadata())?;
        let message = request.into_inner();
        // Each field defaults to the caller's own, so an empty request reads the caller's cart.
        let tenant = target_tenant(&caller, &message.tenant_id)?;
        let user = if message.user_id.is_empty() {
            caller.user
        } else {
            message.user_id.parse::<UserId>()?
        };
        authorize(
            &self.policy,
            &caller,
            Action::GetCart,
            &Resource::Cart { tenant, user },
        )
        .await?;
        let cart = self.carts.get_cart(tenant, user).await?;
        Ok(Response::new(cart.into()))
    }

    async fn clear_cart(
        &self,
        request: Request<proto::ClearCartRequest>,
    ) -> Result<Response<proto::Cart>, Status> {
        let caller = identity::caller(request.metadata())?;
        let cart = Resource::own_cart(&caller);
        authorize(&self.policy, &caller, Action::ClearCart, &cart).await?;
        let cart = self.carts.clear_cart(caller.tenant, caller.user).await?;
        Ok(Response::new(cart.into()))
    }
}

impl From<Cart> for proto::Cart {
    fn from(cart: Cart) -> Self {
        proto::Cart {
            items: cart.items.into_iter().map(Into::into).collect(),
            total_cents: cart.total_cents,
            version: cart.version,
        }
    }
}

impl From<CartLine> for proto::CartItem {
    fn from(line: CartLine) -> Self {
        proto::CartItem {
            product_id: line.product_id.to_string(),
            // Cannot overflow: the cart total, a sum of these, was computed with checked
            // arithmetic when the cart was read.
            line_total_cents: line.line_total_cents().unwrap_or(i64::MAX),
            sku: line.sku,
            name: line.name,
            unit_price_cents: line.unit_price_cents,
            quantity: line.quantity,
            active: line.active,
        }
    }
}
