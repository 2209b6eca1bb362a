package deployguard_test.error_budget

import data.deployguard_test.fixtures
import rego.v1

_slo(over) := object.union({
	"name": "checkout", "status": "ok", "objective": "99.9%", "window": "30d",
	"budget_remaining_percent": 40.5, "budget_remaining": "40.5%",
	"burn_rates": {"5m": 1, "30m": 1, "1h": 1, "6h": 1},
	"burn_rates_text": {"5m": "1x", "30m": "1x", "1h": "20x", "6h": "1x"},
}, over)

_eb_decide(change_type, budgets, annotations) := d if {
	base := fixtures.request(change_type, [fixtures.nginx_pinned])
	wl := object.union(base.workload, {"annotations": annotations})
	inp := object.union(base, {"workload": wl, "facts": {"budgets": budgets, "break_glass": {"present": false}}})
	d := fixtures.decide(data.deployguard.config) with input as inp
}

_eb_of(d, mode, rule) := [f | some f in d[mode]; f.rule == rule]

test_healthy_budget_passes if {
	d := _eb_decide("rollout", {"status": "ok", "slos": [_slo({})]}, {})
	_eb_of(d, "deny", "error_budget") == []
}

test_exhausted_budget_freezes_rollout if {
	d := _eb_decide("rollout", {"status": "ok", "slos": [_slo({"budget_remaining_percent": -12.5, "budget_remaining": "-12.5%"})]}, {})
	[f] := _eb_of(d, "deny", "error_budget")
	f.message == "Deployment shop/web is frozen: the error budget of SLO checkout (objective 99.9% over 30d) is exhausted, -12.5% remaining"
}

test_fast_burn_freezes_rollout if {
	d := _eb_decide("rollout", {"status": "ok", "slos": [_slo({"burn_rates": {"5m": 30.5, "30m": 2, "1h": 20, "6h": 2}, "burn_rates_text": {"5m": "30.5x", "30m": "2x", "1h": "20x", "6h": "2x"}})]}, {})
	[f] := _eb_of(d, "deny", "error_budget")
	f.message == "Deployment shop/web is frozen: SLO checkout burns its error budget 20x over 1h and 30.5x over 5m, above its fast-burn threshold (40.5% of the budget left)"
}

test_short_window_alone_does_not_freeze if {
	d := _eb_decide("rollout", {"status": "ok", "slos": [_slo({"burn_rates": {"5m": 30, "30m": 1, "1h": 2, "6h": 1}})]}, {})
	_eb_of(d, "deny", "error_budget") == []
}

test_slo_burn_alerts_override_data if {
	slo := _slo({"burn_rates": {"5s": 3, "10s": 3}, "burn_rates_text": {"5s": "3x", "10s": "3x"}, "burn_alerts": [{"long": "10s", "short": "5s", "factor": 2}]})
	d := _eb_decide("rollout", {"status": "ok", "slos": [slo]}, {})
	count(_eb_of(d, "deny", "error_budget")) == 1
}

test_rollback_scale_and_fix_pass_a_frozen_budget if {
	budgets := {"status": "ok", "slos": [_slo({"budget_remaining_percent": -1})]}
	_eb_of(_eb_decide("rollback", budgets, {}), "deny", "error_budget") == []
	_eb_of(_eb_decide("scale", budgets, {}), "deny", "error_budget") == []
	_eb_of(_eb_decide("rollout", budgets, {"deployguard.io/fix": "true"}), "deny", "error_budget") == []
}

test_unknown_budget_warns_by_default if {
	d := _eb_decide("rollout", {"status": "ok", "slos": [{"name": "checkout", "status": "unknown", "error": "Prometheus at http://127.0.0.1:9 is unreachable"}]}, {})
	d.deny == []
	[f] := _eb_of(d, "warn", "error_budget_unknown")
	f.message == `the error budget of SLO checkout for Deployment shop/web could not be read, so it was not checked: "Prometheus at http://127.0.0.1:9 is unreachable"`
}

test_unknown_budget_denies_when_configured if {
	cfg := object.union(data.deployguard.config, {"rules": object.union(data.deployguard.config.rules, {"error_budget_unknown": {"mode": "enforce"}})})
	base := fixtures.request("rollout", [fixtures.nginx_pinned])
	inp := object.union(base, {"facts": {"budgets": {"status": "unknown", "error": "budgets: timeout"}}})
	d := fixtures.decide(cfg) with input as inp
	count(_eb_of(d, "deny", "error_budget_unknown")) == 1
}
