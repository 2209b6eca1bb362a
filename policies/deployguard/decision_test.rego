package deployguard_test.decision

import data.deployguard_test.fixtures
import rego.v1

_evil_side := fixtures.image({
	"container": "side", "image": "evil.example.com/side:2",
	"registry": "evil.example.com", "repository": "side", "tag": "2", "digest": "",
})

_web_2 := fixtures.image({
	"container": "web-2", "image": "nginx:1.27",
	"registry": "docker.io", "repository": "library/nginx", "tag": "1.27", "digest": "",
})

_bad := fixtures.invalid_image({"container": "bad", "image": "Nginx", "error": "repository 'Nginx' must be lower-case"})

# One finding of each rule: digest_pinning (twice), allowed_registries,
# image_reference, release_id.
_everything := fixtures.request_for(
	"create",
	[fixtures.nginx_latest, _evil_side, _bad, _web_2],
	fixtures.workload_without_release_id,
)

_rules(findings) := [f.rule | some f in findings]

test_nothing_fires_gives_empty_lists if {
	inp := fixtures.request("create", [fixtures.nginx_pinned])
	d := fixtures.decide(fixtures.config) with input as inp
	d == {"deny": [], "warn": [], "dryrun": []}
}

test_decision_exists_for_the_webhook_probe_input if {
	# webhook/engines/__init__.py PROBE_INPUT: a new revision must decide this.
	probe := {
		"request": {
			"operation": "CREATE", "dry_run": true, "group": "", "version": "v1",
			"kind": "Pod", "namespace": "default", "name": "probe",
			"user": {"username": "deployguard-probe", "groups": []},
		},
		"workload": {
			"kind": "Pod", "labels": {}, "annotations": {}, "template_labels": {},
			"template_annotations": {}, "replicas": null,
		},
		"change": {"type": "no-op"},
		"images": [],
	}
	d := fixtures.decide(fixtures.config) with input as probe
	d == fixtures.empty_decision
}

test_decision_exists_without_input if {
	data.deployguard.decision == fixtures.empty_decision
}

test_findings_are_sorted_by_rule_then_message if {
	cfg := {
		"rules": {"release_id": {"mode": "enforce"}},
		"allowed_registries": {"registries": ["docker.io", "ghcr.io"]},
	}
	inp := _everything
	d := fixtures.decide(cfg) with input as inp
	[[f.rule, f.message] | some f in d.deny] == [
		["allowed_registries", `container "side" image "evil.example.com/side:2" comes from registry "evil.example.com", which is not allowed (allowed: docker.io, ghcr.io)`],
		["digest_pinning", `container "side" image "evil.example.com/side:2" is not pinned by digest (tag "2" can be pushed again and then names a different image)`],
		["digest_pinning", `container "web" image "nginx:latest" is not pinned by digest (":latest" moves whenever a new image is pushed)`],
		["digest_pinning", `container "web-2" image "nginx:1.27" is not pinned by digest (tag "1.27" can be pushed again and then names a different image)`],
		["image_reference", `container "bad" image "Nginx" is not a valid image reference: repository 'Nginx' must be lower-case`],
		["release_id", "Deployment shop/web has no release id: none of the labels [app.kubernetes.io/version] or annotations [deployguard.io/release-id] is set on the workload or its pod template"],
	]
	d.warn == []
	d.dryrun == []
}

test_modes_sort_findings_into_lists if {
	cfg := {
		"rules": {
			"digest_pinning": {"mode": "warn"},
			"image_reference": {"mode": "dryrun"},
			"allowed_registries": {"mode": "enforce"},
			"release_id": {"mode": "dryrun"},
		},
		"allowed_registries": {"registries": ["docker.io"]},
	}
	inp := _everything
	d := fixtures.decide(cfg) with input as inp
	_rules(d.deny) == ["allowed_registries"]
	_rules(d.warn) == ["digest_pinning", "digest_pinning", "digest_pinning"]
	_rules(d.dryrun) == ["image_reference", "release_id"]
}

test_default_modes_of_the_fixture_config if {
	inp := _everything
	d := fixtures.decide(fixtures.config) with input as inp
	_rules(d.deny) == ["allowed_registries", "digest_pinning", "digest_pinning", "digest_pinning", "image_reference"]
	_rules(d.warn) == ["release_id"]
	d.dryrun == []
}

test_unknown_modes_are_enforced if {
	cfg := {
		"rules": {
			"digest_pinning": {"mode": "Warn"},
			"image_reference": {"mode": "off"},
			"allowed_registries": {"mode": 42},
			"release_id": {"mode": null},
		},
		"allowed_registries": {"registries": ["docker.io"]},
	}
	inp := _everything
	d := fixtures.decide(cfg) with input as inp
	_rules(d.deny) == ["allowed_registries", "digest_pinning", "digest_pinning", "digest_pinning", "image_reference", "release_id"]
	d.warn == []
	d.dryrun == []
}

test_rule_without_mode_is_enforced if {
	cfg := {"rules": {"release_id": {}}}
	inp := _everything
	d := fixtures.decide(cfg) with input as inp
	"release_id" in _rules(d.deny)
	d.warn == []
}

test_no_config_enforces_every_rule if {
	inp := _everything
	d := fixtures.decide({}) with input as inp
	_rules(d.deny) == ["digest_pinning", "digest_pinning", "digest_pinning", "image_reference", "release_id"]
	d.warn == []
	d.dryrun == []
}

test_mode_entry_for_a_missing_rule_package_is_harmless if {
	cfg := {"rules": {"no_such_rule": {"mode": "warn"}}}
	inp := fixtures.request("create", [fixtures.nginx_pinned])
	d := fixtures.decide(cfg) with input as inp
	d == fixtures.empty_decision
}

test_delete_decides_nothing if {
	inp := fixtures.request_for("delete", [], fixtures.workload_without_release_id)
	d := fixtures.decide(fixtures.config) with input as inp
	d == fixtures.empty_decision
}

test_every_rule_package_is_registered if {
	# decision.rego lists the rule packages by name (see rule_names there): a package
	# under deployguard.rules that is neither listed nor configured would never be
	# evaluated. (object.keys, not is_object(data.deployguard.rules[name]): rego-cpp
	# does not see a package as an object.)
	packages := object.keys(data.deployguard.rules)
	every name in packages {
		name in data.deployguard._names
	}
	every name in data.deployguard.rule_names {
		name in packages
	}
}

test_violation_shapes if {
	# A bare string is a message; a violation without a message still counts.
	some name in {"digest_pinning"}
	data.deployguard._message(name, {"message": "m", "fix": "f"}) == "m"
	data.deployguard._message(name, "bare") == "bare"
	data.deployguard._message(name, {"fix": "f"}) == "rule digest_pinning reported a violation without a message"
	data.deployguard._fix_of({"message": "m", "fix": "f"}) == "f"
	data.deployguard._fix_of({"message": "m"}) == ""
	data.deployguard._fix_of("bare") == ""
}
