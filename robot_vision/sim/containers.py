"""Containers for generated scenes: an open bin (tote) or a shelf cubby, with walls that are background.

A container stands on the support surface, centred at the world origin. Its walls are static
MuJoCo geoms named ``container_*`` in a body ``container`` without joints: they render (colour,
depth) but belong to no object, so :class:`~robot_vision.sim.GroundTruth` never lists them.
The shelf cubby is open towards -x (its front), like a bin of the Amazon Picking Challenge shelf.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

#: Container kinds of ``SceneSettings.container``.
CONTAINERS = ('none', 'bin', 'shelf')

#: Camera ranges a container sets (see ``SceneSettings.with_container``): (distance m, elevation deg,
#: azimuth half-range deg around the container's front, or 180 for any side).
CONTAINER_VIEWS = {'bin': ((0.5, 1.0), (45.0, 90.0), 180.0), 'shelf': ((0.4, 0.8), (5.0, 25.0), 25.0)}
#: The same with the 'hard' views (``with_container(kind, views='hard')``): a wrist camera close
#: above the bin, looking (nearly) straight down, so that the bin fills most of the view.
CONTAINER_VIEWS_HARD = {'bin': ((0.4, 0.55), (75.0, 90.0), 180.0), 'shelf': ((0.3, 0.5), (5.0, 35.0), 25.0)}


@dataclass(frozen=True)
class WallSpec:
    """One axis-aligned box of a container: ``half_size`` and world ``centre`` (metres)."""

    name: str
    half_size: Tuple[float, float, float]
    centre: Tuple[float, float, float]


@dataclass(frozen=True)
class ContainerSpec:
    """A drawn container.

    ``inner`` (length x, width y, height z) of the free inside in metres; ``floor_z`` the world z
    of the inside floor's top; ``walls`` the boxes (floor, walls, lip, top); ``wall_rgb`` /
    ``floor_rgb`` their colours; ``texture`` 'none' or 'gradient' for the walls.
    """

    kind: str
    inner: Tuple[float, float, float]
    floor_z: float
    walls: Tuple[WallSpec, ...]
    wall_rgb: Tuple[float, float, float]
    floor_rgb: Tuple[float, float, float]
    texture: str = 'none'

    def inner_bounds(self) -> Tuple[np.ndarray, np.ndarray]:
        """World (low (3,), high (3,)) corners of the free inside of the container."""
        lx, ly, lz = self.inner
        return (np.array([-lx / 2, -ly / 2, self.floor_z]), np.array([lx / 2, ly / 2, self.floor_z + lz]))

    def sample_xy(self, rng: np.random.Generator, footprint: float, margin: float = 0.005) -> np.ndarray:
        """A uniform (x, y) at which a bounding circle of radius ``footprint`` fits inside the walls.

        When the circle is wider than the inside along an axis, that coordinate is the centre.
        """
        half = np.maximum(np.array(self.inner[:2]) / 2 - footprint - margin, 0.0)
        return rng.uniform(-half, half)

    def mjcf_asset(self) -> str:
        """MJCF ``<asset>`` lines: the wall and floor materials."""
        (r, g, b), (fr, fg, fb) = self.wall_rgb, self.floor_rgb
        if self.texture == 'none':
            wall = f'    <material name="container_mat" rgba="{r:.3f} {g:.3f} {b:.3f} 1"/>'
        else:
            wall = ('    <texture name="container_tex" type="cube" builtin="gradient" width="64" height="64" '
                    f'rgb1="{r:.3f} {g:.3f} {b:.3f}" rgb2="{0.7 * r:.3f} {0.7 * g:.3f} {0.7 * b:.3f}"/>\n'
                    '    <material name="container_mat" texture="container_tex"/>')
        return (f'{wall}\n    <material name="container_floor_mat" rgba="{fr:.3f} {fg:.3f} {fb:.3f} 1" '
                'specular="0.3"/>')

    def mjcf_body(self) -> str:
        """MJCF ``<worldbody>`` lines: a static body ``container`` with one box geom per wall."""
        lines = ['    <body name="container">']
        for wall in self.walls:
            material = 'container_floor_mat' if wall.name in ('floor', 'lip') else 'container_mat'
            size = ' '.join(f'{v:.4f}' for v in wall.half_size)
            pos = ' '.join(f'{v:.4f}' for v in wall.centre)
            lines.append(f'      <geom name="container_{wall.name}" type="box" size="{size}" pos="{pos}" '
                         f'material="{material}" friction="0.8 0.005 0.0001"/>')
        lines.append('    </body>')
        return '\n'.join(lines)


def draw_container(rng: np.random.Generator, kind: str, surface_z: float, randomize: bool) -> ContainerSpec:
    """Draw a container of ``kind`` ('bin' or 'shelf') standing on the surface at height ``surface_z``.

    bin: a tote, inside 0.30-0.45 x 0.24-0.34 m, walls 0.10-0.25 m high and 8-15 mm thick, a
    1 cm floor. shelf: a cubby open at the front (-x), inside 0.25-0.30 m wide, 0.38-0.45 m deep
    and 0.20-0.25 m high (an APC shelf bin is about 0.27 x 0.43 x 0.23 m), 1-2 cm boards, its
    floor raised 2-15 cm above the surface on a plinth, a 1.5-3 cm lip along the front edge of
    the floor and a top board; the cubby is the lower middle one of a 3 x 2 section of shelf
    whose other cubbies are empty.
    """
    t = float(rng.uniform(0.008, 0.015)) if kind == 'bin' else float(rng.uniform(0.01, 0.02))
    walls: List[WallSpec] = []
    if kind == 'bin':
        lx, ly, lz = rng.uniform(0.30, 0.45), rng.uniform(0.24, 0.34), rng.uniform(0.10, 0.25)
        floor_t = 0.005
        floor_z = surface_z + 2 * floor_t
        ox, oy = lx / 2 + t, ly / 2 + t
        walls.append(WallSpec('floor', (ox, oy, floor_t), (0.0, 0.0, surface_z + floor_t)))
        zc = floor_z + lz / 2
        for name, sign in (('wall_x_pos', 1), ('wall_x_neg', -1)):
            walls.append(WallSpec(name, (t / 2, oy, lz / 2), (sign * (lx / 2 + t / 2), 0.0, zc)))
        for name, sign in (('wall_y_pos', 1), ('wall_y_neg', -1)):
            walls.append(WallSpec(name, (lx / 2, t / 2, lz / 2), (0.0, sign * (ly / 2 + t / 2), zc)))
    else:   # the cubby in the middle of a 3 x 2 section of shelf: empty cubbies beside it and above
        lx, ly, lz = rng.uniform(0.38, 0.45), rng.uniform(0.25, 0.30), rng.uniform(0.20, 0.25)
        raise_z = float(rng.uniform(0.02, 0.15))
        floor_z = surface_z + raise_z
        lip = float(rng.uniform(0.015, 0.03))
        wy = 1.5 * ly + 2 * t            # half-width of the section
        height = 2 * (lz + t)            # from the floor to the top of the upper board
        walls.append(WallSpec('floor', ((lx + t) / 2 + 0.004, wy, raise_z / 2),
                              ((t - 0.008) / 2, 0.0, surface_z + raise_z / 2)))
        walls.append(WallSpec('lip', (0.004, wy, lip / 2), (-lx / 2 - 0.004, 0.0, floor_z + lip / 2)))
        walls.append(WallSpec('back', (t / 2, wy, height / 2), (lx / 2 + t / 2, 0.0, floor_z + height / 2)))
        for name, level in (('top', 1), ('top_upper', 2)):
            walls.append(WallSpec(name, (lx / 2, wy, t / 2), (0.0, 0.0, floor_z + level * (lz + t) - t / 2)))
        for name, y in (('side_y_pos', ly / 2 + t / 2), ('side_y_neg', -ly / 2 - t / 2),
                        ('outer_y_pos', wy - t / 2), ('outer_y_neg', t / 2 - wy)):
            walls.append(WallSpec(name, (lx / 2, t / 2, (height - t) / 2), (0.0, y, floor_z + (height - t) / 2)))
    if randomize:
        wall_rgb = tuple(float(v) for v in rng.uniform(0.2, 0.85, 3))
        floor_rgb = tuple(float(v) for v in rng.uniform(0.2, 0.85, 3))
        texture = ('none', 'gradient')[int(rng.integers(2))]
    else:   # cardboard walls, a grey metal floor
        wall_rgb, floor_rgb, texture = (0.62, 0.48, 0.33), (0.55, 0.56, 0.58), 'none'
    return ContainerSpec(kind=kind, inner=(float(lx), float(ly), float(lz)), floor_z=float(floor_z),
                         walls=tuple(walls), wall_rgb=wall_rgb, floor_rgb=floor_rgb, texture=texture)


def leaning_board(rng: np.random.Generator, container: ContainerSpec) -> Tuple[Tuple[float, float, float],
                                                                                np.ndarray, np.ndarray]:
    """A book-like box standing on the floor and leaning on a side wall (y = +-inner width / 2).

    Returns (half-size (along the wall, thickness, height) in metres, rotation (3, 3), centre (3,)
    world). The box is tilted 8-25 deg towards the wall with its upper edge 2 mm off the wall and
    its lowest corner 2 mm above the floor; physics lets it settle against the wall.
    """
    _, ly, lz = container.inner
    half = np.array([rng.uniform(0.045, 0.08), rng.uniform(0.008, 0.02), min(rng.uniform(0.06, 0.1), 0.45 * lz)])
    side = 1.0 if rng.uniform() < 0.5 else -1.0
    tilt = -np.deg2rad(rng.uniform(8.0, 25.0)) * side
    c, s = np.cos(tilt), np.sin(tilt)
    rotation = np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])   # top edge leans towards +y * side
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * half @ rotation.T
    centre = np.zeros(3)
    centre[0] = rng.uniform(-1, 1) * max(container.inner[0] / 2 - half[0] - 0.01, 0.0)
    centre[1] = side * (ly / 2 - 0.002) - (corners[:, 1].max() if side > 0 else corners[:, 1].min())
    centre[2] = container.floor_z + 0.002 - corners[:, 2].min()
    return (float(half[0]), float(half[1]), float(half[2])), rotation, centre


__all__ = ['CONTAINERS', 'CONTAINER_VIEWS', 'CONTAINER_VIEWS_HARD', 'ContainerSpec', 'WallSpec', 'draw_container',
           'leaning_board']
