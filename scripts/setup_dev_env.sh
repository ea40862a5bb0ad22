#!/usr/bin/env bash
# Create (or refresh) the development environment on a plain Debian/Python machine with no ROS
# distro: apt packages, a venv with pinned ROS 2 Jazzy wheels and the perception stack, the
# interface packages PyPI lacks (built from ros_interfaces/), and robot_vision itself (editable).
#
# Idempotent: on a ready machine it checks a stamp and exits in about a second.
# Usage: scripts/setup_dev_env.sh            (VENV=path to use another venv location)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(realpath -m "${VENV:-$ROOT/.venv}")"
PY="${PYTHON:-python3}"
STAMP="$VENV/.robot_vision_setup"
APT_PACKAGES=(libusb-1.0-0 libxml2-utils libgl1 libegl1 libosmesa6 cmake g++ ignition-tools libsdformat-dev)

log() { printf '[setup] %s\n' "$*"; }

fingerprint() {
  (cd "$ROOT" && cat requirements-dev.txt constraints.txt setup.py setup.cfg package.xml \
    scripts/setup_dev_env.sh && find ros_interfaces -type f | sort | xargs cat) | sha256sum | cut -d' ' -f1
}

want="$(fingerprint)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  log "environment is up to date ($VENV)"
  exit 0
fi

# 1. apt packages (open3d needs libusb; xmllint lints package.xml; Mesa renders MuJoCo offscreen;
#    ignition-tools + libsdformat-dev give `ign sdf -k`, the real SDFormat parser for the Gazebo world).
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "installing apt packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. The venv with pinned versions.
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating venv at $VENV"
  "$PY" -m venv "$VENV"
fi
# The CPU build of torch, explicitly (constraints.txt pins torch==X+cpu): PyPI's Linux torch wheels pull
# several GB of CUDA packages. A local wheel or index that has it is used first, else PyTorch's CPU index.
TORCH_CPU="$(grep -E '^torch==' "$ROOT/constraints.txt")"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$ROOT/constraints.txt" "$TORCH_CPU" 2>/dev/null \
  || "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$ROOT/constraints.txt" "$TORCH_CPU" \
       --extra-index-url https://download.pytorch.org/whl/cpu
log "installing pinned Python packages (a few minutes on a fresh machine)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
  -c "$ROOT/constraints.txt" -r "$ROOT/requirements-dev.txt" 2> >(grep -v '^WARNING: Location' >&2)

# 3. Patch build paths baked into the ROS wheels' cmake files (idempotent: sed only what differs).
PY_INCLUDE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
NP_INCLUDE="$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')"
BAKED_PY='/opt/python/cp311-cp311/include/python3.11'
BAKED_NP='/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include'
mapfile -t baked < <(grep -rlF -e "$BAKED_PY" -e "$BAKED_NP" --include='*.cmake' "$VENV/share" 2>/dev/null || true)
for file in "${baked[@]}"; do
  sed -i -e "s#$BAKED_PY#$PY_INCLUDE#g" -e "s#$BAKED_NP#$NP_INCLUDE#g" "$file"
done
((${#baked[@]})) && log "patched include paths in ${#baked[@]} cmake files"

# 4. Interface packages missing from PyPI, built from ros_interfaces/ (COLCON_IGNOREd on robots).
for pkg in tf2_msgs vision_msgs; do
  log "building interface package $pkg"
  build="$VENV/build/$pkg"
  mkdir -p "$build"
  AMENT_PREFIX_PATH="$VENV" cmake -S "$ROOT/ros_interfaces/$pkg" -B "$build" -DBUILD_TESTING=OFF \
    -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DPython3_EXECUTABLE="$VENV/bin/python" >"$build.log" 2>&1 || { cat "$build.log"; exit 1; }
  cmake --build "$build" -j "$(nproc)" >>"$build.log" 2>&1 || { tail -50 "$build.log"; exit 1; }
  cmake --install "$build" >>"$build.log" 2>&1 || { tail -50 "$build.log"; exit 1; }
done

# 5. robot_vision itself, editable, without touching the pinned dependencies.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
  -e "$ROOT" 2> >(grep -v '^WARNING: Location' >&2)

"$VENV/bin/python" -c 'import rclpy, vision_msgs.msg, tf2_msgs.msg, open3d, torch, onnxruntime' \
  || { log "import check failed"; exit 1; }
echo "$want" >"$STAMP"
log "ready: $VENV"
