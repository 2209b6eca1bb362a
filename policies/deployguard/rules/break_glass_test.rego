package deployguard_test.break_glass

import data.deployguard_test.fixtures
import rego.v1

_bg_decide(change_type, bg) := d if {
	base := fixtures.request(change_type, [fixtures.nginx_pinned])
	inp := object.union(base, {"facts": {"break_glass": bg}})
	d := fixtures.decide(data.deployguard.config) with input as inp
}

_bg_of(d, mode, rule) := [f | some f in d[mode]; f.rule == rule]

test_invalid_token_is_denied_with_reason if {
	d := _bg_decide("rollout", {"present": true, "valid": false, "template_hash": "sha256:ab", "error": "the token expired at 2026-11-27T10:00:00Z"})
	[f] := _bg_of(d, "deny", "break_glass")
	f.message == `the break-glass approval on Deployment shop/web was rejected: "the token expired at 2026-11-27T10:00:00Z"`
	contains(f.fix, "--template-hash sha256:ab")
}

test_valid_token_is_announced if {
	d := _bg_decide("rollout", {"present": true, "valid": true, "id": "a1b2", "ticket": "INC-7", "reason": "hotfix", "approvers": ["alice", "bob"], "approved_by": "alice, bob", "expires": "2026-11-27T20:00:00Z", "template_hash": "sha256:ab"})
	d.deny == []
	[f] := _bg_of(d, "warn", "break_glass_notice")
	f.message == `BREAK-GLASS: Deployment shop/web admitted past freezes and risk blocks by approval "a1b2" (ticket "INC-7", reason "hotfix", approved by "alice, bob", expires 2026-11-27T20:00:00Z)`
	d.annotations["break-glass-token"] == "a1b2" # deployguard records this token as used when it admits
}

test_absent_token_says_nothing if {
	d := _bg_decide("rollout", {"present": false, "valid": false, "template_hash": "sha256:ab", "error": "not used"})
	_bg_of(d, "deny", "break_glass") == []
	_bg_of(d, "warn", "break_glass_notice") == []
	not d.annotations["break-glass-token"]
}

test_invalid_token_names_no_token_to_record if {
	d := _bg_decide("rollout", {"present": true, "valid": false, "id": "a1b2", "template_hash": "sha256:ab", "error": "already used"})
	not d.annotations["break-glass-token"]
}

test_a_scale_names_no_token_to_record if {
	d := _bg_decide("scale", {"present": true, "valid": true, "id": "a1b2", "ticket": "INC-7", "reason": "hotfix", "approvers": ["alice"], "approved_by": "alice", "expires": "2026-11-27T20:00:00Z", "template_hash": "sha256:ab"})
	not d.annotations["break-glass-token"]
}

# A name that is not printable ASCII shows as NAME: tested through the engine's input in
# tests/unit/test_embedded_policies.py (such a name set with object.union here leaves the
# test undefined on rego-cpp).
test_the_fix_names_the_sign_command_for_this_object if {
	d := _bg_decide("rollout", {"present": true, "valid": false, "template_hash": "sha256:ab", "error": "expired"})
	[f] := _bg_of(d, "deny", "break_glass")
	f.fix == "ask approvers for a new token bound to this object and its pod template: deployguard break-glass sign --namespace shop --kind Deployment --name web --template-hash sha256:ab --reason ... --ticket ..."
}
