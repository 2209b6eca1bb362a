# The entrypoint deployguard evaluates: data.deployguard.decision.
#
# Gathers the `violation` set of every rule package data.deployguard.rules.<rule>,
# names each finding after its package and sorts it by the rule's mode
# (data.deployguard.config.rules.<rule>.mode): enforce -> deny, warn -> warn,
# dryrun -> dryrun. A rule without a mode, or with any other value, is enforced.
#
# Every request that misses the decision memo evaluates this on rego-cpp, whose costs
# differ from OPA's (see lib.rego): a set or object literal is built member by member,
# each compared with every member already in, and built-in calls are dear. Hence the
# rule list is an array, and sort keys are computed only where there is something to
# sort (two findings or more in one list).
package deployguard

import rego.v1

# The rule packages to evaluate. Keep this in step with policies/deployguard/rules/
# (the test test_every_rule_package_is_registered fails when a package is missing).
#
# Why a list and not `some name; data.deployguard.rules[name]`: rego-cpp (regopy 1.5.2,
# the embedded engine) crashes the process with a segmentation fault when a rule that
# iterates over packages is evaluated under `with input as ...`, i.e. in every policy
# test. Rules that have an entry in data.deployguard.config.rules are evaluated as well,
# so a cluster can add a rule package together with its mode without editing this file.
rule_names := {"allowed_registries", "digest_pinning", "image_reference", "release_id", "signatures", "signatures_warn", "tag_moved"} | _governance_rules

# Change governance (error budgets, risk, break-glass), owned by their rule files.
_governance_rules := {"error_budget", "error_budget_unknown", "risk", "risk_notice", "break_glass", "break_glass_notice"}

# Change windows and freezes (issue 5), owned by their rule files.
_calendar_rules := {"change_freeze", "change_calendar"}

# rule_names and _calendar_rules as one array: what the decision iterates. Plain
# identifiers, so urlquery.encode leaves them as they are (see _key).
_listed := [
	"allowed_registries", "digest_pinning", "image_reference", "release_id", "signatures", "signatures_warn", "tag_moved",
	"error_budget", "error_budget_unknown", "risk", "risk_notice", "break_glass", "break_glass_notice",
	"change_freeze", "change_calendar",
]

# Configured rules that are not listed (object keys: no duplicates). Not filtered by
# is_string: data.deployguard.rules[<not a string>] is undefined anyway.
_unlisted := object.remove(rules, _listed) if {
	rules := _rules
	is_object(rules)
}

_rules := data.deployguard.config.rules

_names contains name if some name in _calendar_rules

_names contains name if some name in rule_names

_names contains name if {
	some name, _ in data.deployguard.config.rules
	is_string(name)
}

# The rule's mode. Anything but "warn" or "dryrun" enforces (fail closed).
mode(name) := m if {
	n := name # a parameter as a key compiles to a scan in rego-cpp; a local to a lookup
	m := _rules[n].mode
	_non_enforcing[m]
} else := "enforce"

_non_enforcing := {"warn", "dryrun"}

# Every rule the decision evaluates, with its mode: `deployguard check --explain` reads it.
rule_modes := {name: mode(name) | some name in _names}

# Every finding as [mode, finding, the rule's name percent-encoded (see _key)]; equal
# findings of one rule collapse.
_entries contains [mode(name), f, name] if {
	listed := _listed
	some name in listed
	some v in data.deployguard.rules[name].violation
	f := _finding(name, v)
}

_entries contains [mode(name), f, urlquery.encode(name)] if {
	unlisted := _unlisted
	some name, _ in unlisted
	some v in data.deployguard.rules[name].violation
	f := _finding(name, v)
}

# The usual shape first: exactly {"message": <string>, "fix": <string>} (the object
# pattern compiles to a type and size check in rego-cpp, not a built-in call).
_finding(name, v) := {"rule": name, "message": message, "fix": fix} if {
	{"message": message, "fix": fix} := v
	is_string(message)
	is_string(fix)
} else := {"rule": name, "message": _message(name, v), "fix": _fix_of(v)}

# A violation is {"message": ..., "fix": ...}; a bare string is taken as the message.
# A malformed one still counts: a rule that fired must not vanish from the decision.
_message(name, v) := v.message if {
	is_object(v)
	is_string(v.message)
} else := v if {
	is_string(v)
} else := sprintf("rule %s reported a violation without a message", [name])

_fix_of(v) := v.fix if {
	is_object(v)
	is_string(v.fix)
} else := ""

# Filtered by set lookups: `==` in a comprehension is a built-in call in rego-cpp. (A
# collection is bound to a variable before `some ... in`: else rego-cpp serialises it.)
deny := _in_order([e | all := _entries; some e in all; _is_enforce[e[0]]])

warn := _in_order([e | all := _entries; some e in all; _is_warn[e[0]]])

dryrun := _in_order([e | all := _entries; some e in all; _is_dryrun[e[0]]])

_is_enforce := {"enforce"}

_is_warn := {"warn"}

_is_dryrun := {"dryrun"}

# The findings of the entries es in a deterministic order, identical in OPA and rego-cpp:
# by rule, then message, then fix. One finding needs no sort key.
_in_order(es) := [e[1] | some e in es] if {
	not es[1]
} else := [p[1] | sorted := sort([[_key(e), e[1]] | some e in es]); some p in sorted]

# rego-cpp compares strings in their escaped JSON form (so `sort` and `<` disagree with
# OPA as soon as a string holds a quote or a space), hence the sort key is
# percent-encoded text, which has no characters that need escaping. urlquery.encode
# writes a space as "+" in OPA and "%20" in rego-cpp, hence the replace (once: "#" and
# the encoded text hold no "+" of their own). Listed rule names are plain identifiers,
# which encode to themselves. The keys are distinct: equal keys mean equal findings.
_key(e) := replace(concat("#", [e[2], urlquery.encode(e[1].message), urlquery.encode(e[1].fix)]), "+", "%20")

decision := {"deny": deny, "warn": warn, "dryrun": dryrun, "annotations": _annotations} if {
	not _annotations == {}
} else := {"deny": deny, "warn": warn, "dryrun": dryrun}

# Rules may contribute auditAnnotations (e.g. rule risk's score) through an object
# `annotations`; the key appears in the decision only when there are some. Of the
# listed rules only those in _annotated define it (tests/unit/test_embedded_policies.py
# keeps the list in step with the rule files): a lookup costs rego-cpp a string-built
# path per rule. Static references (data.deployguard.rules.risk.annotations) would be
# cheaper still, but make rego-cpp's compiler use over 100 MB per `with` query (tests).
_annotated := ["break_glass_notice", "risk"]

_annotations[k] := v if {
	annotated := _annotated
	some name in annotated
	v := data.deployguard.rules[name].annotations[k]
}

_annotations[k] := v if {
	unlisted := _unlisted
	some name, _ in unlisted
	v := data.deployguard.rules[name].annotations[k]
}
