//! The gRPC cart service. Each handler reads the caller, asks [`authorize`] once, validates its
//! arguments, and calls [`Carts`].

use tonic::{Request, Response, Status};

use super::identity;
use super::proto;
use crate::authz::{Action, Resource, authorize};
use crate::cart::{Cart, CartLine, Carts, Quantity};
use crate::ids::ProductId;

/// The `commerce.v1.CartService` implementation.
#[derive(Clone, Debug)]
pub struct CartApi {
    carts: Carts,
}

impl CartApi {
    pub fn new(carts: Carts) -> Self {
        Self { carts }
    }
}

#[tonic::async_trait]
impl proto::cart_service_server::CartService for CartApi {
    async fn add_item(
        &self,
        request: Request<proto::AddItemRequest>,
    ) -> Result<Response<proto::Cart>, Status> {
        let caller = identity::caller(request.metadata())?;
        authorize(&caller, Action::WriteCart, &Resource::OwnCart)?;
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
        authorize(&caller, Action::WriteCart, &Resource::OwnCart)?;
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
        authorize(&caller, Action::ReadCart, &Resource::OwnCart)?;
        let cart = self.carts.get_cart(caller.tenant, caller.user).await?;
        Ok(Response::new(cart.into()))
    }

    async fn clear_cart(
        &self,
        request: Request<proto::ClearCartRequest>,
    ) -> Result<Response<proto::Cart>, Status> {
        let caller = identity::caller(request.metadata())?;
        authorize(&caller, Action::WriteCart, &Resource::OwnCart)?;
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
