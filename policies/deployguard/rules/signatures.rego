# Rule signatures: images matched by an image policy in enforce mode (deployguard
# config images.policies) must carry signatures from at least `threshold` of its
# authorities, verified for the image's digest. An image whose verification did not
# finish is denied too: never allowed by timeout. Images no policy matches are not judged.
package deployguard.rules.signatures

import data.deployguard.image_trust
import rego.v1

violation contains v if {
	found := image_trust.findings("enforce")
	some v in found
}
