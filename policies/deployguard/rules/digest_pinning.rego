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

violation contains {"message": msg, "fix": _pin_fix(img.ref, _resolved(img))} if {
	lib.judges_images
	some img in input.images
	img.ref.valid == true
	not img.ref.pinned == true
	not img.ref.name in _allowed_unpinned
	msg := sprintf("%s %s image %s is not pinned by digest (%s)", [
		lib.container_noun(img),
		lib.quoted(lib.string_field(img, "container")),
		lib.quoted(lib.string_field(img, "image")),
		_reason(img),
	])
}

_allowed_unpinned contains name if {
	some name in data.deployguard.config.digest_pinning.allowed_unpinned
}

_reason(img) := `":latest" moves whenever a new image is pushed` if {
	img.ref.tag == "latest"
	endswith(img.image, ":latest")
} else := `no tag means ":latest", which moves whenever a new image is pushed` if {
	img.ref.tag in {"", "latest"}
} else := sprintf(`tag "%s" can be pushed again and then names a different image`, [img.ref.tag]) if {
	lib.printable(img.ref.tag)
} else := "a tag can be pushed again and then names a different image"

# The digest the tag resolves to now: from the images fact gatherer
# (input.facts.images.by_image[<image>].resolved_digest), or ref.resolved_digest.
_resolved(img) := d if {
	d := input.facts.images.by_image[img.image].resolved_digest
	d != ""
} else := d if {
	d := img.ref.resolved_digest
} else := ""

# With the digest the tag resolves to now (a fact gathered from the registry), the fix
# is the exact reference to write; without it, how to look the digest up.
_pin_fix(ref, digest) := sprintf("pin it as %s@%s (what %s points to now)", [
	lib.string_field(ref, "name"),
	digest,
	lib.string_field(ref, "normalized"),
]) if {
	is_string(digest)
	regex.match(`^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$`, digest)
} else := sprintf("pin it as %s@sha256:<digest>; find the digest with: crane digest %s", [
	lib.string_field(ref, "normalized"),
	lib.string_field(ref, "normalized"),
])
