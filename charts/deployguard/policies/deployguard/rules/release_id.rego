# Rule release_id: a workload that rolls out new pods says which release it is, so that
# a deploy can be traced to a version or commit (and rolled back to one).
#
# Data: data.deployguard.config.release_id.labels (default ["app.kubernetes.io/version"])
# and .annotations (default ["deployguard.io/release-id"]). Any of them, set to a
# non-empty value on the workload or on its pod template, is a release id.
# Judged on create and rollout only: a scale or a metadata change deploys nothing new.
package deployguard.rules.release_id

import data.deployguard.lib
import rego.v1

violation contains {"message": msg, "fix": _label_fix} if {
	input.change.type in {"create", "rollout"}
	count(input.images) > 0
	not _has_release_id

	# concat, not sprintf("%s", [concat(...)]): rego-cpp prints a concat result with
	# quotes around it when it is a sprintf argument.
	msg := concat("", [
		lib.subject,
		" has no release id: none of the labels [",
		concat(", ", _labels),
		"] or annotations [",
		concat(", ", _annotations),
		"] is set on the workload or its pod template",
	])
}

default _labels := ["app.kubernetes.io/version"]

_labels := [k | some k in data.deployguard.config.release_id.labels; is_string(k)] if {
	is_array(data.deployguard.config.release_id.labels)
}

default _annotations := ["deployguard.io/release-id"]

_annotations := [k | some k in data.deployguard.config.release_id.annotations; is_string(k)] if {
	is_array(data.deployguard.config.release_id.annotations)
}

_has_release_id if {
	some k in _labels
	_set(input.workload.labels[k])
}

_has_release_id if {
	some k in _labels
	_set(input.workload.template_labels[k])
}

_has_release_id if {
	some k in _annotations
	_set(input.workload.annotations[k])
}

_has_release_id if {
	some k in _annotations
	_set(input.workload.template_annotations[k])
}

_set(value) if {
	is_string(value)
	trim_space(value) != ""
}

_label_fix := sprintf(`label the pod template with the version you deploy, e.g. metadata.labels["%s"]: "1.4.2"`, [_labels[0]]) if {
	count(_labels) > 0
} else := sprintf(`annotate the pod template with the release you deploy, e.g. metadata.annotations["%s"]: "1.4.2"`, [_annotations[0]]) if {
	count(_annotations) > 0
} else := "the configuration names no release-id labels or annotations (data.deployguard.config.release_id); ask the platform team to fix it"
