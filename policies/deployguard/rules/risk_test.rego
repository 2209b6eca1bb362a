package deployguard_test.risk

import data.deployguard_test.fixtures
import rego.v1

# Change facts as webhook/change_facts.py computes them; `over` replaces keys.
_change(over) := object.union({
	"status": "ok",
	"create": false,
	"images_changed": [],
	"major_version_jumps": [],
	"replicas": {"old": 3, "new": 3, "change_percent": 0},
	"resources_changed": [],
	"probes_removed": [],
	"max_unavailable_all": false,
	"privileged_added": [],
	"host_settings_added": [],
	"criticality": "",
	"diff_size": 1,
	"local_time": {"zone": "Europe/Berlin", "weekday": "Tue", "hour": 11, "off_hours": false},
}, over)

_input(change_type, change, bg) := object.union(
	fixtures.request(change_type, [fixtures.nginx_pinned]),
	{"facts": {"change": change, "break_glass": bg}},
)

_no_bg := {"present": false, "template_hash": "abc"}

_risk_decide(change_type, change, bg) := d if {
	inp := _input(change_type, change, bg)
	d := fixtures.decide(data.deployguard.config) with input as inp
}

_risk_of(d, mode, rule) := [f | some f in d[mode]; f.rule == rule]

_risky := _change({
	"images_changed": ["web"],
	"major_version_jumps": [{"container": "web", "from": "1.27", "to": "2.0"}],
	"probes_removed": ["readinessProbe of web"],
	"max_unavailable_all": true,
})

test_low_risk_change_passes_with_score_annotation if {
	d := _risk_decide("rollout", _change({"images_changed": ["web"]}), _no_bg)
	d.deny == []
	_risk_of(d, "warn", "risk_notice") == []
	d.annotations["risk-score"] == "5"
	d.annotations["risk-level"] == "low"
	d.annotations["risk-factors"] == "1 image(s) changed (+5)"
}

test_risky_rollout_needs_approval_and_names_top_factors if {
	d := _risk_decide("rollout", _risky, _no_bg)
	[f] := _risk_of(d, "deny", "risk")
	f.message == "Deployment shop/web has change-risk score 65, at or above the approval threshold 60; top factors: the rollout strategy may take every pod down at once (+25); container web jumps a major version, 1.27 to 2.0 (+20); readinessProbe of web removed (+15)"
	d.annotations["risk-score"] == "65"
	d.annotations["risk-level"] == "approval"
}

test_deny_threshold if {
	d := _risk_decide("rollout", _change({"privileged_added": ["web"], "host_settings_added": ["hostNetwork"], "criticality": "high"}), _no_bg)
	[f] := _risk_of(d, "deny", "risk")
	contains(f.message, "score 95, at or above the deny threshold 90")
}

test_warn_level_warns if {
	d := _risk_decide("rollout", _change({"max_unavailable_all": true, "local_time": {"zone": "America/New_York", "weekday": "Sat", "hour": 3, "off_hours": true}}), _no_bg)
	d.deny == []
	[f] := _risk_of(d, "warn", "risk_notice")
	f.message == "Deployment shop/web has change-risk score 40 (warn threshold 30); top factors: the rollout strategy may take every pod down at once (+25); off-hours in America/New_York (Sat 3:00) (+15)"
}

test_break_glass_admits_risky_rollout_with_warning if {
	bg := {"present": true, "valid": true, "id": "bg-1", "ticket": "INC-1", "reason": "hotfix", "approvers": ["alice"], "approved_by": "alice", "expires": "2026-11-27T20:00:00Z", "template_hash": "abc"}
	d := _risk_decide("rollout", _risky, bg)
	_risk_of(d, "deny", "risk") == []
	count(_risk_of(d, "warn", "risk_notice")) == 1
	count(_risk_of(d, "warn", "break_glass_notice")) == 1
}

test_rollback_and_scale_are_not_scored if {
	some t in ["rollback", "scale"]
	d := _risk_decide(t, _risky, _no_bg)
	_risk_of(d, "deny", "risk") == []
	not d.annotations
}

test_not_scored_without_change_facts if {
	d := _risk_decide("rollout", {"status": "unknown", "error": "x"}, _no_bg)
	_risk_of(d, "deny", "risk") == []
}

test_weights_are_data if {
	cfg := object.union(data.deployguard.config, {"risk": {"weights": {"image_changed": 70}, "thresholds": {"warn": 30, "approval": 60, "deny": 90}}})
	inp := _input("rollout", _change({"images_changed": ["web"]}), _no_bg)
	d := fixtures.decide(cfg) with input as inp
	count(_risk_of(d, "deny", "risk")) == 1
}
