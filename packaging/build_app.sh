#!/usr/bin/env bash
# Build the one-folder desktop app with PyInstaller, then start it headless once to prove it
# opens (not part of CI: the bundle is ~2 GB with torch and takes minutes to build).
#
#   packaging/build_app.sh            # build into build/dist/tunesmith, then smoke-start it
#   packaging/build_app.sh --smoke    # only smoke-start an existing build
#
# PyInstaller is never installed into the app's own venv: it goes into a throwaway build venv
# (BUILD_VENV, default build/pyinstaller-venv) that sees the app venv's packages through a
# .pth file, so the bundle contains exactly the pinned, already-tested dependencies.
#
# Environment:
#   APP_PYTHON      the app venv's python (default .venv/bin/python)
#   BUILD_DIR       where the bundle and PyInstaller's work files go (default build/)
#   BUILD_VENV      where the throwaway build venv goes (default $BUILD_DIR/pyinstaller-venv)
#   PYINSTALLER     pip requirement for PyInstaller (default pyinstaller==6.22.3)
#   SMOKE_WAIT      seconds the smoke start may spend on start-up jobs (default 600)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
APP_PYTHON="${APP_PYTHON:-$ROOT/.venv/bin/python}"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
BUILD_VENV="${BUILD_VENV:-$BUILD_DIR/pyinstaller-venv}"
PYINSTALLER="${PYINSTALLER:-pyinstaller==6.22.3}"
DIST="$BUILD_DIR/dist"
APP="$DIST/tunesmith/tunesmith"

build() {
    [ -x "$APP_PYTHON" ] || { echo "no app venv at $APP_PYTHON; run packaging/setup.sh first" >&2; exit 2; }
    if [ ! -x "$BUILD_VENV/bin/python" ]; then
        echo "==> creating the build venv $BUILD_VENV"
        "$APP_PYTHON" -m venv --without-pip "$BUILD_VENV" 2>/dev/null || "$APP_PYTHON" -m venv "$BUILD_VENV"
        "$BUILD_VENV/bin/python" -m ensurepip --upgrade >/dev/null
    fi
    # The app venv's site-packages, visible to (but untouched by) the build venv.
    local app_site build_site
    app_site="$("$APP_PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    build_site="$("$BUILD_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    echo "$app_site" > "$build_site/tunesmith-app-venv.pth"
    echo "==> installing $PYINSTALLER into the build venv"
    "$BUILD_VENV/bin/python" -m pip install --quiet "$PYINSTALLER"
    echo "==> building (this takes several minutes)"
    # Offscreen: PyInstaller imports packages (PySide6, pyqtgraph) in helper processes.
    QT_QPA_PLATFORM=offscreen "$BUILD_VENV/bin/python" -m PyInstaller packaging/tunesmith.spec --noconfirm \
        --distpath "$DIST" --workpath "$BUILD_DIR/pyinstaller-work"
    du -sh "$DIST/tunesmith" | sed 's/^/==> bundle size: /'
}

smoke() {
    [ -x "$APP" ] || { echo "no build at $APP" >&2; exit 2; }
    local data log
    data="$(mktemp -d)"
    log="$data/smoke.log"
    mkdir -p "$data/home"
    echo "==> smoke start: $APP (offscreen, data dir $data)"
    # A fresh HOME keeps the user's saved settings (data dir, theme) out of the check.
    if ! env -u DISPLAY -u WAYLAND_DISPLAY HOME="$data/home" QT_QPA_PLATFORM=offscreen \
            TUNESMITH_SMOKE_EXIT=1 TUNESMITH_SMOKE_WAIT="${SMOKE_WAIT:-600}" \
            timeout "$(( ${SMOKE_WAIT:-600} + 120 ))" "$APP" --data-dir "$data/data" \
            >"$log" 2>&1; then
        cat "$log"
        echo "==> smoke start FAILED (log above)" >&2
        exit 1
    fi
    grep '^smoke:' "$log"
    grep -q '^smoke: window shown' "$log" && grep -q '^smoke: OK' "$log"
    echo "==> the bundle opens"
    rm -rf "$data"
}

case "${1:-}" in
    --smoke) smoke ;;
    "") build; smoke ;;
    *) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
esac
