"""Colour conversions Home Assistant applies when a light can't do what was asked.

A colour temperature sent to a light without a colour-temperature mode is emulated by HA:
kelvin -> an RGB white (Tanner Helland's fit of the black-body curve) -> hue/saturation,
then into the colour space the light has (RGB at full value, CIE xy through the Wide-RGB D65
matrix, or RGBWW by the cold/warm split). These are the published formulas HA's
util/color.py uses, written here so the emulated payloads equal HA's.
"""

from __future__ import annotations

import colorsys
import math

from assistant.home.domains.base import kelvin_to_mired


def _clamp(value: float, low: float = 0.0, high: float = 255.0) -> float:
    return max(low, min(high, value))


def kelvin_to_rgb(kelvin: float) -> tuple[float, float, float]:
    """Helland's approximation of a black body's colour (1000..40000 K)."""
    t = max(1000.0, min(40000.0, kelvin)) / 100.0
    red = 255.0 if t <= 66 else _clamp(329.698727446 * (t - 60) ** -0.1332047592)
    if t <= 66:
        green = _clamp(99.4708025861 * math.log(t) - 161.1195681661)
    else:
        green = _clamp(288.1221695283 * (t - 60) ** -0.0755148492)
    if t >= 66:
        blue = 255.0
    elif t <= 19:
        blue = 0.0
    else:
        blue = _clamp(138.5177312231 * math.log(t - 10) - 305.0447927307)
    return red, green, blue


def rgb_to_hs(red: float, green: float, blue: float) -> tuple[float, float]:
    """Hue 0..360 and saturation 0..100, rounded to 3 decimals like HA's."""
    hue, sat, _ = colorsys.rgb_to_hsv(red / 255, green / 255, blue / 255)
    return round(hue * 360, 3), round(sat * 100, 3)


def kelvin_to_hs(kelvin: float) -> tuple[float, float]:
    """A colour temperature as hue/saturation."""
    return rgb_to_hs(*kelvin_to_rgb(kelvin))


def hs_to_rgb(hue: float, sat: float, value: float = 100.0) -> tuple[int, int, int]:
    """Hue/saturation (and value 0..100) to 0..255 channels, rounded like HA's."""
    r, g, b = colorsys.hsv_to_rgb(hue / 360, sat / 100, value / 100)
    return round(r * 255), round(g * 255), round(b * 255)


def rgb_to_xy(red: float, green: float, blue: float) -> tuple[float, float]:
    """sRGB 0..255 to CIE 1931 xy (gamma-expanded, Wide RGB D65), rounded to 3 decimals."""
    if red + green + blue == 0:
        return 0.0, 0.0

    def linear(channel: float) -> float:
        c = channel / 255
        return ((c + 0.055) / 1.055) ** 2.4 if c > 0.04045 else c / 12.92

    r, g, b = linear(red), linear(green), linear(blue)
    x_ = r * 0.664511 + g * 0.154324 + b * 0.162028
    y_ = r * 0.283881 + g * 0.668433 + b * 0.047685
    z_ = r * 0.000088 + g * 0.072310 + b * 0.986039
    total = x_ + y_ + z_
    return round(x_ / total, 3), round(y_ / total, 3)


def hs_to_xy(hue: float, sat: float) -> tuple[float, float]:
    """Hue/saturation to CIE xy."""
    return rgb_to_xy(*hs_to_rgb(hue, sat))


def kelvin_to_rgbww(kelvin: float, brightness: int, min_kelvin: int, max_kelvin: int) -> tuple[int, ...]:
    """A colour temperature on an RGBWW light: only the white channels, split cold/warm."""
    warmest, coldest = kelvin_to_mired(min_kelvin), kelvin_to_mired(max_kelvin)
    mired = max(coldest, min(warmest, kelvin_to_mired(kelvin)))
    span = warmest - coldest
    cold = brightness * (warmest - mired) / span if span else brightness / 2
    return 0, 0, 0, round(cold), round(brightness - cold)
