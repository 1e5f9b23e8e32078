# Shared helpers for scripts/run.sh, scripts/test.sh and scripts/fuzz.sh (sourced, not run).
# Expects ROOT (repo root) and VENV (absolute path of the Python venv) to be set.

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# A free TCP port on 127.0.0.1 (the kernel picks it; tiny race until our server binds it).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL SECONDS [PID]: until anything answers HTTP at URL (any status), the process PID
# (if given) dies, or the time is up.
wait_http() {
    local url=$1 secs=$2 pid=${3:-}
    python3 - "$url" "$secs" "$pid" <<'PY'
import os, sys, time, urllib.request, urllib.error
url, secs, pid = sys.argv[1], float(sys.argv[2]), sys.argv[3]
deadline = time.time() + secs
while time.time() < deadline:
    if pid:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            sys.exit(f"process {pid} exited before {url} answered")
    try:
        urllib.request.urlopen(url, timeout=2)
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)  # it answered, with an error status: that's alive
    except Exception:
        time.sleep(0.25)
sys.exit(f"{url} did not answer within {secs:.0f}s")
PY
}

# The HS256 secret for local runs: $WORKSPACES_JWT_SECRET, else the one kept in
# .local/dev-secret (created on first use, readable by you only).
dev_secret() {
    if [[ -n "${WORKSPACES_JWT_SECRET:-}" ]]; then
        printf '%s' "$WORKSPACES_JWT_SECRET"
        return
    fi
    local file="$ROOT/.local/dev-secret"
    if [[ ! -s "$file" ]]; then
        mkdir -p "$ROOT/.local"
        (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(32))' > "$file")
        log "generated a dev secret in .local/dev-secret"
    fi
    tr -d '\n' < "$file"
}

# All descendants of PID (children first found, then theirs), one per line.
descendants() {
    local pid=$1 child
    for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
        echo "$child"
        descendants "$child"
    done
}

any_alive() {
    local p
    for p in "$@"; do
        kill -0 "$p" 2>/dev/null && return 0
    done
    return 1
}

# stop_tree PID: SIGTERM the process group PID leads (started with setsid) and every
# descendant (cargo lambda watch puts each function instance in a process group of its own),
# then SIGKILL whatever is left after a grace period. Only ids we started, never names.
stop_tree() {
    local pid=$1 pids
    [[ -n "$pid" ]] || return 0
    pids="$pid $(descendants "$pid" | tr '\n' ' ')"
    kill -TERM -- "-$pid" 2>/dev/null || true
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 1 40); do
        any_alive $pids || return 0
        sleep 0.25
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
}

# start_watch DIR: `cargo lambda watch` on a free port of 127.0.0.1 with a store, bundle folder
# and HS256 secret of its own under DIR (nothing of .local/ is read or written), up to 4
# instances per function, and a small inline limit so that exports of a few rows are staged and
# their links streamed. Sets WATCH_PID, WATCH_ORIGIN, WATCH_SECRET and WATCH_LOG. Build the
# workspace first, or the first request of each function waits for a compile.
start_watch() {
    local dir=$1 port
    port=$(free_port)
    WATCH_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
    WATCH_ORIGIN="http://127.0.0.1:$port"
    WATCH_LOG="$dir/watch.log"
    mkdir -p "$dir"
    WORKSPACES_STORE="sqlite://$dir/e2e.db" WORKSPACES_BUNDLES="file://$dir/bundles" \
        WORKSPACES_JWT_SECRET="$WATCH_SECRET" WORKSPACES_INLINE_LIMIT_BYTES=20000 RUST_LOG=info \
        PATH="$VENV/bin:$PATH" setsid cargo lambda watch -A 127.0.0.1 -P "$port" --concurrency 4 \
        > "$WATCH_LOG" 2>&1 &
    WATCH_PID=$!
    if ! wait_http "$WATCH_ORIGIN/" 120 "$WATCH_PID"; then
        tail -n 40 "$WATCH_LOG" >&2
        return 1
    fi
    echo "cargo lambda watch on $WATCH_ORIGIN (pid $WATCH_PID)"
}
