# Rule release_id: a workload that rolls out new pods says which release it is, so that
# a deploy can be traced to a version or commit (and rolled back to one).
#
# Data: data.deployguard.config.release_id.labels (default ["app.kubernetes.io/version"])
# and .annotations (default ["deployguard.io/release-id"]). Any of them, set to a
# non-empty value on the workload or on its pod template, is a release id.
# Judged on create and rollout only: a scale or a metadata change deploys nothing new.
package deployguard.rules.release_id

import data.deployguard.governance
import data.deployguard.lib
import rego.v1

violation contains {"message": msg, "fix": _label_fix} if {
	governance.is_rollout
	_has_images
	not _has_release_id

	# concat, not sprintf("%s", [concat(...)]): rego-cpp prints a concat result with
	# quotes around it when it is a sprintf argument.
	msg := concat("", [
		lib.subject,
		" has no release id: none of the labels [",
		_joined(_labels),
		"] or annotations [",
		_joined(_annotations),
		"] is set on the workload or its pod template",
	])
}

# count(input.images) > 0; for the usual non-empty array, without the call.
_has_images if {
	first := input.images[0] # bound, not tested: a tested value is serialised by rego-cpp
} else if {
	count(input.images) > 0
}

# concat(", ", list); a one-entry list (the usual) without the call.
_joined(list) := list[0] if {
	not list[1]
} else := concat(", ", list)

default _labels := ["app.kubernetes.io/version"]

_labels := [k | some k in labels; is_string(k)] if {
	labels := data.deployguard.config.release_id.labels
	is_array(labels)
}

default _annotations := ["deployguard.io/release-id"]

_annotations := [k | some k in annotations; is_string(k)] if {
	annotations := data.deployguard.config.release_id.annotations
	is_array(annotations)
}

default _has_release_id := false

_has_release_id if {
	labels := _labels
	some k in labels
	_set(_workload.labels[k])
}

_has_release_id if {
	labels := _labels
	some k in labels
	_set(_workload.template_labels[k])
}

_has_release_id if {
	annotations := _annotations
	some k in annotations
	_set(_workload.annotations[k])
}

_has_release_id if {
	annotations := _annotations
	some k in annotations
	_set(_workload.template_annotations[k])
}

_workload := input.workload

# Set: a string that is not blank. A value with a backslash is not blank, and is decided
# without trim_space: rego-cpp 1.5.2's trim_space fails ("Invalid escape sequence", "stoul")
# on some backslash sequences, e.g. `C:\users\x` or a literal `\u0041`.
_set(value) if {
	is_string(value)
	contains(value, "\\")
}

# Blank: nothing but spaces, tabs, line breaks and form feeds (ASCII). Not trim_space:
# OPA's trims Unicode White_Space too, rego-cpp 1.5.2's ASCII only, so a release id of
# no-break spaces was set on one engine and blank on the other (found by the engines'
# differential fuzzing). With an explicit cutset both engines agree.
_set(value) if {
	is_string(value)
	not contains(value, "\\")
	not trim(value, " \t\n\r\f") == ""
}

# (A first entry or none: no count() needed; the lists hold strings only.)
_label_fix := sprintf(`label the pod template with the version you deploy, e.g. metadata.labels["%s"]: "1.4.2"`, [_labels[0]]) if {
	_labels[0]
} else := sprintf(`annotate the pod template with the release you deploy, e.g. metadata.annotations["%s"]: "1.4.2"`, [_annotations[0]]) if {
	_annotations[0]
} else := "the configuration names no release-id labels or annotations (data.deployguard.config.release_id); ask the platform team to fix it"
