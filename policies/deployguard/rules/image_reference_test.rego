package deployguard_test.image_reference

import data.deployguard_test.fixtures
import rego.v1

_decision(change_type, images) := d if {
	inp := fixtures.request(change_type, images)
	d := fixtures.decide(fixtures.config) with input as inp
}

_denied(change_type, images) := fixtures.of_rule(_decision(change_type, images).deny, "image_reference")

_fix := "write it as [registry/]repository[:tag]@sha256:<digest> with a lower-case repository and no spaces, e.g. ghcr.io/acme/web:1.4.2@sha256:<digest>"

test_invalid_reference_is_denied_with_the_reason if {
	bad := fixtures.invalid_image({
		"container": "web", "image": "Nginx:latest",
		"error": "repository 'Nginx' must be lower-case",
	})
	d := _decision("create", [bad])
	d.deny == [{
		"rule": "image_reference",
		"message": `container "web" image "Nginx:latest" is not a valid image reference: repository 'Nginx' must be lower-case`,
		"fix": _fix,
	}]
	d.warn == []
	d.dryrun == []
}

test_invalid_reference_in_init_container if {
	bad := fixtures.as_type(
		fixtures.invalid_image({"container": "setup", "image": "busybox:", "error": "tag '' is not valid"}),
		"initContainer",
	)
	[f.message | some f in _denied("rollout", [bad])] == [
		`init container "setup" image "busybox:" is not a valid image reference: tag '' is not valid`,
	]
}

test_missing_reason_still_denies if {
	bad := fixtures.invalid_image({"container": "web", "image": "::", "error": ""})
	[f.message | some f in _denied("create", [bad])] == [
		`container "web" image "::" is not a valid image reference: it does not parse`,
	]
}

test_image_with_quotes_is_not_echoed if {
	# Anything can be written as an image; what cannot be echoed safely is described.
	bad := fixtures.invalid_image({
		"container": "web",
		"image": `x"}],"deny":[],"z":[{"a":"`,
		"error": `repository 'x"}],"deny":[]' must be lower-case`,
	})
	_denied("create", [bad]) == [{
		"rule": "image_reference",
		"message": `container "web" image (a value with quotes, backslashes or non-ASCII characters, not shown) is not a valid image reference: (reason not shown: it contains quotes, backslashes or non-ASCII characters)`,
		"fix": _fix,
	}]
}

test_non_ascii_image_is_not_echoed if {
	bad := fixtures.invalid_image({"container": "web", "image": "nginx:läst", "error": "tag 'läst' is not valid"})
	[f.message | some f in _denied("create", [bad])] == [
		`container "web" image (a value with quotes, backslashes or non-ASCII characters, not shown) is not a valid image reference: (reason not shown: it contains quotes, backslashes or non-ASCII characters)`,
	]
}

test_image_without_parsed_reference_is_denied if {
	# Fail closed on an input without "ref" (a webhook bug): it is not a valid reference.
	img := {"container": "web", "container_type": "container", "image": "nginx"}
	[f.message | some f in _denied("create", [img])] == [
		`container "web" image "nginx" is not a valid image reference: it does not parse`,
	]
}

test_valid_references_pass if {
	_denied("create", [fixtures.nginx_latest, fixtures.nginx_pinned]) == []
}

test_delete_is_not_judged if {
	bad := fixtures.invalid_image({"container": "web", "image": "Nginx", "error": "repository 'Nginx' must be lower-case"})
	_decision("delete", [bad]) == fixtures.empty_decision
}
