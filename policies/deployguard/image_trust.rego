# Helpers for the signature rules (signatures, signatures_warn): what the images fact
# gatherer (webhook/facts/images.py) found out about each image, judged here.
# input.facts.images is {"status": "ok", "by_image": {<image string>: fact}}; a fact
# has "status" ok | unknown | invalid, "error", "digest", and per matching image
# policy {"name", "mode", "threshold", "authorities", "verified", "results"}.
# No findings here: the rule packages call image_trust.findings(mode).
package deployguard.image_trust

import data.deployguard.lib
import rego.v1

# The findings for image policies in `mode` (enforce or warn).
findings(mode) := {{"message": f.message, "fix": f.fix} | all := _all; some f in all; f.mode == mode}

_label(img) := sprintf("%s %s image %s", [
	lib.container_noun(img),
	lib.quoted_field(img, "container"),
	lib.quoted_field(img, "image"),
])

# The gatherer itself failed or ran out of time: nothing is known about any image,
# so every image is treated as unverified (fail closed; only with the gatherer on).
_all contains {"mode": "enforce", "message": msg, "fix": fix} if {
	input.facts.images.status == "unknown"
	lib.judges_images
	images := input.images
	some img in images
	img.ref.valid == true
	msg := sprintf("%s: could not verify its signature: %s", [_label(img), lib.string_field(input.facts.images, "error")])
	fix := "retry the deploy; if it keeps failing, check that deployguard can reach the registry"
}

# The image's verification did not finish (registry down, slow, garbage answers).
_all contains {"mode": policy.mode, "message": msg, "fix": fix} if {
	by_image := input.facts.images.by_image
	lib.judges_images
	images := input.images
	some img in images
	img.ref.valid == true
	fact := by_image[img.image]
	status := fact.status
	not status == "ok"
	policies := fact.policies
	some policy in policies
	msg := sprintf("%s: could not verify its signature for image policy %s: %s", [
		_label(img), policy.name, lib.string_field(fact, "error"),
	])
	fix := "retry the deploy; if it keeps failing, check that deployguard can reach the registry"
}

# Fewer authorities verified than the policy's threshold.
_all contains {"mode": policy.mode, "message": msg, "fix": fix} if {
	by_image := input.facts.images.by_image
	lib.judges_images
	images := input.images
	some img in images
	img.ref.valid == true
	fact := by_image[img.image]
	fact.status == "ok"
	policies := fact.policies
	some policy in policies
	count(policy.verified) < policy.threshold
	reasons := concat("; ", [sprintf("%s: %s", [r.name, r.reason]) | some r in policy.results; r.verified != true])
	msg := concat("", [
		sprintf("%s (digest %s) is not signed as image policy %s requires: %d of %d required signatures verified; ", [
			_label(img), fact.digest, policy.name, count(policy.verified), policy.threshold,
		]),
		reasons,
	])
	fix := concat("", [
		sprintf("sign %s@%s with ", [img.ref.name, fact.digest]),
		_expected(policy),
	])
}

_expected(policy) := concat("", [
	sprintf("at least %d of the trusted authorities: ", [policy.threshold]),
	concat(", ", policy.authorities),
]) if {
	policy.threshold < count(policy.authorities)
} else := concat("", ["the trusted authority: ", concat(", ", policy.authorities)]) if {
	count(policy.authorities) == 1
} else := concat("", ["each trusted authority: ", concat(", ", policy.authorities)])
