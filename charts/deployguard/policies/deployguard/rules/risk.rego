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
#
# Scored on every create and rollout that misses the decision memo, so written for
# rego-cpp's costs (see lib.rego): collections are bound to a variable before `some`.
package deployguard.rules.risk

import data.deployguard.governance
import data.deployguard.lib
import rego.v1

_facts := input.facts.change

default scored := false

scored if {
	governance.is_rollout
	_facts.status == "ok"
}

_config := data.deployguard.config.risk

default _weights := {}

_weights := w if {
	w := _config.weights
	is_object(w)
}

_w(name) := p if {
	n := name # a parameter as a key compiles to a scan in rego-cpp; a local to a lookup
	p := _weights[n]
	is_number(p)
} else := 0

default thresholds := {"warn": 30, "approval": 60, "deny": 90}

thresholds := t if {
	t := _config.thresholds
	is_object(t)
}

# Every factor that adds points: {"name", "points", "detail"}.
factors contains {"name": "images_changed", "points": _w("image_changed") * n, "detail": sprintf("%d image(s) changed", [n])} if {
	scored
	not _facts.create
	n := count(_facts.images_changed)
	n > 0
}

factors contains {"name": "major_version_jump", "points": _w("major_version_jump"), "detail": sprintf("container %s jumps a major version, %s to %s", [j.container, j.from, j.to])} if {
	scored
	jumps := _facts.major_version_jumps
	some j in jumps
}

factors contains {"name": "replicas_changed", "points": _w("replica_change"), "detail": sprintf("replicas change by %d%% of the current count", [_facts.replicas.change_percent])} if {
	scored
	_facts.replicas.change_percent >= _replica_percent
}

factors contains {"name": "resources_changed", "points": _w("resources_changed") * n, "detail": sprintf("resources of %d container(s) changed", [n])} if {
	scored
	changed := _facts.resources_changed
	not changed == [] # the usual case, decided without a built-in call
	n := count(changed)
	n > 0
}

factors contains {"name": "probe_removed", "points": _w("probe_removed"), "detail": sprintf("%s removed", [p])} if {
	scored
	removed := _facts.probes_removed
	some p in removed
}

factors contains {"name": "max_unavailable_all", "points": _w("max_unavailable_all"), "detail": "the rollout strategy may take every pod down at once"} if {
	scored
	_facts.max_unavailable_all == true
}

factors contains {"name": "privileged_added", "points": _w("privileged_added"), "detail": sprintf("container %s becomes privileged", [c])} if {
	scored
	added := _facts.privileged_added
	some c in added
}

factors contains {"name": "host_settings_added", "points": _w("host_settings_added"), "detail": sprintf("%s added", [h])} if {
	scored
	added := _facts.host_settings_added
	some h in added
}

factors contains {"name": "criticality", "points": p, "detail": sprintf("criticality %s", [_facts.criticality])} if {
	scored
	c := _facts.criticality
	p := _config.criticality[c]
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

_replica_percent := p if {
	p := _config.replica_change_percent
	is_number(p)
}

default _large_diff := 20

_large_diff := d if {
	d := _config.large_diff
	is_number(d)
}

# The factors that add points.
_positive := [f | all := factors; some f in all; f.points > 0]

score := 0 if {
	not _positive[0]
} else := p if {
	not _positive[1] # one factor, the usual case: no built-in call
	p := _positive[0].points
} else := sum([f.points | positive := _positive; some f in positive])

# Factors by points, highest first. rego-cpp sorts numbers as text, so the key is a
# fixed-width number (9999 - points) and the order of the keys is the same in both
# engines; factors with equal keys are equal. One factor needs no key.
_ranked := _positive if {
	not _positive[1]
} else := [p[1] |
	sorted := sort([[sprintf("%d#%s#%s", [9999 - f.points, f.name, f.detail]), f] | positive := _positive; some f in positive])
	some p in sorted
]

top_factors := _ranked if {
	not _ranked[3]
} else := array.slice(_ranked, 0, 3)

explanation := sprintf("%s (+%v)", [f.detail, f.points]) if {
	not top_factors[1] # one factor: what concat would give, without the call
	f := top_factors[0]
} else := concat("; ", [sprintf("%s (+%v)", [f.detail, f.points]) | top := top_factors; some f in top])

level := "deny" if {
	score >= thresholds.deny
} else := "approval" if {
	score >= thresholds.approval
} else := "warn" if {
	score >= thresholds.warn
} else := "low"

annotations := {"risk-score": sprintf("%v", [score]), "risk-level": level, "risk-factors": explanation} if scored

# The score needs an approval (a break-glass) or is refused: level approval or deny.
# Two bodies, not `level in {...}`: rego-cpp would build the set on every evaluation.
default blocking := false

blocking if level == "approval"

blocking if level == "deny"

violation contains {"message": msg, "fix": _fix} if {
	blocking
	scored
	not governance.break_glass_active
	msg := concat("", [
		lib.subject, " has change-risk score ", sprintf("%v", [score]), ", at or above the ", level,
		" threshold ", sprintf("%v", [thresholds[level]]), "; top factors: ", explanation,
	])
}

_fix := "split the change into smaller rollouts, or attach a signed approval: deployguard break-glass sign (see the deployguard.io/break-glass annotation)"
