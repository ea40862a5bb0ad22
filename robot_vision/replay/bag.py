"""rosbag2 container I/O (mcap and sqlite3) with raw CDR bytes, on top of the ``rosbags`` library.

This module only moves serialized messages in and out of bags; it never decodes them (that
is :mod:`robot_vision.ros.bag_codec`'s job, with rclpy's real message classes), so it imports
no ROS package. Message definitions for the types rosbags' built-in typestore lacks
(vision_msgs) are read from the installed interface packages' ``.msg`` files.

Reading is forgiving: a truncated or corrupt mcap file (no footer / index) is salvaged by
streaming its records until the damage, and any error met while iterating is recorded in
:attr:`BagSource.error` instead of being raised, so that a replay keeps what it could read.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from robot_vision.errors import InputError

#: Interface packages whose .msg files are registered into the typestore when rosbags lacks them.
EXTRA_INTERFACE_PACKAGES = ('vision_msgs', 'tf2_msgs')

_REPO_INTERFACES = Path(__file__).resolve().parents[2] / 'ros_interfaces'


@dataclass
class TopicInfo:
    """A topic in a bag: message type ('pkg/msg/Name'), message count, definition, hash and QoS."""

    name: str
    msgtype: str
    count: int
    msgdef: str = ''
    digest: str = ''
    qos: list = field(default_factory=list)


@dataclass
class RawMessage:
    """One serialized message: ``topic``, ``msgtype``, bag log time ``log_ns`` (ns) and CDR ``data``."""

    topic: str
    msgtype: str
    log_ns: int
    data: bytes


def _msg_dirs(package: str) -> List[Path]:
    """Candidate folders holding ``package``'s .msg files (ament prefixes, the venv, the repo)."""
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    prefixes += [sys.prefix]
    dirs = [Path(p) / 'share' / package / 'msg' for p in prefixes]
    dirs.append(_REPO_INTERFACES / package / 'msg')
    return [d for d in dirs if d.is_dir()]


@lru_cache(maxsize=1)
def typestore():
    """The rosbags typestore (ROS 2 Jazzy) plus vision_msgs / tf2_msgs from their .msg files."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    store = get_typestore(Stores.ROS2_JAZZY)
    for package in EXTRA_INTERFACE_PACKAGES:
        dirs = _msg_dirs(package)
        if not dirs:
            continue
        types: Dict = {}
        for path in sorted(dirs[0].glob('*.msg')):
            name = f'{package}/msg/{path.stem}'
            if name not in store.fielddefs:
                types.update(get_types_from_msg(path.read_text(encoding='utf-8'), name))
        if types:
            store.register(types)
    return store


def has_type(msgtype: str) -> bool:
    """Whether the typestore knows ``msgtype`` ('pkg/msg/Name')."""
    return msgtype in typestore().fielddefs


def type_hash(msgtype: str) -> str:
    """The RIHS01 type hash of ``msgtype`` as computed from its definition."""
    return typestore().hash_rihs01(msgtype)


class BagSource:
    """An open rosbag2 (directory, ``.mcap`` or ``.db3``) to read raw messages from.

    ``topics`` maps topic name -> :class:`TopicInfo`; :meth:`messages` yields
    :class:`RawMessage` in log-time order. ``salvaged`` is True when the bag's index was
    unreadable and its records were streamed instead; ``error`` holds the message of an error
    met while reading (the messages before it were delivered).
    """

    def __init__(self, path: Path | str):
        """Open the bag at ``path``; raises InputError when it is not a readable rosbag2."""
        self.path = Path(path)
        self.error: Optional[str] = None
        self.salvaged = False
        self.topics: Dict[str, TopicInfo] = {}
        self._reader = None
        if not self.path.exists():
            raise InputError(f'bag: expected a rosbag2 folder, .mcap or .db3 file, but {self.path} does not exist')
        from rosbags.rosbag2 import Reader
        try:
            reader = Reader(self.path)
            reader.open()
        except Exception as exc:  # noqa: BLE001 - rosbags raises many kinds for a damaged file
            mcap_file = self._mcap_file()
            if mcap_file is None:
                raise InputError(f'bag {self.path}: could not open it as a rosbag2 '
                                 f'(mcap or sqlite3): {type(exc).__name__}: {exc}') from exc
            self._salvage_open(mcap_file, f'{type(exc).__name__}: {exc}')
            return
        self._reader = reader
        for conn in reader.connections:
            info = self.topics.get(conn.topic)
            if info is None:
                self.topics[conn.topic] = TopicInfo(
                    conn.topic, conn.msgtype, int(conn.msgcount), conn.msgdef.data if conn.msgdef else '',
                    conn.digest or '', list(getattr(conn.ext, 'offered_qos_profiles', []) or []))
            else:
                info.count += int(conn.msgcount)

    def _mcap_file(self) -> Optional[Path]:
        if self.path.is_file() and self.path.suffix == '.mcap':
            return self.path
        if self.path.is_dir():
            files = sorted(self.path.glob('*.mcap'))
            return files[0] if files else None
        return None

    def _salvage_open(self, path: Path, reason: str) -> None:
        """Scan a damaged mcap file's records for its channels (the data is streamed later)."""
        self.salvaged = True
        self._salvage_path = path
        self._salvage_reason = reason
        counts: Dict[str, int] = {}
        infos: Dict[str, TopicInfo] = {}
        for msg in self._stream(path, collect=infos):
            counts[msg.topic] = counts.get(msg.topic, 0) + 1
        if not infos:
            raise InputError(f'bag {self.path}: could not open it ({reason}) and no channel could be '
                             f'salvaged from its records')
        for name, info in infos.items():
            info.count = counts.get(name, 0)
        self.topics = infos
        self.error = (f'bag index unreadable ({reason}); salvaged {sum(counts.values())} messages by '
                      f'streaming the records')

    def _stream(self, path: Path, collect: Optional[Dict[str, TopicInfo]] = None) -> Iterator[RawMessage]:
        from mcap.records import Channel, Message, Schema
        from mcap.stream_reader import StreamReader
        schemas: Dict[int, Schema] = {}
        channels: Dict[int, Channel] = {}
        with open(path, 'rb') as stream:
            try:
                for record in StreamReader(stream).records:
                    if isinstance(record, Schema):
                        schemas[record.id] = record
                    elif isinstance(record, Channel):
                        channels[record.id] = record
                        schema = schemas.get(record.schema_id)
                        if collect is not None and schema is not None:
                            collect.setdefault(record.topic, TopicInfo(
                                record.topic, schema.name, 0, schema.data.decode('utf-8', 'replace'),
                                record.metadata.get('type_description_hash', '')))
                    elif isinstance(record, Message):
                        channel = channels.get(record.channel_id)
                        schema = schemas.get(channel.schema_id) if channel else None
                        if channel is None or schema is None:
                            continue
                        yield RawMessage(channel.topic, schema.name, int(record.log_time), bytes(record.data))
            except Exception as exc:  # noqa: BLE001 - the damage can surface as any parse error
                if collect is None:
                    self.error = (f'{self.error}; stopped at damaged data: {type(exc).__name__}: {exc}'
                                  if self.error else f'{type(exc).__name__}: {exc}')

    def messages(self, topics: Optional[Sequence[str]] = None) -> Iterator[RawMessage]:
        """Yield raw messages (all topics, or only ``topics``) in log-time order; errors end the stream.

        A salvaged bag is streamed in file order, which is the recording order for bags written live.
        """
        wanted = None if topics is None else set(topics)
        if self.salvaged:  # file order (the order it was recorded in), without holding the bag in memory
            for msg in self._stream(self._salvage_path):
                if wanted is None or msg.topic in wanted:
                    yield msg
            return
        connections = [c for c in self._reader.connections if wanted is None or c.topic in wanted]
        if not connections:
            return
        try:
            for conn, log_ns, data in self._reader.messages(connections=connections):
                yield RawMessage(conn.topic, conn.msgtype, int(log_ns), bytes(data))
        except Exception as exc:  # noqa: BLE001 - a damaged bag can fail in many ways mid-read
            self.error = f'reading stopped at damaged data: {type(exc).__name__}: {exc}'

    def close(self) -> None:
        """Close the underlying reader."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> BagSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _qos_latched():
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
    zero = QosTime(0, 0)
    return [Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, zero, zero,
                QosLiveliness.AUTOMATIC, zero, False)]


class BagSink:
    """A rosbag2 being written (mcap, with zstd chunk compression when ``compress``, or sqlite3).

    ``path`` is the bag folder to create (it must not exist); topics are added on first use
    with :meth:`add_topic`; :meth:`write` takes CDR bytes and a log time in nanoseconds.
    """

    def __init__(self, path: Path | str, storage: str = 'mcap', compress: bool = False):
        """Create the bag folder and open the storage file."""
        from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
        self.path = Path(path)
        if self.path.exists():
            raise InputError(f'output bag {self.path} exists already; choose another --out folder')
        plugins = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
        if storage not in plugins:
            raise InputError(f'bag storage: expected one of {sorted(plugins)}, got {storage!r}')
        self._writer = Writer(self.path, version=9, storage_plugin=plugins[storage])
        if compress and storage == 'mcap':
            self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        self._writer.open()
        self._connections: Dict[str, object] = {}
        self.counts: Dict[str, int] = {}

    def add_topic(self, topic: str, msgtype: str, msgdef: str = '', digest: str = '',
                  qos: Optional[list] = None, latched: bool = False) -> None:
        """Register ``topic`` of ``msgtype`` (definition from the typestore unless given)."""
        if topic in self._connections:
            return
        if not msgdef or not digest:
            store = typestore()
            if msgtype not in store.fielddefs:
                raise InputError(f'message type {msgtype!r} of topic {topic}: no definition known '
                                 f'(expected one of the ROS 2 Jazzy types or vision_msgs)')
            msgdef, _ = store.generate_msgdef(msgtype, ros_version=2)
            digest = store.hash_rihs01(msgtype)
        profiles = list(qos or []) or (_qos_latched() if latched else [])
        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, msgdef=msgdef, rihs01=digest, offered_qos_profiles=profiles)
        self.counts[topic] = 0

    def write(self, topic: str, log_ns: int, data: bytes) -> None:
        """Write one serialized message on a registered topic at log time ``log_ns``."""
        self._writer.write(self._connections[topic], int(log_ns), data)
        self.counts[topic] += 1

    def close(self) -> None:
        """Write the index and metadata.yaml (idempotent); when that fails, the storage file is closed as it is."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        except Exception:
            if writer.storage is not None:
                writer.storage.abort()
            raise

    def __enter__(self) -> BagSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def storage_file(bag_dir: Path) -> Path:
    """The single storage file (.mcap or .db3) inside a bag folder written by :class:`BagSink`."""
    files = sorted(list(Path(bag_dir).glob('*.mcap')) + list(Path(bag_dir).glob('*.db3')))
    if not files:
        raise InputError(f'bag folder {bag_dir}: expected a .mcap or .db3 file, found none')
    return files[0]


def topic_table(source: BagSource) -> List[Tuple[str, str, int]]:
    """(topic, type, count) rows of a bag, sorted by topic name, for messages and listings."""
    return sorted((t.name, t.msgtype, t.count) for t in source.topics.values())
