# The entrypoint deployguard evaluates: data.deployguard.decision.
#
# Gathers the `violation` set of every rule package data.deployguard.rules.<rule>,
# names each finding after its package and sorts it by the rule's mode
# (data.deployguard.config.rules.<rule>.mode): enforce -> deny, warn -> warn,
# dryrun -> dryrun. A rule without a mode, or with any other value, is enforced.
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

_names contains name if some name in _calendar_rules

_names contains name if some name in rule_names

_names contains name if {
	some name, _ in data.deployguard.config.rules
	is_string(name)
}

# The rule's mode. Anything but "warn" or "dryrun" enforces (fail closed).
mode(name) := m if {
	m := data.deployguard.config.rules[name].mode
	m in {"warn", "dryrun"}
} else := "enforce"

# Every rule the decision evaluates, with its mode: `deployguard check --explain` reads it.
rule_modes := {name: mode(name) | some name in _names}

_findings contains {"rule": name, "message": _message(name, v), "fix": _fix_of(v), "mode": mode(name)} if {
	some name in _names
	some v in data.deployguard.rules[name].violation
}

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

# Deterministic order, identical in OPA and rego-cpp: by rule, then message, then fix.
# rego-cpp compares strings in their escaped JSON form (so `sort` and `<` disagree with
# OPA as soon as a string holds a quote or a space), hence the sort key is
# percent-encoded text, which has no characters that need escaping. urlquery.encode
# writes a space as "+" in OPA and "%20" in rego-cpp, hence the replace.
_encode(s) := replace(urlquery.encode(s), "+", "%20")

_key(f) := concat("#", [_encode(f.rule), _encode(f.message), _encode(f.fix)])

_by_key := {_key(f): f | some f in _findings}

_keys_in_mode(m) := sort([k | some k; _by_key[k].mode == m])

_in_mode(m) := [{"rule": f.rule, "message": f.message, "fix": f.fix} |
	some k in _keys_in_mode(m)
	f := _by_key[k]
]

deny := _in_mode("enforce")

warn := _in_mode("warn")

dryrun := _in_mode("dryrun")

decision := object.union({"deny": deny, "warn": warn, "dryrun": dryrun}, _annotations_part)

# Rules may contribute auditAnnotations (e.g. rule risk's score) through an object
# `annotations`; the key appears in the decision only when there are some.
_annotations := {k: v | some name in _names; v := data.deployguard.rules[name].annotations[k]}

_annotations_part := {"annotations": _annotations} if {
	count(_annotations) > 0
} else := {}
