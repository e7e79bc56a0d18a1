//! Authorization: the one decision every gRPC handler asks for before it does anything else.
//!
//! A later change replaces the body of [`authorize`] with a call to the policy engine; the
//! handlers, the [`Action`]/[`Resource`] vocabulary and the [`Grant`] they get back stay. Until
//! then this module enforces a safe default policy:
//!
//! - a caller acts only inside their own tenant (any other target tenant is denied, whatever the
//!   roles: support's cross-tenant reads need the policy engine);
//! - a cart is always the caller's own;
//! - writes need the `customer` or `tenant_admin` role: `support` never writes;
//! - a customer reads only their own orders; `tenant_admin` and `support` read every order of the
//!   tenant.

use crate::identity::{Caller, Role};
use crate::ids::{TenantId, UserId};

/// What a call wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    ReadCart,
    WriteCart,
    CreateOrder,
    ReadOrder,
    ListOrders,
}

impl Action {
    /// Whether the action changes state.
    pub fn is_write(self) -> bool {
        matches!(self, Action::WriteCart | Action::CreateOrder)
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
    /// The caller's own cart.
    OwnCart,
    /// One order of `tenant` (its owner is not known before it is read).
    Order { tenant: TenantId },
    /// The orders of `tenant`, as many as `scope` says.
    Orders { tenant: TenantId, scope: ListScope },
}

/// What an allowed call may touch: rows of `tenant`, and when `user` is set, only that user's.
/// Handlers scope their queries with it, so a denied row is simply not found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub tenant: TenantId,
    pub user: Option<UserId>,
}

/// A denial, with the reason the caller is told.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Denied {
    pub reason: String,
}

fn deny(reason: impl Into<String>) -> Result<Grant, Denied> {
    Err(Denied {
        reason: reason.into(),
    })
}

/// Decides whether `caller` may perform `action` on `resource`, and if so, on which rows.
pub fn authorize(caller: &Caller, action: Action, resource: &Resource) -> Result<Grant, Denied> {
    // Writes need a role that grants them; support alone never does.
    let may_write =
        caller.roles.contains(Role::Customer) || caller.roles.contains(Role::TenantAdmin);
    if action.is_write() && !may_write {
        return deny("the support role may not change carts or orders");
    }
    let reads_tenant =
        caller.roles.contains(Role::TenantAdmin) || caller.roles.contains(Role::Support);
    let own = Grant {
        tenant: caller.tenant,
        user: Some(caller.user),
    };
    match (action, resource) {
        (Action::ReadCart | Action::WriteCart | Action::CreateOrder, Resource::OwnCart) => Ok(own),
        (Action::ReadOrder, Resource::Order { tenant })
        | (Action::ListOrders, Resource::Orders { tenant, .. })
            if *tenant != caller.tenant =>
        {
            deny("reading another tenant's orders is not allowed")
        }
        (Action::ReadOrder, Resource::Order { .. }) => Ok(Grant {
            user: if reads_tenant { None } else { own.user },
            ..own
        }),
        (Action::ListOrders, Resource::Orders { scope, .. }) => match scope {
            ListScope::Own => Ok(own),
            ListScope::Tenant if reads_tenant => Ok(Grant { user: None, ..own }),
            ListScope::Tenant => {
                deny("listing all orders of the tenant needs the tenant_admin role")
            }
        },
        (action, resource) => deny(format!("{action:?} does not apply to {resource:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Roles;

    fn caller(roles: &[Role]) -> Caller {
        Caller {
            tenant: TenantId::new_random(),
            user: UserId::new_random(),
            roles: Roles::of(roles),
        }
    }

    #[test]
    fn customers_act_on_their_own_cart_and_orders() {
        let c = caller(&[Role::Customer]);
        let own = Grant {
            tenant: c.tenant,
            user: Some(c.user),
        };
        assert_eq!(
            authorize(&c, Action::WriteCart, &Resource::OwnCart),
            Ok(own)
        );
        assert_eq!(
            authorize(&c, Action::CreateOrder, &Resource::OwnCart),
            Ok(own)
        );
        let order = Resource::Order { tenant: c.tenant };
        assert_eq!(authorize(&c, Action::ReadOrder, &order), Ok(own));
        let mine = Resource::Orders {
            tenant: c.tenant,
            scope: ListScope::Own,
        };
        assert_eq!(authorize(&c, Action::ListOrders, &mine), Ok(own));
        let all = Resource::Orders {
            tenant: c.tenant,
            scope: ListScope::Tenant,
        };
        assert!(authorize(&c, Action::ListOrders, &all).is_err());
    }

    #[test]
    fn tenant_admins_read_the_whole_tenant() {
        let c = caller(&[Role::TenantAdmin]);
        let tenant_wide = Grant {
            tenant: c.tenant,
            user: None,
        };
        let all = Resource::Orders {
            tenant: c.tenant,
            scope: ListScope::Tenant,
        };
        assert_eq!(authorize(&c, Action::ListOrders, &all), Ok(tenant_wide));
        let order = Resource::Order { tenant: c.tenant };
        assert_eq!(authorize(&c, Action::ReadOrder, &order), Ok(tenant_wide));
    }

    #[test]
    fn nobody_crosses_tenants_yet() {
        for roles in [
            &[Role::Customer][..],
            &[Role::TenantAdmin],
            &[Role::Support],
        ] {
            let c = caller(roles);
            let other = TenantId::new_random();
            let order = Resource::Order { tenant: other };
            assert!(
                authorize(&c, Action::ReadOrder, &order).is_err(),
                "{roles:?}"
            );
            let list = Resource::Orders {
                tenant: other,
                scope: ListScope::Own,
            };
            assert!(
                authorize(&c, Action::ListOrders, &list).is_err(),
                "{roles:?}"
            );
        }
    }

    #[test]
    fn support_never_writes() {
        let c = caller(&[Role::Support]);
        let denied = authorize(&c, Action::WriteCart, &Resource::OwnCart).unwrap_err();
        assert!(denied.reason.contains("support"), "{denied}");
        assert!(authorize(&c, Action::CreateOrder, &Resource::OwnCart).is_err());
        assert!(authorize(&c, Action::ReadCart, &Resource::OwnCart).is_ok());
    }
}
