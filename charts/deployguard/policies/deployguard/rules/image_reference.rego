# Rule image_reference: every image reference parses. An image that does not parse
# cannot be pulled, checked or pinned; say why instead of failing later at the kubelet.
package deployguard.rules.image_reference

import data.deployguard.lib
import rego.v1

violation contains {"message": msg, "fix": fix} if {
	lib.judges_images
	images := input.images
	some img in images
	not img.ref.valid == true
	msg := sprintf("%s %s image %s is not a valid image reference: %s", [
		lib.container_noun(img),
		lib.quoted_field(img, "container"),
		lib.quoted_field(img, "image"),
		_parse_error(img),
	])
	fix := "write it as [registry/]repository[:tag]@sha256:<digest> with a lower-case repository and no spaces, e.g. ghcr.io/acme/web:1.4.2@sha256:<digest>"
}

# The parser's reason, unless it is empty or not safe to echo (see lib.quoted).
_parse_error(img) := img.ref.error if {
	not img.ref.error == ""
	lib.printable(img.ref.error)
} else := "(reason not shown: it contains quotes, backslashes or non-ASCII characters)" if {
	not img.ref.error == ""
	is_string(img.ref.error)
} else := "it does not parse"
