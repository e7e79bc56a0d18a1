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
        let shapes = InputShapes::get();
        let keys = &shapes.keys;
        let subject = shapes.subject.filled([
            (&keys.tenant_id, shapes.text(&self.subject.tenant_id)),
            (&keys.user_id, shapes.text(&self.subject.user_id)),
            (
                &keys.roles,
                regorus::Value::from(
                    self.subject
                        .roles
                        .iter()
                        .map(|role| shapes.text(role))
                        .collect::<Vec<_>>(),
                ),
            ),
        ]);
        let resource = match &self.resource.owner_id {
            Some(owner) => shapes.owned_resource.filled([
                (&keys.kind, shapes.text(&self.resource.kind)),
                (&keys.tenant_id, shapes.text(&self.resource.tenant_id)),
                (&keys.owner_id, shapes.text(owner)),
            ]),
            None => shapes.tenant_wide_resource.filled([
                (&keys.kind, shapes.text(&self.resource.kind)),
                (&keys.tenant_id, shapes.text(&self.resource.tenant_id)),
            ]),
        };
        shapes.input.filled([
            (&keys.subject, subject),
            (&keys.action, shapes.text(&self.action)),
            (&keys.resource, resource),
        ])
    }
}

/// The objects of the policy input with their keys, made once per process. An input is made by
/// copying them and setting the values (regorus keeps an object whose keys do not change in its
/// compact sorted form), and the keys and the names of roles, actions and kinds are shared rather
/// than allocated for every decision. Building each object from a map instead took about half of
/// a decision of a policy that decides with a constant (callgrind, `cargo run --release -p policy
/// --example profile`).
struct InputShapes {
    keys: InputKeys,
    subject: Shape,
    owned_resource: Shape,
    tenant_wide_resource: Shape,
    input: Shape,
    /// The shared names, sorted for a binary search.
    known: Vec<(&'static str, regorus::Value)>,
}

struct InputKeys {
    subject: regorus::Value,
    action: regorus::Value,
    resource: regorus::Value,
    tenant_id: regorus::Value,
    user_id: regorus::Value,
    roles: regorus::Value,
    kind: regorus::Value,
    owner_id: regorus::Value,
}

/// An object with its keys set and every value `null`.
struct Shape(regorus::Value);

impl Shape {
    fn new(keys: &[&regorus::Value]) -> Self {
        Self(regorus::Value::from(
            keys.iter()
                .map(|key| ((*key).clone(), regorus::Value::Null))
                .collect::<BTreeMap<_, _>>(),
        ))
    }

    /// A copy with the given values; every key of the shape must be given one, and only those.
    fn filled<const N: usize>(
        &self,
        fields: [(&regorus::Value, regorus::Value); N],
    ) -> regorus::Value {
        let mut value = self.0.clone();
        // A copy of the shape (the static one is shared, so `make_mut` copies it); setting the
        // values of its keys keeps its compact form.
        if let Ok(object) = value.as_object_mut() {
            debug_assert_eq!(object.len(), N, "a field of the input is left null");
            for (key, field) in fields {
                match object.get_mut(key) {
                    Some(slot) => *slot = field,
                    None => debug_assert!(false, "{key} is not a key of the shape"),
                }
            }
        }
        value
    }
}

impl InputShapes {
    /// A string of the input: the names the policies know (roles, actions, kinds) are made once
    /// and shared; any other text (ids) is copied.
    fn text(&self, value: &str) -> regorus::Value {
        match self
            .known
            .binary_search_by(|(known, _)| (*known).cmp(value))
        {
            Ok(index) => self.known[index].1.clone(),
            Err(_) => regorus::Value::from(value),
        }
    }

    fn get() -> &'static Self {
        static SHAPES: std::sync::LazyLock<InputShapes> = std::sync::LazyLock::new(|| {
            let key = regorus::Value::from;
            let keys = InputKeys {
                subject: key("subject"),
                action: key("action"),
                resource: key("resource"),
                tenant_id: key("tenant_id"),
                user_id: key("user_id"),
                roles: key("roles"),
                kind: key("kind"),
                owner_id: key("owner_id"),
            };
            let mut known: Vec<(&'static str, regorus::Value)> = roles::ALL
                .into_iter()
                .chain(actions::ALL)
                .chain([kinds::CART, kinds::ORDER])
                .map(|name| (name, regorus::Value::from(name)))
                .collect();
            known.sort_by(|a, b| a.0.cmp(b.0));
            known.dedup_by(|a, b| a.0 == b.0);
            InputShapes {
                subject: Shape::new(&[&keys.tenant_id, &keys.user_id, &keys.roles]),
                owned_resource: Shape::new(&[&keys.kind, &keys.tenant_id, &keys.owner_id]),
                tenant_wide_resource: Shape::new(&[&keys.kind, &keys.tenant_id]),
                input: Shape::new(&[&keys.subject, &keys.action, &keys.resource]),
                known,
                keys,
            }
        });
        &SHAPES
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
        // Names the input shares (roles, actions, kinds), others it copies, a name repeated, a
        // name equal to a key of the input, and empty text.
        let unusual = AuthzRequest::new(
            Subject::new(
                "tenant_id",
                "roles",
                ["auditor", roles::SUPPORT, roles::SUPPORT],
            ),
            "kind",
            Resource::owned("cart:get", "", "owner_id"),
        );
        for request in [owned, tenant_wide, unusual] {
            let json = serde_json::to_value(&request).expect("plain struct");
            assert_eq!(request.to_value(), regorus::Value::from(json));
        }
    }
}
