# Rule error_budget_unknown: the error budget of a rollout could not be read
# (Prometheus unreachable, a query failed, no data). Warn by default; a cluster that
# prefers to fail closed sets its mode to enforce.
package deployguard.rules.error_budget_unknown

import data.deployguard.governance
import data.deployguard.lib
import rego.v1

violation contains {"message": msg, "fix": _fix} if {
	input.facts.budgets.status == "unknown"
	governance.is_rollout
	not governance.break_glass_active
	msg := sprintf("the error budgets of %s could not be read, so they were not checked: %s", [lib.subject, lib.quoted(lib.string_field(input.facts.budgets, "error"))])
}

violation contains {"message": msg, "fix": _fix} if {
	slos := input.facts.budgets.slos
	some slo in slos
	slo.status == "unknown"
	governance.is_rollout
	not governance.break_glass_active
	msg := sprintf("the error budget of SLO %s for %s could not be read, so it was not checked: %s", [slo.name, lib.subject, lib.quoted(lib.string_field(slo, "error"))])
}

_fix := "check that Prometheus is reachable from deployguard (budgets.prometheus_url) and that the SLO queries return data (deployguard budget status)"
