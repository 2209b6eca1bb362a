# Rule tag_moved: an image written as tag@digest whose tag now points at another
# digest (the registry fact images.tag_digest). The digest is what runs, but the tag
# in the manifest no longer says so: readers and tools are misled.
package deployguard.rules.tag_moved

import data.deployguard.lib
import rego.v1

violation contains {"message": msg, "fix": fix} if {
	lib.judges_images
	by_image := input.facts.images.by_image
	images := input.images
	some img in images
	img.ref.valid == true
	digest := img.ref.digest
	not digest == ""
	fact := by_image[img.image]
	fact.tag_moved == true
	msg := sprintf("%s %s image %s: tag %s now points to %s, not to the pinned digest %s", [
		lib.container_noun(img),
		lib.quoted_field(img, "container"),
		lib.quoted_field(img, "image"),
		img.ref.tag, fact.tag_digest, img.ref.digest,
	])
	fix := sprintf("write %s:%s@%s to run the tag's current image, or drop the tag and keep %s@%s", [
		img.ref.name, img.ref.tag, fact.tag_digest, img.ref.name, img.ref.digest,
	])
}
