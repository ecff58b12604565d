#!/usr/bin/env bash
# The test command (README: `npm test`). Installs what it needs, then typechecks, lints and runs every
# test: the unit tests beside the code (src/**/*.test.ts) and the cross-cutting suites (test/**/*.test.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules/tsx ] || npm ci --no-audit --no-fund
bash scripts/setup-oracles.sh || echo "setup-oracles failed; oracle tests will fail under CI=true" >&2
npx tsc --noEmit
npx biome check .
mapfile -t files < <(find src test -name '*.test.ts' | sort)
if [ "$#" -gt 0 ]; then files=("$@"); fi
exec node --import tsx --import ./test/helpers/fc-setup.ts --test --test-reporter=spec --test-concurrency=2 "${files[@]}"
