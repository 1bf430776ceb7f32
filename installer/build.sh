#!/usr/bin/env bash
# Build the one-folder bundle (dist/WaferSegStudio), check it starts, print its size and start-up
# time as JSON, and pack a Linux archive. Needs the project's .venv (./test.sh or scripts/setup.sh).
#   bash installer/build.sh [--no-archive]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! .venv/bin/python -c "import PyInstaller" 2>/dev/null; then
  .venv/bin/uv pip install --quiet --python .venv/bin/python "pyinstaller>=6"
fi
rm -rf build/pyinstaller dist/WaferSegStudio
.venv/bin/pyinstaller --noconfirm --log-level WARN --workpath build/pyinstaller --distpath dist \
  installer/waferseg.spec
home=$(mktemp -d)
start=$(date +%s.%N)
out=$(WAFERSEG_HOME="$home" QT_QPA_PLATFORM=offscreen dist/WaferSegStudio/WaferSegStudio --selftest)
end=$(date +%s.%N)
rm -rf "$home"
size=$(du -sm dist/WaferSegStudio | cut -f1)
archive=""
if [ "${1:-}" != "--no-archive" ]; then
  archive="dist/WaferSegStudio-linux-$(uname -m).tar.gz"
  tar -C dist -czf "$archive" WaferSegStudio
fi
python3 - "$out" "$size" "$start" "$end" "$archive" <<'PY'
import json, sys
out, size, start, end, archive = sys.argv[1:]
print(json.dumps({"bundle": "dist/WaferSegStudio", "size_mb": int(size), "selftest": json.loads(out.strip().splitlines()[-1]),
                  "selftest_seconds": round(float(end) - float(start), 2), "archive": archive or None,
                  "goals": {"size_mb": 300, "window_seconds": 3}}))
PY
