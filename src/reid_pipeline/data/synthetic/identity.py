"""Per-identity appearance attributes of the synthetic pedestrians.

Our design (no paper): the attribute list follows the pedestrian-attribute vocabularies of
PETA / Market-1501-attribute (gender, hair length, sleeve length, lower-body type, upper / lower
colour, backpack, bag, hand-held object) so that the coarse statistics look like real ReID data.
Coarse colours are drawn from small palettes ordered by how common they are in real street
scenes (black and dark blue tops first); ``sharing`` sharpens that distribution, so many
identities share e.g. a black top and identity is decided by fine details (pattern, logo, bag,
shoes, hair), as in Market-1501.

Each identity is a pure function of ``(seed, key)``: its own ``numpy`` generator is derived from
those two numbers, so an identity never depends on generation order or on the number of workers.

Infrared: clothing gets a *material* (cotton, denim, ...) whose emission level is what a thermal
camera sees; the hue never reaches an IR image. Pattern inks differ in emissivity by a per-
identity amount, so stripes / checks survive in IR while their colours do not. Near-IR
(reflected light) also depends on the dye: ``nir_dye`` mixes a luminance-following reflectance
with a dye that is transparent (bright) in near-IR, so visible luminance - never hue - is
partly predictive in near-IR, as in real NIR crops (white shirts bright, some black ones too).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from reid_pipeline.data.synthetic.raster import RGB

_IDENTITY_STREAM = 0x1D

# (name, rgb, relative frequency) - ordered most common first.
UPPER_COLOURS: tuple[tuple[str, RGB, float], ...] = (
    ("black", (0.09, 0.09, 0.10), 6.0),
    ("white", (0.88, 0.88, 0.86), 4.0),
    ("grey", (0.50, 0.50, 0.52), 3.0),
    ("navy", (0.12, 0.15, 0.33), 3.0),
    ("blue", (0.20, 0.35, 0.70), 2.0),
    ("red", (0.68, 0.12, 0.13), 1.5),
    ("green", (0.20, 0.44, 0.25), 1.2),
    ("beige", (0.80, 0.72, 0.57), 1.2),
    ("brown", (0.42, 0.28, 0.18), 1.0),
    ("light_blue", (0.58, 0.73, 0.90), 1.0),
    ("pink", (0.90, 0.58, 0.68), 0.8),
    ("yellow", (0.90, 0.80, 0.22), 0.7),
    ("purple", (0.43, 0.24, 0.55), 0.6),
    ("orange", (0.90, 0.50, 0.15), 0.5),
)
LOWER_COLOURS: tuple[tuple[str, RGB, float], ...] = (
    ("black", (0.08, 0.08, 0.09), 6.0),
    ("denim", (0.24, 0.30, 0.45), 5.0),
    ("navy", (0.12, 0.14, 0.28), 2.5),
    ("grey", (0.45, 0.45, 0.47), 2.5),
    ("khaki", (0.68, 0.60, 0.44), 1.5),
    ("white", (0.86, 0.86, 0.84), 1.0),
    ("brown", (0.38, 0.26, 0.17), 1.0),
    ("olive", (0.33, 0.36, 0.20), 0.7),
    ("red", (0.60, 0.13, 0.14), 0.4),
)
SKIN_TONES: tuple[tuple[str, RGB, float], ...] = (
    ("light", (0.93, 0.78, 0.67), 3.0),
    ("fair", (0.87, 0.70, 0.57), 3.0),
    ("medium", (0.76, 0.57, 0.42), 2.0),
    ("olive", (0.65, 0.48, 0.33), 1.5),
    ("brown", (0.48, 0.33, 0.22), 1.0),
    ("dark", (0.32, 0.22, 0.15), 1.0),
)
HAIR_COLOURS: tuple[tuple[str, RGB, float], ...] = (
    ("black", (0.06, 0.05, 0.05), 6.0),
    ("dark_brown", (0.22, 0.14, 0.09), 3.0),
    ("brown", (0.40, 0.26, 0.15), 1.5),
    ("blond", (0.78, 0.65, 0.40), 0.8),
    ("grey", (0.62, 0.62, 0.62), 0.6),
    ("auburn", (0.50, 0.20, 0.10), 0.4),
)
SHOE_COLOURS: tuple[tuple[str, RGB, float], ...] = (
    ("black", (0.07, 0.07, 0.07), 5.0),
    ("white", (0.90, 0.90, 0.90), 4.0),
    ("brown", (0.35, 0.22, 0.12), 1.5),
    ("grey", (0.50, 0.50, 0.50), 1.5),
    ("red", (0.70, 0.12, 0.12), 0.5),
    ("blue", (0.18, 0.30, 0.65), 0.5),
)
BAG_COLOURS: tuple[tuple[str, RGB, float], ...] = (
    ("black", (0.08, 0.08, 0.09), 5.0),
    ("grey", (0.40, 0.40, 0.42), 2.0),
    ("navy", (0.12, 0.16, 0.35), 1.5),
    ("brown", (0.42, 0.27, 0.15), 1.5),
    ("red", (0.70, 0.14, 0.14), 0.8),
    ("beige", (0.78, 0.70, 0.55), 0.8),
    ("green", (0.18, 0.40, 0.22), 0.6),
    ("pink", (0.88, 0.55, 0.66), 0.5),
)
LOGO_COLOURS: tuple[tuple[str, RGB, float], ...] = (
    ("white", (0.95, 0.95, 0.95), 2.0),
    ("red", (0.85, 0.10, 0.12), 1.5),
    ("yellow", (0.95, 0.85, 0.15), 1.0),
    ("blue", (0.15, 0.35, 0.85), 1.0),
    ("green", (0.15, 0.65, 0.25), 1.0),
    ("orange", (0.95, 0.55, 0.10), 1.0),
    ("black", (0.05, 0.05, 0.05), 1.0),
)
# IR emission (thermal) / reflectance (near-IR) of clothing materials, in [0, 1].
MATERIALS: dict[str, float] = {
    "cotton": 0.56,
    "denim": 0.46,
    "synthetic": 0.64,
    "wool": 0.50,
    "leather": 0.34,
}
UPPER_PATTERNS: tuple[tuple[str, float], ...] = (
    ("plain", 5.0),
    ("hstripes", 1.2),
    ("vstripes", 0.8),
    ("checks", 1.0),
    ("print", 1.2),
)
LOWER_PATTERNS: tuple[tuple[str, float], ...] = (
    ("plain", 8.0),
    ("hstripes", 0.4),
    ("vstripes", 0.6),
    ("checks", 0.6),
)
LOGO_SHAPES = ("circle", "square", "triangle", "diamond", "bar")
HANDHELD_KINDS = ("handbag", "umbrella", "bottle", "phone", "box")


@dataclass(frozen=True)
class Garment:
    """One piece of clothing: colours, pattern, material (IR), and for the top the sleeve length."""

    colour: RGB
    colour2: RGB
    pattern: str  # plain | hstripes | vstripes | checks | print (upper only)
    period: float  # pattern period as a fraction of the person's height
    material: str
    ir_delta: float  # emission difference of the second pattern tone (IR texture)
    nir_dye: (
        float  # 0..1: how near-IR-transparent the dye is (1: bright in NIR whatever its colour)
    )
    kind: str  # upper: long_sleeve | short_sleeve; lower: trousers | shorts | skirt


@dataclass(frozen=True)
class Identity:
    key: int
    gender: str  # female | male (RegDB file names carry it)
    height: float  # relative body height, ~1
    shoulder: float  # half shoulder width / body height
    hip: float  # half hip width / body height
    head: float  # head radius / body height
    leg: float  # leg length / body height
    skin: RGB
    hair: RGB
    hair_length: str  # short | medium | long
    upper: Garment
    lower: Garment
    shoes: RGB
    backpack: RGB | None
    shoulder_bag: tuple[RGB, int] | None  # colour, strap side (-1 left shoulder, +1 right)
    handheld: tuple[str, RGB, int] | None  # kind, colour, hand (-1 / +1)
    logo: tuple[str, RGB, float, float] | None  # shape, colour, size, x offset (fractions)
    print_colour: RGB  # the chest print of pattern "print"
    skin_ir: float  # body heat: bright in IR
    hair_ir: float
    bag_ir: float


@lru_cache(maxsize=256)
def _cdf(frequencies: tuple[float, ...], sharing: float) -> np.ndarray:
    """Cumulative sampling weights: real-world frequencies sharpened (sharing > 0.5) or
    flattened (< 0.5). sharing = 0 -> uniform over the palette; 0.5 -> the listed frequencies;
    1 -> frequencies ** 3 (a few coarse colours dominate, so fine details must decide identity).
    """
    w = np.asarray(frequencies, dtype=np.float64) ** (3.0 * sharing)
    return np.cumsum(w / w.sum())


def _index(rng: np.random.Generator, frequencies: tuple[float, ...], sharing: float) -> int:
    cdf = _cdf(frequencies, sharing)
    return min(int(np.searchsorted(cdf, rng.random(), side="right")), len(cdf) - 1)


def _pick(rng: np.random.Generator, palette, sharing: float, jitter: float) -> RGB:
    base = palette[_index(rng, tuple(p[2] for p in palette), sharing)][1]
    j = rng.uniform(-jitter, jitter, 3)
    return (
        min(max(base[0] + float(j[0]), 0.0), 1.0),
        min(max(base[1] + float(j[1]), 0.0), 1.0),
        min(max(base[2] + float(j[2]), 0.0), 1.0),
    )


def _choice(rng: np.random.Generator, table: tuple[tuple[str, float], ...]) -> str:
    return table[_index(rng, tuple(t[1] for t in table), 1.0 / 3.0)][0]  # weights as listed


def _one_of(rng: np.random.Generator, items: tuple):
    return items[int(rng.integers(len(items)))]


def _contrast_colour(rng: np.random.Generator, base: RGB, sharing: float) -> RGB:
    """A second pattern colour clearly different in luminance or hue from ``base``."""
    for _ in range(8):
        c = _pick(rng, UPPER_COLOURS, sharing * 0.5, 0.03)
        if np.abs(np.subtract(c, base)).sum() > 0.45:
            return c
    return (0.92, 0.92, 0.9) if sum(base) < 1.5 else (0.08, 0.08, 0.1)


def _garment(rng: np.random.Generator, *, upper: bool, gender: str, sharing: float) -> Garment:
    palette = UPPER_COLOURS if upper else LOWER_COLOURS
    colour = _pick(rng, palette, sharing, 0.035)
    pattern = _choice(rng, UPPER_PATTERNS if upper else LOWER_PATTERNS)
    if upper:
        kind = "short_sleeve" if rng.random() < 0.4 else "long_sleeve"
        material = _one_of(rng, ("cotton", "synthetic", "wool", "cotton", "leather"))
    else:
        p_skirt = 0.3 if gender == "female" else 0.0
        r = rng.random()
        kind = "skirt" if r < p_skirt else ("shorts" if r < p_skirt + 0.2 else "trousers")
        material = _one_of(rng, ("denim", "cotton", "synthetic", "denim"))
    return Garment(
        colour=colour,
        colour2=_contrast_colour(rng, colour, sharing),
        pattern=pattern,
        period=float(rng.uniform(0.035, 0.075)),
        material=material,
        ir_delta=_one_of(rng, (-1.0, 1.0)) * float(rng.uniform(0.10, 0.22)),
        nir_dye=float(rng.uniform(0.0, 1.0)),
        kind=kind,
    )


def sample_identity(seed: int, key: int, *, sharing: float = 0.5) -> Identity:
    """The attributes of identity ``key`` under ``seed`` (pure function of its arguments)."""
    rng = np.random.default_rng([seed, _IDENTITY_STREAM, key])
    gender = "female" if rng.random() < 0.45 else "male"
    female = gender == "female"
    if female:
        hair_length = _choice(rng, (("short", 0.15), ("medium", 0.3), ("long", 0.55)))
    else:
        hair_length = _choice(rng, (("short", 0.75), ("medium", 0.2), ("long", 0.05)))
    backpack = _pick(rng, BAG_COLOURS, sharing, 0.03) if rng.random() < 0.3 else None
    shoulder_bag = None
    if rng.random() < (0.3 if female else 0.15):
        shoulder_bag = (_pick(rng, BAG_COLOURS, sharing, 0.03), _one_of(rng, (-1, 1)))
    handheld = None
    if rng.random() < 0.18:
        kind = _one_of(rng, HANDHELD_KINDS)
        handheld = (kind, _pick(rng, BAG_COLOURS, sharing, 0.04), _one_of(rng, (-1, 1)))
    logo = None
    if rng.random() < 0.35:
        logo = (
            _one_of(rng, LOGO_SHAPES),
            _pick(rng, LOGO_COLOURS, 0.3, 0.03),
            float(rng.uniform(0.022, 0.04)),
            float(rng.uniform(-0.05, 0.05)),
        )
    return Identity(
        key=key,
        gender=gender,
        height=float(rng.uniform(0.93, 1.0)),
        shoulder=float(rng.uniform(0.1, 0.125) if female else rng.uniform(0.115, 0.145)),
        hip=float(rng.uniform(0.085, 0.11)),
        head=float(rng.uniform(0.058, 0.07)),
        leg=float(rng.uniform(0.45, 0.52)),
        skin=_pick(rng, SKIN_TONES, 0.5, 0.02),
        hair=_pick(rng, HAIR_COLOURS, sharing, 0.02),
        hair_length=hair_length,
        upper=_garment(rng, upper=True, gender=gender, sharing=sharing),
        lower=_garment(rng, upper=False, gender=gender, sharing=sharing),
        shoes=_pick(rng, SHOE_COLOURS, sharing, 0.03),
        backpack=backpack,
        shoulder_bag=shoulder_bag,
        handheld=handheld,
        logo=logo,
        print_colour=_pick(rng, LOGO_COLOURS, 0.3, 0.05),
        skin_ir=float(rng.uniform(0.86, 0.97)),
        hair_ir=float(rng.uniform(0.38, 0.55)),
        bag_ir=float(rng.uniform(0.18, 0.34)),
    )


@lru_cache(maxsize=4096)
def cached_identity(seed: int, key: int, sharing: float) -> Identity:
    return sample_identity(seed, key, sharing=sharing)
