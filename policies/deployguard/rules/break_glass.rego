# Rule break_glass: a break-glass annotation that is present but not valid (garbage,
# badly signed, expired, for another object or pod template, too few approvers,
# already used) denies the change with the reason. A valid one is announced by rule
# break_glass_notice and lets the change through freezes and risk blocks (never
# through signature or digest rules). Facts: input.facts.break_glass
# (webhook/facts/break_glass.py).
package deployguard.rules.break_glass

import data.deployguard.governance
import data.deployguard.lib
import rego.v1

violation contains {"message": msg, "fix": fix} if {
	bg := input.facts.break_glass
	bg.present == true
	bg.valid == false
	governance.is_rollout
	msg := sprintf("the break-glass approval on %s was rejected: %s", [lib.subject, lib.quoted(lib.string_field(bg, "error"))])
	fix := concat("", ["ask approvers for a new token bound to this object and its pod template: ", lib.sign_command(lib.string_field(bg, "template_hash"))])
}
