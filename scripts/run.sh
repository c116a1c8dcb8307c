#!/bin/sh
# `make run`: the whole flow for a newcomer. Starts the stand-in main service
# on the seed's port 3001 when nothing listens there yet (and the service's
# MAIN_SERVICE_URL is not set to something else), then runs exchanged in the
# foreground. Ctrl-C stops both. Extra flags: make run ARGS="--latency 0-1".
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
bin="$here/${BUILD:-build}"
main_pid=""
cleanup() { [ -n "$main_pid" ] && kill "$main_pid" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

port_busy() {
    # bash's /dev/tcp is not in every sh: ask the stand-in's port with curl
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null
}

if [ -z "${MAIN_SERVICE_URL:-}" ]; then
    if port_busy 3001; then
        echo "run: something already listens on 127.0.0.1:3001; callbacks go there" >&2
    else
        "$bin/exchanged-main" --port 3001 &
        main_pid=$!
        echo "run: stand-in main service on http://127.0.0.1:3001 (pid $main_pid)" >&2
    fi
fi
# shellcheck disable=SC2086
"$bin/exchanged" ${ARGS:-}
