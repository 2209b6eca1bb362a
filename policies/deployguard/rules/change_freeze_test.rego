package deployguard_test.change_freeze

import data.deployguard_test.fixtures
import rego.v1

_cft_freeze := {
	"kind": "ChangeFreeze", "name": "black-friday", "namespace": "shop",
	"source": "ChangeFreeze shop/black-friday", "reason": "peak sales", "declared_by": "alice",
	"ticket": "OPS-7", "zone": "Europe/Berlin", "occasion": "",
	"change_types": ["create", "rollout", "update"],
	"until": "2026-11-28T00:00+01:00", "until_text": "2026-11-28 00:00 CET (Europe/Berlin)",
}

_cft_windows(blocking, inside_allowed, opens) := {
	"status": "ok", "now": "2026-11-27T10:00+01:00", "zone": "Europe/Berlin", "change_type": "rollout",
	"blocking": blocking, "allowed_windows": ["business-hours"], "inside_allowed": inside_allowed,
	"opens_at": "2026-11-28T00:00+01:00", "opens_at_text": opens.text, "problems": [],
}

_cft_opens := {"text": "2026-11-28 00:00 CET (Europe/Berlin)"}

_cft_input(change_type, windows) := object.union(
	fixtures.request(change_type, [fixtures.nginx_pinned]),
	{"facts": {"windows": windows}},
)

_cft_deny(change_type, windows) := [f |
	inp := _cft_input(change_type, windows)
	d := fixtures.decide(data.deployguard.config) with input as inp
	some f in d.deny
	f.rule == "change_freeze"
]

test_freeze_denies_a_rollout_with_name_reason_owner_and_reopening if {
	_cft_deny("rollout", _cft_windows([_cft_freeze], true, _cft_opens)) == [{
		"rule": "change_freeze",
		"message": "Deployment shop/web: rollout blocked by ChangeFreeze shop/black-friday (peak sales), declared by alice (ticket OPS-7); deploys open again at 2026-11-28 00:00 CET (Europe/Berlin)",
		"fix": "wait until then, or ask the freeze's owner; rollbacks and scaling still pass, and an emergency change needs a break-glass approval",
	}]
}

test_freeze_fix_names_the_break_glass_command_for_this_template if {
	windows := _cft_windows([_cft_freeze], true, _cft_opens)
	inp := object.union(_cft_input("rollout", windows), {"facts": {"windows": windows, "break_glass": {"present": false, "valid": false, "template_hash": "sha256:abc", "error": "not used"}}})
	d := fixtures.decide(data.deployguard.config) with input as inp
	[f.fix | some f in d.deny; f.rule == "change_freeze"] == ["wait until then, or ask the freeze's owner; rollbacks and scaling still pass, and an emergency change needs a break-glass approval: deployguard break-glass sign --namespace shop --kind Deployment --name web --template-hash sha256:abc --reason ... --ticket ..."]
}

test_freeze_allows_scale_and_rollback if {
	every change_type in ["scale", "rollback", "replica", "metadata-only", "delete"] {
		_cft_deny(change_type, _cft_windows([_cft_freeze], true, _cft_opens)) == []
	}
}

test_holiday_is_named_and_missing_end_is_said if {
	holiday := object.union(_cft_freeze, {"kind": "ClusterChangeFreeze", "namespace": "", "name": "holidays", "occasion": "German Unity Day", "ticket": ""})
	[f.message | some f in _cft_deny("create", _cft_windows([holiday], true, {"text": ""}))] == [
		"Deployment shop/web: create blocked by ClusterChangeFreeze holidays (peak sales, German Unity Day), declared by alice; no reopening time is known (a freeze without an end lifts when it is deleted)",
	]
}

test_outside_allowed_windows_denies_with_next_opening if {
	[f.message | some f in _cft_deny("rollout", _cft_windows([], false, _cft_opens))] == [
		"Deployment shop/web: rollout is outside the allowed change windows [business-hours]; deploys open again at 2026-11-28 00:00 CET (Europe/Berlin)",
	]
}

test_no_freeze_no_finding if {
	_cft_deny("rollout", _cft_windows([], true, _cft_opens)) == []
}

test_valid_break_glass_passes_the_freeze if {
	inp := object.union(_cft_input("rollout", _cft_windows([_cft_freeze], false, _cft_opens)), {"facts": {"windows": _cft_windows([_cft_freeze], false, _cft_opens), "break_glass": {"present": true, "valid": true}}})
	d := fixtures.decide(data.deployguard.config) with input as inp
	[f | some f in d.deny; f.rule == "change_freeze"] == []
}

test_unknown_windows_warn_by_default_and_deny_when_configured if {
	unknown := {"status": "unknown", "error": "windows: boom"}
	inp := _cft_input("rollout", unknown)
	d := fixtures.decide(data.deployguard.config) with input as inp
	[f.rule | some f in d.deny; startswith(f.rule, "change_")] == []
	[f.message | some f in d.warn; f.rule == "change_calendar"] == ["change calendar: freezes and windows could not be evaluated for Deployment shop/web (windows: boom)"]
	cfg := {"rules": {"change_freeze": {"mode": "enforce"}}, "change_freeze": {"unknown": "deny"}}
	d2 := fixtures.decide(cfg) with input as inp
	[f.message | some f in d2.deny; f.rule == "change_freeze"] == ["Deployment shop/web: the change calendar could not be evaluated (windows: boom), so a freeze may be in force"]
}

test_user_text_with_quotes_is_not_echoed if {
	sneaky := object.union(_cft_freeze, {"reason": `say "hi"`})
	[f.message | some f in _cft_deny("rollout", _cft_windows([sneaky], true, _cft_opens))] == [
		"Deployment shop/web: rollout blocked by ChangeFreeze shop/black-friday ((not shown: quotes, backslashes or non-ASCII)), declared by alice (ticket OPS-7); deploys open again at 2026-11-28 00:00 CET (Europe/Berlin)",
	]
}

test_malformed_definitions_are_reported_as_warnings if {
	w := object.union(_cft_windows([], true, _cft_opens), {"problems": ["ChangeFreeze shop/bad is invalid: reason is required (say why)"]})
	inp := _cft_input("rollout", w)
	d := fixtures.decide(data.deployguard.config) with input as inp
	d.deny == []
	[f | some f in d.warn; f.rule == "change_calendar"] == [{
		"rule": "change_calendar",
		"message": "change calendar: ChangeFreeze shop/bad is invalid: reason is required (say why)",
		"fix": "fix or delete the definition; see deployguard windows status",
	}]
}
