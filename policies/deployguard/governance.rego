# Helpers shared by the change-governance rules (error budgets, risk, freezes,
# break-glass): whether this change is a rollback, a valid break-glass, or a fix.
# No findings here.
package deployguard.governance

import data.deployguard.lib
import rego.v1

# An update whose pod template equals a recent revision: deployguard sets
# input.change.type to "rollback" from the rollback fact (webhook/facts/rollback.py).
# The emergency path: freezes and error budgets let it through.
default is_rollback := false

is_rollback if lib.change_type == "rollback"

# Changes that start pods from a new template, and are therefore frozen by freezes,
# error budgets and risk: create and rollout (not rollback, scale or metadata).
# Two bodies, not `in {...}`: rego-cpp would build the set on every evaluation.
# The defaults make these helpers defined, hence cached: rego-cpp evaluates an
# undefined rule again at every reference.
default is_rollout := false

is_rollout if lib.change_type == "create"

is_rollout if lib.change_type == "rollout"

# A verified, unused break-glass approval for exactly this object and pod template
# (webhook/facts/break_glass.py checks signatures, expiry, binding and single use).
default break_glass_active := false

break_glass_active if input.facts.break_glass.valid == true

# The change is marked as a fix (data.deployguard.config.governance.fix_annotations,
# any of them set to "true" on the workload): error-budget freezes let it through.
default marked_fix := false

marked_fix if {
	keys := _fix_annotations
	some key in keys
	input.workload.annotations[key] == "true"
}

default _fix_annotations := ["deployguard.io/fix"]

_fix_annotations := keys if {
	keys := data.deployguard.config.governance.fix_annotations
	is_array(keys)
}
