# Rule change_calendar: problems with the change calendar itself are reported, never
# silently ignored. A malformed ChangeFreeze / ChangeWindow or data-file entry (it is
# left out of the calendar, so it freezes nothing), a Kubernetes source that is behind,
# or a windows fact that could not be had. Default mode: warn.
#
# Facts: input.facts.windows.problems (strings, from webhook/facts/windows.py; a
# namespaced object's problem is shown only in its namespace) and .status/.error.
package deployguard.rules.change_calendar

import data.deployguard.lib
import rego.v1

violation contains {"message": msg, "fix": "fix or delete the definition; see deployguard windows status"} if {
	problems := input.facts.windows.problems
	some p in problems
	msg := concat("", ["change calendar: ", _calendar_shown(p)])
}

violation contains {"message": msg, "fix": "check deployguard's logs and its windows settings"} if {
	input.facts.windows.status == "unknown"
	msg := concat("", [
		"change calendar: freezes and windows could not be evaluated for ", lib.subject,
		" (", _calendar_shown(input.facts.windows.error), ")",
	])
}

_calendar_shown(s) := s if lib.printable(s)

else := "(a message with quotes, backslashes or non-ASCII characters, not shown)"
