//! Authorization: the one decision every gRPC handler asks for before it touches data.
//!
//! The rules live in the policy engine (the `authz` crate, Rego policies); this module has none
//! of its own. It translates a call ([`Caller`], [`Action`], [`Resource`]) into the engine's
//! requests and the engine's answer into a [`Grant`], the rows the handler may touch, or a
//! [`Denied`] with the policy's reason. Every denial is logged with who asked for what.
//!
//! # Calls whose owner is not known before reading
//!
//! A cart names its owner, and so does a listing of one's own orders: one request decides them.
//! `GetOrder` names only an order id, and its owner is known only after the row is read. Reading
//! first and deciding afterwards would touch data before the decision (and its timing would tell
//! a denied caller whether the id exists), so [`authorize`] asks the policy instead, widest scope
//! first:
//!
//! 1. the tenant-wide resource (no owner): allowed ⇒ `Grant { tenant, user: None }`, every order
//!    of the tenant;
//! 2. else the caller's own resource (owner = the caller): allowed ⇒
//!    `Grant { tenant, user: Some(caller) }`; the handler's query is scoped to that owner, so
//!    someone else's order is simply not found;
//! 3. else denied, with the reason of the second, more specific request.
//!
//! Both requests are ordinary engine requests, so both decisions are cached: a customer's order
//! read costs two cache lookups, an admin's one.
//!
//! Listings state their scope (`ListScope`), so they are one request: the tenant-wide resource for
//! [`ListScope::Tenant`], the caller's own for [`ListScope::Own`]. A customer who asks for the
//! whole tenant is denied rather than silently narrowed to their own orders.

use std::fmt;

use ::authz::{
    AuthzRequest, Decision, PolicyEngine, Resource as PolicyResource, Subject, actions, kinds,
};

use crate::identity::Caller;
use crate::ids::{TenantId, UserId};

/// What a call wants to do: one variant per action of the policies' vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    GetCart,
    AddCartItem,
    RemoveCartItem,
    ClearCart,
    CreateOrder,
    GetOrder,
    ListOrders,
}

impl Action {
    /// The action's name in the policies (`authz::actions`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::GetCart => actions::CART_GET,
            Action::AddCartItem => actions::CART_ADD_ITEM,
            Action::RemoveCartItem => actions::CART_REMOVE_ITEM,
            Action::ClearCart => actions::CART_CLEAR,
            Action::CreateOrder => actions::ORDER_CREATE,
            Action::GetOrder => actions::ORDER_GET,
            Action::ListOrders => actions::ORDER_LIST,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which orders a listing asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListScope {
    /// The caller's own orders.
    Own,
    /// Every order of the tenant.
    Tenant,
}

/// What the call acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// The cart of `user` in `tenant` (a write always names the caller's own).
    Cart { tenant: TenantId, user: UserId },
    /// An order of the caller's own, in the caller's tenant, about to be created.
    NewOrder,
    /// One order of `tenant`; its owner is not known before it is read.
    Order { tenant: TenantId },
    /// The orders of `tenant`, as many as `scope` says.
    Orders { tenant: TenantId, scope: ListScope },
}

impl Resource {
    /// The caller's own cart.
    pub fn own_cart(caller: &Caller) -> Self {
        Resource::Cart {
            tenant: caller.tenant,
            user: caller.user,
        }
    }
}

/// What an allowed call may touch: rows of `tenant`, and when `user` is set, only that user's.
/// Handlers scope their queries with it, so a row outside it is simply not found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub tenant: TenantId,
    pub user: Option<UserId>,
}

/// A denial, with the policy's reason, which the caller is told.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Denied {
    pub reason: String,
}

/// Decides whether `caller` may perform `action` on `resource`, and if so, on which rows, by
/// asking `engine` (see the module documentation for calls whose owner is unknown). Denials are
/// logged at `info` with the caller, the action, the resource and the reason.
///
/// A `resource` that does not fit the `action` (say, a cart for [`Action::GetOrder`]) is sent to
/// the policy as it is, and the policy denies it for the mismatch of kinds.
pub async fn authorize(
    engine: &PolicyEngine,
    caller: &Caller,
    action: Action,
    resource: &Resource,
) -> Result<Grant, Denied> {
    let subject = Subject::new(
        caller.tenant.to_string(),
        caller.user.to_string(),
        caller.roles.iter().map(|role| role.as_str()),
    );
    // A question is a policy resource and the grant its allowance gives.
    let owned = |kind: &str, tenant: TenantId, user: UserId| {
        let target = PolicyResource::owned(kind, tenant.to_string(), user.to_string());
        (
            target,
            Grant {
                tenant,
                user: Some(user),
            },
        )
    };
    let tenant_wide = |kind: &str, tenant: TenantId| {
        let target = PolicyResource::tenant_wide(kind, tenant.to_string());
        (target, Grant { tenant, user: None })
    };
    // The question to ask, and for an order read the narrower one to ask if it is denied.
    let (first, fallback) = match *resource {
        Resource::Cart { tenant, user } => (owned(kinds::CART, tenant, user), None),
        Resource::NewOrder => (owned(kinds::ORDER, caller.tenant, caller.user), None),
        Resource::Orders { tenant, scope } => match scope {
            ListScope::Own => (owned(kinds::ORDER, tenant, caller.user), None),
            ListScope::Tenant => (tenant_wide(kinds::ORDER, tenant), None),
        },
        Resource::Order { tenant } => (
            tenant_wide(kinds::ORDER, tenant),
            Some(owned(kinds::ORDER, tenant, caller.user)),
        ),
    };
    let (target, grant) = first;
    let (mut request, mut decision) = ask(engine, subject, action, target).await;
    if decision.allowed {
        return Ok(grant);
    }
    if let Some((target, grant)) = fallback {
        (request, decision) = ask(engine, request.subject, action, target).await;
        if decision.allowed {
            return Ok(grant);
        }
    }
    // The last question asked is the most specific one, so its reason is the one reported.
    tracing::info!(
        tenant = %caller.tenant,
        user = %caller.user,
        roles = %RoleList(&request.subject.roles),
        action = %request.action,
        resource = %ResourceName(&request.resource),
        reason = %decision.reason,
        "authorization denied"
    );
    Err(Denied {
        reason: decision.reason,
    })
}

/// Asks `engine` whether `subject` may perform `action` on `target`; the request asked comes
/// back with the decision (a second question takes its subject, not a copy).
async fn ask(
    engine: &PolicyEngine,
    subject: Subject,
    action: Action,
    target: PolicyResource,
) -> (AuthzRequest, Decision) {
    let request = AuthzRequest::new(subject, action.as_str(), target);
    let decision = engine.authorize(&request).await;
    (request, decision)
}

/// Roles as the log shows them: `customer,support`.
struct RoleList<'a>(&'a [String]);

impl fmt::Display for RoleList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

/// A resource as the log shows it: `order tenant/owner`, with `*` for a tenant-wide one.
struct ResourceName<'a>(&'a PolicyResource);

impl fmt::Display for ResourceName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let owner = self.0.owner_id.as_deref().unwrap_or("*");
        write!(f, "{} {}/{owner}", self.0.kind, self.0.tenant_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Role, Roles};
    use ::authz::PolicySet;

    fn engine() -> PolicyEngine {
        PolicyEngine::new(PolicySet::shipped().expect("the shipped policies compile"))
    }

    fn caller(roles: &[Role]) -> Caller {
        Caller {
            tenant: TenantId::new_random(),
            user: UserId::new_random(),
            roles: Roles::of(roles),
        }
    }

    fn own(c: &Caller) -> Grant {
        Grant {
            tenant: c.tenant,
            user: Some(c.user),
        }
    }

    fn tenant_wide(tenant: TenantId) -> Grant {
        Grant { tenant, user: None }
    }

    fn reason(result: Result<Grant, Denied>) -> String {
        match result {
            Ok(grant) => panic!("expected a denial, got {grant:?}"),
            Err(denied) => denied.reason,
        }
    }

    #[test]
    fn role_and_action_names_are_the_policy_vocabulary() {
        let names: Vec<&str> = Role::ALL.iter().map(|role| role.as_str()).collect();
        assert_eq!(names, ::authz::roles::ALL);
        let all = [
            Action::GetCart,
            Action::AddCartItem,
            Action::RemoveCartItem,
            Action::ClearCart,
            Action::CreateOrder,
            Action::GetOrder,
            Action::ListOrders,
        ];
        let names: Vec<&str> = all.iter().map(|action| action.as_str()).collect();
        assert_eq!(names, ::authz::actions::ALL);
    }

    #[tokio::test]
    async fn customers_act_on_their_own_cart_and_orders() {
        let engine = engine();
        let c = caller(&[Role::Customer]);
        let cart = Resource::own_cart(&c);
        for action in [Action::GetCart, Action::AddCartItem, Action::ClearCart] {
            assert_eq!(authorize(&engine, &c, action, &cart).await, Ok(own(&c)));
        }
        let created = authorize(&engine, &c, Action::CreateOrder, &Resource::NewOrder).await;
        assert_eq!(created, Ok(own(&c)));
        // The tenant-wide question is denied, the own one allowed: the query is scoped to them.
        let order = Resource::Order { tenant: c.tenant };
        assert_eq!(
            authorize(&engine, &c, Action::GetOrder, &order).await,
            Ok(own(&c))
        );
        assert_eq!(engine.stats().evaluations, 6);
        let mine = Resource::Orders {
            tenant: c.tenant,
            scope: ListScope::Own,
        };
        assert_eq!(
            authorize(&engine, &c, Action::ListOrders, &mine).await,
            Ok(own(&c))
        );
        let all = Resource::Orders {
            tenant: c.tenant,
            scope: ListScope::Tenant,
        };
        let denied = authorize(&engine, &c, Action::ListOrders, &all).await;
        assert_eq!(reason(denied), "tenant-wide access denied");
        let other = Resource::Cart {
            tenant: c.tenant,
            user: UserId::new_random(),
        };
        let denied = authorize(&engine, &c, Action::GetCart, &other).await;
        assert_eq!(reason(denied), "resource belongs to another user");
    }

    #[tokio::test]
    async fn tenant_admins_read_the_whole_tenant_in_one_request() {
        let engine = engine();
        let c = caller(&[Role::TenantAdmin]);
        let all = Resource::Orders {
            tenant: c.tenant,
            scope: ListScope::Tenant,
        };
        let listed = authorize(&engine, &c, Action::ListOrders, &all).await;
        assert_eq!(listed, Ok(tenant_wide(c.tenant)));
        let order = Resource::Order { tenant: c.tenant };
        let read = authorize(&engine, &c, Action::GetOrder, &order).await;
        assert_eq!(read, Ok(tenant_wide(c.tenant)));
        assert_eq!(engine.stats().evaluations, 2);
    }

    #[tokio::test]
    async fn other_tenants_are_denied_except_to_support_reads() {
        let engine = engine();
        let other = TenantId::new_random();
        for roles in [&[Role::Customer][..], &[Role::TenantAdmin]] {
            let c = caller(roles);
            let order = Resource::Order { tenant: other };
            let denied = authorize(&engine, &c, Action::GetOrder, &order).await;
            assert_eq!(reason(denied), "cross-tenant access denied", "{roles:?}");
            let cart = Resource::Cart {
                tenant: other,
                user: c.user,
            };
            let denied = authorize(&engine, &c, Action::GetCart, &cart).await;
            assert_eq!(reason(denied), "cross-tenant access denied", "{roles:?}");
        }
        let support = caller(&[Role::Support]);
        let order = Resource::Order { tenant: other };
        let read = authorize(&engine, &support, Action::GetOrder, &order).await;
        assert_eq!(read, Ok(tenant_wide(other)));
        let someone = UserId::new_random();
        let cart = Resource::Cart {
            tenant: other,
            user: someone,
        };
        let read = authorize(&engine, &support, Action::GetCart, &cart).await;
        assert_eq!(
            read,
            Ok(Grant {
                tenant: other,
                user: Some(someone)
            })
        );
    }

    #[tokio::test]
    async fn support_never_writes() {
        let engine = engine();
        let c = caller(&[Role::Support]);
        let cart = Resource::own_cart(&c);
        let denied = authorize(&engine, &c, Action::AddCartItem, &cart).await;
        assert_eq!(
            reason(denied),
            "role support lacks permission cart:add_item"
        );
        let denied = authorize(&engine, &c, Action::CreateOrder, &Resource::NewOrder).await;
        assert_eq!(reason(denied), "role support lacks permission order:create");
        assert_eq!(
            authorize(&engine, &c, Action::GetCart, &cart).await,
            Ok(own(&c))
        );
    }

    #[tokio::test]
    async fn a_resource_of_the_wrong_kind_is_denied_by_the_policy() {
        let engine = engine();
        let c = caller(&[Role::Customer]);
        let denied = authorize(&engine, &c, Action::GetOrder, &Resource::own_cart(&c)).await;
        assert_eq!(
            reason(denied),
            "action order:get does not apply to resource kind cart"
        );
    }

    /// The rules come from the engine alone: a policy that allows everything lets a customer
    /// read another tenant's orders, which the shipped policies deny.
    #[tokio::test]
    async fn the_engine_is_the_only_source_of_rules() {
        let open = PolicySet::from_sources([(
            "open.rego",
            "package authz\nimport rego.v1\ndecision := {\"allowed\": true, \"reason\": \"open\"}\n",
        )])
        .expect("compiles");
        let engine = PolicyEngine::new(open);
        let c = caller(&[Role::Customer]);
        let other = TenantId::new_random();
        let order = Resource::Order { tenant: other };
        let read = authorize(&engine, &c, Action::GetOrder, &order).await;
        assert_eq!(read, Ok(tenant_wide(other)));
    }
}
