#!/usr/bin/env python3
"""Validates HL7 v2 messages with hl7apy at STRICT level (message structure, segment
cardinality, field and component data types, lengths) against the v2.6 ORU_R01 structure.

Usage: hl7-validate.py FILE...  Messages are separated by blank lines; segments by newlines.
Exit 1 if any message is invalid. Also checks what IHE PCD-01 (DEC) asks beyond the v2.6
structure: the profile id in MSH-21, the sending equipment's EUI-64 in MSH-3 and OBR-3, an
EUI-64 in OBX-18 of every OBX row, PV1-3 (the bed) in every message, and the containment tree in
OBX-4 (MDS 1.0.0.0 first, then each VMD 1.v.0.0, channel 1.v.c.0 and metric 1.v.c.m row after
its parents, numbered in order; description rows without a value and OBX-11 X).
"""
import re
import sys

from hl7apy.parser import parse_message
from hl7apy.consts import VALIDATION_LEVEL

PCD01 = "1.3.6.1.4.1.19376.1.6.1.1.1"
EUI64 = re.compile(r"^[0-9A-F]{16}$")


def pcd01_checks(er7):
    """The DEC profile's equipment identity (HL7 table 0301 `EUI-64`) and the bed, read from the
    raw segments so that hl7apy's group layout does not matter."""
    segs = [s.split("|") for s in er7.split("\r") if s]
    field = lambda seg, n: seg[n] if len(seg) > n else ""
    msh = segs[0]
    hd = field(msh, 2).split("^")  # MSH-3; MSH-1 is the separator, so MSH-n is index n-1
    if len(hd) < 3 or hd[2] != "EUI-64" or not EUI64.match(hd[1]):
        raise ValueError(f"MSH-3 {field(msh, 2)!r} is not <namespace>^<EUI-64>^EUI-64")
    for seg in segs:
        if seg[0] == "OBR":
            ei = field(seg, 3).split("^")
            if len(ei) < 4 or ei[3] != "EUI-64" or not EUI64.match(ei[2]):
                raise ValueError(f"OBR-3 {field(seg, 3)!r} is not <id>^<namespace>^<EUI-64>^EUI-64")
        if seg[0] == "OBX":
            ei = field(seg, 18).split("^")
            if len(ei) < 4 or ei[3] != "EUI-64" or not EUI64.match(ei[0]) or ei[2] != ei[0]:
                raise ValueError(f"OBX {seg[1]}: OBX-18 {field(seg, 18)!r} is not <EUI-64>^<ns>^<EUI-64>^EUI-64")
    containment(segs)
    pv1 = [seg for seg in segs if seg[0] == "PV1"]
    if not pv1 or not field(pv1[0], 3).replace("^", ""):
        raise ValueError("no PV1-3: the bed does not reach the receiver")

def containment(segs):
    """OBX-4 MDS.VMD.CHAN.METRIC: every metric's channel, VMD and MDS rows present, before it and
    in order (the same rules as protocols/tests/pcd01_check)."""
    at, metrics = None, 0
    for i, seg in enumerate([s for s in segs if s[0] == "OBX"], 1):
        f = lambda n: seg[n] if len(seg) > n else ""
        if f(1) != str(i):
            raise ValueError(f"OBX {f(1)}: OBX-1 should be {i}")
        parts = f(4).split(".")
        if len(parts) == 5 and at is not None:
            # A facet of the metric just written (IHE PCD TF-2 waveform rows: sample rate, data
            # range as MDS.VMD.CHAN.METRIC.FACET).
            if ".".join(parts[:4]) != "1.%d.%d.%d" % at or at[2] == 0 or not parts[4].isdigit() or int(parts[4]) < 1:
                raise ValueError(f"OBX {i}: facet {f(4)} does not belong to the metric before it")
            continue
        try:
            mds, v, c, m = (int(p) for p in parts)
        except ValueError:
            raise ValueError(f"OBX {i}: OBX-4 {f(4)!r} is not MDS.VMD.CHAN.METRIC")
        if mds != 1:
            raise ValueError(f"OBX {i}: OBX-4 {f(4)!r} is not in MDS 1")
        if m == 0 and (f(2) or f(5) or f(11) != "X"):
            raise ValueError(f"OBX {i}: a device-description row {f(4)} has a value or OBX-11 is not X")
        if m != 0 and not f(2):
            raise ValueError(f"OBX {i}: a metric without a value type")
        if at is None:
            if (v, c, m) != (0, 0, 0):
                raise ValueError(f"OBX {i}: the first OBX is not the MDS row 1.0.0.0")
            at = (0, 0, 0)
            continue
        pv, pc, pm = at
        if c == 0 and m == 0 and v == pv + 1:
            at = (v, 0, 0)
        elif m == 0 and v == pv and v > 0 and c == pc + 1:
            at = (v, c, 0)
        elif v == pv and c == pc and c > 0 and m == pm + 1:
            at = (v, c, m)
            metrics += 1
        else:
            raise ValueError(f"OBX {i}: OBX-4 {f(4)} does not follow {pv}.{pc}.{pm} in the containment tree")
    if metrics == 0:
        raise ValueError("no metric row")


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
            msg = parse_message(er7, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
            msg.validate()
            msh21 = msg.msh.msh_21.to_er7() if msg.msh.msh_21 else ""
            if PCD01 not in msh21:
                raise ValueError(f"MSH-21 {msh21!r} lacks the PCD-01 profile OID")
            if msg.msh.msh_9.to_er7() != "ORU^R01^ORU_R01":
                raise ValueError(f"MSH-9 is {msg.msh.msh_9.to_er7()!r}")
            pcd01_checks(er7)
        except Exception as e:  # report every failure with the message number
            bad += 1
            print(f"{path}: message {i}: {type(e).__name__}: {e}")
print(f"{total - bad}/{total} messages valid (hl7apy strict, HL7 v2.6 ORU_R01, PCD-01 equipment, bed and containment tree)")
sys.exit(0 if bad == 0 and total > 0 else 1)
