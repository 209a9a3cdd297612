#!/usr/bin/env python3
"""Validates IHE PCD-04 (ORU^R40, ACM profile) messages.

Usage: acm-validate.py FILE...  Messages are separated by blank lines; segments by newlines.
Exit 1 if any message is invalid.

hl7apy (0.x) has no ORU_R40 structure, so the HL7 v2.6 structure check is hl7apy STRICT
against ORU_R01 after MSH-9 is rewritten: one alarm's segments (MSH PID PV1 OBR OBX... NTE)
follow the R01 grammar, and field and component data types and lengths are checked the same
way. Then the ACM checks (IHE PCD TF-2 ACM, as in docs/alarms.md): MSH-9 ORU^R40^ORU_R40,
MSH-21 IHE_PCD_ACM_001 with either OID seen in the field, one OBR with OBR-4
196616^MDC_EVT_ALARM^MDC and an EUI-64 in OBR-3, the facets .1 identity, .3 phase, .4 state,
.5 inactivation, .7 alert type (and .6 priority when present) with values from their sets,
priority and type in OBX-8 of facet 1 only, the device's EUI-64 in OBX-18 of facet 1, PV1-3.
"""
import re
import sys

from hl7apy.parser import parse_message
from hl7apy.consts import VALIDATION_LEVEL

ACM_OIDS = {"1.3.6.1.4.1.19376.1.6.1.4.1", "1.3.6.1.4.1.19376.1.6.4.4"}
EUI64 = re.compile(r"^[0-9A-F]{16}$")
FACETS = {
    "3": ("MDC_ATTR_EVENT_PHASE", {"start", "update", "continue", "end"}),
    "4": ("MDC_ATTR_ALARM_STATE", {"off", "inactive", "active", "latched"}),
    "5": ("MDC_ATTR_ALARM_INACTIVATION_STATE", {"enabled", "audio-paused", "audio-off", "alarm-paused", "alarm-off", "alert-acknowledged"}),
    "6": ("MDC_ATTR_ALARM_PRIORITY", {"PN", "PL", "PM", "PH"}),
    "7": ("MDC_ATTR_ALERT_TYPE", {"SP", "ST", "SA"}),
}


def field(seg, n):
    return seg[n] if len(seg) > n else ""


def acm_checks(er7):
    segs = [s.split("|") for s in er7.split("\r") if s]
    msh = segs[0]
    if field(msh, 8) != "ORU^R40^ORU_R40":
        raise ValueError(f"MSH-9 is {field(msh, 8)!r}")
    p = field(msh, 20).split("^")
    if len(p) < 3 or p[0] != "IHE_PCD_ACM_001" or p[2] not in ACM_OIDS:
        raise ValueError(f"MSH-21 {field(msh, 20)!r} is not the ACM profile")
    obr = [s for s in segs if s[0] == "OBR"]
    if len(obr) != 1 or not field(obr[0], 4).startswith("196616^MDC_EVT_ALARM^MDC"):
        raise ValueError("not one OBR with OBR-4 196616^MDC_EVT_ALARM^MDC")
    ei = field(obr[0], 3).split("^")
    if len(ei) < 4 or ei[3] != "EUI-64" or not EUI64.match(ei[2]):
        raise ValueError(f"OBR-3 {field(obr[0], 3)!r} lacks the gateway's EUI-64")
    obx = [s for s in segs if s[0] == "OBX"]
    facets = {}
    for s in obx:
        facet = field(s, 4).rsplit(".", 1)[-1]
        if facet in facets:
            raise ValueError(f"facet .{facet} twice")
        facets[facet] = s
    for f in ("1", "3", "4", "5", "7"):
        if f not in facets:
            raise ValueError(f"facet .{f} missing")
    for f, (ref, values) in FACETS.items():
        if f in facets:
            s = facets[f]
            if ref not in field(s, 3) or field(s, 5) not in values:
                raise ValueError(f"facet .{f}: {field(s, 3)!r} = {field(s, 5)!r}")
    one = facets["1"]
    flags = field(one, 8).split("~")
    if flags[-1] != field(facets["7"], 5):
        raise ValueError(f"facet 1 OBX-8 {field(one, 8)!r} does not end with the alert type")
    if "6" in facets and field(facets["6"], 5) not in flags:
        raise ValueError("facet 1 OBX-8 lacks the priority")
    if any(field(s, 8) for f, s in facets.items() if f != "1"):
        raise ValueError("OBX-8 outside facet 1")
    eq = field(one, 18).split("^")
    if len(eq) < 4 or eq[3] != "EUI-64" or not EUI64.match(eq[0]):
        raise ValueError(f"facet 1 OBX-18 {field(one, 18)!r} is not an EUI-64")
    pv1 = [s for s in segs if s[0] == "PV1"]
    if not pv1 or not field(pv1[0], 3).replace("^", ""):
        raise ValueError("no PV1-3: the bed does not reach the receiver")


def messages(path):
    text = open(path, encoding="utf-8").read().replace("\r\n", "\n").replace("\r", "\n")
    for block in text.split("\n\n"):
        block = block.strip()
        if block:
            yield block.replace("\n", "\r")


bad = total = 0
for path in sys.argv[1:]:
    for i, er7 in enumerate(messages(path), 1):
        total += 1
        try:
            acm_checks(er7)
            as_r01 = er7.replace("|ORU^R40^ORU_R40|", "|ORU^R01^ORU_R01|", 1)
            msg = parse_message(as_r01, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
            msg.validate()
        except Exception as e:  # report every failure with the message number
            bad += 1
            print(f"{path}: message {i}: {type(e).__name__}: {e}")
print(f"{total - bad}/{total} messages valid (ACM checks; hl7apy strict, v2.6, ORU_R01 grammar)")
sys.exit(0 if bad == 0 and total > 0 else 1)
