#!/bin/sh
# Install the Debian packages listed in deps.txt that are not installed yet.
# Checked with dpkg-query; installed with apt-get (through sudo when not root).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
missing=""
for pkg in $(grep -v '^#' "$here/deps.txt" | tr -s ' \n' '\n'); do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    case "$status" in
        *"install ok installed"*) ;;
        *) missing="$missing $pkg" ;;
    esac
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing" >&2
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y $missing || { $sudo apt-get update && $sudo apt-get install -y $missing; }
