# Multi-tenant rules: which scopes a request's resource falls in, and why it falls in none.
#
# A user acts only inside their tenant: a resource of another tenant meets only the "any" scope,
# whatever its owner id says (user ids are not assumed to be unique across tenants).
package authz.tenancy

import rego.v1

same_tenant if input.subject.tenant_id == input.resource.tenant_id

# The caller owns the resource. A resource without owner (a tenant-wide listing) is owned by
# nobody.
owns_resource if {
	same_tenant
	input.resource.owner_id == input.subject.user_id
}

met_scopes contains "any"

met_scopes contains "tenant" if same_tenant

met_scopes contains "own" if owns_resource

# Why the resource is out of reach; consulted only when a role grants the action at some scope
# but the resource meets none of the granted scopes.
out_of_scope_reason := "cross-tenant access denied" if {
	not same_tenant
} else := "tenant-wide access denied" if {
	not input.resource.owner_id
} else := "resource belongs to another user"
