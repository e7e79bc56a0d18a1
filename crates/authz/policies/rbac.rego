# Role-based access: which actions each role may perform, and on which scope of resources.
#
# Scopes, from narrowest to widest (the tenancy package decides which ones a request meets):
# - "own":    resources the caller owns, inside the caller's tenant;
# - "tenant": any resource of the caller's tenant;
# - "any":    resources of any tenant.
package authz.rbac

import rego.v1

scopes := ["own", "tenant", "any"]

# A customer works on their own cart and their own orders.
customer_grants := {
	"cart:get": {"own"},
	"cart:add_item": {"own"},
	"cart:remove_item": {"own"},
	"cart:clear": {"own"},
	"order:create": {"own"},
	"order:get": {"own"},
	"order:list": {"own"},
}

# role -> action -> scopes at which the role may perform the action.
grants := {
	"customer": customer_grants,
	# A tenant admin shops like a customer and may also read every order of the tenant.
	"tenant_admin": object.union(customer_grants, {
		"order:get": {"own", "tenant"},
		"order:list": {"own", "tenant"},
	}),
	# Support reads carts and orders of every tenant to help customers, and never writes.
	"support": {
		"cart:get": {"any"},
		"order:get": {"any"},
		"order:list": {"any"},
	},
}

# The scopes at which the caller's roles allow the requested action.
granted_scopes contains scope if {
	some role in input.subject.roles
	some scope in grants[role][input.action]
}
