#!/usr/bin/env python3
"""Closed-loop throughput of commerce-server builds, measured interleaved against one set-up.

    load/throughput.py [--rounds N] [--users U] [--seconds S] [--scenarios A,B] BIN[:ENV=VALUE,...] ...

Starts `commerce-load serve` (PostgreSQL, Redis, the data set and a server of its own, which is
left idle), then each BIN as a server of its own on the same databases (with the environment
variables given after `:`). Round after round, in alternating order, it drives each server with
each scenario (default GetCart, then Health/Check) in a closed loop: U users (default 64), each
sending its next call as soon as the last one is answered, for S seconds after a 2 s warm-up.
What a round reports is the calls answered per second: the machine's limit for that build,
with the generator, PostgreSQL and Redis on the same cores, as in `cargo xtask load capacity`.
Medians per build and scenario at the end, and with both scenarios the ratio of GetCart's to
Health/Check's (the gRPC stack's ceiling) per build.

Unlike `capacity`, which steps an open-model rate until p95 or errors fail, a closed loop has
no latency limit; it needs a few seconds a run instead of minutes, and builds measured in one
run compare within a few percent (the rounds show the spread). Compare builds with it; quote
breaking points from `capacity`. Needs a bench build of commerce-load (`cargo xtask load smoke`
makes one). Linux only.
"""
import argparse, json, os, subprocess, sys, tempfile

import servers as servers_
from servers import LOAD, ROOT

# The scenarios that can be measured: operations of commerce-load's mix, each alone.
SCENARIOS = {"get_cart": "GetCart", "health": "Health/Check", "list_orders": "ListOrders"}
PROFILE = """
[profiles.{name}]
description = "{title}, closed loop"
warmup = "2s"
[[profiles.{name}.scenarios]]
name = "{name}"
executor = "constant-vus"
vus = {users}
duration = "{seconds}s"
mix = {{ {name} = 1 }}
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=servers_.positive, default=3)
    parser.add_argument("--users", type=servers_.positive, default=64)
    parser.add_argument("--seconds", type=servers_.positive, default=8)
    parser.add_argument("--scenarios", default="get_cart,health",
                        help=f"comma-separated, of: {', '.join(SCENARIOS)}")
    parser.add_argument("builds", nargs="+", metavar="BIN[:ENV=VALUE,...]")
    flags = parser.parse_args()
    scenarios = list(dict.fromkeys(name for name in flags.scenarios.split(",") if name))
    unknown = [name for name in scenarios if name not in SCENARIOS]
    if unknown or not scenarios:
        parser.error(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    builds = servers_.parse_builds(parser, flags.builds)

    work = tempfile.mkdtemp(prefix="throughput.")
    profiles = os.path.join(work, "profiles.toml")
    with open(profiles, "w") as f:
        for name in scenarios:
            f.write(PROFILE.format(name=name, title=SCENARIOS[name], users=flags.users,
                                   seconds=flags.seconds))
    with servers_.started(work, builds) as (servers, identities):
        results = {}
        for round_ in range(flags.rounds):
            order = servers if round_ % 2 == 0 else servers[::-1]
            for scenario in scenarios:
                for spec, process, target in order:
                    if process.poll() is not None:
                        sys.exit(f"the server {spec} exited ({process.returncode}); see {work}")
                    report = os.path.join(work, "report.json")
                    if os.path.exists(report):
                        os.remove(report)
                    code = subprocess.run(
                        [LOAD, "--profiles", profiles, scenario, "--target", target,
                         "--identities", identities, "--progress", "0",
                         "--json", report, "--html", os.path.join(work, "report.html")],
                        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
                    rate, errors = answered(report)
                    # Calls answered with an error do not count: a build that fails fast is not
                    # faster.
                    if rate is None:
                        sys.exit(f"commerce-load wrote no report (exit {code}) for {scenario} on {spec}")
                    results.setdefault((scenario, spec), []).append(rate)
                    note = "" if errors == 0 else f"  ({errors} errors)"
                    print(f"round {round_ + 1}  {scenario:11}  {spec:40}  {rate:9.0f}/s{note}", flush=True)
        print(f"medians of {flags.rounds} rounds, {flags.users} users, {flags.seconds} s each:")
        medians = {}
        for (scenario, spec), values in sorted(results.items()):
            values = sorted(values)
            # The lower of the two middle values for an even number of rounds, as
            # commerce-load's medians of rounds.
            medians[(scenario, spec)] = values[(len(values) - 1) // 2]
            print(f"  {scenario:11}  {spec:40}  {medians[(scenario, spec)]:9.0f}/s"
                  f"  (all: {', '.join(f'{v:.0f}' for v in values)})")
        if "get_cart" in scenarios and "health" in scenarios:
            for spec, _, _ in builds:
                ratio = medians[("get_cart", spec)] / medians[("health", spec)]
                print(f"  GetCart / Health/Check  {spec:40}  {ratio:.3f}")


def answered(report):
    """Calls answered without an error per second, and the errors, from a commerce-load JSON
    report (its `rps` counts every completed call, errors included)."""
    try:
        scenario = json.load(open(report))["scenarios"][0]
        errors = scenario.get("errors", 0) or 0
        return scenario["rps"] * (1 - (scenario.get("errorRate", 0) or 0)), errors
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None, None


if __name__ == "__main__":
    main()
