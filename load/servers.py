"""The set-up that load/cpu-per-request.py and load/throughput.py share: `commerce-load serve`
(PostgreSQL, Redis, the data set and a server of its own, left idle), then each server build to
compare as a server of its own on the same databases."""
import argparse, contextlib, os, re, signal, socket, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
LOAD = os.path.join(TARGET, "release", "commerce-load")


def positive(text):
    """An argparse type: a whole number above 0 (a count, a rate, seconds)."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def parse_builds(parser, specs):
    """`BIN[:ENV=VALUE,...]` arguments as (spec, binary, environment); a bad one is a usage
    error of `parser` (exit 2), before anything starts."""
    if not executable(LOAD):
        sys.exit(f"{LOAD} is missing: build it first (cargo xtask load smoke)")
    builds = []
    for spec in specs:
        binary, _, env = spec.partition(":")
        # A directory passes os.access(X_OK), and Popen then fails with a PermissionError.
        if not executable(binary):
            parser.error(f"{binary} is not an executable file")
        try:
            extra = dict(item.split("=", 1) for item in env.split(",") if item)
        except ValueError:
            parser.error(f"{spec}: the environment after ':' is ENV=VALUE,...")
        builds.append((spec, binary, extra))
    return builds


def executable(path):
    return os.path.isfile(path) and os.access(path, os.X_OK)


@contextlib.contextmanager
def started(work, builds):
    """Starts `serve` and one server per build; yields ([(spec, process, address)], the
    identities file). Stops them all when the block ends, however it ends (a SIGTERM to the
    script included)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    serve_out = os.path.join(work, "serve.out")
    # `serve` stops on Ctrl-C; it gets one when the block ends.
    serve = subprocess.Popen([LOAD, "serve"], stdin=subprocess.PIPE, cwd=ROOT,
                             stdout=open(serve_out, "w"), stderr=open(os.path.join(work, "serve.err"), "w"))
    servers = []
    try:
        text = ""
        for _ in range(900):
            text = open(serve_out).read()
            # The identities line comes after the address.
            if re.search(r"identities:\s+\S+", text) or serve.poll() is not None:
                break
            time.sleep(1)
        match = re.search(r"gRPC:\s+(\S+)", text)
        identities = re.search(r"identities:\s+(\S+)", text)
        if not match or not identities:
            sys.exit(f"commerce-load serve did not start; see {work}/serve.err")
        addr = match.group(1)
        pid = int(subprocess.check_output(["pgrep", "-f", "--", f"--listen {addr}"]).split()[0])
        args = [a.decode() for a in open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[1:-1]]
        for spec, binary, extra in builds:
            own = list(args)
            own[own.index("--listen") + 1] = f"127.0.0.1:{free_port()}"
            own[own.index("--metrics-addr") + 1] = f"127.0.0.1:{free_port()}"
            log = open(os.path.join(work, f"server-{len(servers)}.log"), "w")
            process = subprocess.Popen([binary] + own, env=dict(os.environ, RUST_LOG="warn", **extra),
                                       stdout=log, stderr=log)
            servers.append((spec, process, own[own.index("--listen") + 1]))
        time.sleep(3)
        yield servers, os.path.join(ROOT, identities.group(1))
    finally:
        for _, process, _ in servers:
            process.terminate()
        for _, process, _ in servers:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            serve.kill()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
