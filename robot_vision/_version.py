"""The package version, read from the installed metadata or from package.xml in a source tree."""

import re
from importlib import metadata
from pathlib import Path


def _read_version() -> str:
    package_xml = Path(__file__).resolve().parent.parent / 'package.xml'
    if package_xml.is_file():
        match = re.search(r'<version>\s*([^<\s]+)\s*</version>', package_xml.read_text('utf-8'))
        if match:
            return match.group(1)
    return metadata.version('robot_vision')


__version__ = _read_version()
