"""A procedural street-scene dataset, labels <-> photo, with ground truth (demo and benchmark).

Each scene is random geometry (horizon, sky, a road in perspective with sidewalks, buildings,
trees, cars, people) drawn twice: as a colour label map in the official Cityscapes colours
(domain A, exact colours, no antialiasing) and as a "photo" (domain B) with per-class
textures, random car and clothing colours, lighting, colour cast, blur and sensor noise. So
labels -> photo is one-to-many, and photo -> labels must use texture and shape, not colour.

Layout written by `generate_synthetic_dataset(out_dir)`:

    trainA/000000.png ...        label maps of scenes 0..n_train-1 of the "trainA" stream
    trainB/000000.png ...        photos of *other* scenes (the "trainB" stream): truly unpaired
    testA/000000.png ...         label maps of the "test" scenes
    testB/000000.png ...         photos of the same test scenes (same stems: paired)
    label_ids/test/000000.png    class ids (uint8, index into CLASS_NAMES) of the test scenes
    classes.json                 class names, palette and the generation parameters

Scene `index` of a split is drawn from `scene_rng(seed, split, index)`, so every file can
be re-rendered on its own, and files are byte-identical for a given seed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from cyclegan.errors import ConfigError, DatasetError
from cyclegan.fileio import staged_folder

CLASS_NAMES = ("road", "sidewalk", "building", "vegetation", "sky", "car", "person")
ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, CAR, PERSON = range(len(CLASS_NAMES))

# Official Cityscapes colours (cityscapesScripts, labels.py) of these classes.
PALETTE = np.array(
    [
        (128, 64, 128),  # road
        (244, 35, 232),  # sidewalk
        (70, 70, 70),  # building
        (107, 142, 35),  # vegetation
        (70, 130, 180),  # sky
        (0, 0, 142),  # car
        (220, 20, 60),  # person
    ],
    dtype=np.uint8,
)
PALETTE.setflags(write=False)

SPLITS = ("trainA", "trainB", "test")
# Sub-parts of a class, only for the photo rendering (the part map is read together with
# the label map, so codes may repeat across classes).
_TRUNK, _CROWN = 1, 2
_CAR_BODY, _CAR_GLASS, _CAR_WHEEL = 1, 2, 3
MIN_SIZE = 32


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator that draws scene `index` of `split` ("trainA", "trainB" or "test")."""
    return np.random.default_rng([int(seed), SPLITS.index(split), int(index)])


def labels_to_rgb(label_ids: np.ndarray) -> np.ndarray:
    """Colour a (H, W) class-id map with PALETTE: (H, W, 3) uint8."""
    return PALETTE[label_ids]


def rgb_to_labels(label_rgb: np.ndarray) -> np.ndarray:
    """Invert `labels_to_rgb` exactly; raises ValueError on a colour not in PALETTE."""
    codes = _colour_codes(label_rgb.reshape(-1, 3))
    palette_codes = _colour_codes(PALETTE)
    order = np.argsort(palette_codes)
    position = np.clip(np.searchsorted(palette_codes[order], codes), 0, len(PALETTE) - 1)
    found = palette_codes[order][position] == codes
    if not found.all():
        raise ValueError(f"{int((~found).sum())} pixels have colours that are not in PALETTE")
    return order[position].astype(np.uint8).reshape(label_rgb.shape[:2])


def _colour_codes(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def render_scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one random scene of size x size pixels.

    Returns (label_ids uint8 (H, W), label_rgb uint8 (H, W, 3), photo uint8 (H, W, 3)).
    """
    if size < MIN_SIZE:
        raise ConfigError(f"synthetic scenes need size >= {MIN_SIZE}, got {size}")
    scene = _Scene(rng, size)
    return scene.labels, labels_to_rgb(scene.labels), scene.render_photo()


class _Scene:
    """Geometry of one scene: the label map plus what the photo rendering needs.

    Coordinates are pixel centres, kept as a column `y` (H, 1) and a row `x` (1, W) that
    broadcast to full masks. The photo is computed channel-first (3, H, W), where NumPy's
    inner loops run over whole rows: several times faster than (H, W, 3) at these sizes.
    """

    def __init__(self, rng: np.random.Generator, size: int) -> None:
        self.rng, self.size = rng, size
        shape = (size, size)
        self.y = (np.arange(size, dtype=np.float32) + 0.5)[:, None]
        self.x = (np.arange(size, dtype=np.float32) + 0.5)[None, :]
        self.horizon = size * rng.uniform(0.38, 0.55)
        self.depth = np.clip((self.y - self.horizon) / (size - self.horizon), 0.0, 1.0)
        self.vanish_x = size * rng.uniform(0.35, 0.65)
        self.road_bottom = (size * rng.uniform(-0.15, 0.2), size * rng.uniform(0.8, 1.15))
        self.sidewalk_bottom = size * rng.uniform(0.15, 0.28)
        ground = self.y >= self.horizon
        self.labels = np.full(shape, SKY, dtype=np.uint8)
        self.labels[ground[:, 0]] = VEGETATION  # grass beyond the sidewalks
        # Maps used only by the photo: which building, which part of a tree/car/person, and
        # the colour of car bodies and clothes.
        self.building_of = np.full(shape, -1, dtype=np.int16)
        self.part = np.zeros(shape, dtype=np.uint8)
        self.part_colour = np.zeros((3, *shape), dtype=np.float32)
        self.buildings = self._draw_buildings()
        left, right = self.road_edges(self.depth)
        spread = self.sidewalk_bottom * self.depth + 0.01 * size
        self.labels[ground & (self.x >= left - spread) & (self.x < right + spread)] = SIDEWALK
        self.labels[ground & (self.x >= left) & (self.x < right)] = ROAD
        self.building_of[self.labels != BUILDING] = -1
        self._draw_trees()
        self._draw_road_users()

    def road_edges(self, depth):
        """x of the left and right road edges at `depth` (0 at the horizon, 1 at the bottom)."""
        half_top = 0.015 * self.size
        left = self.vanish_x - half_top + (self.road_bottom[0] - self.vanish_x + half_top) * depth
        right = self.vanish_x + half_top + (self.road_bottom[1] - self.vanish_x - half_top) * depth
        return left, right

    def _draw_buildings(self) -> dict:
        rng, size = self.rng, self.size
        count = int(rng.integers(3, 8))
        left = size * rng.uniform(-0.15, 0.95, count)
        width = size * rng.uniform(0.12, 0.35, count)
        top = self.horizon * (1.0 - rng.uniform(0.2, 0.85, count))
        bottom = self.horizon + size * rng.uniform(0.0, 0.05, count)
        for i in range(count):
            columns = (self.x >= left[i]) & (self.x < left[i] + width[i])
            inside = columns & ((self.y >= top[i]) & (self.y < bottom[i]))
            self.labels[inside] = BUILDING
            self.building_of[inside] = i
        return {"left": left, "width": width, "top": top, "count": count}

    def _draw_trees(self) -> None:
        rng, size = self.rng, self.size
        count = int(rng.integers(1, 4))
        ragged = _value_noise(rng, size, size, 6)
        for _ in range(count):
            base_depth = rng.uniform(0.0, 0.45)
            on_left = rng.integers(2) == 0
            left, right = self.road_edges(base_depth)
            spread = self.sidewalk_bottom * base_depth + 0.01 * size
            base_x = left - spread if on_left else right + spread
            base_x += size * rng.uniform(-0.04, 0.04)
            base_y = self.horizon + base_depth * (size - self.horizon)
            radius = size * (0.35 + base_depth) * rng.uniform(0.11, 0.18)
            trunk_height = radius * rng.uniform(0.6, 1.0)
            centre_y = base_y - trunk_height - radius * 0.8
            trunk_columns = np.abs(self.x - base_x) < max(0.6, radius * 0.12)
            trunk = trunk_columns & ((self.y < base_y) & (self.y >= centre_y))
            distance = np.sqrt((self.x - base_x) ** 2 + ((self.y - centre_y) * 1.15) ** 2) / radius
            crown = distance < 0.85 + 0.35 * ragged
            self.labels[trunk | crown] = VEGETATION
            self.part[trunk] = _TRUNK
            self.part[crown] = _CROWN

    def _draw_road_users(self) -> None:
        rng, size = self.rng, self.size
        objects = [("car", rng.uniform(0.15, 0.95)) for _ in range(int(rng.integers(1, 4)))]
        objects += [("person", rng.uniform(0.25, 1.0)) for _ in range(int(rng.integers(1, 4)))]
        objects.sort(key=lambda item: item[1])  # far first, so that nearer ones occlude them
        for kind, depth in objects:
            bottom = self.horizon + depth * (size - self.horizon)
            left, right = self.road_edges(depth)
            if kind == "car":
                self._draw_car(bottom, left, right)
            else:
                self._draw_person(bottom, left, right, self.sidewalk_bottom * depth + 0.01 * size)

    def _draw_car(self, bottom: float, road_left: float, road_right: float) -> None:
        rng = self.rng
        width = max(4.0, (road_right - road_left) * rng.uniform(0.24, 0.34))
        leftmost = road_left + width / 2
        centre = rng.uniform(leftmost, max(leftmost, road_right - width / 2))
        wheel_radius = width * 0.12
        body_top, body_bottom = bottom - width * 0.42, bottom - wheel_radius * 0.8
        cabin_top = body_top - width * 0.22
        body_rows = (self.y >= body_top) & (self.y < body_bottom)
        body = (np.abs(self.x - centre) < width / 2) & body_rows
        cabin_half = width * (0.30 + 0.08 * (self.y - cabin_top) / (width * 0.22))  # sloped windows
        cabin_rows = (self.y >= cabin_top) & (self.y < body_top)
        cabin = (np.abs(self.x - centre) < cabin_half) & cabin_rows
        wheel_y = (self.y - (bottom - wheel_radius)) ** 2
        wheels = (((self.x - (centre - 0.3 * width)) ** 2 + wheel_y) < wheel_radius**2) | (
            ((self.x - (centre + 0.3 * width)) ** 2 + wheel_y) < wheel_radius**2
        )
        self.labels[body | cabin | wheels] = CAR
        self.part[body] = _CAR_BODY
        self.part[cabin] = _CAR_GLASS
        self.part[wheels] = _CAR_WHEEL
        np.copyto(self.part_colour, _random_car_colour(rng)[:, None, None], where=body)

    def _draw_person(
        self, bottom: float, road_left: float, road_right: float, sidewalk: float
    ) -> None:
        rng = self.rng
        on_left = rng.integers(2) == 0
        offset = sidewalk * rng.uniform(0.3, 0.7)
        centre = road_left - offset if on_left else road_right + offset
        height = max(6.0, (road_right - road_left) * rng.uniform(0.22, 0.3))
        half = max(1.0, height * 0.13)
        legs_top, torso_top = bottom - height * 0.45, bottom - height * 0.8
        head_radius = max(1.0, height * 0.1)
        head_y = torso_top - head_radius * 0.9
        legs = (np.abs(self.x - centre) < half * 0.85) & ((self.y >= legs_top) & (self.y < bottom))
        torso = (np.abs(self.x - centre) < half) & ((self.y >= torso_top) & (self.y < legs_top))
        head = ((self.x - centre) ** 2 + (self.y - head_y) ** 2) < head_radius**2
        self.labels[legs | torso | head] = PERSON
        self.part[torso | legs | head] = 0
        shirt = rng.uniform(0.05, 0.95, 3)
        trousers = rng.uniform(0.05, 0.35) * np.array([0.8, 0.9, 1.3]) * rng.uniform(0.6, 1.2, 3)
        skin = _SKIN_TONES[rng.integers(len(_SKIN_TONES))]
        for mask, colour in ((torso, shirt), (legs, trousers), (head, skin)):
            np.copyto(self.part_colour, colour.astype(np.float32)[:, None, None], where=mask)

    def render_photo(self) -> np.ndarray:
        """The photo of this scene: one full-frame texture per class, picked by the label map."""
        rng, size, y, x = self.rng, self.size, self.y, self.x
        grain = rng.standard_normal((size, size), dtype=np.float32)
        blotches = _value_noise(rng, size, size, 5)
        textures = [None] * len(CLASS_NAMES)

        # Sky: gradient from deep blue to a pale horizon, with clouds.
        top_colour = _colour(0.22, 0.42, 0.78) * _jitter(rng, 0.8, 1.15, 3)
        horizon_colour = _colour(0.78, 0.85, 0.92) * _jitter(rng, 0.9, 1.05, 3)
        fraction = np.clip(y / self.horizon, 0.0, 1.0)
        cloud = _value_noise(rng, size, size, 4) * 0.7 + _value_noise(rng, size, size, 9) * 0.3
        cloud = _smoothstep(0.45, 0.75, cloud) * rng.uniform(0.2, 1.0)
        sky = _planes(top_colour) + _planes(horizon_colour - top_colour) * fraction
        textures[SKY] = sky + (_planes(_colour(0.93, 0.93, 0.95)) - sky) * cloud

        # Vegetation: leafy two-scale noise, darker in tree crowns than on grass, brown trunks.
        leaves = _value_noise(rng, size, size, max(4, size // 4)) * 0.6 + 0.4 * blotches
        leafy = 0.55 + 0.7 * leaves + 0.12 * grain
        greens = np.stack([
            _colour(0.36, 0.48, 0.2) * _jitter(rng, 0.85, 1.15, 3),  # grass (part 0)
            _colour(0.3, 0.2, 0.12),  # trunk
            _colour(0.2, 0.36, 0.12) * _jitter(rng, 0.8, 1.2, 3),  # crown
        ], axis=1)
        textures[VEGETATION] = greens[:, np.minimum(self.part, _CROWN)] * leafy

        # Road: grey asphalt with grain and patches, edge lines and a dashed centre line.
        asphalt = _planes(rng.uniform(0.22, 0.42) * _colour(1.0, 1.0, 1.03))
        road = asphalt * (0.85 + 0.3 * blotches + 0.08 * grain)
        left, right = self.road_edges(self.depth)
        line_half = np.maximum(0.45, 0.012 * size * self.depth)
        centre_line = np.abs(x - (left + right) / 2) < line_half
        dashes = _fraction(6.0 / (self.depth + 0.08)) < 0.5
        edge_lines = (np.abs(x - left) < line_half * 1.4) | (np.abs(x - right) < line_half * 1.4)
        marking = (centre_line & dashes) | edge_lines
        paint = _colour(0.88, 0.86, 0.7) if rng.random() < 0.3 else _colour(0.9, 0.9, 0.9)
        textures[ROAD] = np.where(marking, _planes(paint) * (0.9 + 0.05 * grain), road)

        # Sidewalk: light paving with joints receding in perspective.
        paving = _colour(0.62, 0.6, 0.56) * rng.uniform(0.85, 1.15)
        joints = _fraction(9.0 / (self.depth + 0.1)) < 0.18
        shading = 0.9 + 0.15 * blotches - 0.22 * joints + 0.05 * grain
        textures[SIDEWALK] = _planes(paving) * shading

        textures[BUILDING] = self._building_texture(grain)

        # Cars: random body colour, dark glass cabin, black wheels.
        body = self.part_colour * (0.92 + 0.16 * blotches + 0.04 * grain)
        glass = _planes(_colour(0.12, 0.15, 0.2)) * (1 + 0.6 * blotches)
        car = np.where(self.part == _CAR_GLASS, glass, body)
        textures[CAR] = np.where(self.part == _CAR_WHEEL, _planes(_colour(0.05, 0.05, 0.05)), car)

        textures[PERSON] = self.part_colour * (1 + 0.05 * grain)

        photo = np.empty((3, size, size), dtype=np.float32)
        for class_id, texture in enumerate(textures):
            np.copyto(photo, texture, where=self.labels == class_id)

        # Camera: exposure and colour cast, side light, slight blur, sensor noise.
        gain = rng.uniform(0.75, 1.2) * (1 + 0.06 * rng.standard_normal(3, dtype=np.float32))
        side_light = 1 + rng.uniform(-0.12, 0.12) * (x / size - 0.5)
        photo = photo * _planes(gain) * side_light
        photo = _blur(photo, rng.uniform(0.3, 1.0))
        # Sensor noise: the sum of two uniforms, close to Gaussian and much cheaper to draw.
        noise = rng.random((2, 3, size, size), dtype=np.float32)
        photo += rng.uniform(0.015, 0.05) * (noise[0] + noise[1] - 1.0)
        photo = np.clip(photo * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(photo.transpose(1, 2, 0))

    def _building_texture(self, grain: np.ndarray) -> np.ndarray:
        """Facades: one colour per building, optional brick courses, a grid of windows."""
        rng, b, size = self.rng, self.buildings, self.size
        count = b["count"]
        bases = _FACADE_COLOURS[rng.integers(len(_FACADE_COLOURS), size=count)]
        bases = bases * rng.uniform(0.85, 1.15, (count, 1)) * rng.uniform(0.95, 1.05, (count, 3))
        columns = rng.integers(2, 6, count)
        storey = rng.uniform(0.07, 0.12, count) * size
        glass_tint = rng.uniform(0.1, 0.35, (count, 3)) * np.array([0.8, 0.9, 1.1])
        brick = rng.random(count) < 0.4
        which = np.maximum(self.building_of, 0)
        u = (self.x - b["left"].astype(np.float32)[which]) / b["width"].astype(np.float32)[which]
        v = self.y - b["top"].astype(np.float32)[which]
        cell_u = _fraction(u * columns.astype(np.float32)[which])
        storey_of = storey.astype(np.float32)[which]
        cell_v = _fraction(v / storey_of)
        window = (cell_u > 0.25) & (cell_u < 0.75) & (cell_v > 0.3) & (cell_v < 0.8)
        window &= v > storey_of * 0.5  # no windows in the cornice
        mortar = brick[which] & (_fraction(self.y / max(2.0, size / 32)) < 0.5)
        wall = bases.astype(np.float32).T[:, which] * (1 - 0.18 * mortar + 0.06 * grain)
        glass = glass_tint.astype(np.float32).T[:, which] * (1 + 0.1 * grain)
        return np.where(window, glass, wall)


_FACADE_COLOURS = np.array(
    [(0.55, 0.27, 0.2), (0.76, 0.68, 0.55), (0.5, 0.5, 0.52), (0.82, 0.8, 0.76), (0.62, 0.5, 0.38)]
)
_SKIN_TONES = np.array(
    [(0.96, 0.8, 0.69), (0.87, 0.67, 0.5), (0.65, 0.45, 0.3), (0.42, 0.28, 0.18)]
)


def _random_car_colour(rng: np.random.Generator) -> np.ndarray:
    """Any hue, saturation and brightness: a car's colour says nothing about its class."""
    hue, saturation, value = rng.random(), rng.uniform(0.0, 0.85), rng.uniform(0.12, 0.95)
    channel = np.mod(hue * 6 + np.array([5.0, 3.0, 1.0]), 6.0)
    weight = np.clip(np.minimum(channel, 4 - channel), 0.0, 1.0)
    return (value * (1 - saturation * weight)).astype(np.float32)


def _colour(red: float, green: float, blue: float) -> np.ndarray:
    return np.array([red, green, blue], dtype=np.float32)


def _planes(colour: np.ndarray) -> np.ndarray:
    """A colour (3,) shaped (3, 1, 1), to broadcast against channel-first images."""
    return np.asarray(colour, dtype=np.float32)[:, None, None]


def _jitter(rng: np.random.Generator, low: float, high: float, count: int) -> np.ndarray:
    return rng.uniform(low, high, count).astype(np.float32)


def _fraction(values: np.ndarray) -> np.ndarray:
    """values mod 1 (np.mod is several times slower for floats)."""
    return values - np.floor(values)


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _value_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a cells x cells random grid, interpolated with a smoothstep."""
    grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
    gy = (np.arange(height, dtype=np.float32) + 0.5) * (cells / height)
    gx = (np.arange(width, dtype=np.float32) + 0.5) * (cells / width)
    iy, ix = gy.astype(np.int64), gx.astype(np.int64)
    fy, fx = _smoothstep(0.0, 1.0, gy - iy)[:, None], _smoothstep(0.0, 1.0, gx - ix)[None, :]
    # Separable: interpolate the few grid rows along x, then the full rows along y.
    along_x = grid[:, ix] + (grid[:, ix + 1] - grid[:, ix]) * fx
    top, bottom = along_x[iy], along_x[iy + 1]
    return top + (bottom - top) * fy


def _blur(photo: np.ndarray, amount: float) -> np.ndarray:
    """Mix a (3, H, W) image with its 3x3 binomial blur (edges replicated)."""
    padded = np.pad(photo, ((0, 0), (1, 1), (1, 1)), mode="edge")
    rows = padded[:, :-2] + 2 * padded[:, 1:-1] + padded[:, 2:]
    blurred = (rows[:, :, :-2] + 2 * rows[:, :, 1:-1] + rows[:, :, 2:]) * (1 / 16)
    return photo + (blurred - photo) * amount


def generate_synthetic_dataset(
    out_dir: str | os.PathLike,
    size: int = 64,
    n_train: int = 1000,
    n_test: int = 200,
    seed: int = 0,
) -> dict:
    """Write the synthetic labels <-> photo dataset to `out_dir` (layout in the module doc).

    `out_dir` must not exist or be empty: the set is built in a temporary sibling folder and
    renamed into place at the end, so an interrupted run never leaves a partial dataset.
    Returns the number of files per folder.
    """
    if size < MIN_SIZE:
        raise ConfigError(f"synthetic scenes need size >= {MIN_SIZE}, got {size}")
    if n_train < 1 or n_test < 0:
        raise ConfigError(f"need n_train >= 1 and n_test >= 0, got {n_train} and {n_test}")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise DatasetError(
            f"{out_dir}: already exists and is not an empty folder. Choose a new folder, or "
            "delete this one to generate the synthetic dataset again."
        )
    counts = {
        "trainA": n_train,
        "trainB": n_train,
        "testA": n_test,
        "testB": n_test,
        "label_ids/test": n_test,
    }
    with staged_folder(out_dir) as staged:
        staging = staged.path
        for folder in counts:
            (staging / folder).mkdir(parents=True)
        for index in range(n_train):
            stem = f"{index:06d}"
            # Train A needs only the label map; the photo is not rendered.
            label_ids = _Scene(scene_rng(seed, "trainA", index), size).labels
            _write_png(labels_to_rgb(label_ids), staging / "trainA" / f"{stem}.png")
            _, _, photo = render_scene(scene_rng(seed, "trainB", index), size)
            _write_png(photo, staging / "trainB" / f"{stem}.png")
        for index in range(n_test):
            stem = f"{index:06d}"
            label_ids, label_rgb, photo = render_scene(scene_rng(seed, "test", index), size)
            _write_png(label_rgb, staging / "testA" / f"{stem}.png")
            _write_png(photo, staging / "testB" / f"{stem}.png")
            _write_png(label_ids, staging / "label_ids" / "test" / f"{stem}.png")
        description = {
            "names": list(CLASS_NAMES),
            "palette": PALETTE.tolist(),
            "domains": {"A": "colour label map (exact PALETTE colours)", "B": "rendered photo"},
            "size": size,
            "seed": seed,
            "n_train": n_train,
            "n_test": n_test,
        }
        (staging / "classes.json").write_text(json.dumps(description, indent=2) + "\n")
    return counts


def _write_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, format="PNG", compress_level=1)


def generate_paired_training_set(out_dir: str | os.PathLike, size: int = 64, n_train: int = 1000,
                                 seed: int = 0) -> dict:
    """Paired training data for pix2pix, the supervised upper bound of the benchmark.

    Writes `trainA/` (the very label maps of the unpaired set's trainA, same seed and stems)
    and `trainB/` (the photos of *those* scenes), so pix2pix sees the same scenes CycleGAN
    does, but with their true partners. Evaluate on the unpaired set's test split.
    """
    if size < MIN_SIZE:
        raise ConfigError(f"synthetic scenes need size >= {MIN_SIZE}, got {size}")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise DatasetError(f"{out_dir}: already exists and is not empty; delete it or choose another folder")
    with staged_folder(out_dir) as staged:
        staging = staged.path
        for folder in ("trainA", "trainB"):
            (staging / folder).mkdir(parents=True)
        for index in range(n_train):
            _, label_rgb, photo = render_scene(scene_rng(seed, "trainA", index), size)
            _write_png(label_rgb, staging / "trainA" / f"{index:06d}.png")
            _write_png(photo, staging / "trainB" / f"{index:06d}.png")
    return {"trainA": n_train, "trainB": n_train}
