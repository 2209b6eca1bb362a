# Rule break_glass_notice: a valid break-glass approval was used. Shown as a warning
# (kubectl prints it) and in the decision log; deployguard also logs it at WARNING.
package deployguard.rules.break_glass_notice

import data.deployguard.governance
import data.deployguard.lib
import rego.v1

violation contains {"message": msg, "fix": "none; review the approval after the incident"} if {
	governance.is_rollout
	governance.break_glass_active
	bg := input.facts.break_glass
	msg := sprintf("BREAK-GLASS: %s admitted past freezes and risk blocks by approval %s (ticket %s, reason %s, approved by %s, expires %s)", [lib.subject, lib.quoted(bg.id), lib.quoted(bg.ticket), lib.quoted(bg.reason), lib.quoted(bg.approved_by), bg.expires])
}

# The approval this decision relies on, for the audit and for single use: deployguard
# records the token as used (a Lease, webhook/break_glass_commit.py) only when the
# decision carrying this annotation is allowed and not a dry run, so a change denied
# for another reason (signatures, registries, an unknown fact) does not burn it.
annotations := {"break-glass-token": lib.string_field(input.facts.break_glass, "id")} if {
	governance.is_rollout
	governance.break_glass_active
}
