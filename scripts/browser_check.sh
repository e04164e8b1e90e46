#!/usr/bin/env bash
# Checks the page of a running `instructmol serve` in headless Chromium:
#
#   bash scripts/browser_check.sh http://127.0.0.1:8080 docs/serve.png [--model NAME] [--api-key KEY]
#       [--question TEXT] [--max-tokens N] [--timeout S]
#
# loads the page, picks a model (the first one unless --model), enters caffeine, checks that the
# 2D drawing appeared, asks the preset question (or --question; the page's max tokens unless --max-tokens), waits for the streamed answer, saves the
# screenshot (1280x800); then types an invalid SMILES and checks that the error with its position
# is shown (second screenshot: NAME-invalid.png). Exits non-zero when a step fails.
#
# Needs Debian's chromium (apt-get install -y chromium) and node; playwright-core is installed
# with npm into a scratch folder outside the repository ($PLAYWRIGHT_DIR, default /work/pw).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pw_dir=${PLAYWRIGHT_DIR:-/work/pw}
pw_version=1.65.2

if [ $# -lt 2 ]; then
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
command -v node >/dev/null || { echo "browser_check: node is needed (apt-get install -y nodejs npm)" >&2; exit 1; }
chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
    echo "browser_check: no $chromium; install it with: apt-get install -y chromium" >&2
    exit 1
fi
if [ ! -f "$pw_dir/node_modules/playwright-core/package.json" ]; then
    echo "browser_check: installing playwright-core@$pw_version into $pw_dir" >&2
    mkdir -p "$pw_dir"
    (cd "$pw_dir" && npm install --no-audit --no-fund --silent "playwright-core@$pw_version" >&2)
fi
export CHROMIUM="$chromium"
NODE_PATH="$pw_dir/node_modules" exec node "$here/browser_check.js" "$@"
