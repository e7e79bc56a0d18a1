# The decision entry point: combines role-based access (authz.rbac) and tenancy
# (authz.tenancy) into {"allowed": bool, "reason": string}. Anything not allowed is denied.
package authz

import rego.v1

import data.authz.rbac
import data.authz.tenancy

default decision := {"allowed": false, "reason": "denied by default"}

# Checked in order; the first branch whose conditions hold gives the decision.
decision := {"allowed": false, "reason": reason} if {
	count(request_problems) > 0
	reason := sort(request_problems)[0]
} else := {"allowed": true, "reason": reason} if {
	count(allowing_grants) > 0
	[role, scope] := allowing_grants[0]
	reason := sprintf("role %s may %s on %s", [role, input.action, scope_description[scope]])
} else := {"allowed": false, "reason": lacks_permission} if {
	count(rbac.granted_scopes) == 0
} else := {"allowed": false, "reason": tenancy.out_of_scope_reason}

# Requests that cannot be judged on their merits.
request_problems contains "subject has no roles" if count(input.subject.roles) == 0

request_problems contains "subject tenant is missing" if input.subject.tenant_id == ""

request_problems contains "subject user is missing" if input.subject.user_id == ""

request_problems contains "resource tenant is missing" if input.resource.tenant_id == ""

request_problems contains reason if {
	kind := split(input.action, ":")[0]
	kind != input.resource.kind
	reason := sprintf("action %s does not apply to resource kind %s", [input.action, input.resource.kind])
}

# [role, scope] pairs that allow the request, narrowest scope first, then by role name, so
# that the reason names the most specific grant.
allowing_grants := [[role, scope] |
	some scope in rbac.scopes
	scope in tenancy.met_scopes
	some role in sort(input.subject.roles)
	scope in rbac.grants[role][input.action]
]

scope_description := {
	"own": "own resources",
	"tenant": "resources of its tenant",
	"any": "resources of any tenant",
}

lacks_permission := sprintf("role %s lacks permission %s", [input.subject.roles[0], input.action]) if {
	count(input.subject.roles) == 1
} else := sprintf("roles %s lack permission %s", [concat(", ", sort(input.subject.roles)), input.action])
