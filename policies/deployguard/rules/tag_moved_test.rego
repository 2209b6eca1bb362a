package deployguard_test.tag_moved

import data.deployguard_test.fixtures
import rego.v1

_other := "sha256:1111111111111111111111111111111111111111111111111111111111111111"

_fact(moved, tag_digest) := {
	"status": "ok", "error": "", "digest": fixtures.sample_digest, "resolved_digest": "",
	"tag_digest": tag_digest, "tag_moved": moved, "policies": [],
}

_decide(fact) := d if {
	facts := {"images": {"status": "ok", "by_image": {fixtures.nginx_pinned.image: fact}}}
	inp := object.union(fixtures.request("create", [fixtures.nginx_pinned]), {"facts": facts})
	d := fixtures.decide(data.deployguard.config) with input as inp
}

test_moved_tag_warns if {
	d := _decide(_fact(true, _other))
	d.deny == []
	d.warn == [{
		"rule": "tag_moved",
		"message": "container \"web\" image \"nginx:1.27@sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1\": tag 1.27 now points to sha256:1111111111111111111111111111111111111111111111111111111111111111, not to the pinned digest sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1",
		"fix": "write docker.io/library/nginx:1.27@sha256:1111111111111111111111111111111111111111111111111111111111111111 to run the tag's current image, or drop the tag and keep docker.io/library/nginx@sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1",
	}]
}

test_unmoved_tag_is_quiet if {
	_decide(_fact(false, fixtures.sample_digest)) == fixtures.empty_decision
}
