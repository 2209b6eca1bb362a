# Helpers shared by the rules: how to name a container, a workload and a value
# taken from the request in a message. No findings here.
#
# The policies are written for the costs of rego-cpp (the embedded engine, regopy
# 1.5.2), which runs all of them for every request that misses the decision memo:
# - a built-in call copies the interpreter's frame of locals and its rule cache, so
#   built-ins are the dearest statements (and every local in the bundle adds to each);
# - obj.key compares the key with every member before it (a string serialisation
#   each); a value tested for truth (`x`, `some v in f(..)`) is serialised whole, so
#   collections are bound to a variable (`xs := ...; some v in xs`), not tested;
# - `x in {...}` builds the set on every evaluation; `!=`, and `==` inside a
#   comprehension, are built-in calls where `not a == b` in a rule body is not;
# - a function parameter used as a key (obj[key]) compiles to a scan over obj (bind
#   it first: k := key), and an undefined rule is evaluated again at every reference
#   (hence `default x := false` on helpers that are used as conditions);
# - rego-cpp may reorder a body's expressions (a function's follow the order of its
#   parameters), so a guard on one parameter can run after a built-in on another.
package deployguard.lib

import rego.v1

# Image rules judge changes that start pods from a new template: create and rollout.
# A scale, a metadata edit or another spec change runs images that were admitted
# before; judging them again would block an incident scale-up of a legacy workload.
# Nor is "replica": a controller creating Pods from a template admitted at the owner.
# DELETE requests carry no images at all.
# Defined (false by default), hence cached: rego-cpp evaluates an undefined rule again
# at every reference.
default judges_images := false

judges_images if change_type == "create"

judges_images if change_type == "rollout"

judges_images if change_type == "rollback"

# input.change.type, looked up once.
change_type := input.change.type

# "container", "init container" or "ephemeral container", for messages.
container_noun(img) := noun if {
	noun := _nouns[img.container_type]
} else := "container"

_nouns := {"initContainer": "init container", "ephemeralContainer": "ephemeral container"}

# `"value"` when the value is printable ASCII without quotes or backslashes; otherwise
# a placeholder. Image strings and parse errors come from the user: an invalid image
# reference may hold anything, and regopy 1.5.2 (the embedded engine) does not escape
# quotes and backslashes of input strings in its JSON output, so echoing one could
# corrupt or forge the decision document. Valid references always pass.
quoted(value) := sprintf(`"%s"`, [value]) if {
	printable(value)
} else := "(a value with quotes, backslashes or non-ASCII characters, not shown)"

# quoted(string_field(obj, key)) in one function: `"..."` for a printable string,
# the placeholder for another string, `""` when the field is missing or not a string.
quoted_field(obj, key) := sprintf(`"%s"`, [v]) if {
	k := key
	v := obj[k]
	is_string(v) # printable(v), inlined: a function call is dear in rego-cpp
	regex.match(`^[ !#-Z^-~\[\]]*$`, v)
} else := "(a value with quotes, backslashes or non-ASCII characters, not shown)" if {
	k := key
	is_string(obj[k])
} else := `""`

# A string field of an object, "" when it is missing or not a string, so that a
# message never goes undefined (which would silently drop the finding). Not object.get
# with a default: rego-cpp's sprintf prints such a default with quotes around it.
string_field(obj, key) := v if {
	k := key
	v := obj[k]
	is_string(v)
} else := ""

# Printable ASCII except '"' and '\'. Written without \x escapes: rego-cpp's regex
# rejects them ("Invalid escape sequence"). Inlined in quoted_field and subject: keep
# the patterns alike.
printable(value) if {
	is_string(value)
	regex.match(`^[ !#-Z^-~\[\]]*$`, value)
}

# "Deployment shop/web" (the namespace is left out when there is none).
subject := sprintf("%s %s/%s", [_kind, ns, _name]) if {
	ns := _request.namespace
	not ns == ""
	is_string(ns)
	regex.match(`^[ !#-Z^-~\[\]]*$`, ns)
} else := sprintf("%s %s", [_kind, _name])

_request := input.request

# The command an approver runs to sign a break-glass token for this object, for fix
# texts. The API server admits only valid names, but a client that reaches the webhook
# directly may send anything, and rego-cpp's sprintf fails on some backslash sequences
# (`\u/` gives "stoul"): a field that is not printable ASCII shows as a placeholder.
# concat, not sprintf: rego-cpp's sprintf prints a function's else value in quotes.
sign_command(template_hash) := concat("", [
	"deployguard break-glass sign --namespace ", _command_arg(_request.namespace, "NAMESPACE"),
	" --kind ", _command_arg(_request.kind, "KIND"),
	" --name ", _command_arg(_request.name, "NAME"),
	" --template-hash ", _command_arg(template_hash, "HASH"),
	" --reason ... --ticket ...",
])

_command_arg(value, placeholder) := value if {
	is_string(value)
	regex.match(`^[ !#-Z^-~\[\]]*$`, value)
} else := placeholder

_kind := k if {
	k := _request.kind
	not k == ""
	is_string(k)
	regex.match(`^[ !#-Z^-~\[\]]*$`, k)
} else := "workload"

_name := n if {
	n := _request.name
	not n == ""
	is_string(n)
	regex.match(`^[ !#-Z^-~\[\]]*$`, n)
} else := "(unnamed)"
