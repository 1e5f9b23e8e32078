#!/usr/bin/env python3
"""End-to-end smoke test against a running server (`cargo lambda watch`, started by
scripts/test.sh): the contract's own Python examples and its curl example for save, run as
printed in /work/shared/reference/workspaces-api.txt with only the host swapped.

Environment: SMOKE_ORIGIN (e.g. http://127.0.0.1:9000), SMOKE_TOKEN (a token for
SMOKE_ORG/SMOKE_USER, default my-org/my-user).
Prints one line per check and `N passed, M failed` last; exits non-zero on any failure.
"""

import hashlib
import json
import os
import subprocess
import sys
import traceback
import uuid

import requests

# ---------------------------------------------------------------------------------------------
# Copied verbatim from the contract (Python Examples of Save, List and Load Workspace).


def save_workspace(base_url, token, workspace_data):
    """Create or update a workspace."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json"
    }
    response = requests.post(f"{base_url}/workspaces/save",
                             headers=headers, json=workspace_data)
    return response.json()


def list_workspaces(base_url, token, scope="user"):
    """List all accessible workspaces."""
    headers = {"Authorization": f"Bearer {token}"}
    params = {"scope": scope}
    response = requests.get(f"{base_url}/workspaces/list",
                            headers=headers, params=params)
    return response.json()


def load_workspace(base_url, token, workspace_id, scope="user"):
    """Load a specific workspace."""
    headers = {"Authorization": f"Bearer {token}"}
    params = {"scope": scope}
    response = requests.get(f"{base_url}/workspaces/{workspace_id}/load",
                            headers=headers, params=params)
    return response.json()


def export_workspace_tables(base_url, token, workspace_id, scope="user"):
    """Export all tables from a workspace."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json"
    }
    data = {"scope": scope}
    response = requests.post(f"{base_url}/workspaces/{workspace_id}/export-tables",
                             headers=headers, json=data)
    return response.json()


def import_workspace_tables(base_url, token, export_data, workspace_id, scope="user"):
    """Import workspace tables from exported data."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json"
    }
    data = {
        "export_data": export_data,
        "workspace_id": workspace_id,
        "scope": scope
    }
    response = requests.post(f"{base_url}/workspaces/import-tables",
                             headers=headers, json=data)
    return response.json()


# The contract's cURL Example for Save Workspace, verbatim.
CONTRACT_CURL_SAVE = """curl -X POST "https://platform.prometheux.ai/jarvispy/my-org/my-user/api/v1/workspaces/save" \\
-H "Content-Type: application/json" \\
-H "Authorization: Bearer YOUR_JWT_TOKEN" \\
-d '{
"name": "Financial Analysis Workspace",
"description": "Workspace for financial data analysis and reporting",
"metadata": {
"department": "finance",
"created_by": "analyst_team"
}
}'"""
CONTRACT_HOST = "https://platform.prometheux.ai"

# ---------------------------------------------------------------------------------------------

ORIGIN = os.environ["SMOKE_ORIGIN"].rstrip("/")
token = os.environ["SMOKE_TOKEN"]
ORG = os.environ.get("SMOKE_ORG", "my-org")
USER = os.environ.get("SMOKE_USER", "my-user")
base_url = f"{ORIGIN}/jarvispy/{ORG}/{USER}/api/v1"

ENVELOPE_KEYS = ["data", "message", "status"]
state = {}
results = []


def check(fn):
    """Runs the check now and records it; a check fails by raising."""
    name = fn.__name__.replace("_", " ")
    try:
        fn()
        results.append(True)
        print(f"PASS  {name}", flush=True)
    except Exception as e:  # noqa: BLE001 - any failure is a failed check
        results.append(False)
        print(f"FAIL  {name}: {type(e).__name__}: {e}", flush=True)
        if os.environ.get("SMOKE_VERBOSE"):
            traceback.print_exc()
    return fn


def success_envelope(body, what):
    assert isinstance(body, dict), f"{what}: not a JSON object: {body!r}"
    assert list(body.keys()) == ENVELOPE_KEYS, f"{what}: keys {list(body.keys())}, want {ENVELOPE_KEYS}"
    assert body["status"] == "success", f"{what}: status {body['status']!r}: {body}"
    assert isinstance(body["message"], str) and body["message"], f"{what}: empty message"
    return body["data"]


def error_envelope(resp, want_status, what):
    assert resp.status_code == want_status, f"{what}: HTTP {resp.status_code}, want {want_status}: {resp.text[:300]}"
    body = resp.json()
    assert list(body.keys()) == ENVELOPE_KEYS, f"{what}: keys {list(body.keys())}"
    assert body["status"] == "error" and body["data"] is None, f"{what}: {body}"
    assert isinstance(body["message"], str) and body["message"], f"{what}: empty message"
    return body


WORKSPACE = {
    "name": "Financial Analysis Workspace",
    "description": "Workspace for financial data analysis and reporting",
    "metadata": {
        "department": "finance",
        "created_by": "analyst_team"
    }
}


@check
def contract_python_save_example():
    # The contract's usage lines, as printed.
    workspace = WORKSPACE
    result = save_workspace(base_url, token, workspace)
    print(f"Workspace created with ID: {result['data']['workspace_id']}")
    data = success_envelope(result, "save")
    assert list(data.keys()) == ["workspace_id", "version"], f"save data {data}"
    assert data["version"] == 1, f"a new workspace is at version 1: {data}"
    assert isinstance(data["workspace_id"], str) and data["workspace_id"].startswith("ws_"), data
    state["id"] = data["workspace_id"]


@check
def contract_python_list_example_shows_the_saved_workspace():
    workspaces = list_workspaces(base_url, token)
    for workspace in workspaces['data']:
        print(f"Workspace: {workspace['name']} (ID: {workspace['id']})")
    data = success_envelope(workspaces, "list")
    assert isinstance(data, list), f"list data is {type(data).__name__}"
    ids = [w["id"] for w in data]
    assert state["id"] in ids, f"saved {state['id']} not in list {ids}"


@check
def contract_python_load_example_returns_the_saved_workspace():
    workspace = load_workspace(base_url, token, state["id"])
    print(f"Loaded workspace: {workspace['data']['name']}")
    data = success_envelope(workspace, "load")
    assert data["id"] == state["id"], data
    for k in ("name", "description", "metadata"):
        assert data[k] == WORKSPACE[k], f"load {k}: {data[k]!r} != {WORKSPACE[k]!r}"
    assert data["scope"] == "user" and data["author"] == USER, data


@check
def saving_with_an_id_updates_in_place():
    new_name = f"Renamed {uuid.uuid4().hex[:6]}"
    result = save_workspace(base_url, token, {"id": state["id"], "name": new_name})
    assert success_envelope(result, "update")["workspace_id"] == state["id"], result
    data = success_envelope(load_workspace(base_url, token, state["id"]), "load after update")
    assert data["name"] == new_name, data
    names = [w["name"] for w in success_envelope(list_workspaces(base_url, token), "list") if w["id"] == state["id"]]
    assert names == [new_name], f"list shows {names} for {state['id']}"


@check
def a_save_naming_a_stale_version_is_a_409_conflict():
    auth = {"Authorization": f"Bearer {token}"}
    loaded = requests.get(f"{base_url}/workspaces/{state['id']}/load", headers=auth)
    version = success_envelope(loaded.json(), "load")["version"]
    assert loaded.headers.get("ETag") == f'"{version}"', loaded.headers
    body = {"id": state["id"], "name": "Versioned"}
    saved = requests.post(f"{base_url}/workspaces/save", headers={**auth, "If-Match": f'"{version}"'}, json=body)
    assert success_envelope(saved.json(), "conditional save")["version"] == version + 1, saved.text
    assert saved.headers.get("ETag") == f'"{version + 1}"', saved.headers
    stale = requests.post(f"{base_url}/workspaces/save", headers={**auth, "If-Match": f'"{version}"'}, json=body)
    assert stale.status_code == 409, f"HTTP {stale.status_code}: {stale.text[:300]}"
    assert stale.json() == {"data": None, "message": stale.json()["message"], "status": "conflict"}, stale.text


@check
def contract_curl_save_example():
    cmd = CONTRACT_CURL_SAVE.replace(CONTRACT_HOST, ORIGIN).replace(
        "/jarvispy/my-org/my-user/", f"/jarvispy/{ORG}/{USER}/").replace("YOUR_JWT_TOKEN", token)
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"curl exited {proc.returncode}: {proc.stderr[-500:]}"
    body = json.loads(proc.stdout)
    data = success_envelope(body, "curl save")
    assert body["message"] == "Workspace saved successfully", body
    loaded = success_envelope(load_workspace(base_url, token, data["workspace_id"]), "load curl-saved")
    assert loaded["name"] == "Financial Analysis Workspace", loaded
    assert loaded["metadata"] == {"department": "finance", "created_by": "analyst_team"}, loaded


@check
def no_token_is_401():
    r = requests.get(f"{base_url}/workspaces/list", params={"scope": "user"})
    error_envelope(r, 401, "list without token")
    r = requests.post(f"{base_url}/workspaces/save", json={"name": "x"})
    error_envelope(r, 401, "save without token")


@check
def a_bad_token_is_401():
    r = requests.get(f"{base_url}/workspaces/list", headers={"Authorization": "Bearer not.a.jwt"})
    error_envelope(r, 401, "list with garbage token")
    forged = token[: token.rindex(".") + 1] + ("A" * 43)
    r = requests.get(f"{base_url}/workspaces/{state.get('id', 'ws_x')}/load",
                     headers={"Authorization": f"Bearer {forged}"})
    error_envelope(r, 401, "load with a forged signature")


@check
def another_orgs_path_is_403():
    other = f"{ORIGIN}/jarvispy/some-other-org/{USER}/api/v1"
    r = requests.get(f"{other}/workspaces/list", headers={"Authorization": f"Bearer {token}"})
    error_envelope(r, 403, "list under another org")
    r = requests.post(f"{other}/workspaces/save", headers={"Authorization": f"Bearer {token}"},
                      json={"name": "intruder"})
    error_envelope(r, 403, "save under another org")


@check
def an_unknown_id_is_404():
    r = requests.get(f"{base_url}/workspaces/ws_{uuid.uuid4().hex[:16]}/load",
                     headers={"Authorization": f"Bearer {token}"}, params={"scope": "user"})
    body = error_envelope(r, 404, "load of an unknown id")
    assert "not found" in body["message"].lower(), body


@check
def a_save_without_name_is_400():
    r = requests.post(f"{base_url}/workspaces/save", headers={"Authorization": f"Bearer {token}"},
                      json={"description": "no name"})
    body = error_envelope(r, 400, "save without name")
    assert "name" in body["message"], body


SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "prometheux-export-sample.json")


@check
def contract_python_import_example_takes_the_platform_sample():
    with open(SAMPLE) as f:
        export_data = json.load(f)
    result = import_workspace_tables(base_url, token, export_data, "ws_67890")
    print(f"Imported {result['data']['summary']['projects_imported']} projects")
    data = success_envelope(result, "import")
    assert data["summary"]["projects_imported"] == 2, data["summary"]
    assert data["summary"]["rows_inserted"] + data["summary"]["rows_updated"] == 26, data["summary"]


@check
def contract_python_export_example_stages_and_the_link_streams_without_a_token():
    # The server runs with a small WORKSPACES_INLINE_LIMIT_BYTES, so this export is staged.
    export_data = export_workspace_tables(base_url, token, "ws_67890")
    print(f"Exported {export_data['data']['summary']['total_tables']} tables")
    data = success_envelope(export_data, "export")
    assert data["summary"]["total_tables"] == 9 and data["summary"]["total_rows"] == 26, data["summary"]
    bundle = data["bundle"]
    r = requests.get(bundle["url"])  # no token: the link is the authority
    assert r.status_code == 200, f"GET bundle: {r.status_code} {r.text[:200]}"
    assert len(r.content) == bundle["size"], (len(r.content), bundle["size"])
    assert hashlib.sha256(r.content).hexdigest() == bundle["sha256"]
    assert r.json()["projects"]["1e0e4e01aa8"]["tables"]["cells_1e0e4e01aa8"]["row_count"] == 5
    tampered = requests.get(bundle["url"].replace("signature=", "signature=0"))
    error_envelope(tampered, 403, "a tampered bundle link")
    state["staged"] = export_data


@check
def a_staged_export_imports_back_and_uploads_go_by_bundle_id():
    result = import_workspace_tables(base_url, token, state["staged"], "ws_from_staged")
    assert success_envelope(result, "import staged")["summary"]["projects_imported"] == 2, result
    slot = requests.post(f"{base_url}/workspaces/bundles", headers={"Authorization": f"Bearer {token}"}, json={})
    slot = success_envelope(slot.json(), "bundle upload slot")
    with open(SAMPLE, "rb") as f:
        put = requests.put(slot["upload_url"], data=f.read())
    assert put.status_code == 200, f"PUT bundle: {put.status_code} {put.text[:200]}"
    result = import_workspace_tables(base_url, token, {"bundle_id": slot["bundle_id"]}, "ws_from_upload")
    assert success_envelope(result, "import by bundle_id")["summary"]["projects_imported"] == 2, result


@check
def a_bundle_uploaded_in_parts_through_the_router_imports():
    auth = {"Authorization": f"Bearer {token}"}
    with open(SAMPLE, "rb") as f:
        body = f.read()
    body += b" " * (4 * 1024 * 1024 + 1000 - len(body))  # the same JSON, two local parts
    slot = requests.post(f"{base_url}/workspaces/bundles", headers=auth, json={"size": len(body)})
    slot = success_envelope(slot.json(), "parted upload slot")
    assert len(slot["parts"]) == 2, slot["part_size"]
    parts = []
    for part in slot["parts"]:
        start = (part["part_number"] - 1) * slot["part_size"]
        put = requests.put(part["url"], data=body[start:start + part["size"]])
        assert put.status_code == 200 and put.headers.get("ETag"), f"PUT part: {put.status_code} {put.text[:200]}"
        parts.append({"part_number": part["part_number"], "etag": put.headers["ETag"]})
    done = requests.post(f"{base_url}{slot['complete_path']}", headers=auth,
                         json={"upload_id": slot["upload_id"], "parts": parts})
    success_envelope(done.json(), "completion")
    result = import_workspace_tables(base_url, token, {"bundle_id": slot["bundle_id"]}, "ws_from_parts")
    assert success_envelope(result, "import of the parted bundle")["summary"]["projects_imported"] == 2, result


@check
def projects_of_the_imported_workspace_are_listed():
    r = requests.get(f"{base_url}/projects/ws_67890/list", headers={"Authorization": f"Bearer {token}"},
                     params={"scopes": "user,organization"})
    data = success_envelope(r.json(), "projects list")
    assert sorted(p["id"] for p in data) == ["1e0e4e01aa8", "1ff31e22dc4"], data


passed, failed = results.count(True), results.count(False)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
