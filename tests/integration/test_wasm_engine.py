"""The wasm engine (policies compiled by `opa build -t wasm`, run in-process) with the real `opa`.

The host built-ins are held to OPA's own results (`opa eval`); the engine refuses what it
cannot run at load, and an abort or a failing built-in is an engine error (a deny), never an
allow. The decisions themselves are compared with OPA and rego-cpp in test_engine_differential.py.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import POLICIES, REPO, tool
from tests.factories import admission_review, workload
from tests.served import serve_deployguard
from webhook.engines import PROBE_INPUT
from webhook.engines.go_layout import NAMED_LAYOUTS, go_format
from webhook.engines.go_time import local_zone
from webhook.engines.wasm import WasmEngine
from webhook.engines.wasm_builtins import HOST_BUILTINS
from webhook.engines.wasm_sprintf import go_sprintf
from webhook.errors import EngineError, PolicyLoadError
from webhook.policy_bundle import load_bundle

pytestmark = pytest.mark.integration

FORMATS = [
    ("%s", ["a"]), ("%v", [5]), ("%v", [1.5]), ("%v", [0.1]), ("%v", [1234567.5]), ("%v", [123456.5]), ("%v", [1e21]),
    ("%v", [0.0001]), ("%v", [0.00001]), ("%v", [100.0]), ("%v", [-2.5]), ("%s", [5]), ("%d", ["x"]), ("%s", [1.5]),
    ("%d", [1.5]), ("%v", [True]), ("%s", [None]), ("%v", [[1, "a", True]]), ("%v", [{"b": 1, "a": [2]}]),
    ("%s %s", ["a"]), ("%s", ["a", 1, 2.5]), ("%d%%", [50]), ("%5s|%-5s|", ["ab", "cd"]), ("%05d", [42]),
    ("%+d", [3]), ("%x", [255]), ("%X", ["hi"]), ("%q", ['a"b\n\u00e9\x01']), ("%.2f", [3.14159]), ("%f", [2]),
    ("%.1f", [2.25]), ("%e", [12345.678]), ("%g", [0.000012345]), ("%.3g", [3.14159]), ("%t", [True]),
    ("%.2s", ["abcdef"]), ("%x", [-255]), ("%#x", [255]), ("%v", [123456789.0]), ("%s", [[]]), ("%v", [{}]),
    ("%200000000d", [1]), ("x%.99999999999f y %s", [1.5, "a"]), ("%10000009d|", []), ("%%%20000000s", ["a", 2]),
]  # fmt: skip


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.choice(["str", "int", "float", "bool", "null"] + (["list", "dict"] if depth < 2 else []))
    if kind == "str":
        return "".join(rng.choice('ab z"\\\n\u00e9\u2028%\x7f') for _ in range(rng.randint(0, 6)))
    if kind == "int":
        return rng.choice([0, -1, 7, 10**6, -(2**40), rng.randint(-1000, 1000)])
    if kind == "float":
        return rng.choice([0.5, -1.25, 1e-7, 3.0e15, 2.5e21, rng.uniform(-1e6, 1e6), round(rng.uniform(0, 100), 2)])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {f"k{rng.randint(0, 9)}": _random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def _random_cases(count: int) -> list[tuple[str, list[Any]]]:
    rng = random.Random(20261128)
    verbs = ["%s", "%v", "%d", "%q", "%x", "%f", "%.2f", "%e", "%g", "%t", "%5v", "%-4s|", "%%"]
    cases = []
    for _ in range(count):
        fmt = " ".join(rng.choice(verbs) for _ in range(rng.randint(1, 3)))
        cases.append((fmt, [_random_value(rng) for _ in range(rng.randint(0, 3))]))
    return cases


def _opa_eval(expressions: list[str]) -> list[Any]:
    """One `opa eval` of many expressions: their values in order."""
    query = "x := [" + ", ".join(expressions) + "]"
    result = subprocess.run([str(tool("opa")), "eval", "-f", "json", query],
                            capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    values: list[Any] = json.loads(result.stdout)["result"][0]["bindings"]["x"]
    return values


@pytest.mark.parametrize("cases", [FORMATS, _random_cases(400)], ids=["table", "random"])
def test_sprintf_formats_as_opa_does(cases: list[tuple[str, list[Any]]]) -> None:
    expected = _opa_eval([f"sprintf({json.dumps(f)}, {json.dumps(a)})" for f, a in cases])
    differ = [(f, a, want, go_sprintf(f, a)) for (f, a), want in zip(cases, expected, strict=True)
              if go_sprintf(f, a) != want]  # fmt: skip
    assert differ == []


def test_urlquery_encode_as_opa_does() -> None:
    texts = ["a b", "x/y?z=1&w=2", "ünï cödé", "~-_.", "100%", "+", "", "tab\there", "\u2028"]
    expected = _opa_eval([f"urlquery.encode({json.dumps(t)})" for t in texts])
    assert [HOST_BUILTINS["urlquery.encode"]([t]) for t in texts] == expected


def _random_text(rng: random.Random, alphabet: str, longest: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, longest)))


CIDRS = ["10.0.0.0/8", "10.0.0.0/33", "10.0.0.0/08", "010.0.0.0/8", "1.2.3/24", "::1/128", "::1/129", "fe80::1%eth0/64",
         "::ffff:1.2.3.4/96", "1.2.3.4", "1.2.3.4/", "1.2.3.4/+8", "2001:db8::/32", "1:2:3:4:5:6:7:8/64", "1::2::3/64",
         "1.2.3.4/00000000000000000000032", "1.2.3.4/4294967328", " 1.2.3.4/8", "1.2.3.4/8 ", 5, "::/0"]  # fmt: skip


def _host_builtin_cases() -> dict[str, list[list[Any]]]:
    """Seeded random arguments for each host built-in beside sprintf: near-misses included."""
    rng = random.Random(28112026)
    semvers = ["1.0.0", "1.0.0-a", "1.0.0-a.1", "1.0.0-1", "2.1.0", "1.10.0", "1.9.0-rc.10", "1.9.0-rc.9",
               "v1.0.0", "1.0.0+x", "1.0.0-alpha-1", "1.0.0-0"]  # fmt: skip

    generators: dict[str, Any] = {
        "units.parse": lambda: [_random_text(rng, "0123456789..eE+-kKmMgGiIpPtTbB", 6)],
        "units.parse_bytes": lambda: [_random_text(rng, "0123456789..eE+-kKmMgGiIbB", 6)],
        "semver.is_valid": lambda: [_random_text(rng, "0123456789..-+vVab", 12)],
        "semver.compare": lambda: [rng.choice(semvers), rng.choice(semvers)],
        "strings.count": lambda: [_random_text(rng, "aab\u00e9", 6), _random_text(rng, "ab", 2)],
        "indexof_n": lambda: [_random_text(rng, "aab\u00e9", 8), _random_text(rng, "ab\u00e9", 2)],
        "strings.any_prefix_match": lambda: [[_random_text(rng, "ab", 3)], _random_text(rng, "ab", 2)],
        "strings.any_suffix_match": lambda: [_random_text(rng, "ab", 3), [_random_text(rng, "ab", 2)]],
        "time.parse_rfc3339_ns": lambda: [
            f"{rng.randint(1600, 2300):04d}-{rng.randint(0, 13):02d}-{rng.randint(0, 32):02d}T{rng.randint(0, 24):02d}"
            f":{rng.randint(0, 60):02d}:{rng.randint(0, 60):02d}{rng.choice(['', '.5', '.123456789', '.1234567891'])}"
            f"{rng.choice(['Z', '+01:00', '-23:59', '+24:00', 'z'])}"
        ],
        "urlquery.decode": lambda: [_random_text(rng, "a+%2Fg0e\u00e9 ", 7)],
        "urlquery.decode_object": lambda: [_random_text(rng, "ab=&;+%2F0\u00e9", 9)],
        "urlquery.encode_object": lambda: [
            {
                _random_text(rng, "a b&=\u00e9", 3): rng.choice(
                    [
                        _random_text(rng, "x y/\u00e9", 3),
                        [_random_text(rng, "x&", 2) for _ in range(rng.randint(0, 2))],
                        5,
                        [1],
                    ]
                )
                for _ in range(rng.randint(0, 3))
            }
        ],
        "crypto.hmac.md5": lambda: [_random_text(rng, "ab\u00e9 ", 5), _random_text(rng, "k\u00e9", 3)],
        "crypto.hmac.sha1": lambda: [_random_text(rng, "ab\u00e9 ", 5), _random_text(rng, "k\u00e9", 3)],
        "crypto.hmac.sha256": lambda: [_random_text(rng, "ab\u00e9 ", 5), _random_text(rng, "k\u00e9", 3)],
        "crypto.hmac.sha512": lambda: [_random_text(rng, "ab\u00e9 ", 5), _random_text(rng, "k\u00e9", 3)],
        "crypto.hmac.equal": lambda: [_random_text(rng, "ab", 2), _random_text(rng, "ab", 2)],
        "net.cidr_is_valid": lambda: [rng.choice(CIDRS) if rng.random() < 0.5 else _random_text(rng, "0129.:/af%", 12)],
        "glob.quote_meta": lambda: [_random_text(rng, "a*?\\[]{},!-\u00e9", 6)],
        "crypto.md5": lambda: [_random_text(rng, "ab\u00e9 ", 5)],
        "crypto.sha1": lambda: [_random_text(rng, "ab\u00e9 ", 5)],
        "crypto.sha256": lambda: [_random_text(rng, "ab\u00e9 ", 5)],
        "hex.encode": lambda: [_random_text(rng, "ab\u00e9 ", 5)],
        "hex.decode": lambda: [_random_text(rng, "0123456789abcdefABz", 6)],
        "base64url.encode_no_pad": lambda: [_random_text(rng, "ab\u00e9 ?>", 5)],
        "urlquery.encode": lambda: [_random_text(rng, "a b/?&=\u00e9~%+", 6)],
    }
    return {name: [generate() for _ in range(150)] for name, generate in generators.items()}


ZONES = ["", "UTC", "Local", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu",
         "America/St_Johns", "Pacific/Chatham", "Africa/Monrovia", "Europe/Amsterdam", "America/Sao_Paulo",
         "Asia/Tokyo", "Nope/Zone", "../etc/passwd", 5]  # fmt: skip
# Go layout elements and the text around them: named layouts, every element, near-misses ("Month", "Janx")
LAYOUT_PARTS = ["2006", "06", "01", "1", "Jan", "January", "02", "2", "_2", "__2", "002", "15", "03", "3", "04",
                "4", "05", "5", "PM", "pm", "MST", "Z07:00", "-0700", "Z0700", "-07", "Z07", "-07:00:00", "Z070000",
                "-070000", "Z07:00:00", "-07:00", ".000", ".999999999", ",99", ".0", ".9", ",000000000000", "Mon",
                "Monday", "Month", "Janx", "_2006", "T", " ", "-", ":", "x", "0", "9", "."]  # fmt: skip
# layouts a policy would parse dates with (and the named ones)
PARSE_LAYOUTS = ["2006-01-02", "2006-01-02 15:04:05", "2006-01-02T15:04:05Z07:00", "Jan 2, 2006 at 3:04pm (MST)",
                 "02/01/2006 15:04 -0700", "2006-01-02T15:04:05.000Z0700", "Mon, 02 Jan 2006", "20060102150405",
                 "2006-002", "__2 2006 15:04:05,999", "January _2 06 03:04:05.000000 PM -07:00:00", "RFC1123",
                 "RFC3339", "RFC822", "RFC850", "UnixDate", "ANSIC", "RubyDate", "RFC1123Z", "RFC3339Nano",
                 "2006-01-02 15:04:05 MST", "Z07 2006 1 2 15 4 5"]  # fmt: skip
# instants around DST changes (Europe, the US), the epoch, and far-off years
TRANSITIONS = [1774746000, 1792890000, 1772953200, 1793512800, 0, -2208988800, -5000000000, 7258118400]


def _random_instant(rng: random.Random) -> Any:
    choice = rng.random()
    if choice < 0.25:
        ns = rng.choice(TRANSITIONS) * 10**9 + rng.randint(-3 * 3600, 3 * 3600) * 10**9 + rng.choice([0, 1, 5 * 10**8])
    elif choice < 0.6:
        ns = rng.randint(-2 * 10**18, 4 * 10**18)
    elif choice < 0.65:
        ns = rng.choice([-(2**63), 2**63 - 1, 2**63, 1.5, 1e18, True, "1", None])
    else:
        ns = rng.randint(-(2**63), 2**63 - 1)
    shape = rng.random()
    if shape < 0.3:
        return ns
    if shape < 0.9:
        return [ns, rng.choice(ZONES)]
    return [ns, rng.choice(ZONES), "".join(rng.choice(LAYOUT_PARTS) for _ in range(rng.randint(0, 4)))][
        : rng.randint(0, 3)
    ]


def _random_layout(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return rng.choice(["", "RFC3339", "RFC3339Nano", "ANSIC", "UnixDate", "RubyDate", "RFC822", "RFC822Z",
                           "RFC850", "RFC1123", "RFC1123Z", "Kitchen"])  # fmt: skip
    return "".join(rng.choice(LAYOUT_PARTS) for _ in range(rng.randint(1, 6)))


def _time_builtin_cases() -> dict[str, list[list[Any]]]:
    """Seeded random arguments for OPA's time.* built-ins: zones with DST, half-hours and
    seconds in their offsets, unknown and hostile zone names, int64's edges, wrong types."""
    rng = random.Random(20261128)

    def duration() -> str:
        if rng.random() < 0.5:
            return _random_text(rng, "0123456789..-+hmsunµdwy", 8)
        parts = [f"{rng.choice(['', '-', '+'])}"]
        for _ in range(rng.randint(1, 3)):
            number = rng.choice([str(rng.randint(0, 400)), f"{rng.randint(0, 99)}.{rng.randint(0, 999)}",
                                 "9223372036854775807", "0.000000000000000000001", "1e3", "."])  # fmt: skip
            parts.append(number + rng.choice(["h", "m", "s", "ms", "us", "µs", "μs", "ns", "d", "w", "y", "mo", ""]))
        return "".join(parts)

    def integer() -> Any:
        wide = [1.0, 300, -300, 10**5, 10**9, 1.5, "1"]  # 1.0 is an integer to OPA, 1.5 not
        return rng.choice([rng.randint(-3, 3), rng.randint(-40, 40), rng.randint(-800, 800), *wide])

    def formatted() -> list[Any]:
        ns = rng.randint(-2 * 10**18, 4 * 10**18) if rng.random() < 0.8 else rng.choice(TRANSITIONS) * 10**9 + 123
        return [[ns, rng.choice(ZONES[:13]), _random_layout(rng)]]

    def parse_case() -> list[Any]:
        """A layout and a value: the value formatted by that layout, often then altered."""
        layout = rng.choice(PARSE_LAYOUTS) if rng.random() < 0.6 else _random_layout(rng)
        ns = rng.randint(-2 * 10**18, 4 * 10**18)
        value = go_format(ns, ZoneInfo(rng.choice(ZONES[3:13])), NAMED_LAYOUTS.get(layout or "RFC3339Nano", layout))
        for _ in range(rng.choice([0, 0, 1, 2])):
            at = rng.randint(0, len(value))
            value = value[:at] + rng.choice(["", "0", "9", " ", "Z", "+", "-", ".", "PM", "UTC", "GMT+3", "CET",
                                             "ChST", "x", "é"]) + value[at + 1 :]  # fmt: skip
        return [layout, value]

    generators: dict[str, Any] = {
        "time.parse_ns": parse_case,
        "time.date": lambda: [_random_instant(rng)],
        "time.clock": lambda: [_random_instant(rng)],
        "time.weekday": lambda: [_random_instant(rng)],
        "time.add_date": lambda: [_random_instant(rng), integer(), integer(), integer()],
        "time.diff": lambda: [_random_instant(rng), _random_instant(rng)],
        "time.format": lambda: formatted() if rng.random() < 0.7 else [_random_instant(rng)],
        "time.parse_duration_ns": lambda: [duration()],
    }
    return {name: [generate() for _ in range(200)] for name, generate in generators.items()}


@pytest.mark.parametrize(("name", "argsets"), [*_host_builtin_cases().items(), *_time_builtin_cases().items()])
def test_host_builtins_compute_what_opa_does(tmp_path: Path, name: str, argsets: list[list[Any]]) -> None:
    """Each call in a rule of its own, so that OPA's error for one argument (a built-in error
    makes that rule undefined) shows as a missing result, where ours raises."""
    arity = len(argsets[0])
    (tmp_path / "t.rego").write_text(
        f"package t\nimport rego.v1\nr[i] := {name}({', '.join(f'x[{j}]' for j in range(arity))}) "
        "if { some i, x in input.xs }\n"
    )
    (tmp_path / "in.json").write_text(json.dumps({"xs": argsets}))
    result = subprocess.run([str(tool("opa")), "eval", "-f", "json", "-d", str(tmp_path / "t.rego"), "-i",
                             str(tmp_path / "in.json"), "data.t.r"], capture_output=True, text=True, timeout=60,
                            check=True)  # fmt: skip
    theirs = {int(k): v for k, v in json.loads(result.stdout)["result"][0]["expressions"][0]["value"].items()}
    differ = []
    for i, args in enumerate(argsets):
        try:
            ours = HOST_BUILTINS[name](args)
        except (TypeError, ValueError):
            ours = "<error>"
        if ours != theirs.get(i, "<error>"):
            differ.append((args, theirs.get(i, "<error>"), ours))
    assert differ == []
    assert len(theirs) >= 10 or name in ("hex.decode",), "mostly errors: the generator misses the point"


@pytest.mark.parametrize("local", ["Europe/Berlin", "America/New_York", "", None])
def test_zone_abbreviations_and_local_time_follow_the_process_zone_as_in_opa(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local: str | None
) -> None:
    """Go reads a parsed abbreviation ("CEST") in the local zone's list, else as UTC (GMT+h
    aside), and "Local" is $TZ or /etc/localtime: the same process zone must give the same
    instants here and in OPA."""
    if local is None:
        monkeypatch.delenv("TZ", raising=False)
    else:
        monkeypatch.setenv("TZ", local)
    local_zone.cache_clear()
    summer, winter = 1782907200 * 10**9, 1798790400 * 10**9  # 2026-07-01 12:00Z, 2027-01-01 12:00Z
    calls = [
        ("time.parse_ns", ["2006-01-02 15:04 MST", f"2026-07-01 12:00 {name}"])
        for name in ["CEST", "CET", "EST", "EDT", "PST", "GMT", "GMT+3", "GMT-11", "UTC", "ChST", "WITA", "AEST"]
    ]
    calls += [("time.parse_ns", ["2006-01-02 15:04 MST", f"2027-01-01 12:00 {name}"]) for name in ["CEST", "EDT"]]
    calls += [(name, [[ns, "Local"]]) for ns in (summer, winter) for name in ("time.clock", "time.date")]
    calls += [("time.format", [[ns, "Local", "2006-01-02 15:04 MST"]]) for ns in (summer, winter)]
    try:
        ours = [HOST_BUILTINS[name](args) for name, args in calls]
        expressions = [f"{name}({', '.join(json.dumps(a) for a in args)})" for name, args in calls]
        query = "x := [" + ", ".join(expressions) + "]"
        result = subprocess.run([str(tool("opa")), "eval", "-f", "json", query],
                                capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
        assert ours == json.loads(result.stdout)["result"][0]["bindings"]["x"]
    finally:
        monkeypatch.undo()
        local_zone.cache_clear()


async def test_time_now_ns_is_one_instant_per_evaluation(tmp_path: Path) -> None:
    source = """package deployguard
import rego.v1
decision := {"deny": [], "warn": [], "now": time.now_ns(), "again": [time.now_ns() | some _ in [1, 2, 3]]}
"""
    engine = _engine()
    await engine.load(_bundle_of(tmp_path, source))
    first = await engine.evaluate({})
    assert first["again"] == [first["now"]] * 3
    assert abs(first["now"] - time.time_ns()) < 10**9
    later = await engine.evaluate({})
    assert later["now"] > first["now"]


CHANGE_WINDOW = """package deployguard
import rego.v1
now := object.get(input, "now", 0)
zone := object.get(input, "zone", "UTC")
default in_window := false
in_window if {
    [hour, _, _] := time.clock([now, zone])
    hour >= 9
    hour < 17
    not time.weekday([now, zone]) in {"Saturday", "Sunday"}
}
decision := {"deny": [], "warn": [], "in_window": in_window, "date": time.date([now, zone]),
    "until": time.format([time.add_date(now, 0, 1, -1), zone, "Mon Jan _2 15:04 MST 2006"]),
    "since": time.diff([object.get(input, "then", 0), zone], now),
    "grace": time.parse_duration_ns(object.get(input, "grace", "1h"))}
"""


async def test_a_change_window_policy_decides_on_wasm_as_opa_does(tmp_path: Path) -> None:
    """The time built-ins through the module (arguments and results crossing the host
    boundary), against `opa eval` of the same policy and inputs."""
    rng = random.Random(7)
    inputs = [{"now": rng.randint(17 * 10**17, 19 * 10**17), "then": rng.randint(16 * 10**17, 19 * 10**17),
               "zone": rng.choice(ZONES[:13]), "grace": rng.choice(["36h", "1d12h", "90m", "2w", "1.5y"])}
              for _ in range(40)]  # fmt: skip
    engine = _engine()
    await engine.load(_bundle_of(tmp_path, CHANGE_WINDOW))
    ours = [await engine.evaluate(policy_input) for policy_input in inputs]
    (tmp_path / "inputs.json").write_text(json.dumps({"inputs": inputs}))
    query = "x := [d | some c in input.inputs; d := data.deployguard.decision with input as c]"
    result = subprocess.run([str(tool("opa")), "eval", "-f", "json", "-d", str(tmp_path / "policy.rego"), "-i",
                             str(tmp_path / "inputs.json"), query], capture_output=True, text=True, timeout=60,
                            check=True)  # fmt: skip
    theirs = json.loads(result.stdout)["result"][0]["bindings"]["x"]
    assert ours == theirs
    assert {d["in_window"] for d in ours} == {True, False}


def _rego_text(value: Any) -> str:
    """A Rego literal; a Python set (of texts) is a Rego set."""
    if isinstance(value, frozenset):
        return "{" + ", ".join(sorted(value)) + "}" if value else "set()"
    if isinstance(value, list):
        return "[" + ", ".join(_rego_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_rego_text(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def _subset_cases(rng: random.Random, count: int) -> list[tuple[Any, Any]]:
    """Pairs for object.subset: objects, sets, arrays, an array against a set; the second
    often cut from the first, so that both answers come up."""

    def scalar() -> Any:
        return rng.choice([0, 1, 2, 1.0, "x", "y", True, False, None])

    def member() -> Any:
        return rng.choice([scalar(), scalar(), [scalar()], frozenset({_rego_text(scalar())})])

    def value(depth: int = 0) -> Any:
        kind = rng.choice(["scalar", "array", "set", "object"] if depth < 2 else ["scalar"])
        if kind == "array":
            return [member() for _ in range(rng.randint(0, 4))]
        if kind == "set":
            return frozenset(_rego_text(member()) for _ in range(rng.randint(0, 3)))
        if kind == "object":
            return {k: value(depth + 1) for k in rng.sample(["a", "b", "c"], rng.randint(0, 3))}
        return scalar()

    def cut(big: Any) -> Any:
        if isinstance(big, dict) and rng.random() < 0.7:
            return {k: cut(v) for k, v in big.items() if rng.random() < 0.7}
        if isinstance(big, frozenset) and rng.random() < 0.7:
            return frozenset(m for m in big if rng.random() < 0.6)
        if isinstance(big, list) and big and rng.random() < 0.7:
            start = rng.randint(0, len(big) - 1)
            return big[start : rng.randint(start, len(big))]
        return value(1)

    cases = []
    for _ in range(count):
        kind = rng.choice(["object", "object", "set", "array", "array-set"])
        if kind == "object":
            big: Any = {k: value(1) for k in rng.sample(["a", "b", "c"], rng.randint(0, 3))}
        elif kind == "set":
            big = frozenset(_rego_text(member()) for _ in range(rng.randint(0, 4)))
        else:
            big = [member() for _ in range(rng.randint(0, 5))]
        small = cut(big)
        expected = {"object": dict, "set": frozenset, "array": list, "array-set": list}[kind]
        if not isinstance(small, expected):  # keep the pair's types valid (a wrong pair is tested apart)
            small = big
        if kind == "array-set":
            small = frozenset(_rego_text(m) for m in small)
        cases.append((big, small))
    return cases


async def test_object_subset_tells_sets_from_arrays_as_opa_does(tmp_path: Path) -> None:
    """object.subset needs to know a set from an array, which JSON cannot say: its arguments
    cross in Rego's own notation. 300 random pairs (nested sets, arrays, objects; true is not
    1; OPA's quirks such as [1, 1] covering {1, 2}) decide through the module as in OPA."""
    cases = _subset_cases(random.Random(11), 300)
    calls = ", ".join(f"object.subset({_rego_text(a)}, {_rego_text(b)})" for a, b in cases)
    source = f'package deployguard\nimport rego.v1\ndecision := {{"deny": [], "warn": [], "r": [{calls}]}}\n'
    engine = _engine()
    await engine.load(_bundle_of(tmp_path, source))
    ours = (await engine.evaluate({}))["r"]
    argv = [str(tool("opa")), "eval", "-f", "json", "-d", str(tmp_path / "policy.rego"), "data.deployguard.decision.r"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    assert ours == json.loads(result.stdout)["result"][0]["expressions"][0]["value"]
    assert 30 < sum(ours) < 270, "mostly one answer: the generator misses the point"
    wrong = "package deployguard\nimport rego.v1\n"
    wrong += 'decision := {"deny": [], "warn": [], '
    wrong += '"r": object.subset(object.get(input, "a", {}), object.get(input, "b", {}))}\n'
    await engine.load(_bundle_of(tmp_path, wrong))
    with pytest.raises(EngineError, match="must be of the same type or array and set"):
        await engine.evaluate({"a": {"k": 1}, "b": [1]})


def _bundle_of(tmp_path: Path, source: str) -> Any:
    (tmp_path / "policy.rego").write_text(source)
    return load_bundle(tmp_path)


def _engine() -> WasmEngine:
    return WasmEngine(str(tool("opa")))


async def test_the_shipped_policies_load_and_decide() -> None:
    engine = _engine()
    await engine.load(load_bundle(POLICIES))
    assert engine.revision and await engine.ready() == (True, "")
    decision = await engine.evaluate(PROBE_INPUT)
    assert decision["deny"] == []


async def test_a_policy_needing_a_builtin_the_engine_lacks_is_refused_at_load(tmp_path: Path) -> None:
    bundle = _bundle_of(tmp_path, 'package deployguard\nimport rego.v1\ndecision := {"y": yaml.marshal(input)}\n')
    refusal = r"built-in\(s\) \[.yaml.marshal.\], which the wasm engine does not provide \(policy.engine embedded"
    with pytest.raises(PolicyLoadError, match=refusal):
        await _engine().load(bundle)


async def test_an_abort_or_a_failing_builtin_is_an_error_never_a_decision(tmp_path: Path) -> None:
    source = """package deployguard
import rego.v1
default x := 0
x := 1 if input.a
x := 2 if input.b
default s := ""
s := sprintf("%s", input.args) if input.args
decision := {"deny": [], "warn": [], "x": x, "s": s} if not input.off
"""
    engine = _engine()
    await engine.load(_bundle_of(tmp_path, source))
    assert (await engine.evaluate({"a": True, "args": ["ok"]}))["s"] == "ok"
    assert engine._serving is not None
    before = engine._serving.policy._store
    for _ in range(50):  # each trap leaves the module's stack pointer where it stopped
        with pytest.raises(EngineError, match="var assignment conflict"):
            await engine.evaluate({"a": True, "b": True, "args": []})
    assert engine._serving.policy._store is not before  # so a trap is followed by a fresh instance
    with pytest.raises(EngineError, match="sprintf: operand 2 must be an array"):
        await engine.evaluate({"a": True, "args": {"not": "an array"}})
    with pytest.raises(EngineError, match="undefined"):
        await engine.evaluate({"off": True})
    assert (await engine.evaluate({"a": True, "args": ["again"]}))["s"] == "again"  # and it goes on


RUNAWAY = """package deployguard
import rego.v1
default spin := 0
spin := count([1 | some a in _r; some b in _r; some c in _r; a == -1]) if input.spin
_r := numbers.range(1, input.spin)
default n := 0
n := count([x | some x in numbers.range(1, input.count); x % 7 == 0]) if input.count
decision := {"deny": [], "warn": [], "spin": spin, "n": n}
"""


async def test_a_runaway_evaluation_is_stopped(tmp_path: Path) -> None:
    """rego-cpp cannot be interrupted; here an evaluation that does more than its fuel (its
    budget of work) traps: an error, so a deny, and the event loop is free again."""
    engine = WasmEngine(str(tool("opa")), fuel=50_000_000)
    await engine.load(_bundle_of(tmp_path, RUNAWAY))
    assert (await engine.evaluate({"spin": 10}))["spin"] == 0
    started = time.monotonic()
    with pytest.raises(EngineError, match=r"the evaluation did more than 50,000,000 steps and was stopped"):
        await engine.evaluate({"spin": 5000})  # 125 billion iterations
    assert time.monotonic() - started < 5
    assert (await engine.evaluate({"spin": 10}))["spin"] == 0


HOST_WORK = """package deployguard
import rego.v1
default found := 0
found := count(indexof_n(input.t, "a")) if input.t
default grace := 0
grace := time.parse_duration_ns(input.d) if input.d
default memory := 0
memory := units.parse_bytes(input.m) if input.m
default decoded := 0
decoded := count(hex.decode(input.h)) if input.h
decision := {"deny": [], "warn": [], "found": found, "grace": grace, "memory": memory, "decoded": decoded}
"""


async def test_host_builtins_doing_too_much_work_are_stopped(tmp_path: Path) -> None:
    """Fuel does not count what a host built-in does in Python, on the event loop. Past
    100,000 steps (found indexes, a duration's characters) in one evaluation the built-in
    fails: an error, so a deny; the next evaluation starts afresh."""
    engine = _engine()
    await engine.load(_bundle_of(tmp_path, HOST_WORK))
    assert (await engine.evaluate({"t": "a" * 60_000}))["found"] == 60_000
    with pytest.raises(EngineError, match=r"indexof_n: the evaluation's built-ins did more than 100,000 steps"):
        await engine.evaluate({"t": "a" * 150_000})
    with pytest.raises(EngineError, match=r"time.parse_duration_ns: the evaluation's built-ins did more than 100,000"):
        await engine.evaluate({"d": "1s" * 300_000})  # the text is charged before Go's loop runs
    with pytest.raises(EngineError, match=r"units.parse_bytes: the exponent of '1e999999999' is out of range"):
        await engine.evaluate({"m": "1e999999999"})  # was 10**999999999 computed exactly: minutes, gigabytes
    with pytest.raises(EngineError, match=r"hex.decode: the evaluation's built-ins did more than 100,000"):
        await engine.evaluate({"h": "99" * 900_000})  # invalid UTF-8: a Python call per byte
    after = await engine.evaluate({"t": "ba", "d": "1s" * 100, "m": "1.5Gi", "h": "99" * 1000})
    assert (after["found"], after["grace"], after["memory"], after["decoded"]) == (1, 100 * 10**9, 1610612736, 1000)


async def test_an_evaluation_needing_too_much_memory_is_stopped_and_the_memory_given_back(tmp_path: Path) -> None:
    engine = WasmEngine(str(tool("opa")))
    await engine.load(_bundle_of(tmp_path, RUNAWAY))
    with pytest.raises(EngineError, match=r"needed more than 256 MiB and was stopped"):
        await engine.evaluate({"count": 50_000_000})
    assert (await engine.evaluate({"count": 14}))["n"] == 2
    policy = engine._serving.policy if engine._serving else None
    assert policy is not None and policy._memory.data_len(policy._store) < 32 * 1024 * 1024


async def test_a_revision_that_does_not_compile_leaves_the_current_one_serving(tmp_path: Path) -> None:
    engine = _engine()
    await engine.load(load_bundle(POLICIES))
    serving = engine.revision
    with pytest.raises(PolicyLoadError, match="opa build -t wasm refused"):
        await engine.load(_bundle_of(tmp_path, "package deployguard\ndecision := {\n"))
    assert engine.revision == serving
    assert (await engine.evaluate(PROBE_INPUT))["deny"] == []


async def test_a_missing_opa_binary_is_a_clear_load_error() -> None:
    with pytest.raises(PolicyLoadError, match="cannot run /nonexistent/opa build -t wasm"):
        await WasmEngine("/nonexistent/opa").load(load_bundle(POLICIES))


def test_deployguard_serve_on_the_wasm_engine(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"policy:\n  engine: wasm\n  opa_binary: {tool('opa')}\n")
    with serve_deployguard(tmp_path, config=config) as served:
        answer = served.post(json.dumps(admission_review(workload("Deployment", "nginx:latest"), uid="w")).encode())
        assert answer.status_code == 200
        response = answer.json()["response"]
        assert response["allowed"] is False
        message = response["status"]["message"]
        assert '[digest_pinning] container "web" image "nginx:latest" is not pinned by digest' in message
        [record] = served.decisions()
        assert record["engine"] == "wasm" and record["outcome"] == "denied"


def test_serve_refuses_to_start_when_opa_cannot_compile(tmp_path: Path) -> None:
    """In-process, as `embedded`: nothing to wait for, so no serving unready for ever."""
    config = tmp_path / "config.yaml"
    config.write_text("policy:\n  engine: wasm\n  opa_binary: /nonexistent/opa\n")
    deployguard = Path(sys.executable).parent / "deployguard"
    result = subprocess.run([str(deployguard), "serve", "--dev-certs", "--port", "0", "--config", str(config)],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)  # fmt: skip
    assert result.returncode != 0
    assert "cannot run /nonexistent/opa build -t wasm (policy.opa_binary)" in result.stderr, result.stderr


def test_check_decides_on_the_configured_wasm_engine(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"policy:\n  engine: wasm\n  opa_binary: {tool('opa')}\n")
    deployguard = Path(sys.executable).parent / "deployguard"
    manifest = REPO / "examples/deployment-latest.yaml"
    result = subprocess.run([str(deployguard), "check", "-f", str(manifest), "-o", "json", "--config", str(config)],
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 1, result.stderr
    [outcome] = json.loads(result.stdout)
    assert outcome["engine"] == "wasm" and not outcome["allowed"]
    assert [f["rule"] for f in outcome["findings"] if f["mode"] == "deny"] == ["digest_pinning"]


def test_policy_cases_run_on_the_configured_wasm_engine(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"policy:\n  engine: wasm\n  opa_binary: {tool('opa')}\n")
    deployguard = Path(sys.executable).parent / "deployguard"
    result = subprocess.run([str(deployguard), "policy", "test", "--config", str(config)],
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert f"cases in {REPO / 'policy-cases'} (engine wasm):" in result.stdout
    assert "CASES FAIL" not in result.stdout
