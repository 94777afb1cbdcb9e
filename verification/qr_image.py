"""Find our QR token in a photo or screenshot (PNG or JPEG), with Pillow and zxing-cpp.

The picture is hostile input: its byte size is capped by the caller, its pixel count is
checked from the header before any pixel is decoded (a 50 kB PNG can unpack to
gigabytes), and any decoder failure becomes ``QrImageRejected``.
"""

from __future__ import annotations

import io
import warnings

from .errors import QrImageRejected, QrImageTooLarge
from .qr import public_prefix

MAX_PIXELS = 40_000_000  # a 48-megapixel phone photo is about this; bigger is refused
_FORMATS = ("PNG", "JPEG")


def decode_qr_texts(data: bytes, *, max_pixels: int = MAX_PIXELS) -> list[str]:
    """The texts of every QR code in the image; ``QrImageRejected`` if it is not an image."""
    import zxingcpp
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # Pillow warns (and with warnings as errors, raises) on big images; we check ourselves.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=_FORMATS)
            width, height = image.size
            if width * height > max_pixels:
                raise QrImageTooLarge(
                    f"the image has {width}x{height} pixels; at most {max_pixels:,} are accepted"
                )
            image.load()
            qr_only = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
            results = zxingcpp.read_barcodes(image.convert("L"), formats=qr_only)
    except QrImageTooLarge:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure on hostile bytes means "not an image"
        raise QrImageRejected("the file is not a readable PNG or JPEG image") from exc
    return [result.text for result in results if result.valid and result.text]


def find_token(data: bytes, public_url: str, *, max_pixels: int = MAX_PIXELS) -> str:
    """The token of the first QR code in the image that holds one of our URLs."""
    texts = decode_qr_texts(data, max_pixels=max_pixels)
    if not texts:
        raise QrImageRejected("no QR code was found in the image")
    prefix = public_prefix(public_url)
    for text in texts:
        # Compared without case: scanners may upper-case a URL, and the token is digits.
        if text[: len(prefix)].lower() == prefix.lower() and len(text) > len(prefix):
            return text[len(prefix) :]
    raise QrImageRejected(f"the QR code does not hold a verification URL of this service ({prefix}…)")
