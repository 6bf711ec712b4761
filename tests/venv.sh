#!/usr/bin/env bash
# Creates or updates the Python venv of the deploy checks from tests/requirements.txt, only when
# that file changed since the last install (a stamp file holds its hash). Prints the venv's path
# on stdout as its last line; progress and timings go to stderr.
#
#   tests/venv.sh            # → /root/.cache/sluice/venv
#   SLUICE_VENV=/tmp/v tests/venv.sh
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
req="$root/tests/requirements.txt"
venv="${SLUICE_VENV:-$HOME/.cache/sluice/venv}"
stamp="$venv/.requirements.sha256"
python="${PYTHON:-python3}"

want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$venv"
  exit 0
fi

command -v "$python" >/dev/null 2>&1 || { echo "tests/venv.sh: $python not found (Python 3 is needed for the deploy checks)" >&2; exit 1; }
start=$(date +%s)
echo "tests/venv.sh: installing $req into $venv" >&2
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv" >&2 || { echo "tests/venv.sh: '$python -m venv' failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2 \
  || { echo "tests/venv.sh: pip install -r $req failed" >&2; exit 1; }
echo "$want" >"$stamp"
echo "tests/venv.sh: installed in $(( $(date +%s) - start )) s" >&2
echo "$venv"
