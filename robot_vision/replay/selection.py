"""Choice of a bag's input topics: colour, depth, camera_info, tf, tf_static (see :func:`select_topics`)."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Tuple

from robot_vision.compressed_images import DEPTH_ENCODINGS, TRANSPORTS, is_depth
from robot_vision.errors import InputError
from robot_vision.replay.bag import BagSource, TopicInfo, topic_table
from robot_vision.ros.topics import INPUT_TYPES, OUTPUT_TOPICS

RAW_IMAGE, COMPRESSED_IMAGE = 'sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage'


def _namespace(topic: str) -> str:
    return topic.rsplit('/', 1)[0]


def select_topics(source: BagSource, codec: Any, overrides: Mapping[str, str] = (),
                  hints: Mapping[str, str] = ()) -> Tuple[Dict[str, str], List[str]]:
    """Choose the topic of each input role; returns ({role: topic}, notes).

    Image topics are told apart by their first message: an Image by its encoding (16UC1/mono16/32FC1
    is depth), a CompressedImage by its format (``compressedDepth`` or a depth encoding is depth,
    see :func:`robot_vision.compressed_images.is_depth`; without an encoding in the format, by the
    topic name). ``overrides`` win; ``hints`` (e.g. the node's configured topic names) are preferred
    when present in the bag (also as the base of a ``.../compressed`` topic), then the usual names
    (``color``/``rgb``, ``aligned``), then raw before compressed. Raises InputError listing the
    bag's topics when no colour or no depth topic can be found.
    """
    topics: Dict[str, TopicInfo] = source.topics
    overrides, hints = dict(overrides), dict(hints)
    notes: List[str] = []
    chosen: Dict[str, str] = {}
    listing = '; '.join(f'{n} [{t}] x{c}' for n, t, c in topic_table(source)) or 'none'
    for role, topic in overrides.items():
        if topic not in topics:
            raise InputError(f'--topics {role}={topic}: no such topic in the bag (topics: {listing})')
        if topics[topic].msgtype not in INPUT_TYPES[role]:
            raise InputError(f'--topics {role}={topic}: expected a {" or ".join(INPUT_TYPES[role])}, '
                             f'got {topics[topic].msgtype}')
        chosen[role] = topic
    outputs = {t.name for t in OUTPUT_TOPICS}
    images = sorted(n for n, t in topics.items() if t.msgtype in (RAW_IMAGE, COMPRESSED_IMAGE)
                    and n.rsplit('/', 1)[-1] not in outputs and t.count > 0)
    kinds = {name: _image_kind(source, codec, name, notes) for name in images}
    for role in ('color', 'depth'):
        if role in chosen:
            continue
        candidates = [n for n in images if kinds[n] == role]
        hint = hints.get(role, '').strip('/')

        def rank(name: str, role: str = role, hint: str = hint) -> Tuple[int, bool, bool, str]:
            plain = name.strip('/')
            base = plain.rsplit('/', 1)[0] if plain.rsplit('/', 1)[-1] in TRANSPORTS else plain
            named = ('color' in name or 'rgb' in name) if role == 'color' else 'aligned' in name
            # the configured topic first, then the usual names, then raw before compressed (lossless)
            return (0 if hint and plain == hint else 1 if hint and base == hint else 2, not named,
                    topics[name].msgtype == COMPRESSED_IMAGE, name)
        candidates.sort(key=rank)
        if not candidates:
            odd = '' if role == 'color' else _not_depth(source, codec, [n for n in images if 'depth' in n
                                                                        and topics[n].msgtype == RAW_IMAGE])
            raise InputError(f'bag {source.path}: no {"colour" if role == "color" else "depth"} image topic '
                             f'(sensor_msgs/Image {"rgb8/bgr8/mono8" if role == "color" else "16UC1/32FC1"} or '
                             f'CompressedImage {"jpeg/png" if role == "color" else "compressedDepth"}) found'
                             f'{odd}; topics: {listing}')
        if len(candidates) > 1:
            notes.append(f'{len(candidates)} {role} topics {sorted(candidates)}: using {candidates[0]} '
                         f'(choose with --topics {role}=TOPIC)')
        chosen[role] = candidates[0]
    if 'camera_info' not in chosen:
        infos = sorted(n for n, t in topics.items() if t.msgtype == 'sensor_msgs/msg/CameraInfo' and t.count)
        hint = hints.get('camera_info', '')
        ranked = sorted(infos, key=lambda n: (n.strip('/') != hint.strip('/'),
                                              _namespace(n) != _namespace(chosen['color']),
                                              _namespace(n) != _namespace(chosen['depth']), n))
        if not ranked:
            raise InputError(f'bag {source.path}: no sensor_msgs/CameraInfo topic found, so the images cannot be '
                             f'deprojected; topics: {listing}')
        chosen['camera_info'] = ranked[0]
    for role, suffix in (('tf', '/tf'), ('tf_static', '/tf_static')):
        if role not in chosen:
            hits = sorted(n for n, t in topics.items() if t.msgtype == 'tf2_msgs/msg/TFMessage'
                          and n.endswith(suffix))
            if hits:
                chosen[role] = hits[0]
    return chosen, notes


def _image_kind(source: BagSource, codec: Any, name: str, notes: List[str]) -> str:
    """'color' or 'depth' for an image topic, from its first message's encoding or compressed format."""
    info = source.topics[name]
    first = next(iter(source.messages([name])), None)
    msg = None
    if first is not None:
        try:
            msg = codec.decode(first.msgtype, first.data)
        except InputError as exc:
            notes.append(f'topic {name}: first message unreadable ({exc})')
    if info.msgtype == COMPRESSED_IMAGE:
        return 'depth' if is_depth(msg.format if msg is not None else '', name) else 'color'
    encoding = msg.encoding if msg is not None else ''
    return 'depth' if encoding in DEPTH_ENCODINGS or (not encoding and 'depth' in name) else 'color'


def _not_depth(source: BagSource, codec: Any, names: List[str]) -> str:
    """'; TOPIC has encoding 'yuv422', which is not a depth encoding (...)' for each raw image topic of ``names``."""
    found = []
    for name in names:
        first = next(iter(source.messages([name])), None)
        try:
            encoding = codec.decode(first.msgtype, first.data).encoding if first is not None else ''
        except InputError:
            continue
        if encoding:
            found.append(f'; {name} has encoding {encoding!r}, which is not a depth encoding (supported: '
                         f'{", ".join(DEPTH_ENCODINGS)})')
    return ''.join(found)
