#!/usr/bin/env python3
"""Is verifying easier than generating for this model? (issue 19 item 2; docs/results.md)

Reads the `testbed` evaluator's rows of one evaluation directory per argument (e.g.
RUN/iter_0/eval, the seed model) and prints, per task family and overall:
  generate  share of eval prompts whose greedy answer is right (oracle >= 4);
  verify    share of the same prompts on which the judge scores the bare right answer above
            the plausible wrong one (ties count 0.5): telling right from wrong, given both;
  verify | generation wrong   the same, on the prompts the model answers wrongly itself.
A `verify | generation wrong` above 0.5 means the judge can check answers it cannot produce,
the gap the paper's self-improvement rests on. Standard library only.

usage: verify_vs_generate.py EVAL_DIR [EVAL_DIR ...]
"""
import json
import sys
from collections import defaultdict


def rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main(dirs):
    if not dirs:
        sys.exit(__doc__)
    print("| eval dir | family | prompts | generate | verify | verify, generation wrong (prompts) |")
    print("|---|---|---|---|---|---|")
    for d in dirs:
        answers = {a["id"]: a for a in rows(f"{d}/answers.jsonl")}
        by_prompt = defaultdict(dict)
        for j in rows(f"{d}/judgments.jsonl"):
            by_prompt[j["prompt_id"]][j["kind"]] = j.get("judge_score")
        stats = defaultdict(lambda: [0, 0, 0.0, 0, 0.0])  # prompts, generated, verified, n|wrong, verified|wrong
        for pid, a in answers.items():
            kinds = by_prompt.get(pid, {})
            right, wrong = kinds.get("bare_correct"), kinds.get("wrong")
            if right is None or wrong is None:
                continue  # a judgment that did not parse: no verdict to count
            verified = 1.0 if right > wrong else 0.5 if right == wrong else 0.0
            generated = a["oracle_score"] >= 4
            for fam in (a["task"], "all"):
                s = stats[fam]
                s[0] += 1
                s[1] += generated
                s[2] += verified
                if not generated:
                    s[3] += 1
                    s[4] += verified
        for fam in sorted(stats, key=lambda f: (f == "all", f)):
            n, g, v, nw, vw = stats[fam]
            cond = f"{vw / nw:.3f} ({nw})" if nw else "-"
            print(f"| {d} | {fam} | {n} | {g / n:.3f} | {v / n:.3f} | {cond} |")


if __name__ == "__main__":
    main(sys.argv[1:])
