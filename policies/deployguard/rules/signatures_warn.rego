# Rule signatures_warn: like signatures, for image policies in warn mode (rollout of
# signing: tell people before enforcing). Its own mode in data.yaml is warn.
package deployguard.rules.signatures_warn

import data.deployguard.image_trust
import rego.v1

violation contains v if {
	found := image_trust.findings("warn")
	some v in found
}
