# Rule change_freeze: no deploys while a change freeze or blocked window is in force, or
# outside the allowed change windows. Scale, rollback and controller replicas pass by
# default (each freeze lists the change types it blocks in changeTypes). A valid
# break-glass approval (governance.break_glass_active) lets the change through.
#
# Facts: input.facts.windows, computed by deployguard (webhook/facts/windows.py) at
# minute resolution in the workload's zone: `blocking` (the freezes/windows active now
# that apply to this workload and change type, with name, reason, declared_by, ticket),
# `inside_allowed`, `allowed_windows`, `opens_at_text` (when deploys open again).
# Data: data.deployguard.config.change_freeze.unknown: "deny" denies when the windows
# fact is unknown; anything else leaves that to the change_calendar rule (a warning).
package deployguard.rules.change_freeze

import data.deployguard.governance
import data.deployguard.lib
import rego.v1

violation contains {"message": msg, "fix": _freeze_fix} if {
	blocking := input.facts.windows.blocking
	some f in blocking
	input.change.type in f.change_types
	not governance.break_glass_active
	msg := concat("", [
		lib.subject, ": ", input.change.type, " blocked by ", _freeze_what(f),
		", declared by ", _freeze_text(f.declared_by), _freeze_ticket(f), "; ", _freeze_opens,
	])
}

violation contains {"message": msg, "fix": _freeze_fix} if {
	input.facts.windows.inside_allowed == false
	not governance.break_glass_active
	msg := concat("", [
		lib.subject, ": ", input.change.type, " is outside the allowed change windows [",
		concat(", ", [_freeze_text(n) | some n in input.facts.windows.allowed_windows]), "]; ", _freeze_opens,
	])
}

violation contains {"message": msg, "fix": "check deployguard's logs; the change calendar must be readable for deploys to pass"} if {
	input.facts.windows.status == "unknown"
	data.deployguard.config.change_freeze.unknown == "deny"
	msg := concat("", [lib.subject, ": the change calendar could not be evaluated (", _freeze_text(input.facts.windows.error), "), so a freeze may be in force"])
}

# `ChangeFreeze shop/black-friday ("no deploys on Black Friday", Black Friday)`
_freeze_what(f) := concat("", [f.kind, " ", _freeze_name(f), " (", _freeze_text(f.reason), _freeze_occasion(f), ")"])

_freeze_name(f) := concat("/", [_freeze_text(f.namespace), _freeze_text(f.name)]) if f.namespace != ""

else := _freeze_text(f.name)

_freeze_occasion(f) := concat("", [", ", _freeze_text(f.occasion)]) if f.occasion != ""

else := ""

_freeze_ticket(f) := concat("", [" (ticket ", _freeze_text(f.ticket), ")"]) if f.ticket != ""

else := ""

_freeze_opens := concat("", ["deploys open again at ", _freeze_text(input.facts.windows.opens_at_text)]) if {
	input.facts.windows.opens_at_text != ""
} else := "no reopening time is known (a freeze without an end lifts when it is deleted)"

# With the break-glass fact, the fix names the exact command an approver runs (the template
# hash is the one deployguard computed from the object the API server sent).
_freeze_fix := concat("", ["wait until then, or ask the freeze's owner; rollbacks and scaling still pass, and an emergency change needs a break-glass approval: ", lib.sign_command(input.facts.break_glass.template_hash)]) if {
	is_string(input.facts.break_glass.template_hash)
} else := "wait until then, or ask the freeze's owner; rollbacks and scaling still pass, and an emergency change needs a break-glass approval"

# A user-written string, shown only when it is printable ASCII (see lib.quoted).
_freeze_text(s) := s if lib.printable(s)

else := "(not shown: quotes, backslashes or non-ASCII)"
