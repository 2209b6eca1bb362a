package deployguard_test.signatures

import data.deployguard_test.fixtures
import rego.v1

_app := fixtures.image({
	"container": "web", "image": "ghcr.io/shop/app@sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1",
	"registry": "ghcr.io", "repository": "shop/app", "tag": "", "digest": fixtures.sample_digest,
})

_policy(mode, threshold, authorities, verified, results) := {
	"name": "shop", "mode": mode, "threshold": threshold,
	"authorities": authorities, "verified": verified, "results": results,
}

# spec: {"status": ..., "error": ...} (strings inside an object, see fixtures_test.rego)
_fact(spec, policies) := {
	"status": spec.status, "error": spec.error, "digest": fixtures.sample_digest,
	"resolved_digest": "", "tag_digest": "", "tag_moved": false, "policies": policies,
}

_with_facts(change_type, images, facts) := object.union(fixtures.request(change_type, images), {"facts": facts})

_decide(facts) := d if {
	inp := _with_facts("create", [_app], facts)
	d := fixtures.decide(data.deployguard.config) with input as inp
}

_by_image(fact) := {"images": {"status": "ok", "by_image": {_app.image: fact}}}

_unsigned := _policy("enforce", 1, ["release-key"], [], [{"name": "release-key", "verified": false, "reason": "no cosign signature found"}])

test_verified_image_is_allowed if {
	p := _policy("enforce", 1, ["release-key"], ["release-key"], [{"name": "release-key", "verified": true, "reason": ""}])
	_decide(_by_image(_fact({"status": "ok", "error": ""}, [p]))) == fixtures.empty_decision
}

test_unsigned_image_is_denied_naming_the_authority if {
	d := _decide(_by_image(_fact({"status": "ok", "error": ""}, [_unsigned])))
	d.deny == [{
		"rule": "signatures",
		"message": `container "web" image "ghcr.io/shop/app@sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1" (digest sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1) is not signed as image policy shop requires: 0 of 1 required signatures verified; release-key: no cosign signature found`,
		"fix": "sign ghcr.io/shop/app@sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1 with the trusted authority: release-key",
	}]
}

test_threshold_two_of_three if {
	results := [
		{"name": "a", "verified": true, "reason": ""},
		{"name": "b", "verified": false, "reason": "no signature verifies with this key (1 found)"},
		{"name": "c", "verified": false, "reason": "no signature verifies with this key (1 found)"},
	]
	one := _decide(_by_image(_fact({"status": "ok", "error": ""}, [_policy("enforce", 2, ["a", "b", "c"], ["a"], results)])))
	[f.fix | some f in one.deny] == ["sign ghcr.io/shop/app@sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1 with at least 2 of the trusted authorities: a, b, c"]
	contains(one.deny[0].message, "1 of 2 required signatures verified; b: no signature verifies with this key (1 found); c: no signature")
	two := _decide(_by_image(_fact({"status": "ok", "error": ""}, [_policy("enforce", 2, ["a", "b", "c"], ["a", "b"], results)])))
	two == fixtures.empty_decision
}

test_unknown_verification_is_denied_with_the_reason if {
	d := _decide(_by_image(_fact({"status": "unknown", "error": "registry ghcr.io did not answer within 3 s"}, [_unsigned])))
	[f.message | some f in d.deny] == [`container "web" image "ghcr.io/shop/app@sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1": could not verify its signature for image policy shop: registry ghcr.io did not answer within 3 s`]
}

test_gatherer_unknown_denies_every_image if {
	d := _decide({"images": {"status": "unknown", "error": "images: not gathered within the deadline (6.75 s)"}})
	[f.message | some f in d.deny] == [`container "web" image "ghcr.io/shop/app@sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1": could not verify its signature: images: not gathered within the deadline (6.75 s)`]
}

test_no_policy_matches_no_finding if {
	_decide(_by_image(_fact({"status": "ok", "error": ""}, []))) == fixtures.empty_decision
	_decide(_by_image(_fact({"status": "unknown", "error": "registry down"}, []))) == fixtures.empty_decision
}

test_without_the_gatherer_nothing_is_judged if {
	_decide({}) == fixtures.empty_decision
}

test_warn_mode_policy_warns if {
	p := _policy("warn", 1, ["release-key"], [], [{"name": "release-key", "verified": false, "reason": "no cosign signature found"}])
	d := _decide(_by_image(_fact({"status": "ok", "error": ""}, [p])))
	d.deny == []
	[f.rule | some f in d.warn] == ["signatures_warn"]
}

test_scale_is_not_judged if {
	inp := _with_facts("scale", [_app], _by_image(_fact({"status": "ok", "error": ""}, [_unsigned])))
	d := fixtures.decide(data.deployguard.config) with input as inp
	d == fixtures.empty_decision
}
