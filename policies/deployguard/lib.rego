# Helpers shared by the rules: how to name a container, a workload and a value
# taken from the request in a message. No findings here.
package deployguard.lib

import rego.v1

# Image rules judge changes that start pods from a new template: create and rollout.
# A scale, a metadata edit or another spec change runs images that were admitted
# before; judging them again would block an incident scale-up of a legacy workload.
# Nor is "replica": a controller creating Pods from a template admitted at the owner.
# DELETE requests carry no images at all.
judges_images if input.change.type in {"create", "rollout", "rollback"}

# "container", "init container" or "ephemeral container", for messages.
container_noun(img) := "init container" if {
	img.container_type == "initContainer"
} else := "ephemeral container" if {
	img.container_type == "ephemeralContainer"
} else := "container"

# `"value"` when the value is printable ASCII without quotes or backslashes; otherwise
# a placeholder. Image strings and parse errors come from the user: an invalid image
# reference may hold anything, and regopy 1.5.2 (the embedded engine) does not escape
# quotes and backslashes of input strings in its JSON output, so echoing one could
# corrupt or forge the decision document. Valid references always pass.
quoted(value) := sprintf(`"%s"`, [value]) if {
	printable(value)
} else := "(a value with quotes, backslashes or non-ASCII characters, not shown)"

# A string field of an object, "" when it is missing or not a string, so that a
# message never goes undefined (which would silently drop the finding). Not object.get
# with a default: rego-cpp's sprintf prints such a default with quotes around it.
string_field(obj, key) := obj[key] if {
	is_string(obj[key])
} else := ""

# Printable ASCII except '"' and '\'. Written without \x escapes: rego-cpp's regex
# rejects them ("Invalid escape sequence").
printable(value) if {
	is_string(value)
	regex.match(`^[ !#-Z^-~\[\]]*$`, value)
}

# "Deployment shop/web" (the namespace is left out when there is none).
subject := sprintf("%s %s/%s", [_kind, ns, _name]) if {
	ns := input.request.namespace
	printable(ns)
	ns != ""
} else := sprintf("%s %s", [_kind, _name])

_kind := k if {
	k := input.request.kind
	printable(k)
	k != ""
} else := "workload"

_name := n if {
	n := input.request.name
	printable(n)
	n != ""
} else := "(unnamed)"
