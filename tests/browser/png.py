"""Just enough PNG decoding to count a screenshot's colours (8-bit RGB or RGBA, not interlaced: Chromium's)."""

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunks(data):
    assert data[:8] == SIGNATURE, "not a PNG: %r" % data[:8]
    offset = 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, "bad CRC in %s chunk" % kind
        yield kind, body
        offset += 12 + length


def header(data):
    """(width, height, bit depth, colour type, interlace) from IHDR."""
    kind, body = next(chunks(data))
    assert kind == b"IHDR"
    fields = struct.unpack(">IIBBBBB", body)  # width, height, depth, colour, compression, filter, interlace
    return fields[:4] + fields[6:]


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def pixels(data):
    """Every pixel as an (r, g, b) tuple, row by row."""
    width, height, depth, colour, interlace = header(data)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    size = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(body for kind, body in chunks(data) if kind == b"IDAT"))
    stride = width * size
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(size, stride):
                line[i] = (line[i] + line[i - size]) & 0xFF
        elif kind == 2:
            line = bytearray((x + p) & 0xFF for x, p in zip(line, previous))
        elif kind == 3:
            for i in range(stride):
                line[i] = (line[i] + ((line[i - size] if i >= size else 0) + previous[i]) // 2) & 0xFF
        elif kind == 4:
            for i in range(stride):
                left = line[i - size] if i >= size else 0
                corner = previous[i - size] if i >= size else 0
                line[i] = (line[i] + paeth(left, previous[i], corner)) & 0xFF
        else:
            assert kind == 0, "unknown PNG filter %d" % kind
        for x in range(0, stride, size):
            yield line[x], line[x + 1], line[x + 2]
        previous = line
