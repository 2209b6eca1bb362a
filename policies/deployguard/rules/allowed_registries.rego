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
	_configured
	images := input.images
	some img in images
	img.ref.valid == true
	not _allowed(lower(img.ref.registry))

	# concat, not sprintf("%s", [concat(...)]): rego-cpp prints a concat result with
	# quotes around it when it is a sprintf argument.
	msg := concat("", [
		sprintf("%s %s image %s comes from registry %s, which is not allowed (allowed: ", [
			lib.container_noun(img),
			lib.quoted_field(img, "container"),
			lib.quoted_field(img, "image"),
			lib.quoted_field(img.ref, "registry"),
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
_registries := [r | some r in listed; is_string(r)] if listed := _listed

_listed := data.deployguard.config.allowed_registries.registries

# count(_registries) > 0, usually decided by the first entry alone.
default _configured := false

_configured if {
	is_string(_listed[0])
} else if {
	count(_registries) > 0
}

# lower(registry) equals lower(r) for a listed r. Registries are usually listed in
# lower case, so an exact match is tried first: it needs no built-in per entry.
_allowed(registry) if {
	registry in _listed # a built-in call, cheaper in rego-cpp than comparing entry by entry
} else if {
	registries := _registries
	some r in registries
	lower(r) == registry
}

_repository_and_tag(ref) := sprintf("%s:%s", [ref.repository, ref.tag]) if {
	not ref.tag == ""
	is_string(ref.repository)
	is_string(ref.tag)
} else := lib.string_field(ref, "repository")
