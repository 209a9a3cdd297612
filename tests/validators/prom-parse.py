#!/usr/bin/env python3
"""Parses Prometheus text exposition with the reference client library's parser and prints the
samples as JSON lines ({"name", "labels", "value"}), or fails (exit 1) on a format error.
Usage: prom-parse.py FILE"""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

text = open(sys.argv[1], encoding="utf-8").read()
try:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            print(json.dumps({"family": family.name, "type": family.type, "name": s.name, "labels": s.labels, "value": s.value}))
except Exception as e:  # the parser raises ValueError on malformed input
    print(f"invalid Prometheus text: {e}", file=sys.stderr)
    sys.exit(1)
