# Rule error_budget: freeze rollouts of a service whose SLO error budget is exhausted
# or burning fast. input.facts.budgets (webhook/facts/budgets.py, from Prometheus)
# lists the SLOs whose selector matches the workload, each with the remaining budget
# and burn rates per window. Rollbacks, changes marked as fixes
# (data.deployguard.config.governance.fix_annotations) and valid break-glass approvals
# pass. Data: data.deployguard.config.error_budget.burn_alerts, a list of
# {long, short, factor}; an SLO's own burn_alerts take precedence.
# An unknown budget is rule error_budget_unknown's business (warn by default).
package deployguard.rules.error_budget

import data.deployguard.governance
import data.deployguard.lib
import rego.v1

frozen_slos contains slo if {
	governance.is_rollout
	slos := input.facts.budgets.slos
	some slo in slos
	slo.status == "ok"
}

violation contains {"message": msg, "fix": _fix} if {
	frozen := frozen_slos
	some slo in frozen
	not governance.break_glass_active
	not governance.marked_fix
	slo.budget_remaining_percent <= 0
	msg := sprintf("%s is frozen: the error budget of SLO %s (objective %s over %s) is exhausted, %s remaining", [lib.subject, slo.name, slo.objective, slo.window, slo.budget_remaining])
}

violation contains {"message": msg, "fix": _fix} if {
	frozen := frozen_slos
	some slo in frozen
	not governance.break_glass_active
	not governance.marked_fix
	some alert in _alerts(slo)
	slo.burn_rates[alert.long] > alert.factor
	slo.burn_rates[alert.short] > alert.factor

	# Rates as text: rego-cpp prints floats with all their digits.
	msg := sprintf("%s is frozen: SLO %s burns its error budget %s over %s and %s over %s, above its fast-burn threshold (%s of the budget left)", [lib.subject, slo.name, slo.burn_rates_text[alert.long], alert.long, slo.burn_rates_text[alert.short], alert.short, slo.budget_remaining])
}

_alerts(slo) := slo.burn_alerts if {
	is_array(slo.burn_alerts)
} else := data.deployguard.config.error_budget.burn_alerts if {
	is_array(data.deployguard.config.error_budget.burn_alerts)
} else := []

_fix := "wait until the budget recovers, roll back (kubectl rollout undo), mark a fix with the annotation deployguard.io/fix: \"true\", or attach a break-glass approval"
