# Rule risk: an explainable, additive change-risk score, and what it costs to ship a
# risky change. Each factor of input.facts.change (computed by deployguard from the
# old and new object) adds weighted points; the score is their sum.
#
# Data: data.deployguard.config.risk.weights.<factor> (points) and
# .thresholds.{warn, approval, deny}. At or above `approval` the change needs a signed
# approval (a break-glass annotation); at or above `deny` it is refused and only a
# break-glass lets it through. Below `approval` and at or above `warn`, rule
# risk_notice warns. Rollbacks are not scored: they are the way out.
# The score and its top factors are also in the decision's auditAnnotations.
package deployguard.rules.risk

import data.deployguard.governance
import data.deployguard.lib
import rego.v1

_facts := input.facts.change

scored if {
	governance.is_rollout
	_facts.status == "ok"
}

default _weights := {}

_weights := data.deployguard.config.risk.weights if is_object(data.deployguard.config.risk.weights)

_w(name) := p if {
	p := _weights[name]
	is_number(p)
} else := 0

default thresholds := {"warn": 30, "approval": 60, "deny": 90}

thresholds := data.deployguard.config.risk.thresholds if is_object(data.deployguard.config.risk.thresholds)

# Every factor that adds points: {"name", "points", "detail"}.
factors contains {"name": "images_changed", "points": _w("image_changed") * n, "detail": sprintf("%d image(s) changed", [n])} if {
	scored
	not _facts.create
	n := count(_facts.images_changed)
	n > 0
}

factors contains {"name": "major_version_jump", "points": _w("major_version_jump"), "detail": sprintf("container %s jumps a major version, %s to %s", [j.container, j.from, j.to])} if {
	scored
	some j in _facts.major_version_jumps
}

factors contains {"name": "replicas_changed", "points": _w("replica_change"), "detail": sprintf("replicas change by %d%% of the current count", [_facts.replicas.change_percent])} if {
	scored
	_facts.replicas.change_percent >= _replica_percent
}

factors contains {"name": "resources_changed", "points": _w("resources_changed") * n, "detail": sprintf("resources of %d container(s) changed", [n])} if {
	scored
	n := count(_facts.resources_changed)
	n > 0
}

factors contains {"name": "probe_removed", "points": _w("probe_removed"), "detail": sprintf("%s removed", [p])} if {
	scored
	some p in _facts.probes_removed
}

factors contains {"name": "max_unavailable_all", "points": _w("max_unavailable_all"), "detail": "the rollout strategy may take every pod down at once"} if {
	scored
	_facts.max_unavailable_all == true
}

factors contains {"name": "privileged_added", "points": _w("privileged_added"), "detail": sprintf("container %s becomes privileged", [c])} if {
	scored
	some c in _facts.privileged_added
}

factors contains {"name": "host_settings_added", "points": _w("host_settings_added"), "detail": sprintf("%s added", [h])} if {
	scored
	some h in _facts.host_settings_added
}

factors contains {"name": "criticality", "points": p, "detail": sprintf("criticality %s", [_facts.criticality])} if {
	scored
	p := data.deployguard.config.risk.criticality[_facts.criticality]
	is_number(p)
}

factors contains {"name": "off_hours", "points": _w("off_hours"), "detail": sprintf("off-hours in %s (%s %d:00)", [t.zone, t.weekday, t.hour])} if {
	scored
	t := _facts.local_time
	t.off_hours == true
}

factors contains {"name": "large_diff", "points": _w("large_diff"), "detail": sprintf("%d pod template fields changed", [_facts.diff_size])} if {
	scored
	_facts.diff_size >= _large_diff
}

default _replica_percent := 50

_replica_percent := data.deployguard.config.risk.replica_change_percent if is_number(data.deployguard.config.risk.replica_change_percent)

default _large_diff := 20

_large_diff := data.deployguard.config.risk.large_diff if is_number(data.deployguard.config.risk.large_diff)

_positive := [f | some f in factors; f.points > 0]

score := sum([f.points | some f in _positive])

# Factors by points, highest first. rego-cpp sorts numbers as text, so the key is a
# fixed-width number (9999 - points) and the order is the same in both engines.
_ranked := [f |
	some key in sort([sprintf("%d#%s#%s", [9999 - g.points, g.name, g.detail]) | some g in _positive])
	some f in _positive
	sprintf("%d#%s#%s", [9999 - f.points, f.name, f.detail]) == key
]

top_factors := array.slice(_ranked, 0, 3)

explanation := concat("; ", [sprintf("%s (+%v)", [f.detail, f.points]) | some f in top_factors])

level := "deny" if {
	score >= thresholds.deny
} else := "approval" if {
	score >= thresholds.approval
} else := "warn" if {
	score >= thresholds.warn
} else := "low"

annotations := {"risk-score": sprintf("%v", [score]), "risk-level": level, "risk-factors": explanation} if scored

violation contains {"message": msg, "fix": _fix} if {
	scored
	level in {"approval", "deny"}
	not governance.break_glass_active
	msg := concat("", [
		lib.subject, " has change-risk score ", sprintf("%v", [score]), ", at or above the ", level,
		" threshold ", sprintf("%v", [thresholds[level]]), "; top factors: ", explanation,
	])
}

_fix := "split the change into smaller rollouts, or attach a signed approval: deployguard break-glass sign (see the deployguard.io/break-glass annotation)"
