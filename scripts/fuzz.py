#!/usr/bin/env python3
"""Property-based fuzzing of the running API with Schemathesis (run by scripts/fuzz.sh).

One run with a valid token (examples, coverage and fuzzing; `make fuzz` adds the stateful
phase, whose sequences depend on the answers and the order of four workers, so it cannot be
repeated from a seed and stays out of `make test`), then one run
per broken token (missing, garbage, expired, signed with another secret) in which every answer
must be a 401. Checks: no 5xx, status codes and bodies as openapi.yaml says, schema-valid
requests accepted and invalid ones refused, auth enforced, resources usable after creation and
gone after deletion (see scripts/fuzz.toml for the few checks left out and why).

Environment (scripts/fuzz.sh sets the first five):
  FUZZ_ORIGIN          e.g. http://127.0.0.1:9000
  FUZZ_TOKEN           a valid token for FUZZ_ORG/FUZZ_USER
  FUZZ_SECRET          the server's HS256 secret (for the expired token; `workspaces token` refuses
                       a non-positive TTL)
  FUZZ_WRONG_TOKEN     a token for FUZZ_ORG/FUZZ_USER signed with another secret
  FUZZ_ORG, FUZZ_USER
  FUZZ_SEED            Hypothesis seed (make test: fixed; make fuzz: fresh, printed)
  FUZZ_EXAMPLES        max examples per operation of the valid-token run (broken runs: a fifth)
  FUZZ_SECONDS         0: stop after FUZZ_EXAMPLES (repeatable); >0: keep fuzzing for about that
                       long in total (schemathesis --max-time), split over the runs
  FUZZ_MIN_REQUESTS    fail unless at least this many requests were sent (default 5000)
  FUZZ_TIMEOUT         0: none; else a run still going that many seconds after the start is
                       stopped and fails (make test: 300)
  FUZZ_WORKERS         concurrent requests per run (default 4)
  FUZZ_REPORT_DIR      where logs, JUnit reports and request counts go
Prints one line per run, a per-operation table, and `N passed, M failed` last (each operation
of each run is one test, plus the run-wide checks); exits 1 on any failure.
"""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
SPEC = ROOT / "openapi.yaml"
CONFIG = SCRIPTS / "fuzz.toml"
SAMPLE = ROOT / "tests" / "fixtures" / "prometheux-export-sample.json"
VENV_BIN = Path(sys.executable).parent


def env(name, default=None):
    value = os.environ.get(name, default)
    if value is None:
        sys.exit(f"fuzz.py: {name} is not set (scripts/fuzz.sh sets it)")
    return value


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def expired_token(secret: str, org: str, user: str) -> str:
    """An HS256 token shaped like `workspaces token`'s, correctly signed, that expired an hour ago
    (well past the verifier's 30 s leeway)."""
    now = int(time.time())
    header = {"typ": "JWT", "alg": "HS256"}
    claims = {"sub": f"{org}:{user}", "username": user, "organization": org, "role": "user",
              "iat": now - 7200, "exp": now - 3600}
    signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64url(sig)


def seed(origin, org, user, token, workspaces, sample):
    """Imports the sample bundle into each seeded workspace (created by the import)."""
    url = f"{origin}/jarvispy/{org}/{user}/api/v1/workspaces/import-tables"
    for ws in workspaces:
        r = requests.post(url, json={"export_data": sample, "workspace_id": ws},
                          headers={"Authorization": f"Bearer {token}"}, timeout=60)
        if r.status_code != 200:
            sys.exit(f"fuzz.py: seeding {ws} failed: {r.status_code} {r.text[:300]}")


def junit_results(path: Path):
    """(operation, failed) per test case of a Schemathesis JUnit report."""
    if not path.exists():
        return []
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        # A run stopped by FUZZ_TIMEOUT leaves its report half-written: no results, which the
        # caller counts as a failure (the timeout is one already).
        return []
    return [(tc.get("name"), any(c.tag in ("failure", "error") for c in tc)) for tc in root.iter("testcase")]


def main():
    origin = env("FUZZ_ORIGIN").rstrip("/")
    org, user = env("FUZZ_ORG"), env("FUZZ_USER")
    token, secret, wrong = env("FUZZ_TOKEN"), env("FUZZ_SECRET"), env("FUZZ_WRONG_TOKEN")
    seed_value = int(env("FUZZ_SEED", "20261128"))
    examples = int(env("FUZZ_EXAMPLES", "100"))
    seconds = int(env("FUZZ_SECONDS", "0"))
    min_requests = int(env("FUZZ_MIN_REQUESTS", "5000"))
    workers = env("FUZZ_WORKERS", "4")
    timeout = int(env("FUZZ_TIMEOUT", "0"))
    out = Path(env("FUZZ_REPORT_DIR", str(ROOT / ".local" / "fuzz")))
    out.mkdir(parents=True, exist_ok=True)

    started = time.time()
    config = tomllib.loads(CONFIG.read_text())
    seeded = config["dictionaries"]["seeded_workspaces"]["values"]
    sample = json.loads(SAMPLE.read_text())
    seed(origin, org, user, token, seeded, sample)

    broken_examples = max(1, examples // 5)
    # (name, Authorization header or None, every answer must be 401, examples, phases, share of time)
    valid_phases = "examples,coverage,fuzzing" + (",stateful" if seconds else "")
    runs = [
        ("valid-token", f"Bearer {token}", False, examples, valid_phases, 0.7),
        ("no-token", None, True, broken_examples, "examples,coverage,fuzzing", 0.075),
        ("garbage-token", "Bearer not.a.jwt", True, broken_examples, "examples,coverage,fuzzing", 0.075),
        ("expired-token", f"Bearer {expired_token(secret, org, user)}", True, broken_examples,
         "examples,coverage,fuzzing", 0.075),
        ("wrong-secret-token", f"Bearer {wrong}", True, broken_examples, "examples,coverage,fuzzing", 0.075),
    ]
    print(f"fuzz: schemathesis against {origin} as {org}/{user}, seed {seed_value}, "
          f"{'%d s' % seconds if seconds else '%d examples per operation' % examples}; reports in {out}")

    tests = []  # (run, name, passed)
    retried, relabelled = {}, {}
    stats_all = {}  # run -> {operation: {status: count}}
    for name, auth, expect_401, n, phases, share in runs:
        junit = out / f"{name}.junit.xml"
        stats = out / f"{name}.requests.json"
        log = out / f"{name}.log"
        for stale in (junit, stats):
            stale.unlink(missing_ok=True)
        cmd = [str(VENV_BIN / "schemathesis"), "--config-file", str(CONFIG), "run", str(SPEC),
               "--url", origin, "--seed", str(seed_value), "--max-examples", str(n),
               # Every check but two: the functions never see a method their route does not
               # name (API Gateway, and locally the watch router, answer those 404 first).
               "--checks", "all", "--exclude-checks", "unsupported_method,allow_header_conformance",
               "--phases", phases, "--workers", workers, "--no-color", "--report", "junit",
               "--report-junit-path", str(junit), "--request-timeout", "120",
               # Show the values that failed: the tokens are this run's own, for a local server.
               "--output-sanitize", "false",
               # Keep generating after an operation's first failure: every distinct one is kept.
               "--continue-on-failure"]
        # No response-time check: a timed assertion fails on a busy 2-core machine for reasons
        # that are not the API's (a 401 took 55 s there while builds ran beside it). Time is
        # shown by `make bench`, never asserted by a test.
        if seconds:
            cmd += ["--max-time", str(max(10, int(seconds * share)))]
        if auth:
            cmd += ["--header", f"Authorization: {auth}"]
        else:
            # Nothing in the Authorization header, not even one Schemathesis made up.
            cmd += ["--generation-with-security-parameters", "false"]
        run_env = dict(os.environ, SCHEMATHESIS_HOOKS=str(SCRIPTS / "fuzz_hooks.py"), FUZZ_STATS=str(stats),
                       FUZZ_EXPECT_401="1" if expect_401 else "0", FUZZ_AUTH_KIND=name,
                       FUZZ_SEEDED_WORKSPACES=",".join(seeded), FUZZ_SAMPLE_BUNDLE=str(SAMPLE))
        t0 = time.time()
        left = timeout - (t0 - started) if timeout else None
        with open(log, "w") as f:
            try:
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(cmd, 0)
                rc = subprocess.run(cmd, env=run_env, stdout=f, stderr=subprocess.STDOUT, cwd=out,
                                    timeout=left).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
                tests.append((name, f"finished within FUZZ_TIMEOUT={timeout}s", False))
                print(f"fuzz: {name}: stopped, FUZZ_TIMEOUT={timeout}s is spent")
        took = time.time() - t0
        results = junit_results(junit)
        counts = json.loads(stats.read_text()) if stats.exists() else {"operations": {}}
        stats_all[name] = counts["operations"]
        sent = sum(sum(c.values()) for c in counts["operations"].values())
        retried[name] = counts.get("router_500_retried", 0)
        dropped = counts.get("dropped_connections_retried", 0)
        relabelled[name] = counts.get("relabelled_non_utf8_bodies", 0)
        failed = [op for op, bad in results if bad]
        for op, bad in results:
            tests.append((name, op, not bad))
        if not results and rc != "timeout":
            tests.append((name, "schemathesis run (no report)", False))
        print(f"fuzz: {name}: {sent} requests in {took:.0f}s, {len(results) - len(failed)} of {len(results)} "
              f"operations passed (schemathesis exit {rc}; {retried[name]} router 500s and {dropped} dropped "
              f"connections retried, "
              f"{relabelled[name]} non-UTF-8 bodies sent as octet-stream)")
        if rc != 0 or failed or not results:
            text = log.read_text(errors="replace")
            cut = text.find("FAILURES")
            print(text[cut - 40 if cut > 0 else 0:][-20000:])

    # Run-wide checks.
    spec_ops = set()
    import yaml  # PyYAML comes with the venv (cfn-lint, moto, schemathesis)
    for path, item in yaml.safe_load(SPEC.read_text())["paths"].items():
        for method in item:
            if method in ("get", "put", "post", "delete", "patch"):
                spec_ops.add(f"{method.upper()} {path}")
    total = sum(sum(sum(c.values()) for c in ops.values()) for ops in stats_all.values())
    fivexx = {(run, op, code): n for run, ops in stats_all.items() for op, codes in ops.items()
              for code, n in codes.items() if code.startswith("5")}
    valid = stats_all.get("valid-token", {})
    unreached = sorted(op for op in spec_ops if not any(c.startswith("2") for c in valid.get(op, {})))
    tests.append(("all", f"at least {min_requests} requests (sent {total})", total >= min_requests))
    tests.append(("all", "no 5xx answer", not fivexx))
    tests.append(("valid-token", "every operation answered 2xx at least once", not unreached))
    # A function that panicked is a bug even when a retry hid it from Schemathesis.
    watch_log = os.environ.get("FUZZ_WATCH_LOG")
    panics = []
    if watch_log and Path(watch_log).exists():
        panics = [line.strip() for line in Path(watch_log).read_text(errors="replace").splitlines()
                  if "panicked at" in line]
        tests.append(("all", "no function panicked (watch log)", not panics))

    print("\nfuzz: requests per operation with a valid token (status: count):")
    for op in sorted(spec_ops):
        codes = valid.get(op, {})
        print(f"  {op:72s} {sum(codes.values()):6d}  " + " ".join(f"{k}:{v}" for k, v in sorted(codes.items())))
    if fivexx:
        print("fuzz: 5xx answers:", ", ".join(f"{r} {op} {c} x{n}" for (r, op, c), n in sorted(fivexx.items())))
    if panics:
        print("fuzz: panics in the watch log:\n  " + "\n  ".join(panics[:20]))
    if unreached:
        print("fuzz: never answered 2xx with a valid token:", ", ".join(unreached))
    for run, op, ok in tests:
        if not ok:
            print(f"FAILED fuzz {run}: {op}")
    passed = sum(1 for t in tests if t[2])
    print(f"fuzz: {total} requests in {time.time() - started:.0f}s, seed {seed_value}")
    print(f"{passed} passed, {len(tests) - passed} failed")
    return 0 if passed == len(tests) else 1


if __name__ == "__main__":
    sys.exit(main())
