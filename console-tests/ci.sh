#!/usr/bin/env bash
# Browser tests of the web console (gateway/console), run by .ci/run after
# make test: Debian's chromium (and a CJK font, so screenshots show
# Chinese), playwright-core and sm-crypto from npm (package-lock.json),
# then node's test runner.
set -euo pipefail
cd "$(dirname "$0")"

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
fc-list 2>/dev/null | grep -qi 'wenquanyi\|noto sans cjk' || need+=(fonts-wqy-microhei)
command -v node >/dev/null && command -v npm >/dev/null || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "console-tests: installing ${need[*]} from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  for try in 1 2 3; do
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null && break
    [ "$try" = 3 ] && { echo "console-tests: apt-get failed"; exit 1; }
    sleep 5
  done
fi

for try in 1 2 3; do
  npm ci --no-audit --no-fund --loglevel=error && break
  [ "$try" = 3 ] && { echo "console-tests: npm ci failed"; exit 1; }
  sleep 5
done
# The SM3 the console serves is exactly the pinned sm-crypto's.
npm run --silent vendor:check
npm test
