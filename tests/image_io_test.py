"""Tests for ddip_jax.image_io."""

import errno
import hashlib
import json
import os
import pathlib
import stat
import struct
import tempfile
import warnings
import zlib
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
from PIL import Image

from ddip_jax import clip_io
from ddip_jax import image_io
from ddip_jax import memory
from ddip_jax import summary_picture
from ddip_jax import writing
from ddip_jax.image_io import InputError

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _tempdir(test: absltest.TestCase) -> str:
  """A fresh directory removed after `test` (works under pytest and absltest)."""
  tmp = tempfile.TemporaryDirectory()
  test.addCleanup(tmp.cleanup)
  return tmp.name


def _png_chunk(kind: bytes, data: bytes) -> bytes:
  crc = zlib.crc32(kind + data) & 0xFFFFFFFF
  return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _paeth(a: int, b: int, c: int) -> int:
  p = a + b - c
  pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
  if pa <= pb and pa <= pc:
    return a
  return b if pb <= pc else c


def _png16(pixels: np.ndarray) -> bytes:
  """Encodes uint16 (H, W, 3|4) as a 16-bit PNG, cycling all five filters.

  Pillow cannot write 16-bit RGB(A) PNGs, so the test writes them by hand; the
  filters matter because unfiltering works on bytes, with a 6 or 8 byte stride.
  """
  h, w, c = pixels.shape
  bpp = 2 * c
  rows = [np.frombuffer(r.astype(">u2").tobytes(), np.uint8).astype(int) for r in pixels]
  out = []
  for y, row in enumerate(rows):
    up = rows[y - 1] if y else np.zeros_like(row)
    kind = y % 5
    filtered = []
    for i, x in enumerate(row):
      a = row[i - bpp] if i >= bpp else 0
      c_ = up[i - bpp] if i >= bpp else 0
      pred = [0, a, up[i], (a + up[i]) // 2, _paeth(a, up[i], c_)][kind]
      filtered.append((x - pred) % 256)
    out.append(bytes([kind] + filtered))
  header = struct.pack(">IIBBBBB", w, h, 16, {3: 2, 4: 6}[c], 0, 0, 0)
  return (
      _PNG_MAGIC
      + _png_chunk(b"IHDR", header)
      + _png_chunk(b"IDAT", zlib.compress(b"".join(out)))
      + _png_chunk(b"IEND", b"")
  )


class LoadImageTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = _tempdir(self)
    self.rng = np.random.default_rng(0)

  def path(self, name: str) -> str:
    return os.path.join(self.dir, name)

  def save(self, im: Image.Image, name: str, **kwargs) -> str:
    path = self.path(name)
    im.save(path, **kwargs)
    return path

  def assert_valid(self, img: np.ndarray, shape: tuple[int, int]) -> None:
    self.assertEqual(img.dtype, np.float32)
    self.assertEqual(img.shape, shape + (3,))
    self.assertTrue(np.all(np.isfinite(img)))
    self.assertGreaterEqual(img.min(), 0.0)
    self.assertLessEqual(img.max(), 1.0)

  def test_rgb_png_exact(self):
    pixels = self.rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    img = image_io.load_image(self.save(Image.fromarray(pixels), "rgb.png"))
    self.assert_valid(img, (7, 9))
    np.testing.assert_array_equal(img, pixels.astype(np.float32) / 255.0)

  def test_accepts_pathlike(self):
    path = self.save(Image.new("RGB", (3, 2), (255, 0, 0)), "p.png")
    img = image_io.load_image(pathlib.Path(path))
    np.testing.assert_array_equal(img[0, 0], [1.0, 0.0, 0.0])

  @parameterized.parameters("L", "1")
  def test_gray_becomes_rgb(self, mode):
    pixels = self.rng.integers(0, 256, (5, 6), dtype=np.uint8)
    im = Image.fromarray(pixels).convert(mode)
    img = image_io.load_image(self.save(im, f"gray_{mode}.png"))
    self.assert_valid(img, (5, 6))
    expected = np.asarray(im.convert("L"), np.float32) / 255.0
    for c in range(3):
      np.testing.assert_array_equal(img[..., c], expected)

  def test_palette(self):
    pixels = self.rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    im = Image.fromarray(pixels).quantize(colors=16)
    self.assertEqual(im.mode, "P")
    img = image_io.load_image(self.save(im, "pal.png"))
    expected = np.asarray(im.convert("RGB"), np.float32) / 255.0
    np.testing.assert_array_equal(img, expected)

  def test_palette_transparency_composited_over_white(self):
    im = Image.new("P", (4, 2), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.putpixel((0, 0), 1)
    path = self.save(im, "pal_t.png", transparency=0)
    img = image_io.load_image(path)
    np.testing.assert_array_equal(img[0, 0], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(img[1, 3], [1.0, 1.0, 1.0])

  def test_rgba_composited_over_white(self):
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, :, :3] = [0, 0, 255]
    rgba[0, :, 3] = [255, 0, 51]  # Opaque, transparent, 20% opaque blue.
    img = image_io.load_image(self.save(Image.fromarray(rgba), "rgba.png"))
    np.testing.assert_allclose(img[0], [[0, 0, 1], [1, 1, 1], [0.8, 0.8, 1]], atol=1e-6)

  def test_la_composited_over_white(self):
    la = np.array([[[0, 255], [0, 0], [100, 102]]], np.uint8)
    img = image_io.load_image(self.save(Image.fromarray(la, "LA"), "la.png"))
    a = 102 / 255
    expected = [0.0, 1.0, 100 / 255 * a + (1 - a)]
    for c in range(3):
      np.testing.assert_allclose(img[0, :, c], expected, atol=1e-6)

  def test_16bit_gray_png_keeps_precision(self):
    pixels = (np.arange(12 * 40).reshape(12, 40) * 131 + 5).astype(np.uint16)
    path = self.save(Image.fromarray(pixels), "g16.png")
    img = image_io.load_image(path)
    self.assert_valid(img, (12, 40))
    np.testing.assert_allclose(img[..., 1], pixels / 65535.0, atol=1e-7)
    # 480 distinct 16-bit values: an 8-bit path would collapse them to <= 256.
    self.assertLen(np.unique(img[..., 0]), pixels.size)

  @parameterized.parameters(3, 4)
  def test_16bit_color_png_keeps_precision(self, channels):
    pixels = self.rng.integers(0, 65536, (6, 5, channels), dtype=np.uint16)
    if channels == 4:
      pixels[..., 3] = 65535  # Opaque, so compositing does not change colour.
      pixels[0, 0, 3] = 0
    path = self.path(f"c16_{channels}.png")
    with open(path, "wb") as f:
      f.write(_png16(pixels))
    img = image_io.load_image(path)
    self.assert_valid(img, (6, 5))
    expected = pixels[..., :3] / 65535.0
    expected[0, 0] = 1.0 if channels == 4 else expected[0, 0]
    np.testing.assert_allclose(img, expected, atol=1e-7)

  def test_16bit_rgba_mask_uses_full_alpha(self):
    pixels = np.full((2, 3, 4), 65535, np.uint16)
    pixels[..., 3] = [[0, 1, 257], [32768, 65534, 65535]]
    path = self.path("a16.png")
    with open(path, "wb") as f:
      f.write(_png16(pixels))
    mask = image_io.load_mask(path, shape=(2, 3))
    np.testing.assert_allclose(mask, pixels[..., 3] / 65535.0, atol=1e-7)

  @parameterized.parameters(("I", 65535.0), ("F", 1.0))
  def test_32bit_gray_tiff(self, mode, scale):
    values = np.array([[0.0, 0.25, 0.5], [0.75, 1.0, 0.125]], np.float32)
    raw = np.round(values * scale).astype(np.int32 if mode == "I" else np.float32)
    im = Image.fromarray(raw)
    self.assertEqual(im.mode, mode)
    img = image_io.load_image(self.save(im, f"g32_{mode}.tif"))
    np.testing.assert_allclose(img[..., 2], raw / scale, atol=1e-7)

  def test_cmyk_jpeg(self):
    im = Image.new("CMYK", (16, 8), (0, 0, 0, 0))
    im.paste((0, 255, 255, 0), (0, 0, 8, 8))  # Red on the left.
    path = self.save(im, "cmyk.jpg", quality=95)
    self.assertEqual(Image.open(path).mode, "CMYK")
    img = image_io.load_image(path)
    self.assert_valid(img, (8, 16))
    np.testing.assert_allclose(img[4, 2], [1, 0, 0], atol=0.1)
    np.testing.assert_allclose(img[4, 13], [1, 1, 1], atol=0.1)

  def test_exif_orientation_6_is_applied(self):
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    im.paste((0, 0, 255), (20, 0, 40, 20))  # Stored: red left, blue right.
    exif = Image.Exif()
    exif[0x0112] = 6  # Display rotated 90 degrees clockwise.
    path = self.save(im, "rot.jpg", exif=exif, quality=95)
    img = image_io.load_image(path)
    self.assert_valid(img, (40, 20))
    np.testing.assert_allclose(img[5, 10], [1, 0, 0], atol=0.1)  # Left -> top.
    np.testing.assert_allclose(img[35, 10], [0, 0, 1], atol=0.1)

  def test_missing_path(self):
    path = self.path("nope.png")
    with self.assertRaisesRegex(InputError, "no such file") as cm:
      image_io.load_image(path)
    self.assertIn(path, str(cm.exception))

  def test_directory(self):
    with self.assertRaisesRegex(InputError, "directory"):
      image_io.load_image(self.dir)

  def test_fifo_says_what_it_is(self):
    path = self.path("pipe.png")
    os.mkfifo(path)
    with self.assertRaisesRegex(InputError, "is a FIFO \\(named pipe\\), not an image file"):
      image_io.load_image(path)  # Refused without opening it (which would block).

  def test_symlink_loop_says_what_it_is(self):
    path = self.path("loop.png")
    os.symlink(path, path)
    with self.assertRaisesRegex(InputError, f"cannot read '{path}': symbolic link loop"):
      image_io.load_image(path)

  def test_broken_symlink_names_its_target(self):
    path = self.path("link.png")
    os.symlink(self.path("moved.png"), path)
    with self.assertRaisesRegex(InputError, "broken symbolic link \\(to '.*moved.png', which does not exist\\)"):
      image_io.load_mask(path, shape=(4, 4))

  def test_zero_bytes(self):
    path = self.path("empty.png")
    open(path, "wb").close()
    with self.assertRaisesRegex(InputError, "empty"):
      image_io.load_image(path)

  @parameterized.parameters(("PNG", 0.5), ("JPEG", 0.5), ("PNG", 0.95), ("JPEG", 0.95))
  def test_truncated(self, fmt, keep):
    pixels = self.rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    full = self.save(Image.fromarray(pixels), f"full.{fmt}", format=fmt)
    with open(full, "rb") as f:
      data = f.read()
    path = self.path(f"cut_{keep}.{fmt.lower()}")
    with open(path, "wb") as f:
      f.write(data[: int(len(data) * keep)])
    with self.assertRaises(InputError) as cm:
      image_io.load_image(path)
    message = str(cm.exception)
    self.assertIn(path, message)
    self.assertNotIn("\n", message)

  def test_text_file_named_png(self):
    path = self.path("notes.png")
    with open(path, "w") as f:
      f.write("this is not an image\n")
    with self.assertRaisesRegex(InputError, "not a recognised image"):
      image_io.load_image(path)

  def test_too_many_pixels(self):
    path = self.save(Image.new("RGB", (100, 100)), "big.png")
    with mock.patch.object(Image, "MAX_IMAGE_PIXELS", 1000):
      with self.assertRaisesRegex(InputError, "too large"):
        image_io.load_image(path)

  def test_fuzz_only_input_error(self):
    """Random bytes, damaged and truncated real files: an image or InputError, nothing else."""
    rng = np.random.default_rng(1234)
    pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    good = [self.save(Image.fromarray(pixels), f"seed.{ext}") for ext in ("png", "jpg", "gif", "bmp", "tif", "webp")]
    good.append(self.path("seed16.png"))
    with open(good[-1], "wb") as f:
      f.write(_png16(rng.integers(0, 65536, (6, 5, 4), dtype=np.uint16)))
    exif = Image.Exif()
    exif[0x0112] = 6
    good.append(self.save(Image.fromarray(pixels), "seed_exif.jpg", exif=exif))
    good.append(self.save(Image.fromarray(pixels).convert("CMYK"), "seed_cmyk.jpg"))
    seeds = [open(p, "rb").read() for p in good]
    prefixes = [b"", _PNG_MAGIC, b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xdb", b"GIF89a", b"BM", b"II*\x00", b"RIFF"]
    loaded = 0
    # A header's random width and height must not allocate gigabytes.
    with mock.patch.object(Image, "MAX_IMAGE_PIXELS", 1 << 20), warnings.catch_warnings():
      warnings.simplefilter("ignore")  # Pillow warns about corrupt EXIF etc.
      for i in range(400):
        kind = i % 4
        seed = seeds[rng.integers(len(seeds))]
        if kind == 2:  # A real file cut short anywhere.
          data = seed[: int(rng.integers(1, len(seed)))]
        elif kind == 3:  # A real file with random bytes overwritten.
          data = bytearray(seed)
          for pos in rng.integers(0, len(data), 4):
            data[pos] = rng.integers(0, 256)
          data = bytes(data)
        else:
          prefix = prefixes[rng.integers(len(prefixes))]
          data = prefix + rng.bytes(int(rng.integers(0, 600)))
        path = self.path(f"fuzz_{i}.png")
        with open(path, "wb") as f:
          f.write(data)
        try:  # Masks go through the same decoder, then another conversion.
          img = image_io.load_image(path) if i % 2 else image_io.load_mask(path, shape=(7, 9))[..., None].repeat(3, -1)
        except InputError as e:
          self.assertIn(path, str(e))
          self.assertNotIn("\n", str(e))
          continue
        loaded += 1
        self.assertEqual(img.dtype, np.float32)
        self.assertEqual(img.ndim, 3)
        self.assertEqual(img.shape[-1], 3)
        self.assertTrue(np.all((img >= 0) & (img <= 1)))
    self.assertBetween(loaded, 1, 300)  # Some damaged files still decode; most of the garbage must not.


class LoadMaskTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = _tempdir(self)

  def save(self, im: Image.Image, name: str) -> str:
    path = os.path.join(self.dir, name)
    im.save(path)
    return path

  def test_gray_same_size(self):
    pixels = np.array([[0, 51, 255], [255, 0, 102]], np.uint8)
    mask = image_io.load_mask(self.save(Image.fromarray(pixels), "m.png"), shape=(2, 3))
    self.assertEqual(mask.dtype, np.float32)
    np.testing.assert_allclose(mask, pixels / 255.0, atol=1e-7)

  def test_nearest_resize_keeps_binary(self):
    pixels = np.zeros((4, 4), np.uint8)
    pixels[:2, 2:] = 255
    mask = image_io.load_mask(self.save(Image.fromarray(pixels), "m.png"), shape=(8, 12))
    self.assertEqual(mask.shape, (8, 12))
    self.assertSameElements(np.unique(mask), [0.0, 1.0])
    self.assertEqual(mask[:4, 6:].min(), 1.0)
    self.assertEqual(mask[4:].max(), 0.0)
    self.assertEqual(mask[:, :6].max(), 0.0)

  def test_alpha_is_used_when_not_opaque(self):
    rgba = np.full((2, 2, 4), 255, np.uint8)  # White RGB everywhere.
    rgba[..., 3] = [[0, 255], [128, 0]]
    mask = image_io.load_mask(self.save(Image.fromarray(rgba), "a.png"), shape=(2, 2))
    np.testing.assert_allclose(mask, rgba[..., 3] / 255.0, atol=1e-7)

  def test_opaque_rgba_uses_luma(self):
    rgba = np.full((1, 3, 4), 255, np.uint8)
    rgba[0, :, :3] = [[0, 0, 0], [255, 255, 255], [255, 0, 0]]
    mask = image_io.load_mask(self.save(Image.fromarray(rgba), "o.png"), shape=(1, 3))
    np.testing.assert_allclose(mask[0], [0.0, 1.0, 0.299], atol=1e-6)

  def test_la_alpha(self):
    la = np.array([[[200, 0], [200, 255]]], np.uint8)
    mask = image_io.load_mask(self.save(Image.fromarray(la, "LA"), "la.png"), shape=(1, 2))
    np.testing.assert_array_equal(mask, [[0.0, 1.0]])

  def test_16bit_mask(self):
    pixels = np.array([[0, 1, 65535]], np.uint16)
    mask = image_io.load_mask(self.save(Image.fromarray(pixels), "m16.png"), shape=(1, 3))
    np.testing.assert_allclose(mask, pixels / 65535.0, atol=1e-9)

  def test_bad_file(self):
    path = os.path.join(self.dir, "bad.png")
    with open(path, "wb") as f:
      f.write(_PNG_MAGIC + b"junk")
    with self.assertRaises(InputError):
      image_io.load_mask(path, shape=(2, 2))

  @parameterized.parameters((0, 3), (2,), (2.0, 3))
  def test_bad_shape(self, *shape):
    path = self.save(Image.new("L", (2, 2)), "m.png")
    with self.assertRaises(ValueError):
      image_io.load_mask(path, shape=shape)


class ArrayTest(parameterized.TestCase):

  @parameterized.parameters(((8, 8), (3, 5)), ((8, 8), (17, 11)), ((7, 9), (7, 20)))
  def test_resize_shapes_and_range(self, in_shape, out_shape):
    rng = np.random.default_rng(0)
    for channels in (None, 1, 3):
      full = in_shape if channels is None else in_shape + (channels,)
      img = rng.uniform(0.2, 0.7, full)
      out = image_io.resize_image(img, out_shape)
      expected = out_shape if channels is None else out_shape + (channels,)
      self.assertEqual(out.shape, expected)
      self.assertEqual(out.dtype, np.float32)
      # Clipped to the input range although LANCZOS / BICUBIC overshoot.
      self.assertGreaterEqual(out.min(), np.float32(img.min()))
      self.assertLessEqual(out.max(), np.float32(img.max()))

  def test_resize_has_no_8bit_quantisation(self):
    img = np.full((10, 10, 3), 0.123456, np.float32)
    img[..., 1] = 0.654321
    out = image_io.resize_image(img, (4, 7))
    np.testing.assert_allclose(out[..., 0], 0.123456, atol=1e-6)
    np.testing.assert_allclose(out[..., 1], 0.654321, atol=1e-6)

  def test_resize_downscale_averages(self):
    img = np.zeros((64, 64), np.float32)
    img[::2] = 1.0  # Stripes: anti-aliased downscaling gives uniform gray.
    out = image_io.resize_image(img, (8, 8))
    np.testing.assert_allclose(out, 0.5, atol=0.05)

  def test_resize_same_shape_is_copy(self):
    img = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = image_io.resize_image(img, (2, 3))
    np.testing.assert_array_equal(out, img)
    out[0, 0] = 99
    self.assertEqual(img[0, 0], 0)

  def test_to_uint8_golden(self):
    img = np.array([-0.1, 0.0, 0.2, 0.5, 0.999, 1.0, 1.5, np.nan])
    np.testing.assert_array_equal(image_io.to_uint8(img), [0, 0, 51, 128, 255, 255, 255, 0])
    self.assertEqual(image_io.to_uint8(img).dtype, np.uint8)

  @parameterized.parameters((4, 5), (4, 5, 1), (4, 5, 3))
  def test_to_uint8_keeps_shape(self, *shape):
    self.assertEqual(image_io.to_uint8(np.zeros(shape)).shape, shape)


class WriteTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = _tempdir(self)

  @parameterized.parameters((6, 7, 3), (6, 7, 1), (6, 7))
  def test_save_image_round_trip(self, *shape):
    img = np.random.default_rng(0).uniform(-0.1, 1.1, shape)
    path = os.path.join(self.dir, "a", "b", "out.png")  # Parents created.
    writing.save_image(path, img)
    loaded = image_io.load_image(path)
    expected = image_io.to_uint8(img) / 255.0
    expected = expected if expected.ndim == 3 else expected[..., None]
    np.testing.assert_allclose(loaded, np.broadcast_to(expected, (6, 7, 3)), atol=1e-7)

  @parameterized.parameters((6, 7, 2), (6, 7, 4), (6,), (0, 3))
  def test_save_image_bad_shape(self, *shape):
    with self.assertRaises(ValueError):
      writing.save_image(os.path.join(self.dir, "x.png"), np.zeros(shape))

  def test_atomic_write_leaves_only_the_file(self):
    path = os.path.join(self.dir, "out.png")
    writing.save_image(path, np.zeros((3, 3)))
    writing.save_image(path, np.ones((3, 3)))  # Overwrite.
    writing.write_json(os.path.join(self.dir, "m.json"), {"a": 1})
    self.assertCountEqual(os.listdir(self.dir), ["out.png", "m.json"])
    umask = os.umask(0)
    os.umask(umask)
    self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o666 & ~umask)

  def test_failed_write_keeps_old_file_and_no_temp(self):
    path = os.path.join(self.dir, "out.png")
    writing.save_image(path, np.zeros((3, 3)))
    with open(path, "rb") as f:
      before = f.read()
    with mock.patch.object(os, "replace", side_effect=OSError("disk full")):
      with self.assertRaises(OSError):
        writing.save_image(path, np.ones((3, 3)))
      with self.assertRaises(OSError):
        writing.write_json(path, {"x": 1})
    with open(path, "rb") as f:
      self.assertEqual(f.read(), before)
    self.assertEqual(os.listdir(self.dir), ["out.png"])

  def test_full_disk_is_one_line_naming_the_file(self):
    path = os.path.join(self.dir, "out.png")
    writing.save_image(path, np.zeros((3, 3)))
    with open(path, "rb") as f:
      before = f.read()
    no_space = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with mock.patch.object(os, "fsync", side_effect=no_space), self.assertRaises(writing.OutputError) as cm:
      writing.save_image(path, np.ones((3, 3)))
    self.assertEqual(str(cm.exception), f"cannot write '{path}': No space left on device")
    with mock.patch.object(os, "makedirs", side_effect=PermissionError(errno.EACCES, "Permission denied")):
      with self.assertRaisesRegex(writing.OutputError, "cannot write .*: Permission denied"):
        writing.write_json(os.path.join(self.dir, "sub", "m.json"), {})
    with open(path, "rb") as f:
      self.assertEqual(f.read(), before)
    self.assertEqual(os.listdir(self.dir), ["out.png"])

  def test_file_digests(self):
    path = os.path.join(self.dir, "a.png")
    writing.save_image(path, np.zeros((3, 3)))
    os.mkfifo(os.path.join(self.dir, "pipe.png"))
    with open(path, "rb") as f:
      want = hashlib.sha256(f.read()).hexdigest()
    self.assertEqual(
        clip_io.file_digests([path, os.path.join(self.dir, "missing.png"), os.path.join(self.dir, "pipe.png")]),
        {path: want},
    )
    self.assertEqual(clip_io.file_digests([self.dir]), {path: want})  # A folder: its frame files.

  def test_write_json_numpy(self):
    path = os.path.join(self.dir, "sub", "metrics.json")
    obj = {
        "psnr": np.float32(31.5),
        "step": np.int64(7),
        "ok": np.bool_(True),
        "curve": np.array([0.5, 0.25]),
        "nested": [{"m": np.arange(4).reshape(2, 2)}, (1, np.float64(2.5))],
        np.int32(3): "numpy key",
    }
    writing.write_json(path, obj)
    with open(path) as f:
      text = f.read()
    self.assertIn('\n  "psnr": 31.5', text)  # indent=2.
    self.assertEqual(
        json.loads(text),
        {
            "psnr": 31.5,
            "step": 7,
            "ok": True,
            "curve": [0.5, 0.25],
            "nested": [{"m": [[0, 1], [2, 3]]}, [1, 2.5]],
            "3": "numpy key",
        },
    )

  def test_write_json_rejects_unknown(self):
    with self.assertRaises(TypeError):
      writing.write_json(os.path.join(self.dir, "x.json"), {"a": object()})
    self.assertEqual(os.listdir(self.dir), [])


def _limit_gb(height: int, width: int, frames: float = 1.0) -> str:
  """A DDIP_JAX_MEMORY_GB that fits `frames` frames of height x width and not a pixel more."""
  return str(
      memory.needed_bytes(height, width, 1) / 1e9 + (frames - 1) * memory.BYTES_PER_FRAME_PIXEL * height * width / 1e9
  )


class MemoryLimitTest(absltest.TestCase):
  """Inputs whose run cannot fit in memory are refused from their header, before anything is decoded."""

  def test_a_large_image_is_refused_from_its_header_saying_what_fits(self):
    path = os.path.join(_tempdir(self), "large.png")
    Image.new("RGB", (300, 200)).save(path)
    with (
        mock.patch.dict(os.environ, {memory.MEMORY_ENV: _limit_gb(200, 299)}),
        mock.patch.object(Image.Image, "load", side_effect=AssertionError("decoded")),
    ):
      with self.assertRaises(InputError) as ctx:
        image_io.load_image(path)
    self.assertRegex(
        str(ctx.exception),
        rf"^{path!r} is 300x200 \(0.1 megapixels\): its run needs about [0-9.]+ GB "
        rf"of memory, more than the limit of [0-9.]+ GB \(DDIP_JAX_MEMORY_GB=[0-9.]+\); "
        r"at most 0.1 megapixels fit \(e.g. 299x199: downscale it first\)$",
    )
    with mock.patch.dict(os.environ, {memory.MEMORY_ENV: _limit_gb(200, 300)}):
      self.assertEqual(image_io.load_image(path).shape, (200, 300, 3))  # Raised, it fits.

  def test_the_default_limit_is_three_quarters_of_the_machine_and_a_bad_setting_is_one_line(self):
    with mock.patch.dict(os.environ, {memory.MEMORY_ENV: ""}):
      limit, source = memory.memory_limit()
    self.assertEqual(limit, memory.machine_memory() * 3 // 4)
    self.assertIn("set DDIP_JAX_MEMORY_GB to change it", source)
    self.assertIn("20000x20000 (400.0 megapixels)", memory.refusal("'x'", 20000, 20000) or "")
    for value in ("many", "-1", "0", "inf", "nan"):
      with (
          mock.patch.dict(os.environ, {memory.MEMORY_ENV: value}),
          self.assertRaisesRegex(InputError, f"^DDIP_JAX_MEMORY_GB='{value}': must be a positive number of GB"),
      ):
        image_io.check_fits("'x'", 8, 8)

  def test_running_out_of_memory_while_decoding_is_not_called_corrupt(self):
    path = os.path.join(_tempdir(self), "fine.png")
    Image.new("RGB", (8, 8)).save(path)
    with (
        mock.patch.object(Image.Image, "load", side_effect=MemoryError),
        self.assertRaisesRegex(InputError, "not enough memory to decode it$"),
    ):
      image_io.load_image(path)


class MakeSummaryTest(absltest.TestCase):

  def test_shape_range_and_layout(self):
    rgb = np.random.default_rng(0).uniform(size=(32, 48, 3))
    gray = np.full((16, 16), 0.5)
    single = np.full((64, 32, 1), 2.0)  # Out of range: clipped.
    out = summary_picture.make_summary([("input", rgb), ("mask", gray), ("a very long title " * 5, single)], height=40)
    widths = [60, 40, 20]
    strip = out.shape[0] - 40
    self.assertGreater(strip, 0)
    self.assertEqual(out.shape, (strip + 40, sum(widths) + 2 * 4, 3))
    self.assertEqual(out.dtype, np.float32)
    self.assertGreaterEqual(out.min(), 0.0)
    self.assertLessEqual(out.max(), 1.0)
    # The gray panel sits after the first panel and a gap, gray in RGB.
    np.testing.assert_allclose(out[strip:, 64:104], 0.5, atol=1e-6)
    np.testing.assert_allclose(out[strip:, 108:], 1.0)
    # Titles are drawn (dark pixels in the strip), the gap stays white.
    self.assertLess(out[:strip, :60].min(), 0.5)
    np.testing.assert_array_equal(out[strip:, 60:64], 1.0)

  def test_empty_title_leaves_white_strip(self):
    out = summary_picture.make_summary([("", np.zeros((10, 10)))], height=10)
    np.testing.assert_array_equal(out[:-10], 1.0)
    np.testing.assert_array_equal(out[-10:], 0.0)

  def test_no_panels(self):
    with self.assertRaises(ValueError):
      summary_picture.make_summary([])


if __name__ == "__main__":
  absltest.main()
