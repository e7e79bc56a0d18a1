# Role-based access: which actions each role may perform, and on which scope of resources.
#
# Scopes, from narrowest to widest (the tenancy package decides which ones a request meets):
# - "own":    resources the caller owns, inside the caller's tenant;
# - "tenant": any resource of the caller's tenant;
# - "any":    resources of any tenant.
package authz.rbac

import rego.v1

scopes := ["own", "tenant", "any"]

# role -> action -> scopes at which the role may perform the action. Written out as one
# constant (no object.union of the customer's grants into the tenant admin's), because the
# policies are evaluated on every authorization: a literal costs less to build than a union.
grants := {
	# A customer works on their own cart and their own orders.
	"customer": {
		"cart:get": {"own"},
		"cart:add_item": {"own"},
		"cart:remove_item": {"own"},
		"cart:clear": {"own"},
		"order:create": {"own"},
		"order:get": {"own"},
		"order:list": {"own"},
	},
	# A tenant admin shops like a customer and may also read every order of the tenant.
	"tenant_admin": {
		"cart:get": {"own"},
		"cart:add_item": {"own"},
		"cart:remove_item": {"own"},
		"cart:clear": {"own"},
		"order:create": {"own"},
		"order:get": {"own", "tenant"},
		"order:list": {"own", "tenant"},
	},
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
