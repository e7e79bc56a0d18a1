//! The authorization request and decision types: plain serde structs that callers fill in and
//! that the policies see as `input`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Roles the shipped policies know.
pub mod roles {
    /// Acts on their own cart and orders inside their tenant.
    pub const CUSTOMER: &str = "customer";
    /// A customer who may also read every order of their tenant.
    pub const TENANT_ADMIN: &str = "tenant_admin";
    /// Reads carts and orders of every tenant; never writes.
    pub const SUPPORT: &str = "support";
    /// All of the above.
    pub const ALL: [&str; 3] = [CUSTOMER, TENANT_ADMIN, SUPPORT];
}

/// Actions of the commerce API, as `kind:verb`; the kind must match the resource kind.
pub mod actions {
    /// Read a cart.
    pub const CART_GET: &str = "cart:get";
    /// Add an item to a cart.
    pub const CART_ADD_ITEM: &str = "cart:add_item";
    /// Remove an item from a cart.
    pub const CART_REMOVE_ITEM: &str = "cart:remove_item";
    /// Empty a cart.
    pub const CART_CLEAR: &str = "cart:clear";
    /// Turn a cart into an order.
    pub const ORDER_CREATE: &str = "order:create";
    /// Read one order.
    pub const ORDER_GET: &str = "order:get";
    /// List orders (of one owner, or of the whole tenant when the resource has no owner).
    pub const ORDER_LIST: &str = "order:list";
    /// All of the above.
    pub const ALL: [&str; 7] = [
        CART_GET,
        CART_ADD_ITEM,
        CART_REMOVE_ITEM,
        CART_CLEAR,
        ORDER_CREATE,
        ORDER_GET,
        ORDER_LIST,
    ];
    /// The actions that change data.
    pub const WRITES: [&str; 4] = [CART_ADD_ITEM, CART_REMOVE_ITEM, CART_CLEAR, ORDER_CREATE];
}

/// Resource kinds of the commerce API.
pub mod kinds {
    /// A shopping cart.
    pub const CART: &str = "cart";
    /// An order.
    pub const ORDER: &str = "order";
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Subject {
    /// The tenant the caller belongs to.
    pub tenant_id: String,
    /// The caller's user id (unique within the tenant).
    pub user_id: String,
    /// The caller's roles, e.g. [`roles::CUSTOMER`].
    pub roles: Vec<String>,
}

impl Subject {
    /// A subject from its parts.
    pub fn new(
        tenant_id: impl Into<String>,
        user_id: impl Into<String>,
        roles: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            tenant_id: tenant_id.into(),
            user_id: user_id.into(),
            roles: roles.into_iter().map(Into::into).collect(),
        }
    }
}

/// What the call touches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resource {
    /// The resource kind, e.g. [`kinds::CART`].
    pub kind: String,
    /// The tenant the resource belongs to.
    pub tenant_id: String,
    /// The user who owns the resource; `None` for something tenant-wide, such as listing all
    /// orders of a tenant. Absent (not `null`) in the policy input when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
}

impl Resource {
    /// A resource owned by `owner_id`.
    pub fn owned(
        kind: impl Into<String>,
        tenant_id: impl Into<String>,
        owner_id: impl Into<String>,
    ) -> Self {
        Self {
            kind: kind.into(),
            tenant_id: tenant_id.into(),
            owner_id: Some(owner_id.into()),
        }
    }

    /// A tenant-wide resource (no owner).
    pub fn tenant_wide(kind: impl Into<String>, tenant_id: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            tenant_id: tenant_id.into(),
            owner_id: None,
        }
    }
}

/// One authorization question: may `subject` perform `action` on `resource`?
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuthzRequest {
    /// Who is calling.
    pub subject: Subject,
    /// What they want to do, e.g. [`actions::ORDER_CREATE`].
    pub action: String,
    /// What they want to do it to.
    pub resource: Resource,
}

impl AuthzRequest {
    /// A request from its parts.
    pub fn new(subject: Subject, action: impl Into<String>, resource: Resource) -> Self {
        Self {
            subject,
            action: action.into(),
            resource,
        }
    }

    /// The policy input, built directly as a regorus value: the same document as the request's
    /// JSON form (field names as serialized, no `owner_id` when there is no owner), without
    /// writing and parsing JSON on every decision.
    pub(crate) fn to_value(&self) -> regorus::Value {
        fn object<const N: usize>(fields: [(&str, regorus::Value); N]) -> regorus::Value {
            regorus::Value::from(
                fields
                    .into_iter()
                    .map(|(key, value)| (regorus::Value::from(key), value))
                    .collect::<BTreeMap<_, _>>(),
            )
        }
        let text = |value: &str| regorus::Value::from(value);
        let subject = object([
            ("tenant_id", text(&self.subject.tenant_id)),
            ("user_id", text(&self.subject.user_id)),
            (
                "roles",
                regorus::Value::from(
                    self.subject
                        .roles
                        .iter()
                        .map(|role| text(role))
                        .collect::<Vec<_>>(),
                ),
            ),
        ]);
        let resource = match &self.resource.owner_id {
            Some(owner) => object([
                ("kind", text(&self.resource.kind)),
                ("tenant_id", text(&self.resource.tenant_id)),
                ("owner_id", text(owner)),
            ]),
            None => object([
                ("kind", text(&self.resource.kind)),
                ("tenant_id", text(&self.resource.tenant_id)),
            ]),
        };
        object([
            ("subject", subject),
            ("action", text(&self.action)),
            ("resource", resource),
        ])
    }
}

/// The answer to an [`AuthzRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Decision {
    /// Whether the action is allowed.
    pub allowed: bool,
    /// Why, in words fit for a log line or a `PermissionDenied` message.
    pub reason: String,
}

impl Decision {
    /// A denial with `reason`.
    pub fn deny(reason: impl Into<String>) -> Self {
        Self {
            allowed: false,
            reason: reason.into(),
        }
    }

    /// An allowance with `reason`.
    pub fn allow(reason: impl Into<String>) -> Self {
        Self {
            allowed: true,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_shape_omits_a_missing_owner() {
        let request = AuthzRequest::new(
            Subject::new("t1", "u1", [roles::TENANT_ADMIN]),
            actions::ORDER_LIST,
            Resource::tenant_wide(kinds::ORDER, "t1"),
        );
        let json = serde_json::to_string(&request).expect("plain struct");
        assert_eq!(
            json,
            r#"{"subject":{"tenant_id":"t1","user_id":"u1","roles":["tenant_admin"]},"action":"order:list","resource":{"kind":"order","tenant_id":"t1"}}"#
        );
        let back: AuthzRequest = serde_json::from_str(&json).expect("round trip");
        assert_eq!(back, request);
    }

    #[test]
    fn policy_input_is_the_json_document() {
        let owned = AuthzRequest::new(
            Subject::new("t1", "u1", [roles::CUSTOMER, roles::SUPPORT]),
            actions::CART_GET,
            Resource::owned(kinds::CART, "t1", "u2"),
        );
        let tenant_wide = AuthzRequest::new(
            Subject::new("", "u1", Vec::<String>::new()),
            actions::ORDER_LIST,
            Resource::tenant_wide(kinds::ORDER, "t1"),
        );
        for request in [owned, tenant_wide] {
            let json = serde_json::to_value(&request).expect("plain struct");
            assert_eq!(request.to_value(), regorus::Value::from(json));
        }
    }
}
