# Test fixtures: inputs shaped like webhook/policy_input.py builds them, and a config
# like data.yaml's. Loaded only with the tests (the file name ends in _test.rego).
#
# Test packages live under deployguard_test, not next to the rules under
# deployguard.rules: data.deployguard.rules must hold rule packages only
# (see test_every_rule_package_is_registered in decision_test.rego).
#
# rego-cpp (the embedded engine) prints some strings with their quotes when they are a
# sprintf argument: the result of concat, and a string literal written directly as a
# function argument or bound to a local variable. Input strings are not affected. So
# the fixtures take strings inside an object ({"container": "web", ...}), never as
# bare literal arguments, and build strings with sprintf, not concat.
package deployguard_test.fixtures

import rego.v1

config := {
	"rules": {
		"digest_pinning": {"mode": "enforce"},
		"image_reference": {"mode": "enforce"},
		"allowed_registries": {"mode": "enforce"},
		"release_id": {"mode": "warn"},
	},
	"digest_pinning": {"allowed_unpinned": []},
	"allowed_registries": {"registries": ["docker.io", "ghcr.io", "localhost:5000"]},
	"release_id": {
		"labels": ["app.kubernetes.io/version"],
		"annotations": ["deployguard.io/release-id"],
	},
}

# A Deployment shop/web that carries a release id on its pod template.
workload := {
	"kind": "Deployment",
	"labels": {"app": "web"},
	"annotations": {},
	"template_labels": {"app": "web", "app.kubernetes.io/version": "1.4.2"},
	"template_annotations": {},
	"replicas": 3,
}

# The same Deployment without any release id.
workload_without_release_id := {
	"kind": "Deployment",
	"labels": {"app": "web"},
	"annotations": {},
	"template_labels": {"app": "web"},
	"template_annotations": {},
	"replicas": 3,
}

request(change_type, images) := request_for(change_type, images, workload)

request_for(change_type, images, wl) := {
	"request": {
		"operation": _operation(change_type),
		"dry_run": false,
		"group": "apps",
		"version": "v1",
		"kind": "Deployment",
		"namespace": "shop",
		"name": "web",
		"user": {"username": "alice", "groups": ["devs"]},
	},
	"workload": wl,
	"change": {"type": change_type},
	"images": images,
}

_operation(change_type) := "CREATE" if {
	change_type == "create"
} else := "DELETE" if {
	change_type == "delete"
} else := "UPDATE"

# An image of a container, with its reference parsed as webhook/images.py does:
# image({"container": "web", "image": "nginx:1.27", "registry": "docker.io",
#        "repository": "library/nginx", "tag": "1.27", "digest": ""})
image(spec) := {
	"container": spec.container,
	"container_type": "container",
	"image": spec.image,
	"ref": {
		"valid": true,
		"error": "",
		"registry": spec.registry,
		"repository": spec.repository,
		"tag": spec.tag,
		"digest": spec.digest,
		"pinned": _pinned(spec.digest),
		"name": sprintf("%s/%s", [spec.registry, spec.repository]),
		"normalized": _normalized(spec),
	},
}

_pinned(digest) := false if {
	digest == ""
} else := true

_normalized(spec) := sprintf("%s/%s:%s@%s", [spec.registry, spec.repository, spec.tag, spec.digest]) if {
	spec.tag != ""
	spec.digest != ""
} else := sprintf("%s/%s:%s", [spec.registry, spec.repository, spec.tag]) if {
	spec.tag != ""
} else := sprintf("%s/%s@%s", [spec.registry, spec.repository, spec.digest])

# An image whose reference does not parse:
# invalid_image({"container": "web", "image": "Nginx", "error": "..."})
invalid_image(spec) := {
	"container": spec.container,
	"container_type": "container",
	"image": spec.image,
	"ref": {
		"valid": false, "error": spec.error,
		"registry": "", "repository": "", "tag": "", "digest": "",
		"pinned": false, "name": "", "normalized": "",
	},
}

# The same image in an init or ephemeral container.
as_type(img, container_type) := {
	"container": img.container,
	"container_type": container_type,
	"image": img.image,
	"ref": img.ref,
}

# The same image with the digest its tag resolves to (a registry fact):
# with_resolved_digest(img, {"digest": "sha256:..."})
with_resolved_digest(img, fact) := {
	"container": img.container,
	"container_type": img.container_type,
	"image": img.image,
	"ref": {
		"valid": img.ref.valid, "error": img.ref.error,
		"registry": img.ref.registry, "repository": img.ref.repository,
		"tag": img.ref.tag, "digest": img.ref.digest, "pinned": img.ref.pinned,
		"name": img.ref.name, "normalized": img.ref.normalized,
		"resolved_digest": fact.digest,
	},
}

sample_digest := "sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1"

nginx_latest := image({
	"container": "web", "image": "nginx:latest",
	"registry": "docker.io", "repository": "library/nginx", "tag": "latest", "digest": "",
})

nginx_pinned := image({
	"container": "web", "image": "nginx:1.27@sha256:4c2e7c1a8f8e7b1f0a2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1",
	"registry": "docker.io", "repository": "library/nginx", "tag": "1.27", "digest": sample_digest,
})

# The findings of one rule in one list of the decision.
of_rule(findings, rule) := [f | some f in findings; f.rule == rule]

empty_decision := {"deny": [], "warn": [], "dryrun": []}

# data.deployguard.decision under the config `cfg`; evaluate it `with input as ...`.
# (rego-cpp rejects `with input as ...` combined with another `with` in one
# expression, "shape rego-localref has no field rego-refhead", so the two are split.)
decide(cfg) := d if {
	d := data.deployguard.decision with data.deployguard.config as cfg
}
