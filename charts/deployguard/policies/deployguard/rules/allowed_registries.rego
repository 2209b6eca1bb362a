# Rule allowed_registries: images come only from the registries the cluster trusts.
#
# Data: data.deployguard.config.allowed_registries.registries, a list of registry hosts
# (host[:port], as normalised: "nginx" comes from docker.io). Compared case-insensitively.
# An empty or absent list turns the rule off.
package deployguard.rules.allowed_registries

import data.deployguard.lib
import rego.v1

violation contains {"message": msg, "fix": fix} if {
	lib.judges_images
	count(_registries) > 0
	some img in input.images
	img.ref.valid == true
	not lower(img.ref.registry) in _allowed

	# concat, not sprintf("%s", [concat(...)]): rego-cpp prints a concat result with
	# quotes around it when it is a sprintf argument.
	msg := concat("", [
		sprintf("%s %s image %s comes from registry %s, which is not allowed (allowed: ", [
			lib.container_noun(img),
			lib.quoted(lib.string_field(img, "container")),
			lib.quoted(lib.string_field(img, "image")),
			lib.quoted(lib.string_field(img.ref, "registry")),
		]),
		concat(", ", _registries),
		")",
	])
	fix := sprintf("push or mirror the image to one of the allowed registries and use that reference, e.g. crane copy %s <allowed-registry>/%s", [
		lib.string_field(img.ref, "normalized"),
		_repository_and_tag(img.ref),
	])
}

# In the order the configuration lists them.
_registries := [r | some r in data.deployguard.config.allowed_registries.registries; is_string(r)]

_allowed := {lower(r) | some r in _registries}

_repository_and_tag(ref) := sprintf("%s:%s", [ref.repository, ref.tag]) if {
	is_string(ref.repository)
	is_string(ref.tag)
	ref.tag != ""
} else := lib.string_field(ref, "repository")
