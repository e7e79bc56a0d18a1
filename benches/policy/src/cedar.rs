//! The reference: the shipped RBAC + tenancy decision written in Cedar (`cedar-policy`), so that
//! the suite measures our Rego evaluation beside a well-known authorization engine on the same
//! requests, in the same run (`policy/reference/cedar_rbac`).
//!
//! Only allow/deny is compared: Cedar answers with the policies that determined the decision,
//! not with a sentence, so the Rego policies' reasons have no counterpart here. The request is
//! passed as the Cedar `context` (subject and resource records), which is what the Rego
//! policies see as `input`; the principal, action and resource entity ids carry the user, the
//! action and the resource kind. No entity store is needed.

use std::str::FromStr as _;

use anyhow::Context as _;
use authz::AuthzRequest;
use cedar_policy::{
    Authorizer, Context, Decision, Entities, EntityId, EntityTypeName, EntityUid, PolicySet,
    Request, RestrictedExpression,
};

/// The shipped policies' decision in Cedar: deny by default, a `forbid` for every request the
/// Rego policies reject before looking at grants, and one `permit` per grant scope.
pub const POLICIES: &str = r#"
// Requests that cannot be judged on their merits (decision.rego's request_problems).
forbid (principal, action, resource)
when {
    context.subject.roles == [] ||
    context.subject.tenant_id == "" ||
    context.subject.user_id == "" ||
    context.resource.tenant_id == ""
};

// The action's kind must be the resource's kind.
forbid (
    principal,
    action in [Action::"cart:get", Action::"cart:add_item", Action::"cart:remove_item", Action::"cart:clear"],
    resource
)
unless { context.resource.kind == "cart" };

forbid (
    principal,
    action in [Action::"order:create", Action::"order:get", Action::"order:list"],
    resource
)
unless { context.resource.kind == "order" };

// "own" scope: customers and tenant admins work on their own carts and orders, inside their
// tenant.
permit (
    principal,
    action in [
        Action::"cart:get", Action::"cart:add_item", Action::"cart:remove_item", Action::"cart:clear",
        Action::"order:create", Action::"order:get", Action::"order:list"
    ],
    resource
)
when {
    (context.subject.roles.contains("customer") || context.subject.roles.contains("tenant_admin")) &&
    context.resource.tenant_id == context.subject.tenant_id &&
    context.resource has owner_id &&
    context.resource.owner_id == context.subject.user_id
};

// "tenant" scope: a tenant admin reads every order of the tenant.
permit (principal, action in [Action::"order:get", Action::"order:list"], resource)
when {
    context.subject.roles.contains("tenant_admin") &&
    context.resource.tenant_id == context.subject.tenant_id
};

// "any" scope: support reads carts and orders of every tenant, and never writes.
permit (principal, action in [Action::"cart:get", Action::"order:get", Action::"order:list"], resource)
when { context.subject.roles.contains("support") };
"#;

/// The Cedar policies, parsed once, and the entity type names every request uses.
pub struct CedarReference {
    policies: PolicySet,
    authorizer: Authorizer,
    entities: Entities,
    user: EntityTypeName,
    action: EntityTypeName,
    resource: EntityTypeName,
}

impl CedarReference {
    /// Parses [`POLICIES`].
    pub fn new() -> anyhow::Result<Self> {
        let name = |name: &str| {
            EntityTypeName::from_str(name)
                .with_context(|| format!("invalid Cedar entity type name {name:?}"))
        };
        Ok(Self {
            policies: PolicySet::from_str(POLICIES)
                .map_err(|error| anyhow::anyhow!("the Cedar reference policies: {error}"))?,
            authorizer: Authorizer::new(),
            entities: Entities::empty(),
            user: name("User")?,
            action: name("Action")?,
            resource: name("Resource")?,
        })
    }

    /// Decides `request`, building the Cedar request from it (as our engine builds its input
    /// from it on every decision). An error only if the request cannot be expressed in Cedar.
    pub fn is_allowed(&self, request: &AuthzRequest) -> anyhow::Result<bool> {
        let string = |value: &str| RestrictedExpression::new_string(value.to_owned());
        let subject = RestrictedExpression::new_record([
            ("tenant_id".to_owned(), string(&request.subject.tenant_id)),
            ("user_id".to_owned(), string(&request.subject.user_id)),
            (
                "roles".to_owned(),
                RestrictedExpression::new_set(request.subject.roles.iter().map(|r| string(r))),
            ),
        ])?;
        let mut resource_fields = vec![
            ("kind".to_owned(), string(&request.resource.kind)),
            ("tenant_id".to_owned(), string(&request.resource.tenant_id)),
        ];
        if let Some(owner) = &request.resource.owner_id {
            resource_fields.push(("owner_id".to_owned(), string(owner)));
        }
        let resource = RestrictedExpression::new_record(resource_fields)?;
        let context = Context::from_pairs([
            ("subject".to_owned(), subject),
            ("resource".to_owned(), resource),
        ])?;
        let uid = |kind: &EntityTypeName, id: &str| {
            EntityUid::from_type_name_and_id(kind.clone(), EntityId::new(id))
        };
        let cedar_request = Request::new(
            uid(&self.user, &request.subject.user_id),
            uid(&self.action, &request.action),
            uid(&self.resource, &request.resource.kind),
            context,
            None,
        )?;
        let response =
            self.authorizer
                .is_authorized(&cedar_request, &self.policies, &self.entities);
        Ok(response.decision() == Decision::Allow)
    }
}

#[cfg(test)]
mod tests {
    use authz::{PolicySet, Resource, Subject, actions, kinds, roles};

    use super::*;

    /// Every role set × action × resource context the decision table covers, plus the
    /// malformed requests: Cedar must allow exactly what the shipped Rego policies allow.
    fn requests() -> Vec<AuthzRequest> {
        let role_sets: Vec<Vec<&str>> = vec![
            vec![roles::CUSTOMER],
            vec![roles::TENANT_ADMIN],
            vec![roles::SUPPORT],
            vec![roles::CUSTOMER, roles::SUPPORT],
            vec![roles::SUPPORT, roles::TENANT_ADMIN],
            vec!["auditor"],
            vec![],
        ];
        let resources = |kind: &str| {
            vec![
                Resource::owned(kind, "tenant-a", "alice"),
                Resource::owned(kind, "tenant-a", "bob"),
                Resource::tenant_wide(kind, "tenant-a"),
                Resource::owned(kind, "tenant-b", "carol"),
                Resource::owned(kind, "tenant-b", "alice"),
                Resource::owned(kind, "", "alice"),
            ]
        };
        let mut requests = Vec::new();
        for roles in &role_sets {
            for action in actions::ALL.into_iter().chain(["cart:delete_all"]) {
                for kind in [kinds::CART, kinds::ORDER, "invoice"] {
                    for resource in resources(kind) {
                        for (tenant, user) in
                            [("tenant-a", "alice"), ("", "alice"), ("tenant-a", "")]
                        {
                            requests.push(AuthzRequest::new(
                                Subject::new(tenant, user, roles.iter().copied()),
                                action,
                                resource.clone(),
                            ));
                        }
                    }
                }
            }
        }
        requests.extend(crate::rbac_requests());
        requests.extend(crate::tenancy_requests());
        requests
    }

    #[test]
    fn cedar_reference_allows_what_the_shipped_policies_allow() {
        let ours = PolicySet::shipped().expect("the shipped policies compile");
        let cedar = CedarReference::new().expect("the Cedar policies parse");
        let requests = requests();
        let mut allowed = 0;
        for request in &requests {
            let decision = ours.evaluate(request);
            let theirs = cedar.is_allowed(request).expect("a Cedar request");
            assert_eq!(theirs, decision.allowed, "{request:?}: ours {decision:?}");
            allowed += usize::from(theirs);
        }
        // Both outcomes are exercised, not only denials.
        assert!(
            allowed > 20 && allowed < requests.len() / 2,
            "{allowed} allowed"
        );
    }
}
