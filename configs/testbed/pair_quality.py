#!/usr/bin/env python3
"""Oracle view of a run's actor preference pairs (docs/results.md): for each RUN/iter_T/
actor_pairs.jsonl, the share of pairs whose chosen answer is right and rejected one wrong
("teaches correctness"), the reverse ("teaches a mistake"), and pairs with both right or both
wrong. "Right" is the exact answer as the only number in the response (the oracle's criterion
4), recomputed here for the testbed's families. Standard library only.

usage: pair_quality.py RUN [RUN ...]   (runs of one variant are pooled per iteration)
"""
import json
import re
import sys
from collections import defaultdict


def answer(prompt):
    nums = re.findall(r"\d+", prompt)
    if prompt.startswith("Add the numbers"):
        return str(int(nums[0]) + int(nums[1]))
    if prompt.startswith("Multiply the numbers"):
        return str(int(nums[0]) * int(nums[1]))
    m = re.match(r"Count the letter '(.)' in: (\w+)", prompt)
    if m:
        return str(m.group(2).count(m.group(1)))
    m = re.match(r"Sort ascending: (.*)", prompt)
    if m:
        return " ".join(sorted(m.group(1).split(), key=int))
    m = re.match(r"Reverse the word: (\w+)", prompt)
    if m:
        return m.group(1)[::-1]
    return None


def right(prompt, text):
    a = answer(prompt)
    if a is None:
        return False
    if " " in a or not a.isdigit():
        return a in text
    return re.findall(r"\d+", text) == [a]


def main(runs):
    if not runs:
        sys.exit(__doc__)
    counts = defaultdict(lambda: defaultdict(int))
    for run in runs:
        for it in range(1, 100):
            try:
                lines = open(f"{run}/iter_{it}/actor_pairs.jsonl").read().splitlines()
            except (FileNotFoundError, NotADirectoryError):
                break
            for line in lines:
                p = json.loads(line)
                prompt = p["prompt"][-1]["content"]
                c, r = right(prompt, p["chosen"][-1]["content"]), right(prompt, p["rejected"][-1]["content"])
                key = {(True, False): "teaches correctness", (False, True): "teaches a mistake",
                       (True, True): "both right", (False, False): "both wrong"}[(c, r)]
                counts[it][key] += 1
                counts[it]["pairs"] += 1
    print("| iteration | pairs (all runs) | teaches correctness | teaches a mistake | both right | both wrong |")
    print("|---|---|---|---|---|---|")
    for it in sorted(counts):
        c = counts[it]
        n = c["pairs"]
        cells = " | ".join(f"{c[k] / n:.2f}" for k in
                           ("teaches correctness", "teaches a mistake", "both right", "both wrong"))
        print(f"| {it} | {n} | {cells} |")


if __name__ == "__main__":
    main(sys.argv[1:])
