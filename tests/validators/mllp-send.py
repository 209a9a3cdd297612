#!/usr/bin/env python3
"""An independent MLLP client for the ADT end-to-end tests: python-hl7's MLLPClient.

Usage: mllp-send.py HOST PORT < messages.json
stdin: a JSON list of HL7 messages (segments separated by carriage returns). Each is sent on
one connection, in order, and its ACK read and parsed with python-hl7 before the next is sent.
stdout: one JSON object per message: {"ack": MSA-1, "control_id": MSA-2, "error": ERR-3/ERR-1
or MSA-3 text, "raw": the ACK}; "ack" is null when no parsable ACK came back.
"""
import json
import sys

import hl7
from hl7.client import MLLPClient

SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"


def read_ack(client, first):
    """The bytes of one MLLP frame (recv may return part of it)."""
    data = first
    while EB + CR not in data:
        more = client.socket.recv(4096)
        if not more:
            break
        data += more
    return data.strip(SB).split(EB)[0].decode("utf-8", "replace")


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    messages = json.load(sys.stdin)
    with MLLPClient(host, port) as client:
        client.socket.settimeout(15)
        for text in messages:
            raw = read_ack(client, client.send_message(text))
            out = {"ack": None, "control_id": None, "error": None, "raw": raw}
            try:
                msg = hl7.parse(raw)
                msa = msg.segment("MSA")
                out["ack"] = str(msa[1])
                out["control_id"] = str(msa[2])
                try:
                    err = msg.segment("ERR")
                    out["error"] = str(err[3]) if len(err) > 3 and str(err[3]) else str(err[1])
                except KeyError:
                    out["error"] = str(msa[3]) if len(msa) > 3 else None
            except Exception as e:  # an unparsable ACK is reported, not hidden
                out["error"] = "unparsable ACK: %s" % e
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
