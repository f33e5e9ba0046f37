"""Marker parsing of sequential Huffman JPEG files (SOF0 and SOF1, 8-bit).

The parser accepts what the hardware decoder implements and raises
``InputError`` for everything else: progressive, arithmetic-coded, lossless and
hierarchical files, 12-bit samples, and frames with other than 1 or 3
components. Every length and count is checked against the input, so malformed
or truncated data raises ``InputError`` and never ``IndexError``.

Colour-space detection, the fallback to the standard Huffman tables, the
Huffman table checks and the latching of quantization tables follow
libjpeg-turbo 3.x (``jdapimin.c``, ``jdhuff.c`` and ``jdinput.c``), because
decoded pixels must match what Pillow returns through that library.
"""

from __future__ import annotations

from dataclasses import dataclass

from codesign.errors import InputError

SOI = 0xD8
EOI = 0xD9
SOS = 0xDA
DQT = 0xDB
DNL = 0xDC
DRI = 0xDD
DHT = 0xC4
SOF0 = 0xC0
SOF1 = 0xC1
RST0 = 0xD0
APP0 = 0xE0
APP14 = 0xEE
COM = 0xFE

REENCODE_HINT = "re-encode as 8-bit baseline JPEG"

# Frame and table markers that start a coding process the decoder lacks.
UNSUPPORTED_MARKERS = {
    0xC2: "progressive JPEG (SOF2)",
    0xC3: "lossless JPEG (SOF3)",
    0xC5: "hierarchical JPEG (SOF5)",
    0xC6: "hierarchical progressive JPEG (SOF6)",
    0xC7: "hierarchical lossless JPEG (SOF7)",
    0xC8: "JPEG extension frame (JPG marker)",
    0xC9: "arithmetic-coded JPEG (SOF9)",
    0xCA: "arithmetic-coded progressive JPEG (SOF10)",
    0xCB: "arithmetic-coded lossless JPEG (SOF11)",
    0xCC: "arithmetic-coded JPEG (DAC marker)",
    0xCD: "hierarchical arithmetic-coded JPEG (SOF13)",
    0xCE: "hierarchical arithmetic-coded progressive JPEG (SOF14)",
    0xCF: "hierarchical arithmetic-coded lossless JPEG (SOF15)",
    0xDE: "hierarchical JPEG (DHP marker)",
    0xDF: "hierarchical JPEG (EXP marker)",
    DNL: "image height defined by a DNL marker",
}

# libjpeg-turbo rejects larger frames (JPEG_MAX_DIMENSION in jmorecfg.h).
MAX_DIMENSION = 65500
# libjpeg-turbo rejects interleaved scans with more blocks per MCU
# (D_MAX_BLOCKS_IN_MCU in jpeglib.h).
MAX_BLOCKS_IN_MCU = 10

# Standard Huffman tables from ITU-T T.81 Annex K.3, as counts of codes of
# lengths 1..16 followed by the symbols.
STANDARD_DC_LUMINANCE = (
    (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0),
    bytes(range(12)),
)
STANDARD_DC_CHROMINANCE = (
    (0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0),
    bytes(range(12)),
)
STANDARD_AC_LUMINANCE = (
    (0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D),
    bytes.fromhex(
        "01020300041105122131410613516107227114328191a1082342b1c11552d1f0"
        "2433627282090a161718191a25262728292a3435363738393a434445464748494a"
        "535455565758595a636465666768696a737475767778797a838485868788898a"
        "92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7"
        "c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa"
    ),
)
STANDARD_AC_CHROMINANCE = (
    (0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77),
    bytes.fromhex(
        "000102031104052131061241510761711322328108144291a1b1c109233352f0"
        "156272d10a162434e125f11718191a262728292a35363738393a434445464748"
        "494a535455565758595a636465666768696a737475767778797a828384858687"
        "88898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3"
        "c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa"
    ),
)


@dataclass(frozen=True)
class HuffmanTable:
    """Huffman table as stored in a DHT segment."""

    counts: tuple[int, ...]  # number of codes of each length 1..16
    symbols: bytes  # symbols in order of increasing code


@dataclass(frozen=True)
class FrameComponent:
    """Component of the SOF header."""

    component_id: int
    h_sampling: int
    v_sampling: int
    quant_table_id: int


@dataclass(frozen=True)
class Frame:
    """Frame parameters and the tables latched for each component.

    ``quant_tables[i]`` is the table that component ``i`` used, in natural
    (row-major) order. ``color_transform`` is ``"ycbcr"``, ``"rgb"`` (no
    colour conversion) or ``"gray"`` (one component).
    """

    sof_marker: int
    width: int
    height: int
    components: tuple[FrameComponent, ...]
    quant_tables: tuple[tuple[int, ...], ...]
    color_transform: str

    @property
    def max_h_sampling(self) -> int:
        return max(c.h_sampling for c in self.components)

    @property
    def max_v_sampling(self) -> int:
        return max(c.v_sampling for c in self.components)


@dataclass(frozen=True)
class Scan:
    """One scan: its header, the tables it uses and its entropy-coded data.

    ``data`` is the entropy-coded segment exactly as it appears in the file,
    with 0xFF00 byte stuffing and RSTn markers, up to the next other marker.
    """

    component_indices: tuple[int, ...]  # indices into Frame.components
    dc_table_ids: tuple[int, ...]
    ac_table_ids: tuple[int, ...]
    dc_tables: tuple[HuffmanTable, ...]
    ac_tables: tuple[HuffmanTable, ...]
    restart_interval: int  # MCUs between RSTn markers, 0 for none
    data: bytes


@dataclass(frozen=True)
class ParsedJpeg:
    """Frame and scans of one sequential JPEG image."""

    frame: Frame
    scans: tuple[Scan, ...]


def describe_source(name: str | None) -> str:
    """Return the prefix that error messages use for the input."""
    return name if name else "JPEG data"


def input_error(name: str | None, problem: str) -> InputError:
    """Build the one-line ``InputError`` for ``problem`` in the named input."""
    return InputError(f"{describe_source(name)}: {problem}")


def unsupported_error(name: str | None, feature: str) -> InputError:
    """Build the ``InputError`` for a valid JPEG feature the decoder lacks."""
    return input_error(
        name,
        f"{feature} is not supported by the hardware decoder; {REENCODE_HINT}",
    )


def validate_huffman_table(
    table: HuffmanTable, is_dc: bool, name: str | None
) -> None:
    """Raise ``InputError`` unless ``table`` defines a valid prefix code.

    Mirrors the checks of ``jpeg_make_d_derived_tbl`` in libjpeg-turbo: at
    most 256 symbols, codes of each length fitting that length without the
    all-ones code, and DC symbols (magnitude categories) of at most 15.
    """
    if len(table.counts) != 16 or sum(table.counts) != len(table.symbols):
        raise input_error(name, "invalid Huffman table: counts do not match symbols")
    if len(table.symbols) > 256:
        raise input_error(name, "invalid Huffman table: more than 256 symbols")
    code = 0
    longest = max((length for length, count in enumerate(table.counts, start=1) if count), default=0)
    for length, count in enumerate(table.counts[:longest], start=1):
        code += count
        if code >= (1 << length):
            raise input_error(name, f"invalid Huffman table: too many codes of length {length}")
        code <<= 1
    if is_dc and any(symbol > 15 for symbol in table.symbols):
        raise input_error(name, "invalid Huffman table: DC symbol above 15")


class _Reader:
    """Cursor over the file bytes with bounds-checked reads."""

    def __init__(self, data: bytes, name: str | None):
        self.data = data
        self.name = name
        self.pos = 0

    def segment(self, marker: int) -> bytes:
        """Read a length-prefixed marker segment and return its payload."""
        if self.pos + 2 > len(self.data):
            raise input_error(self.name, f"truncated file: marker 0xFF{marker:02X} has no length")
        length = (self.data[self.pos] << 8) | self.data[self.pos + 1]
        if length < 2:
            raise input_error(self.name, f"invalid length {length} in marker 0xFF{marker:02X}")
        end = self.pos + length
        if end > len(self.data):
            raise input_error(self.name, f"truncated file inside marker 0xFF{marker:02X}")
        payload = self.data[self.pos + 2 : end]
        self.pos = end
        return payload

    def next_marker(self) -> int:
        """Skip fill bytes and return the code of the marker at the cursor."""
        data = self.data
        if self.pos >= len(data):
            raise input_error(self.name, "truncated file: missing EOI marker")
        if data[self.pos] != 0xFF:
            raise input_error(self.name, f"invalid data at offset {self.pos}: expected a marker")
        while self.pos < len(data) and data[self.pos] == 0xFF:
            self.pos += 1
        if self.pos >= len(data):
            raise input_error(self.name, "truncated file: missing EOI marker")
        code = data[self.pos]
        self.pos += 1
        if code == 0x00:
            raise input_error(self.name, f"invalid marker 0xFF00 at offset {self.pos - 2}")
        return code

    def entropy_coded_segment(self) -> bytes:
        """Return the scan data from the cursor up to the next non-RSTn marker."""
        data = self.data
        start = self.pos
        search = start
        while True:
            ff = data.find(b"\xff", search)
            if ff < 0 or ff + 1 >= len(data):
                raise input_error(self.name, "truncated file: scan data has no end marker")
            follower = data[ff + 1]
            if follower == 0x00 or RST0 <= follower <= RST0 + 7:
                search = ff + 2
            elif follower == 0xFF:
                # Fill bytes may only precede a marker; the loop finds it.
                search = ff + 1
            else:
                self.pos = ff
                return data[start:ff]


class _ParserState:
    """Tables and settings that marker segments define before each scan."""

    def __init__(self, name: str | None):
        self.name = name
        self.quant_tables: list[tuple[int, ...] | None] = [None] * 4
        self.dc_tables: list[HuffmanTable | None] = [None] * 4
        self.ac_tables: list[HuffmanTable | None] = [None] * 4
        self.restart_interval = 0
        self.saw_jfif = False
        self.adobe_transform: int | None = None
        self.frame_marker: int | None = None
        self.width = 0
        self.height = 0
        self.components: tuple[FrameComponent, ...] = ()
        self.latched: list[tuple[int, ...] | None] = []
        self.scans: list[Scan] = []

    def read_dqt(self, payload: bytes) -> None:
        pos = 0
        while pos < len(payload):
            precision, table_id = payload[pos] >> 4, payload[pos] & 15
            pos += 1
            if precision > 1 or table_id > 3:
                raise input_error(self.name, f"invalid DQT table header 0x{payload[pos - 1]:02X}")
            size = 128 if precision else 64
            if pos + size > len(payload):
                raise input_error(self.name, "invalid DQT segment: table runs past the segment")
            if precision:
                zigzag_values = [
                    (payload[pos + 2 * k] << 8) | payload[pos + 2 * k + 1] for k in range(64)
                ]
            else:
                zigzag_values = list(payload[pos : pos + 64])
            pos += size
            natural = [0] * 64
            for k, value in enumerate(zigzag_values):
                natural[ZIGZAG_TO_NATURAL[k]] = value
            self.quant_tables[table_id] = tuple(natural)

    def read_dht(self, payload: bytes) -> None:
        pos = 0
        while pos < len(payload):
            table_class, table_id = payload[pos] >> 4, payload[pos] & 15
            if table_class > 1 or table_id > 3:
                raise input_error(self.name, f"invalid DHT table header 0x{payload[pos]:02X}")
            if pos + 17 > len(payload):
                raise input_error(self.name, "invalid DHT segment: counts run past the segment")
            counts = tuple(payload[pos + 1 : pos + 17])
            total = sum(counts)
            pos += 17
            if pos + total > len(payload):
                raise input_error(self.name, "invalid DHT segment: symbols run past the segment")
            table = HuffmanTable(counts, bytes(payload[pos : pos + total]))
            pos += total
            if table_class == 0:
                self.dc_tables[table_id] = table
            else:
                self.ac_tables[table_id] = table

    def read_dri(self, payload: bytes) -> None:
        if len(payload) != 2:
            raise input_error(self.name, f"invalid DRI segment length {len(payload) + 2}")
        self.restart_interval = (payload[0] << 8) | payload[1]

    def read_app(self, marker: int, payload: bytes) -> None:
        # Same identification rules as examine_app0/examine_app14 in jdmarker.c.
        if marker == APP0 and len(payload) >= 14 and payload[:5] == b"JFIF\x00":
            self.saw_jfif = True
        elif marker == APP14 and len(payload) >= 12 and payload[:5] == b"Adobe":
            self.adobe_transform = payload[11]

    def read_sof(self, marker: int, payload: bytes) -> None:
        if self.frame_marker is not None:
            raise input_error(self.name, "invalid file: more than one SOF marker")
        if len(payload) < 6:
            raise input_error(self.name, "invalid SOF segment: too short")
        precision = payload[0]
        height = (payload[1] << 8) | payload[2]
        width = (payload[3] << 8) | payload[4]
        count = payload[5]

        if precision == 12:
            raise unsupported_error(self.name, "12-bit sample precision")
        if precision != 8:
            raise input_error(self.name, f"invalid sample precision {precision} in SOF")
        if height == 0:
            raise unsupported_error(self.name, "image height defined by a DNL marker (height 0 in SOF)")
        if width == 0:
            raise input_error(self.name, "invalid SOF segment: image width is 0")
        if width > MAX_DIMENSION or height > MAX_DIMENSION:
            raise input_error(self.name, f"image size {width}x{height} exceeds {MAX_DIMENSION} pixels per side")
        if count == 4:
            raise unsupported_error(self.name, "4-component (CMYK or YCCK) JPEG")
        if count not in (1, 3):
            raise unsupported_error(self.name, f"{count}-component JPEG")
        if len(payload) != 6 + 3 * count:
            raise input_error(self.name, f"invalid SOF segment length {len(payload) + 2}")

        components = []
        for i in range(count):
            component_id, sampling, table_id = payload[6 + 3 * i : 9 + 3 * i]
            h, v = sampling >> 4, sampling & 15
            if not (1 <= h <= 4 and 1 <= v <= 4):
                raise input_error(self.name, f"invalid sampling factors {h}x{v} for component {component_id}")
            if table_id > 3:
                raise input_error(self.name, f"invalid quantization table {table_id} for component {component_id}")
            components.append(FrameComponent(component_id, h, v, table_id))
        if len({c.component_id for c in components}) != count:
            raise input_error(self.name, "invalid SOF segment: duplicate component ids")

        max_h = max(c.h_sampling for c in components)
        max_v = max(c.v_sampling for c in components)
        for c in components:
            if max_h % c.h_sampling or max_v % c.v_sampling:
                raise unsupported_error(
                    self.name,
                    f"non-integer upsampling ratio (component {c.component_id} sampled "
                    f"{c.h_sampling}x{c.v_sampling}, maximum {max_h}x{max_v})",
                )

        self.frame_marker = marker
        self.width = width
        self.height = height
        self.components = tuple(components)
        self.latched = [None] * count

    def read_sos(self, payload: bytes) -> tuple[list[int], list[int], list[int]]:
        if self.frame_marker is None:
            raise input_error(self.name, "invalid file: SOS marker before SOF")
        if not payload:
            raise input_error(self.name, "invalid SOS segment: empty")
        count = payload[0]
        if not 1 <= count <= 4 or len(payload) != 4 + 2 * count:
            raise input_error(self.name, f"invalid SOS segment with {count} components")

        indices, dc_ids, ac_ids = [], [], []
        ids = [c.component_id for c in self.components]
        for i in range(count):
            component_id, selectors = payload[1 + 2 * i], payload[2 + 2 * i]
            if component_id not in ids:
                raise input_error(self.name, f"invalid SOS segment: unknown component id {component_id}")
            index = ids.index(component_id)
            if index in indices:
                raise input_error(self.name, f"invalid SOS segment: component {component_id} listed twice")
            dc_id, ac_id = selectors >> 4, selectors & 15
            if dc_id > 3 or ac_id > 3:
                raise input_error(self.name, f"invalid Huffman table selectors 0x{selectors:02X}")
            indices.append(index)
            dc_ids.append(dc_id)
            ac_ids.append(ac_id)
        # The spectral selection and successive approximation bytes that
        # follow are ignored: libjpeg only warns about values other than
        # 0..63 and 0, because some baseline encoders write zeros there.

        blocks_in_mcu = sum(
            self.components[i].h_sampling * self.components[i].v_sampling for i in indices
        )
        if count > 1 and blocks_in_mcu > MAX_BLOCKS_IN_MCU:
            raise input_error(self.name, f"invalid scan: {blocks_in_mcu} blocks per MCU (maximum {MAX_BLOCKS_IN_MCU})")
        return indices, dc_ids, ac_ids

    def add_scan(self, indices: list[int], dc_ids: list[int], ac_ids: list[int], data: bytes) -> None:
        self._fill_standard_huffman_tables()
        for index in indices:
            if any(index in scan.component_indices for scan in self.scans):
                raise input_error(
                    self.name,
                    f"invalid file: component {self.components[index].component_id} "
                    "appears in more than one sequential scan",
                )
            # A component keeps the table that was defined when its first scan
            # started (latch_quant_tables in jdinput.c).
            table_id = self.components[index].quant_table_id
            table = self.quant_tables[table_id]
            if table is None:
                raise input_error(self.name, f"missing quantization table {table_id}")
            self.latched[index] = table
        dc_tables = []
        ac_tables = []
        for dc_id, ac_id in zip(dc_ids, ac_ids):
            dc_table = self.dc_tables[dc_id]
            ac_table = self.ac_tables[ac_id]
            if dc_table is None:
                raise input_error(self.name, f"missing DC Huffman table {dc_id}")
            if ac_table is None:
                raise input_error(self.name, f"missing AC Huffman table {ac_id}")
            # Like libjpeg, check a table when a scan uses it, not when DHT defines it.
            validate_huffman_table(dc_table, is_dc=True, name=self.name)
            validate_huffman_table(ac_table, is_dc=False, name=self.name)
            dc_tables.append(dc_table)
            ac_tables.append(ac_table)
        self.scans.append(
            Scan(
                component_indices=tuple(indices),
                dc_table_ids=tuple(dc_ids),
                ac_table_ids=tuple(ac_ids),
                dc_tables=tuple(dc_tables),
                ac_tables=tuple(ac_tables),
                restart_interval=self.restart_interval,
                data=data,
            )
        )

    def _fill_standard_huffman_tables(self) -> None:
        # Motion-JPEG frames often omit DHT, so libjpeg-turbo fills undefined
        # slots 0 and 1 with the Annex K tables (std_huff_tables, which
        # jinit_huff_decoder in jdhuff.c calls).
        standard = {
            (0, 0): STANDARD_DC_LUMINANCE,
            (0, 1): STANDARD_DC_CHROMINANCE,
            (1, 0): STANDARD_AC_LUMINANCE,
            (1, 1): STANDARD_AC_CHROMINANCE,
        }
        for (table_class, table_id), (counts, symbols) in standard.items():
            slots = self.dc_tables if table_class == 0 else self.ac_tables
            if slots[table_id] is None:
                slots[table_id] = HuffmanTable(counts, symbols)

    def color_transform(self) -> str:
        """Return the colour space as libjpeg-turbo guesses it (jdapimin.c)."""
        if len(self.components) == 1:
            return "gray"
        if self.saw_jfif:
            return "ycbcr"
        if self.adobe_transform is not None:
            return "rgb" if self.adobe_transform == 0 else "ycbcr"
        ids = tuple(c.component_id for c in self.components)
        return "rgb" if ids == (0x52, 0x47, 0x42) else "ycbcr"

    def finish(self) -> ParsedJpeg:
        if self.frame_marker is None:
            raise input_error(self.name, "invalid file: no SOF marker")
        if not self.scans:
            raise input_error(self.name, "invalid file: no SOS marker")
        for index, table in enumerate(self.latched):
            if table is None:
                raise input_error(
                    self.name,
                    f"invalid file: component {self.components[index].component_id} has no scan",
                )
        frame = Frame(
            sof_marker=self.frame_marker,
            width=self.width,
            height=self.height,
            components=self.components,
            quant_tables=tuple(self.latched),  # type: ignore[arg-type]
            color_transform=self.color_transform(),
        )
        return ParsedJpeg(frame, tuple(self.scans))


def parse_jpeg(data: bytes, name: str | None = None) -> ParsedJpeg:
    """Parse a sequential Huffman JPEG file into its frame and scans.

    ``name`` (a file name) prefixes error messages. Raises ``InputError`` for
    malformed or truncated data and for JPEG features that the hardware
    decoder does not implement. Bytes after EOI are ignored, as libjpeg does.
    """
    data = bytes(data)
    if len(data) < 2 or data[0] != 0xFF or data[1] != SOI:
        raise input_error(name, "not a JPEG file: missing SOI marker")
    reader = _Reader(data, name)
    reader.pos = 2
    state = _ParserState(name)
    # Each iteration consumes at least one byte, so the loop ends.
    while True:
        marker = reader.next_marker()
        if marker == EOI:
            return state.finish()
        if marker in UNSUPPORTED_MARKERS:
            raise unsupported_error(name, UNSUPPORTED_MARKERS[marker])
        if marker == SOI or RST0 <= marker <= RST0 + 7 or marker == 0x01:
            raise input_error(name, f"invalid file: unexpected marker 0xFF{marker:02X}")
        payload = reader.segment(marker)
        if marker in (SOF0, SOF1):
            state.read_sof(marker, payload)
        elif marker == DQT:
            state.read_dqt(payload)
        elif marker == DHT:
            state.read_dht(payload)
        elif marker == DRI:
            state.read_dri(payload)
        elif APP0 <= marker <= APP0 + 15:
            state.read_app(marker, payload)
        elif marker == SOS:
            indices, dc_ids, ac_ids = state.read_sos(payload)
            state.add_scan(indices, dc_ids, ac_ids, reader.entropy_coded_segment())
        elif marker == COM:
            pass
        else:
            raise input_error(name, f"invalid file: unknown marker 0xFF{marker:02X}")


def _zigzag_to_natural() -> tuple[int, ...]:
    """Return the natural (row-major) index of each zigzag position."""
    order = []
    for diagonal in range(15):
        cells = [(row, diagonal - row) for row in range(8) if 0 <= diagonal - row < 8]
        if diagonal % 2 == 0:
            cells.reverse()  # even diagonals run from bottom-left to top-right
        order.extend(row * 8 + col for row, col in cells)
    return tuple(order)


ZIGZAG_TO_NATURAL = _zigzag_to_natural()
