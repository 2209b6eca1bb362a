# Rule risk_notice: a warning for a change whose risk score (rule risk) is at or above
# the warn threshold but needs no approval, or that a break-glass approval let through.
package deployguard.rules.risk_notice

import data.deployguard.governance
import data.deployguard.lib
import data.deployguard.rules.risk
import rego.v1

violation contains {"message": msg, "fix": "none needed; watch the rollout closely"} if {
	risk.level == "warn"
	msg := concat("", [
		lib.subject, " has change-risk score ", sprintf("%v", [risk.score]), " (warn threshold ",
		sprintf("%v", [risk.thresholds.warn]), "); top factors: ", risk.explanation,
	])
}

violation contains {"message": msg, "fix": "none; the approval is logged"} if {
	risk.blocking
	governance.break_glass_active
	msg := concat("", [
		lib.subject, " has change-risk score ", sprintf("%v", [risk.score]),
		", admitted by a break-glass approval; top factors: ", risk.explanation,
	])
}
