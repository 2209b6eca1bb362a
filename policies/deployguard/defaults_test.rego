# Behaviour with the shipped data.yaml (no `with data...`): what a fresh install does.
# A cluster that replaces data.yaml may need to adjust these.
#
# fixtures.decide(data.deployguard.config) rather than data.deployguard.decision with
# input alone: rego-cpp fails to compile ("shape rego-localref has no field
# rego-refhead") when one rule is evaluated under `with input` here and under
# `with data...` elsewhere in the same test run.
package deployguard_test.defaults

import data.deployguard_test.fixtures
import rego.v1

test_unpinned_image_is_denied_and_missing_release_id_warned if {
	inp := fixtures.request_for("create", [fixtures.nginx_latest], fixtures.workload_without_release_id)
	d := fixtures.decide(data.deployguard.config) with input as inp
	[f.rule | some f in d.deny] == ["digest_pinning"]
	[f.rule | some f in d.warn] == ["release_id"]
	d.dryrun == []
}

test_pinned_image_from_a_default_registry_is_allowed if {
	images := [
		fixtures.nginx_pinned,
		fixtures.image({
			"container": "dev", "image": "localhost:5000/web@sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1",
			"registry": "localhost:5000", "repository": "web", "tag": "", "digest": fixtures.sample_digest,
		}),
		fixtures.image({
			"container": "metrics", "image": "registry.k8s.io/metrics-server/metrics-server@sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1",
			"registry": "registry.k8s.io", "repository": "metrics-server/metrics-server", "tag": "", "digest": fixtures.sample_digest,
		}),
	]
	inp := fixtures.request("create", images)
	d := fixtures.decide(data.deployguard.config) with input as inp
	d == fixtures.empty_decision
}

test_other_registry_is_denied if {
	img := fixtures.image({
		"container": "web", "image": "registry.example.com/web@sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1",
		"registry": "registry.example.com", "repository": "web", "tag": "", "digest": fixtures.sample_digest,
	})
	inp := fixtures.request("rollout", [img])
	d := fixtures.decide(data.deployguard.config) with input as inp
	[f.rule | some f in d.deny] == ["allowed_registries"]
}
