#!/usr/bin/env bash
# Install the ROS 2 tools PyPI lacks into the development venv, from the unmodified Jazzy sources in
# ROS_SRC (../shared/ros_src on development machines and CI; its README names each upstream commit):
#   pure Python (pip):  launch, launch_xml, launch_yaml, launch_testing, launch_pytest, launch_ros,
#                       launch_testing_ros, ros2launch, the ros2 command and the verbs that run here
#                       (launch, pkg, run, node, param, component, multicast), message_filters, tf2_ros
#   CMake (like the interface packages): composition_interfaces, tf2_msgs (the full upstream one, with the
#                       services and actions tf2_ros needs), tf2 (C++) and tf2_py
# The verbs topic, service, lifecycle, interface and action import rosidl_runtime_py, which is not on PyPI: they
# are installed only when ROS_SRC has it (folder ros2+rosidl_runtime_py). Never installed: ros2 doctor, and
# cv_bridge (it links rclcpp, which has no wheel).
# Usage: scripts/setup_ros_src.sh VENV ROS_SRC   (setup_dev_env.sh calls it; safe to run again)
set -euo pipefail

VENV="$1"
SRC="$(realpath "$2")"
WORK="$VENV/build/ros_src"
log() { printf '[setup] %s\n' "$*"; }

PYTHON_PACKAGES=(
  ros2+launch/launch ros2+launch/launch_xml ros2+launch/launch_yaml ros2+launch/launch_testing
  ros2+launch/launch_pytest ros2+launch_ros/launch_ros ros2+launch_ros/launch_testing_ros
  ros2+launch_ros/ros2launch ros2+ros2cli/ros2cli ros2+ros2cli/ros2pkg ros2+ros2cli/ros2run
  ros2+ros2cli/ros2node ros2+ros2cli/ros2param ros2+ros2cli/ros2component ros2+ros2cli/ros2multicast
  ros2+message_filters ros2+geometry2/tf2_ros_py
)
if [[ -d "$SRC/ros2+rosidl_runtime_py" ]]; then
  PYTHON_PACKAGES+=(ros2+rosidl_runtime_py ros2+ros2cli/ros2topic ros2+ros2cli/ros2service ros2+ros2cli/ros2lifecycle
                    ros2+ros2cli/ros2interface ros2+ros2cli/ros2action)
else
  log "no rosidl_runtime_py in $SRC: ros2 topic, service, lifecycle, interface and action are not installed"
fi
CMAKE_PACKAGES=(ros2+rcl_interfaces/composition_interfaces ros2+geometry2/tf2_msgs ros2+geometry2/tf2
                ros2+geometry2/tf2_py)

# 1. CMake packages, built out of tree (the sources may be read-only), installed into the venv prefix.
for pkg in "${CMAKE_PACKAGES[@]}"; do
  name="$(basename "$pkg")"
  log "building $name from $SRC/$pkg"
  build="$WORK/build/$name"
  mkdir -p "$build"
  AMENT_PREFIX_PATH="$VENV" cmake -S "$SRC/$pkg" -B "$build" -DBUILD_TESTING=OFF \
    -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DPython3_EXECUTABLE="$VENV/bin/python" >"$build.log" 2>&1 || { tail -50 "$build.log"; exit 1; }
  cmake --build "$build" -j "$(nproc)" >>"$build.log" 2>&1 || { tail -50 "$build.log"; exit 1; }
  cmake --install "$build" >>"$build.log" 2>&1 || { tail -50 "$build.log"; exit 1; }
done

# 2. Pure-Python packages: pip builds in the source folder, so copy them first (without stale build output).
rm -rf "$WORK/python"
mkdir -p "$WORK/python"
dirs=()
for pkg in "${PYTHON_PACKAGES[@]}"; do
  dest="$WORK/python/$(basename "$pkg")"
  cp -r "$SRC/$pkg" "$dest"
  chmod -R u+w "$dest"
  rm -rf "$dest/build" "$dest"/*.egg-info "$dest"/src/*.egg-info
  dirs+=("$dest")
done
log "installing ${#dirs[@]} Python packages from $SRC"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation "${dirs[@]}" \
  2> >(grep -v '^WARNING: Location' >&2)
rm -rf "$WORK/python"
