#!/usr/bin/env python3
"""CPU time per request of commerce-server builds, measured interleaved against one set-up.

    load/cpu-per-request.py [--rounds N] [--rate R] [--seconds S] BIN[:ENV=VALUE,...] ...

Starts `commerce-load serve` (PostgreSQL, Redis, the data set and a server of its own, which is
left idle), then each BIN as a server of its own on the same databases (with the environment
variables given after `:`). Round after round, in alternating order, it drives each server with
GetCart and then Health/Check at a constant R requests/s (commerce-load, one run per
measurement, warm-up 3 s) and reads the server's user + system CPU time from /proc over S
seconds of it: CPU microseconds per request. Medians per build and scenario at the end.

Time per request is what a breaking point divides into the machine's CPU; unlike a latency,
it barely moves with the machine's spells, so builds compare within a few percent (the rounds
show the spread). At a moderate rate part of it is waking up for each request, which a
saturated server does less of; compare builds at the same rate. Needs a bench build of
commerce-load (`cargo xtask load smoke` makes one). Linux only (/proc).
"""
import argparse, json, os, subprocess, sys, tempfile, time

import servers as servers_
from servers import LOAD, ROOT

# The scenarios measured, each an operation of commerce-load's mix, alone at a constant rate.
SCENARIOS = [("get_cart", "GetCart"), ("health", "Health/Check")]
PROFILE = """
[profiles.{name}]
description = "{title} at a constant rate"
warmup = "3s"
[[profiles.{name}.scenarios]]
name = "{name}"
executor = "constant-arrival-rate"
rate = {rate}
duration = "{duration}s"
mix = {{ {name} = 1 }}
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=servers_.positive, default=3)
    parser.add_argument("--rate", type=servers_.positive, default=8000)
    parser.add_argument("--seconds", type=servers_.positive, default=14)
    parser.add_argument("builds", nargs="+", metavar="BIN[:ENV=VALUE,...]")
    flags = parser.parse_args()
    builds = servers_.parse_builds(parser, flags.builds)

    work = tempfile.mkdtemp(prefix="cpu-per-request.")
    profiles = os.path.join(work, "profiles.toml")
    with open(profiles, "w") as f:
        for name, title in SCENARIOS:
            f.write(PROFILE.format(name=name, title=title, rate=flags.rate, duration=flags.seconds + 2))
    with servers_.started(work, builds) as (servers, identities):
        results = {}
        for round_ in range(flags.rounds):
            order = servers if round_ % 2 == 0 else servers[::-1]
            for scenario, _ in SCENARIOS:
                for spec, process, target in order:
                    if process.poll() is not None:
                        sys.exit(f"the server {spec} exited ({process.returncode}); see {work}")
                    report = os.path.join(work, "report.json")
                    # A report left by the measurement before must not stand for this one.
                    if os.path.exists(report):
                        os.remove(report)
                    load_err = os.path.join(work, "commerce-load.err")
                    with open(load_err, "w") as err:
                        run = subprocess.Popen(
                            [LOAD, "--profiles", profiles, scenario, "--target", target,
                             "--identities", identities, "--progress", "0",
                             "--json", report, "--html", os.path.join(work, "report.html")],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
                    time.sleep(4)  # the warm-up and a second
                    # A server that exited stays a zombie until polled: its /proc/PID/stat is
                    # still there, with the CPU time it had.
                    cpu0, t0 = cpu_seconds(process.pid), time.monotonic()
                    time.sleep(flags.seconds)
                    cpu1, t1 = cpu_seconds(process.pid), time.monotonic()
                    code = run.wait()
                    # The CPU time of a server that died, or under a run that failed, is not that
                    # of the requests: no figure, and no median with it.
                    if process.poll() is not None:
                        sys.exit(f"the server {spec} exited ({process.returncode}) during {scenario} in "
                                 f"round {round_ + 1}; see {work}")
                    errors = failed(report)
                    if code != 0 or errors < 0:
                        sys.exit(f"commerce-load failed (exit {code}"
                                 f"{', no report' if errors < 0 else ''}) for {scenario} on {spec} in "
                                 f"round {round_ + 1}; see {load_err}")
                    per_request = (cpu1 - cpu0) / (flags.rate * (t1 - t0)) * 1e6
                    results.setdefault((scenario, spec), []).append(per_request)
                    note = "" if errors == 0 else f"  ({errors} failed)"
                    print(f"round {round_ + 1}  {scenario:8}  {spec:40}  {per_request:6.1f} µs CPU a request{note}",
                          flush=True)
        print(f"medians of {flags.rounds} rounds at {flags.rate}/s, {flags.seconds} s each:")
        for (scenario, spec), values in sorted(results.items()):
            values = sorted(values)
            print(f"  {scenario:8}  {spec:40}  {values[len(values) // 2]:6.1f} µs"
                  f"  (all: {', '.join(f'{v:.1f}' for v in values)})")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def failed(report):
    try:
        scenarios = json.load(open(report))["scenarios"]
        return sum(s.get("errors", 0) or 0 for s in scenarios)
    except (OSError, ValueError, KeyError, TypeError):
        return -1


if __name__ == "__main__":
    main()
