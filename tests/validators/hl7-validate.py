#!/usr/bin/env python3
"""Validates HL7 v2 messages with hl7apy at STRICT level (message structure, segment
cardinality, field and component data types, lengths) against the v2.6 ORU_R01 structure.

Usage: hl7-validate.py FILE...  Messages are separated by blank lines; segments by newlines.
Exit 1 if any message is invalid. Also checks the IHE PCD-01 profile id in MSH-21.
"""
import sys

from hl7apy.parser import parse_message
from hl7apy.consts import VALIDATION_LEVEL

PCD01 = "1.3.6.1.4.1.19376.1.6.1.1.1"

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
        except Exception as e:  # report every failure with the message number
            bad += 1
            print(f"{path}: message {i}: {type(e).__name__}: {e}")
print(f"{total - bad}/{total} messages valid (hl7apy strict, HL7 v2.6 ORU_R01)")
sys.exit(0 if bad == 0 and total > 0 else 1)
