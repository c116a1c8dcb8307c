#!/bin/sh
# Install the Debian packages listed in deps.txt that are not installed yet.
# `deps.sh` installs the build and test packages; `deps.sh bench` also the
# benchmark's. Checked with dpkg-query; installed with apt-get (through sudo
# when not root).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
want_bench=0
[ "${1:-}" = "bench" ] && want_bench=1
missing=""
section=main
while read -r line; do
    case "$line" in
        ""|"#"*) continue ;;
        "[bench]") section=bench; continue ;;
    esac
    [ "$section" = bench ] && [ "$want_bench" = 0 ] && continue
    status=$(dpkg-query -W -f='${Status}' "$line" 2>/dev/null || true)
    case "$status" in
        *"install ok installed"*) ;;
        *) missing="$missing $line" ;;
    esac
done < "$here/deps.txt"
[ -z "$missing" ] && exit 0
echo "deps: installing$missing" >&2
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
$sudo apt-get install -y $missing || { $sudo apt-get update && $sudo apt-get install -y $missing; }
