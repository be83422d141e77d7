"""The pedestrian figure: an ``Identity`` in a pose turned into a display list of primitives.

Our design (no paper). ``person_ops`` lays out legs / lower garment, shoes, torso with its pattern,
arms and sleeves, neck, head and hair, chest print and logo, backpack, shoulder bag and hand-held
object with body proportions from the identity. The viewpoint decides what is visible, as in real
crops: from the back the backpack body and long hair; from the front only the straps, plus the
face, the chest print and the logo; in a side view a narrow torso, the backpack protruding behind,
legs in stride and one arm in front of the body.

Every primitive carries a visible colour and an infrared level (raster.Paint). IR levels come from
the identity's materials (clothing), body heat (skin: bright in thermal, moderately bright in
near-IR) and ambient temperature (carried items, shoes), never from hue; in near-IR a fabric's
reflectance also follows its dye (partly the visible luminance, see ``ink_ir``).
"""

from __future__ import annotations

from reid_pipeline.data.synthetic.identity import MATERIALS, Garment, Identity
from reid_pipeline.data.synthetic.raster import (
    RGB,
    Capsule,
    Ellipse,
    Paint,
    Polygon,
    RoundRect,
    Shape,
    shaded,
)

Op = tuple[Shape, Paint]
_SHOE_IR = 0.3
_MASK = Paint((0.5, 0.5, 0.5), 0.5)  # MSMT17-V2 face anonymisation block


def unit(value: float) -> float:
    return min(max(float(value), 0.0), 1.0)


def _garment_paint(
    g: Garment, ir: tuple[float, float], hp: float, origin: tuple[float, float]
) -> Paint:
    pattern = g.pattern if g.pattern in ("hstripes", "vstripes", "checks") else "plain"
    period = max(g.period * hp, 2.0)
    return Paint(g.colour, ir[0], pattern, g.colour2, ir[1], period, origin)


def _luma(c: RGB) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def ink_ir(g: Garment, colour: RGB, sensor: str, delta: float = 1.0) -> float:
    """IR level of ``colour`` printed on garment ``g``. Thermal: emission of the material (+ body
    heat), an ink differing by ``delta * ir_delta``. Near-IR: reflectance of material and dye -
    partly the visible luminance, partly a dye-specific brightness; never the hue."""
    material = MATERIALS[g.material]
    if sensor == "nir":
        dye = g.nir_dye * 0.85 + (1.0 - g.nir_dye) * _luma(colour)
        return unit(0.35 * material + 0.65 * dye)
    base = 0.3 + 0.5 * material
    return unit(base + delta * g.ir_delta)


def garment_ir(g: Garment, sensor: str) -> tuple[float, float]:
    """IR levels of a garment's two tones (see ``ink_ir``)."""
    return ink_ir(g, g.colour, sensor, 0.0), ink_ir(g, g.colour2, sensor)


def ir_levels(ident: Identity, sensor: str) -> tuple[float, float, float]:
    """(skin, hair, carried items) infrared levels for a thermal or near-IR sensor."""
    if sensor == "nir":  # reflected near-IR: skin moderately bright
        return 0.45 + 0.9 * (ident.skin_ir - 0.8), ident.hair_ir * 0.8, ident.bag_ir + 0.1
    return ident.skin_ir, ident.hair_ir, ident.bag_ir  # thermal: skin hottest, items ambient


class _Figure:
    """Body geometry (pixels) and paints of one pedestrian, plus the growing display list."""

    def __init__(self, ident: Identity, *, cx: float, foot: float, hp: float, sensor: str):
        self.ident, self.cx, self.foot, self.hp = ident, cx, foot, hp
        skin_ir, hair_ir, self.bag_ir = ir_levels(ident, sensor)
        up_ir, lo_ir = garment_ir(ident.upper, sensor), garment_ir(ident.lower, sensor)
        self.sensor = sensor
        self.r = ident.head * hp  # head radius
        self.rx = 0.88 * self.r
        self.head_cy = foot - hp + 1.05 * self.r
        self.y_sh = self.head_cy + self.r + 0.035 * hp  # shoulder line
        self.y_hip = foot - ident.leg * hp
        self.torso = self.y_hip - self.y_sh
        self.sw, self.hw = ident.shoulder * hp, ident.hip * hp  # half widths
        self.arm_r, self.leg_r0, self.leg_r1 = 0.03 * hp, 0.05 * hp, 0.031 * hp
        self.skin = Paint(ident.skin, skin_ir)
        self.hair = Paint(ident.hair, hair_ir)
        self.top = _garment_paint(ident.upper, up_ir, hp, (cx, self.y_sh))
        self.bottom = _garment_paint(ident.lower, lo_ir, hp, (cx, self.y_hip))
        self.shoes = Paint(ident.shoes, _SHOE_IR)
        self.ops: list[Op] = []

    def add(self, shape: Shape, paint: Paint, dim: float = 1.0) -> None:
        self.ops.append((shape, shaded(paint, dim) if dim != 1.0 else paint))

    def bag(self, colour: RGB) -> Paint:
        return Paint(colour, self.bag_ir)

    def leg(self, hip_x: float, ankle_x: float, facing: int, dim: float = 1.0) -> None:
        hp, kind = self.hp, self.ident.lower.kind
        ank_y = self.foot - 0.025 * hp
        r0, r1 = self.leg_r0, self.leg_r1
        if kind == "trousers":
            self.add(Capsule(hip_x, self.y_hip, ankle_x, ank_y, r0, r1), self.bottom, dim)
        else:
            self.add(Capsule(hip_x, self.y_hip, ankle_x, ank_y, 0.8 * r0, r1), self.skin, dim)
            if kind == "shorts":
                kx, ky = hip_x + 0.42 * (ankle_x - hip_x), self.y_hip + 0.42 * self.ident.leg * hp
                self.add(Capsule(hip_x, self.y_hip, kx, ky, 1.1 * r0, r0), self.bottom, dim)
        shoe_rx = (0.055 if facing else 0.042) * hp
        shoe = Ellipse(ankle_x + facing * 0.02 * hp, self.foot - 0.014 * hp, shoe_rx, 0.021 * hp)
        self.add(shoe, self.shoes, dim)

    def arm(self, sx: float, hand_x: float, dim: float = 1.0) -> None:
        r = self.arm_r
        sy, hand_y = self.y_sh + r, self.y_hip + 0.05 * self.hp
        if self.ident.upper.kind == "long_sleeve":
            self.add(Capsule(sx, sy, hand_x, hand_y, r, 0.8 * r), self.top, dim)
        else:
            self.add(Capsule(sx, sy, hand_x, hand_y, 0.85 * r, 0.75 * r), self.skin, dim)
            ex, ey = sx + 0.4 * (hand_x - sx), sy + 0.4 * (hand_y - sy)
            self.add(Capsule(sx, sy, ex, ey, 1.12 * r, 1.05 * r), self.top, dim)
        self.add(Ellipse(hand_x, hand_y + 0.3 * r, 0.9 * r, 1.05 * r), self.skin, dim)

    def lower_block(self, width: float) -> None:
        """Pelvis (trousers / shorts) or skirt joining the legs to the torso."""
        cx, hp, hw, y = self.cx, self.hp, self.hw, self.y_hip
        if self.ident.lower.kind == "skirt":
            low = y + 0.42 * self.ident.leg * hp
            a, b = 1.05 * width, 1.6 * width
            quad = ((cx - a * hw, y - 0.02 * hp), (cx + a * hw, y - 0.02 * hp),
                    (cx + b * hw, low), (cx - b * hw, low))  # fmt: skip
            self.add(Polygon(quad), self.bottom)
        else:
            rect = RoundRect(cx - width * hw, y - 0.03 * hp, cx + width * hw, y + 0.05 * hp,
                             0.02 * hp)  # fmt: skip
            self.add(rect, self.bottom)

    def torso_block(self, half_top: float, half_bottom: float) -> None:
        cx, y0, y1 = self.cx, self.y_sh, self.y_hip + 0.03 * self.hp
        quad = ((cx - half_top, y0), (cx + half_top, y0), (cx + half_bottom, y1),
                (cx - half_bottom, y1))  # fmt: skip
        self.add(Polygon(quad), self.top)

    def handheld(self, hand_x: float) -> None:
        if self.ident.handheld is None:
            return
        kind, colour, _ = self.ident.handheld
        hp, paint = self.hp, self.bag(colour)
        hy = self.y_hip + 0.06 * hp
        if kind == "handbag":
            shape = RoundRect(
                hand_x - 0.04 * hp, hy, hand_x + 0.04 * hp, hy + 0.07 * hp, 0.012 * hp
            )
        elif kind == "umbrella":
            shape = Capsule(hand_x, hy - 0.02 * hp, hand_x + 0.02 * hp, self.foot - 0.05 * hp,
                            0.014 * hp, 0.01 * hp)  # fmt: skip
        elif kind == "bottle":
            shape = Capsule(hand_x, hy - 0.03 * hp, hand_x, hy + 0.03 * hp, 0.014 * hp, 0.014 * hp)
        elif kind == "phone":
            shape = RoundRect(hand_x - 0.012 * hp, hy - 0.03 * hp, hand_x + 0.012 * hp,
                              hy + 0.01 * hp, 0.004 * hp)  # fmt: skip
        else:  # box / parcel
            shape = RoundRect(hand_x - 0.05 * hp, hy - 0.02 * hp, hand_x + 0.05 * hp,
                              hy + 0.06 * hp, 0.004 * hp)  # fmt: skip
        self.add(shape, paint)

    def logo(self, x: float, y: float) -> None:
        assert self.ident.logo is not None
        shape, colour, size, _ = self.ident.logo
        s = size * self.hp / 2
        paint = Paint(colour, ink_ir(self.ident.upper, colour, self.sensor, 0.6))
        if shape == "circle":
            self.add(Ellipse(x, y, s, s), paint)
        elif shape == "square":
            self.add(RoundRect(x - s, y - s, x + s, y + s), paint)
        elif shape == "triangle":
            self.add(Polygon(((x, y - s), (x + s, y + s), (x - s, y + s))), paint)
        elif shape == "diamond":
            self.add(Polygon(((x, y - s), (x + s, y), (x, y + s), (x - s, y))), paint)
        else:  # bar
            self.add(RoundRect(x - 1.6 * s, y - 0.5 * s, x + 1.6 * s, y + 0.5 * s), paint)


def _front_or_back(f: _Figure, view: str, stride: float, swing_px: float) -> None:
    ident, cx, hp, r, rx = f.ident, f.cx, f.hp, f.r, f.rx
    m = -1 if view == "front" else 1  # image-x sign of the person's right side
    if view == "front" and ident.hair_length == "long":  # hair behind the shoulders
        f.add(RoundRect(cx - 1.2 * rx, f.head_cy, cx + 1.2 * rx, f.y_sh + 0.12 * hp, rx), f.hair)
    spread = f.hw * (0.45 + 0.25 * stride)
    for s in (-1, 1):
        f.leg(cx + s * f.hw * 0.5, cx + s * spread, 0)
    f.lower_block(1.0)
    f.torso_block(f.sw, 1.08 * f.hw)
    a = f.arm_r
    f.add(Capsule(cx - f.sw + a, f.y_sh + a, cx + f.sw - a, f.y_sh + a, 1.1 * a, 1.1 * a), f.top)
    if view == "front" and ident.upper.pattern == "print":
        pw, py0 = 0.55 * f.sw, f.y_sh + 0.05 * hp
        print_paint = Paint(ident.print_colour, ink_ir(ident.upper, ident.print_colour, f.sensor))
        f.add(RoundRect(cx - pw, py0, cx + pw, py0 + 1.3 * pw, 0.01 * hp), print_paint)
        f.add(Ellipse(cx, py0 + 0.65 * pw, 0.55 * pw, 0.45 * pw), f.top)
    if view == "front" and ident.logo is not None:
        f.logo(cx + m * 0.45 * f.sw + ident.logo[3] * hp, f.y_sh + 0.07 * hp)
    if ident.backpack is not None:
        paint = f.bag(ident.backpack)
        if view == "back":  # the pack itself and a darker pocket
            f.add(RoundRect(cx - 0.8 * f.sw, f.y_sh + 0.012 * hp, cx + 0.8 * f.sw,
                            f.y_sh + 0.62 * f.torso, 0.03 * hp), paint)  # fmt: skip
            f.add(RoundRect(cx - 0.55 * f.sw, f.y_sh + 0.36 * f.torso, cx + 0.55 * f.sw,
                            f.y_sh + 0.58 * f.torso, 0.015 * hp), paint, 0.7)  # fmt: skip
        else:  # only the straps
            for s in (-1, 1):
                f.add(Capsule(cx + s * 0.55 * f.sw, f.y_sh, cx + s * 0.45 * f.sw,
                              f.y_sh + 0.55 * f.torso, 0.012 * hp, 0.012 * hp), paint)  # fmt: skip
    for s in (-1, 1):
        f.arm(cx + s * (f.sw - 0.8 * a), cx + s * (f.sw + 0.012 * hp) + s * 0.2 * swing_px)
    if ident.handheld is not None:
        f.handheld(cx + m * ident.handheld[2] * (f.sw + 0.012 * hp))
    _neck(f)
    if view == "back":
        f.add(Ellipse(cx, f.head_cy, rx, r), f.hair)
        if ident.hair_length != "short":
            low = f.y_sh + (0.16 * hp if ident.hair_length == "long" else 0.0)
            f.add(RoundRect(cx - rx, f.head_cy, cx + rx, low, 0.6 * rx), f.hair)
    else:
        f.add(Ellipse(cx, f.head_cy - 0.1 * r, 1.08 * rx, 1.02 * r), f.hair)
        f.add(Ellipse(cx, f.head_cy + 0.14 * r, 0.88 * rx, 0.85 * r), f.skin)
        if ident.hair_length != "short":
            low = f.y_sh + (0.08 * hp if ident.hair_length == "long" else -0.2 * r)
            for s in (-1, 1):
                f.add(Capsule(cx + s * 0.92 * rx, f.head_cy - 0.2 * r, cx + s * rx, low,
                              0.3 * rx, 0.28 * rx), f.hair)  # fmt: skip
    if ident.shoulder_bag is not None:
        colour, side = ident.shoulder_bag
        xs = m * side
        f.add(Capsule(cx + xs * 0.6 * f.sw, f.y_sh + 0.005 * hp, cx - xs * 1.1 * f.hw,
                      f.y_hip - 0.01 * hp, 0.011 * hp, 0.011 * hp), f.bag(colour))  # fmt: skip
        bx = cx - xs * 1.25 * f.hw
        f.add(RoundRect(bx - 0.045 * hp, f.y_hip - 0.045 * hp, bx + 0.045 * hp,
                        f.y_hip + 0.035 * hp, 0.012 * hp), f.bag(colour))  # fmt: skip


def _side(f: _Figure, facing: int, stride: float, swing_px: float) -> None:
    ident, cx, hp, r, rx = f.ident, f.cx, f.hp, f.r, f.rx
    tw = 0.55 * f.sw  # half torso depth
    stride_px = 0.2 * stride * hp
    f.leg(cx, cx - facing * stride_px, facing, 0.8)  # far leg, in shadow
    if ident.backpack is not None:  # protrudes behind the back
        xa, xb = cx - facing * (tw + 0.075 * hp), cx - facing * 0.2 * tw
        f.add(RoundRect(min(xa, xb), f.y_sh + 0.015 * hp, max(xa, xb), f.y_sh + 0.62 * f.torso,
                        0.03 * hp), f.bag(ident.backpack))  # fmt: skip
    f.arm(cx, cx - facing * swing_px, 0.8)  # far arm
    f.leg(cx, cx + facing * stride_px, facing)
    f.lower_block(0.75)
    f.torso_block(tw, 0.8 * f.hw)
    if ident.shoulder_bag is not None:
        paint, bx = f.bag(ident.shoulder_bag[0]), cx - facing * 0.02 * hp
        f.add(Capsule(cx, f.y_sh, bx, f.y_hip - 0.02 * hp, 0.01 * hp, 0.01 * hp), paint)
        f.add(RoundRect(bx - 0.045 * hp, f.y_hip - 0.04 * hp, bx + 0.045 * hp,
                        f.y_hip + 0.04 * hp, 0.01 * hp), paint)  # fmt: skip
    f.arm(cx, cx + facing * swing_px)  # near arm, in front of the body
    f.handheld(cx + facing * swing_px)
    _neck(f)
    f.add(Ellipse(cx, f.head_cy, 0.9 * rx, r), f.skin)
    f.add(Ellipse(cx - facing * 0.25 * r, f.head_cy - 0.12 * r, 0.85 * rx, 0.95 * r), f.hair)
    if ident.hair_length != "short":
        low = f.y_sh + (0.1 * hp if ident.hair_length == "long" else -0.1 * r)
        f.add(Capsule(cx - facing * 0.5 * rx, f.head_cy, cx - facing * 0.6 * rx, low, 0.4 * rx,
                      0.35 * rx), f.hair)  # fmt: skip


def _neck(f: _Figure) -> None:
    f.add(Capsule(f.cx, f.head_cy + 0.6 * f.r, f.cx, f.y_sh + 0.01 * f.hp, 0.42 * f.r,
                  0.45 * f.r), f.skin)  # fmt: skip


def person_ops(
    ident: Identity,
    *,
    view: str,
    facing: int,
    cx: float,
    foot: float,
    hp: float,
    stride: float,
    swing: float,
    sensor: str = "visible",
    face_mask: bool = False,
) -> list[Op]:
    """Display list of one pedestrian; ``cx`` / ``foot`` / ``hp`` (body height) in pixels,
    ``view`` front | back | side (``facing`` +1 / -1: walking direction), ``stride`` and
    ``swing`` in 0..1, ``sensor`` picks the IR levels, ``face_mask`` greys the head out."""
    f = _Figure(ident, cx=cx, foot=foot, hp=hp, sensor=sensor)
    swing_px = 0.09 * swing * hp
    if view == "side":
        _side(f, facing, stride, swing_px)
    else:
        _front_or_back(f, view, stride, swing_px)
    if face_mask:
        head = RoundRect(cx - 1.1 * f.rx, f.head_cy - 1.05 * f.r, cx + 1.1 * f.rx,
                         f.head_cy + 1.05 * f.r)  # fmt: skip
        f.add(head, _MASK)
    return f.ops
