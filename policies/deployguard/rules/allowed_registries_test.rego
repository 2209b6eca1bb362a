package deployguard_test.allowed_registries

import data.deployguard_test.fixtures
import rego.v1

_evil := fixtures.image({
	"container": "web", "image": "evil.example.com/acme/web:1.4.2@sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1",
	"registry": "evil.example.com", "repository": "acme/web", "tag": "1.4.2", "digest": fixtures.sample_digest,
})

_decision_with(cfg, images) := d if {
	inp := fixtures.request("create", images)
	d := fixtures.decide(cfg) with input as inp
}

_registry_denied(images) := fixtures.of_rule(_decision_with(fixtures.config, images).deny, "allowed_registries")

test_registry_not_allowed_is_denied if {
	_decision_with(fixtures.config, [_evil]) == {
		"deny": [{
			"rule": "allowed_registries",
			"message": `container "web" image "evil.example.com/acme/web:1.4.2@sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1" comes from registry "evil.example.com", which is not allowed (allowed: docker.io, ghcr.io, localhost:5000)`,
			"fix": "push or mirror the image to one of the allowed registries and use that reference, e.g. crane copy evil.example.com/acme/web:1.4.2@sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1 <allowed-registry>/acme/web:1.4.2",
		}],
		"warn": [],
		"dryrun": [],
	}
}

test_allowed_registries_pass if {
	local := fixtures.image({
		"container": "dev", "image": "localhost:5000/web@sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1",
		"registry": "localhost:5000", "repository": "web", "tag": "", "digest": fixtures.sample_digest,
	})
	_registry_denied([fixtures.nginx_pinned, local]) == []
}

test_registry_comparison_ignores_case if {
	upper := fixtures.image({
		"container": "web", "image": "GHCR.io/acme/web@sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1",
		"registry": "GHCR.io", "repository": "acme/web", "tag": "", "digest": fixtures.sample_digest,
	})
	_registry_denied([upper]) == []
}

test_registry_must_match_exactly if {
	# A registry on another port, or a host that merely ends like an allowed one, is foreign.
	other_port := fixtures.image({
		"container": "a", "image": "localhost:5001/web:1",
		"registry": "localhost:5001", "repository": "web", "tag": "1", "digest": "",
	})
	lookalike := fixtures.image({
		"container": "b", "image": "evilghcr.io/acme/web:1",
		"registry": "evilghcr.io", "repository": "acme/web", "tag": "1", "digest": "",
	})
	count(_registry_denied([other_port, lookalike])) == 2
}

test_every_container_type_is_checked if {
	init := fixtures.as_type(_evil, "initContainer")
	debug := fixtures.as_type(_evil, "ephemeralContainer")
	count(_registry_denied([init, debug])) == 2
}

test_empty_list_turns_the_rule_off if {
	cfg := {"allowed_registries": {"registries": []}}
	fixtures.of_rule(_decision_with(cfg, [_evil]).deny, "allowed_registries") == []
}

test_absent_list_turns_the_rule_off if {
	cfg := {"rules": {}}
	fixtures.of_rule(_decision_with(cfg, [_evil]).deny, "allowed_registries") == []
}

test_custom_list_is_listed_in_the_message if {
	cfg := {"allowed_registries": {"registries": ["registry.corp.example:5000"]}}
	[f.message | some f in fixtures.of_rule(_decision_with(cfg, [fixtures.nginx_pinned]).deny, "allowed_registries")] == [
		`container "web" image "nginx:1.27@sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1" comes from registry "docker.io", which is not allowed (allowed: registry.corp.example:5000)`,
	]
}

test_invalid_reference_is_left_to_image_reference if {
	bad := fixtures.invalid_image({"container": "web", "image": "Evil.io/x", "error": "repository 'x' is odd"})
	_registry_denied([bad]) == []
}

test_delete_is_not_judged if {
	inp := fixtures.request("delete", [_evil])
	d := fixtures.decide(fixtures.config) with input as inp
	d == fixtures.empty_decision
}

test_incomplete_image_entry_still_denied if {
	# If the webhook's input drifts from the contract, the rule must not switch itself off.
	img := {"container": "web", "ref": {"valid": true, "pinned": true, "registry": "evil.example.com"}}
	[f.message | some f in _registry_denied([img])] == [
		`container "web" image "" comes from registry "evil.example.com", which is not allowed (allowed: docker.io, ghcr.io, localhost:5000)`,
	]
}
