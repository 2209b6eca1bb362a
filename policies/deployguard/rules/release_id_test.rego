package deployguard_test.release_id

import data.deployguard_test.fixtures
import rego.v1

_decision_for(change_type, wl, cfg) := d if {
	inp := fixtures.request_for(change_type, [fixtures.nginx_pinned], wl)
	d := fixtures.decide(cfg) with input as inp
}

_release_findings(change_type, wl) := [f |
	d := _decision_for(change_type, wl, fixtures.config)
	some f in array.concat(array.concat(d.deny, d.warn), d.dryrun)
	f.rule == "release_id"
]

# The fixture workload without a release id, plus one label or annotation.
_with(field, key) := wl if {
	base := fixtures.workload_without_release_id
	wl := {
		"kind": base.kind,
		"labels": object.union(base.labels, _entry(field, "labels", key)),
		"annotations": object.union(base.annotations, _entry(field, "annotations", key)),
		"template_labels": object.union(base.template_labels, _entry(field, "template_labels", key)),
		"template_annotations": object.union(base.template_annotations, _entry(field, "template_annotations", key)),
		"replicas": base.replicas,
	}
}

_entry(field, name, key) := {key.name: key.value} if field == name

else := {}

test_missing_release_id_warns if {
	_decision_for("create", fixtures.workload_without_release_id, fixtures.config) == {
		"deny": [],
		"warn": [{
			"rule": "release_id",
			"message": "Deployment shop/web has no release id: none of the labels [app.kubernetes.io/version] or annotations [deployguard.io/release-id] is set on the workload or its pod template",
			"fix": `label the pod template with the version you deploy, e.g. metadata.labels["app.kubernetes.io/version"]: "1.4.2"`,
		}],
		"dryrun": [],
	}
}

test_rollout_is_judged if {
	count(_release_findings("rollout", fixtures.workload_without_release_id)) == 1
}

test_label_on_workload_counts if {
	_release_findings("create", _with("labels", {"name": "app.kubernetes.io/version", "value": "1.4.2"})) == []
}

test_label_on_template_counts if {
	_release_findings("create", _with("template_labels", {"name": "app.kubernetes.io/version", "value": "1.4.2"})) == []
}

test_annotation_on_workload_counts if {
	_release_findings("create", _with("annotations", {"name": "deployguard.io/release-id", "value": "git-4f2a9c1"})) == []
}

test_annotation_on_template_counts if {
	_release_findings("rollout", _with("template_annotations", {"name": "deployguard.io/release-id", "value": "git-4f2a9c1"})) == []
}

test_empty_value_does_not_count if {
	count(_release_findings("create", _with("template_labels", {"name": "app.kubernetes.io/version", "value": " "}))) == 1
}

test_a_value_with_backslashes_counts if {
	_release_findings("create", _with("annotations", {"name": "deployguard.io/release-id", "value": `C:\users\x \u0041`})) == []
}

# Blank is ASCII whitespace only, on both engines (OPA's trim_space would also trim
# Unicode spaces, rego-cpp's not).
test_blank_is_ascii_whitespace if {
	count(_release_findings("create", _with("annotations", {"name": "deployguard.io/release-id", "value": " \t\r\n\f"}))) == 1
	_release_findings("create", _with("annotations", {"name": "deployguard.io/release-id", "value": "\u3000\u00a0"})) == []
}

test_label_key_as_annotation_does_not_count if {
	# Labels and annotations are separate lists: a label key set as annotation is not enough.
	count(_release_findings("create", _with("annotations", {"name": "app.kubernetes.io/version", "value": "1.4.2"}))) == 1
}

test_other_change_types_are_not_judged if {
	every change_type in ["scale", "metadata-only", "update", "no-op", "delete", "replica"] {
		_release_findings(change_type, fixtures.workload_without_release_id) == []
	}
}

test_no_images_is_not_judged if {
	inp := fixtures.request_for("create", [], fixtures.workload_without_release_id)
	d := fixtures.decide(fixtures.config) with input as inp
	d == fixtures.empty_decision
}

test_configured_keys_replace_the_defaults if {
	cfg := {
		"rules": {"release_id": {"mode": "enforce"}},
		"release_id": {"labels": ["example.com/release"], "annotations": []},
	}
	wl_default_label := _with("template_labels", {"name": "app.kubernetes.io/version", "value": "1.4.2"})
	[f.message | some f in _decision_for("create", wl_default_label, cfg).deny] == [
		"Deployment shop/web has no release id: none of the labels [example.com/release] or annotations [] is set on the workload or its pod template",
	]
	wl_custom := _with("labels", {"name": "example.com/release", "value": "2024.06.1"})
	_decision_for("create", wl_custom, cfg) == fixtures.empty_decision
}

test_annotation_only_config_suggests_the_annotation if {
	cfg := {"release_id": {"labels": [], "annotations": ["example.com/release-id"]}}
	[f.fix | some f in _decision_for("create", fixtures.workload_without_release_id, cfg).deny] == [
		`annotate the pod template with the release you deploy, e.g. metadata.annotations["example.com/release-id"]: "1.4.2"`,
	]
}

test_defaults_apply_without_release_id_config if {
	cfg := {"rules": {"release_id": {"mode": "warn"}}}
	[f.message | some f in _decision_for("create", fixtures.workload_without_release_id, cfg).warn] == [
		"Deployment shop/web has no release id: none of the labels [app.kubernetes.io/version] or annotations [deployguard.io/release-id] is set on the workload or its pod template",
	]
	_decision_for("create", fixtures.workload, cfg) == fixtures.empty_decision
}
