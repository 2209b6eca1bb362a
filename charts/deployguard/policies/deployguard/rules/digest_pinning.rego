# Rule digest_pinning: every image (containers, init containers, ephemeral containers)
# is pinned by digest. A tag, ":latest" above all, can be moved to other content at any
# time, so what runs would no longer be what was reviewed.
#
# Data: data.deployguard.config.digest_pinning.allowed_unpinned, a list of repository
# names (registry/repository, exactly as input.images[_].ref.name, no tag) that may run
# by tag. Invalid references are reported by the rule image_reference instead.
package deployguard.rules.digest_pinning

import data.deployguard.lib
import rego.v1

violation contains {"message": msg, "fix": _pin_fix(ref, _resolved(img, ref))} if {
	lib.judges_images
	images := input.images
	some img in images
	ref := img.ref
	ref.valid == true
	not ref.pinned == true
	not _allowed_unpinned(ref.name)
	msg := sprintf("%s %s image %s is not pinned by digest (%s)", [
		lib.container_noun(img),
		lib.quoted_field(img, "container"),
		lib.quoted_field(img, "image"),
		_reason(img, ref),
	])
}

# `name in {n | some n in allowed_unpinned}`, without building the set.
_allowed_unpinned(name) if {
	allowed := data.deployguard.config.digest_pinning.allowed_unpinned
	some n in allowed
	n == name
}

# Why the tag does not pin; the tag is looked up once (an object lookup is dear in rego-cpp).
_reason(img, ref) := _tag_reason(tag, img) if {
	tag := ref.tag
} else := "a tag can be pushed again and then names a different image"

_tag_reason(tag, img) := `":latest" moves whenever a new image is pushed` if {
	tag == "latest"
	endswith(img.image, ":latest")
} else := `no tag means ":latest", which moves whenever a new image is pushed` if {
	tag == ""
} else := `no tag means ":latest", which moves whenever a new image is pushed` if {
	tag == "latest"
} else := sprintf(`tag "%s" can be pushed again and then names a different image`, [tag]) if {
	lib.printable(tag)
} else := "a tag can be pushed again and then names a different image"

# The digest the tag resolves to now: from the images fact gatherer
# (input.facts.images.by_image[<image>].resolved_digest), or ref.resolved_digest.
_resolved(img, ref) := d if {
	image := img.image
	d := input.facts.images.by_image[image].resolved_digest
	not d == ""
} else := d if {
	d := ref.resolved_digest
} else := ""

# With the digest the tag resolves to now (a fact gathered from the registry), the fix
# is the exact reference to write; without it, how to look the digest up.
_pin_fix(ref, digest) := sprintf("pin it as %s@%s (what %s points to now)", [
	lib.string_field(ref, "name"),
	digest,
	lib.string_field(ref, "normalized"),
]) if {
	not digest == ""
	is_string(digest)
	regex.match(`^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$`, digest)
} else := _look_up(lib.string_field(ref, "normalized"))

_look_up(normalized) := sprintf("pin it as %s@sha256:<digest>; find the digest with: crane digest %s", [normalized, normalized])
