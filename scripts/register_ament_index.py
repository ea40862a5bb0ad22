"""Register a robot_vision checkout in the ament index of a prefix, as ``colcon build --symlink-install`` would.

Lays out, under PREFIX::

    share/ament_index/resource_index/packages/robot_vision   (the package marker)
    share/robot_vision/package.xml, launch/, config/, urdf/, sim/gazebo/   (one link per file to the checkout)
    lib/robot_vision/<console script>                        (links to the installed console scripts)

so that ``ros2 launch robot_vision ...``, ``ros2 run robot_vision ...``, ``FindPackageShare('robot_vision')``
and launch_ros' ``Node(package='robot_vision', ...)`` find this checkout's files. Links are per file because
``ros2 launch`` searches the share folder with ``os.walk``, which does not enter linked folders. Stale links
from an earlier registration are removed. The development setup runs it for the venv; the launch tests run it
for a temporary prefix in front of AMENT_PREFIX_PATH, so they test the checkout they belong to.

Usage: python scripts/register_ament_index.py PREFIX [--root CHECKOUT] [--scripts DIR]
"""

import argparse
import re
import shutil
import sys
from pathlib import Path

PACKAGE = 'robot_vision'
ROOT = Path(__file__).resolve().parent.parent


def share_files(root: Path) -> list:
    """The files setup.py installs under share/robot_vision, relative to the checkout (its data_files)."""
    text = (root / 'setup.py').read_text(encoding='utf-8')
    folders = re.findall(r"share\('([\w/]+)'\)", text)
    files = [Path('package.xml')]
    for folder in folders:
        files += sorted(p.relative_to(root) for p in (root / folder).glob('*') if p.is_file())
    return files


def console_scripts(root: Path) -> list:
    """The console script names of setup.py's entry points (colcon installs them into lib/robot_vision)."""
    text = (root / 'setup.py').read_text(encoding='utf-8')
    return re.findall(r"'([\w-]+) = robot_vision[\w.]*:main'", text)


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        if link.is_symlink() and link.readlink() == target:
            return
        link.unlink()
    link.symlink_to(target)


def register(prefix: Path, root: Path = ROOT, scripts: Path = Path(sys.executable).parent) -> Path:
    """Register the checkout ``root`` in ``prefix``; return the package's share folder there."""
    prefix, root = Path(prefix).resolve(), Path(root).resolve()
    marker = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / PACKAGE
    marker.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / 'resource' / PACKAGE, marker)
    share = prefix / 'share' / PACKAGE
    if share.is_symlink():
        share.unlink()
    wanted = {share / rel: root / rel for rel in share_files(root)}
    lib = prefix / 'lib' / PACKAGE
    for name in console_scripts(root):
        script = Path(scripts) / name
        if not script.is_file():
            raise SystemExit(f'console script {script} is missing: install robot_vision into this venv first')
        wanted[lib / name] = script
    for folder in (share, lib):
        if folder.is_dir():
            for path in sorted(folder.rglob('*'), reverse=True):
                if path.is_symlink() and path not in wanted:
                    path.unlink()
                elif path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
                    path.rmdir()
    for link, target in wanted.items():
        _link(link, target)
    return share


def main() -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('prefix', type=Path, help='install prefix, e.g. the venv')
    parser.add_argument('--root', type=Path, default=ROOT, help='the robot_vision checkout (default: this one)')
    parser.add_argument('--scripts', type=Path, default=Path(sys.executable).parent,
                        help="folder of robot_vision's console scripts (default: this Python's bin)")
    args = parser.parse_args()
    share = register(args.prefix, args.root, args.scripts)
    print(f'[setup] registered {args.root.resolve()} in the ament index of {args.prefix} ({share})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
