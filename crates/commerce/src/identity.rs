//! Who is calling. The API gateway authenticates the end user and passes the identity in request
//! metadata (see `grpc::identity` for the keys); this module holds the parsed form and its rules.

use std::fmt;

use crate::ids::{TenantId, UserId};

/// A role the gateway may grant. What each may do is the policy engine's to decide; the notes
/// below describe the shipped policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A shopper: acts on their own cart and orders.
    Customer,
    /// Also reads all orders of their tenant.
    TenantAdmin,
    /// Reads carts and orders of every tenant; never writes.
    Support,
}

impl Role {
    /// Every role, in the order of its bit in [`Roles`].
    pub const ALL: [Role; 3] = [Role::Customer, Role::TenantAdmin, Role::Support];

    /// The role's name in the `x-roles` metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::TenantAdmin => "tenant_admin",
            Role::Support => "support",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Role::Customer => 1,
            Role::TenantAdmin => 2,
            Role::Support => 4,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of roles (a bit set: there are only three, and every call checks them).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Roles(u8);

/// A role name that is not one of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?} (expected customer, tenant_admin or support)")]
pub struct UnknownRole(pub String);

impl Roles {
    /// The roles of a caller whose gateway sent none.
    pub const DEFAULT: Roles = Roles(1);

    /// The set holding exactly `roles`.
    pub fn of(roles: &[Role]) -> Self {
        Roles(roles.iter().fold(0, |bits, role| bits | role.bit()))
    }

    /// Parses the comma-separated `x-roles` value. Blank entries are skipped; a value with no
    /// roles at all means [`Roles::DEFAULT`]; an unknown name is rejected rather than ignored,
    /// because a misconfigured gateway should be noticed, not silently downgraded.
    pub fn parse(text: &str) -> Result<Self, UnknownRole> {
        let mut bits = 0;
        for name in text
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            let role = Role::ALL
                .into_iter()
                .find(|role| role.as_str().eq_ignore_ascii_case(name))
                .ok_or_else(|| UnknownRole(crate::ids::truncate(name).to_owned()))?;
            bits |= role.bit();
        }
        Ok(if bits == 0 {
            Self::DEFAULT
        } else {
            Roles(bits)
        })
    }

    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    /// The roles in the set, in [`Role::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL
            .into_iter()
            .filter(move |role| self.contains(*role))
    }
}

impl fmt::Debug for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// The authenticated caller of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub tenant: TenantId,
    pub user: UserId,
    pub roles: Roles,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_roles() {
        assert_eq!(Roles::parse("").unwrap(), Roles::DEFAULT);
        assert_eq!(Roles::parse(" , ").unwrap(), Roles::DEFAULT);
        let roles = Roles::parse("customer, TENANT_ADMIN").unwrap();
        assert!(roles.contains(Role::Customer));
        assert!(roles.contains(Role::TenantAdmin));
        assert!(!roles.contains(Role::Support));
        assert_eq!(roles, Roles::of(&[Role::TenantAdmin, Role::Customer]));
        assert_eq!(format!("{roles:?}"), "{Customer, TenantAdmin}");
    }

    #[test]
    fn rejects_unknown_roles() {
        let err = Roles::parse("customer,root").unwrap_err();
        assert_eq!(err, UnknownRole("root".to_owned()));
    }
}
