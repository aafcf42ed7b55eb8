#!/usr/bin/env python3
"""Counts the records of a training data file with Python's own json module, independently of
zoo: a JSON array is decoded element by element (json.JSONDecoder.raw_decode), JSON lines line
by line, so a file cut short still gives the number of complete records before the cut.

Prints one JSON object: {"records": N, "complete": bool, "error": str|null, "turns": T}
(turns: the sum of the lengths of `conversations`/`messages` lists, where records have them).
"""
import json
import sys


def main(path):
    text = open(path, encoding="utf-8").read()
    dec = json.JSONDecoder()
    records = turns = 0
    error = None

    def take(v):
        nonlocal records, turns
        records += 1
        if isinstance(v, dict):
            for key in ("conversations", "messages"):
                if isinstance(v.get(key), list):
                    turns += len(v[key])

    i = len(text) - len(text.lstrip())
    if text[i:i + 1] == "[":
        i += 1
        while True:
            while i < len(text) and text[i] in " \t\r\n":
                i += 1
            if text[i:i + 1] == "]":
                break
            try:
                v, i = dec.raw_decode(text, i)
            except json.JSONDecodeError as e:
                error = f"record {records}: {e}"
                break
            take(v)
            while i < len(text) and text[i] in " \t\r\n":
                i += 1
            if text[i:i + 1] == ",":
                i += 1
            elif text[i:i + 1] == "]":
                break
            else:
                error = f"record {records}: expected ',' or ']' at char {i}"
                break
    else:
        for n, line in enumerate(text.splitlines()):
            if line.strip():
                try:
                    take(json.loads(line))
                except json.JSONDecodeError as e:
                    error = f"line {n + 1}: {e}"
                    break
    print(json.dumps({"records": records, "complete": error is None, "error": error, "turns": turns}))


if __name__ == "__main__":
    main(sys.argv[1])
