"""Schemathesis hooks for scripts/fuzz.py (loaded through SCHEMATHESIS_HOOKS).

- counts every request and its status per operation into $FUZZ_STATS (JSON, written at exit),
  so the run can prove how many requests it sent and that every route was reached;
- `token_refused`: with $FUZZ_EXPECT_401=1 (the runs with a broken or missing token) every
  answer must be 401 with the error envelope naming the token or the header;
- the watch router's own 500 (text/plain problem JSON, never an answer of our functions, which
  always send the JSON envelope) is retried up to 3 times: cargo lambda 1.9.2 drops about one
  in 10-30 answers of a function whose response is large (a list of a few hundred
  workspaces: 80 KB and up), and the function's runtime reconnects. A connection the router
  closes without an answer (seen once in 3,250 requests under load) is retried the same way.
  Retries are counted and printed; a function that panics is caught in the watch log whatever
  the retry did;
- bodies that are not UTF-8 go out as application/octet-stream: the local `cargo lambda watch`
  router answers such a body labelled `application/json` with a 500 of its own before any
  function runs (API Gateway is not the router); relabelled, the same bytes reach the function;
- half of the schema-valid completions of a parted upload complete a real one of the caller's;
- schema-valid list cases carry a `next_token` of the shape the API issues (it is opaque);
- positive import cases sometimes carry the platform's sample bundle, whole or with one value
  replaced or removed, so the fuzzer gets past "not a workspace export" into the bundle parser;
- a successful cleanup of one of the seeded workspaces (or its projects) re-imports the sample,
  so later cases keep finding data to load, list and export.
"""

import ast
import atexit
import base64
import copy
import hashlib
import json
import os
import threading
from collections import defaultdict
from pathlib import Path

import requests
import requests.adapters
import schemathesis
from hypothesis import strategies as st

STATS_PATH = os.environ.get("FUZZ_STATS")
EXPECT_401 = os.environ.get("FUZZ_EXPECT_401") == "1"
SEEDED = set(filter(None, os.environ.get("FUZZ_SEEDED_WORKSPACES", "").split(",")))
SAMPLE_PATH = os.environ.get("FUZZ_SAMPLE_BUNDLE")
SAMPLE = json.loads(Path(SAMPLE_PATH).read_text(encoding="utf-8")) if SAMPLE_PATH else None

_lock = threading.Lock()

# CPython 3.11's ast.parse is not safe to run in several threads at once ("SystemError: AST
# constructor recursion depth mismatch": the recursion bookkeeping is per interpreter), and
# Hypothesis parses source (to describe lambdas, read filter bounds, collect constants) from
# every Schemathesis worker thread. One parse at a time, then.
_ast_lock = threading.RLock()
_ast_parse = ast.parse


def _parse_one_at_a_time(*args, **kwargs):
    with _ast_lock:
        return _ast_parse(*args, **kwargs)


ast.parse = _parse_one_at_a_time

# operation label -> status code -> count
_stats = defaultdict(lambda: defaultdict(int))
_relabelled = [0]
_router_retries = [0]
_dropped_connections = [0]


def _dump():
    if not STATS_PATH:
        return
    with _lock:
        data = {
            "operations": {op: dict(codes) for op, codes in _stats.items()},
            "relabelled_non_utf8_bodies": _relabelled[0],
            "router_500_retried": _router_retries[0],
            "dropped_connections_retried": _dropped_connections[0],
        }
    with open(STATS_PATH, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)


atexit.register(_dump)


def _is_router_500(response):
    return (
        response.status_code == 500
        and response.headers.get("content-type", "").startswith("text/plain")
        and b"httpstatuses.com/500" in response.content
    )


_send = requests.adapters.HTTPAdapter.send


def _send_once_more_if_dropped(self, request, *args, **kwargs):
    for attempt in range(4):
        try:
            return _send(self, request, *args, **kwargs)
        except requests.exceptions.ConnectionError:
            if attempt == 3:
                raise
            with _lock:
                _dropped_connections[0] += 1


def _send_retrying_router_500(self, request, *args, **kwargs):
    response = _send_once_more_if_dropped(self, request, *args, **kwargs)
    for _ in range(3):
        if not _is_router_500(response):
            break
        with _lock:
            _router_retries[0] += 1
        response = _send_once_more_if_dropped(self, request, *args, **kwargs)
    return response


requests.adapters.HTTPAdapter.send = _send_retrying_router_500


def _label(case):
    return f"{case.method.upper()} {case.path}"


def _page_token(seed: str) -> str:
    """A `next_token` of the shape list-workspaces issues (base64url of `<updated_at>#<scope>#<id>`)."""
    key = f"2026-01-01T00:00:00.000000+00:00#user#ws_{hashlib.sha256(seed.encode()).hexdigest()[:16]}"
    return base64.urlsafe_b64encode(key.encode()).rstrip(b"=").decode()


_jobs = {}


def _seeded_job(case):
    """A real job of the fuzzing user (an export job of a seeded workspace), made once: job ids
    are random, so without one every job route would only ever answer 404."""
    org, user = case.path_parameters.get("org"), case.path_parameters.get("user")
    with _lock:
        if (org, user) in _jobs:
            return _jobs[(org, user)]
    job = None
    if SEEDED and not EXPECT_401:
        ws = sorted(SEEDED)[0]
        r = requests.post(
            f"{os.environ['FUZZ_ORIGIN']}/jarvispy/{org}/{user}/api/v1/workspaces/{ws}/export-tables",
            json={"async": True},
            headers={"Authorization": f"Bearer {os.environ['FUZZ_TOKEN']}"},
            timeout=60,
        )
        if r.status_code == 202:
            job = r.json()["data"]["job_id"]
    with _lock:
        _jobs[(org, user)] = job
    return job


def _seeded_upload(case):
    """A parted upload of the caller's, its one part sent: a body that completes it. Upload ids
    are random and each completes once, so without one the completion route would only ever
    answer 404."""
    org, user = case.path_parameters.get("org"), case.path_parameters.get("user")
    if EXPECT_401:
        return None
    api = f"{os.environ['FUZZ_ORIGIN']}/jarvispy/{org}/{user}/api/v1"
    auth = {"Authorization": f"Bearer {os.environ['FUZZ_TOKEN']}"}
    part = b'{"tables": []}'
    r = requests.post(f"{api}/workspaces/bundles", json={"size": len(part)}, headers=auth, timeout=60)
    if r.status_code != 200:
        return None
    slot = r.json()["data"]
    put = requests.put(slot["parts"][0]["url"], data=part, timeout=60)
    if put.status_code != 200 or "ETag" not in put.headers:
        return None
    body = {"upload_id": slot["upload_id"], "parts": [{"part_number": 1, "etag": put.headers["ETag"]}]}
    return slot["bundle_id"], body


@schemathesis.hook
def before_call(context, case, kwargs):
    # Half of the schema-valid job-route cases name a real job of the caller's.
    meta = getattr(case, "meta", None)
    params = case.path_parameters or {}
    if "job_id" in params and meta is not None and meta.generation.mode == "positive":
        if int(hashlib.sha256(str(params["job_id"]).encode()).hexdigest(), 16) % 2 == 0:
            job = _seeded_job(case)
            if job:
                case.path_parameters["job_id"] = job
    # Half of the schema-valid completions complete a real upload of the caller's.
    if "bundle_id" in params and case.path.endswith("/complete") and meta is not None \
            and meta.generation.mode == "positive" and isinstance(case.body, dict):
        if int(hashlib.sha256(json.dumps(case.body, sort_keys=True).encode()).hexdigest(), 16) % 2 == 0:
            seeded = _seeded_upload(case)
            if seeded:
                case.path_parameters["bundle_id"], case.body = seeded
    # `next_token` is opaque: the API answers 400 to any value it did not issue, which no schema
    # can say. A schema-valid case gets a token of the issued shape, so it pages instead.
    token = (case.query or {}).get("next_token")
    meta = getattr(case, "meta", None)
    jobs_list = case.path.endswith("/workspaces/jobs")
    if isinstance(token, str) and (token.strip() or jobs_list) and meta is not None and meta.generation.mode == "positive":
        if jobs_list:
            # The jobs list pages by job id (`job_` + 24 hex digits).
            key = "job_" + hashlib.sha256(token.encode()).hexdigest()[:24]
            case.query["next_token"] = base64.urlsafe_b64encode(key.encode()).rstrip(b"=").decode()
        else:
            case.query["next_token"] = _page_token(token)
    body = case.body
    if isinstance(body, (bytes, bytearray)) and (case.media_type or "").endswith("json"):
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            if case.headers is None:
                case.headers = {}
            case.headers["Content-Type"] = "application/octet-stream"
            with _lock:
                _relabelled[0] += 1


@schemathesis.hook
def after_call(context, case, response):
    with _lock:
        _stats[_label(case)][str(response.status_code)] += 1
    if EXPECT_401 or not SEEDED or SAMPLE is None or response.status_code != 200:
        return
    ws = (case.path_parameters or {}).get("workspace_id")
    if ws in SEEDED and case.path.endswith("/cleanup"):
        _reseed(case, ws)


def _reseed(case, ws):
    """Puts the sample back into a seeded workspace that a cleanup just emptied."""
    org, user = case.path_parameters["org"], case.path_parameters["user"]
    requests.post(
        f"{os.environ['FUZZ_ORIGIN']}/jarvispy/{org}/{user}/api/v1/workspaces/import-tables",
        json={"export_data": SAMPLE, "workspace_id": ws},
        headers={"Authorization": f"Bearer {os.environ['FUZZ_TOKEN']}"},
        timeout=60,
    )


@schemathesis.check
def token_refused(ctx, response, case):
    """With a broken or missing token nothing is processed: 401 and the error envelope."""
    # Probes with another method than the operation's never reach a function (404 from the router).
    if not EXPECT_401 or case.method.upper() != case.operation.method.upper():
        return None
    kind = os.environ.get("FUZZ_AUTH_KIND")
    assert response.status_code == 401, f"{kind}: expected 401, got {response.status_code}"
    body = response.json()
    assert body.get("data") is None and body.get("status") == "error", f"not the error envelope: {body}"
    message = str(body.get("message", "")).lower()
    assert "token" in message or "authorization" in message, f"message does not name the token: {body}"
    return None


# --- Import bodies built from the sample bundle ----------------------------------------------

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
_json_value = st.recursive(
    _json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=6,
)


def _paths(value, prefix=()):
    """Every path to a value inside the bundle, containers included."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, prefix + (k,)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, prefix + (i,)))
    return out


_SAMPLE_PATHS = [p for p in _paths(SAMPLE) if p] if SAMPLE is not None else []


def _mutated(path, action, new):
    bundle = copy.deepcopy(SAMPLE)
    parent = bundle
    for step in path[:-1]:
        parent = parent[step]
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return bundle


def _sample_bundles():
    whole = st.just(SAMPLE)
    changed = st.builds(
        _mutated,
        st.sampled_from(_SAMPLE_PATHS),
        st.sampled_from(["replace", "delete"]),
        _json_value,
    )
    return st.one_of(whole, changed)


@schemathesis.hook
def flatmap_case(context, case):
    op = context.operation
    is_import = op is not None and op.method.upper() == "POST" and op.path.endswith("/workspaces/import-tables")
    meta = getattr(case, "meta", None)
    positive = meta is not None and meta.generation.mode == "positive"
    if not (is_import and positive and SAMPLE is not None and isinstance(case.body, dict)):
        return st.just(case)

    def with_bundle(choice):
        use, bundle = choice
        if use:
            case.body = dict(case.body, export_data=bundle)
        return case

    return st.tuples(st.booleans(), _sample_bundles()).map(with_bundle)
