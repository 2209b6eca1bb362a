# Helpers shared by the change-governance rules (error budgets, risk, freezes,
# break-glass): whether this change is a rollback, a valid break-glass, or a fix.
# No findings here.
package deployguard.governance

import rego.v1

# An update whose pod template equals a recent revision: deployguard sets
# input.change.type to "rollback" from the rollback fact (webhook/facts/rollback.py).
# The emergency path: freezes and error budgets let it through.
is_rollback if input.change.type == "rollback"

# Changes that start pods from a new template, and are therefore frozen by freezes,
# error budgets and risk: create and rollout (not rollback, scale or metadata).
is_rollout if input.change.type in {"create", "rollout"}

# A verified, unused break-glass approval for exactly this object and pod template
# (webhook/facts/break_glass.py checks signatures, expiry, binding and single use).
break_glass_active if input.facts.break_glass.valid == true

# The change is marked as a fix (data.deployguard.config.governance.fix_annotations,
# any of them set to "true" on the workload): error-budget freezes let it through.
marked_fix if {
	some key in _fix_annotations
	input.workload.annotations[key] == "true"
}

default _fix_annotations := ["deployguard.io/fix"]

_fix_annotations := data.deployguard.config.governance.fix_annotations if {
	is_array(data.deployguard.config.governance.fix_annotations)
}
