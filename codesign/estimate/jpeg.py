"""Analytical cost and throughput model of the JPEG front-end (estimates, no synthesis).

The front-end is the hls4ml layer ``nnet::jpeg_decoder``
(``hls_templates/jpeg/nnet_jpeg_decoder.h``): a byte adapter, ``jpeg::decode_frame``
of ``hls_templates/jpeg/jpeg_decoder.h`` and a pixel adapter.
Like ``codesign.estimate``, this counts what the C++ instantiates and maps it
to LUT, FF, DSP and BRAM_18K with the shared rules of ``costs.py``
(``memory_storage``, ``fifo_storage``, ``map_product``). Every constant is an
estimate that no synthesis report has checked. The constants are the fields
of ``JpegCostModel``:

Cycles (one DATAFLOW process per stage, a new image every max-stage cycles):

- Unstuffing: one payload byte per cycle (``UnstuffLoop`` at II = 1), plus
  the 2 length bytes and ``unstuff_depth`` = 3 cycles of pipeline fill.
- Huffman decoding, per block: ``huffman_block_cycles`` = 8 for the fill,
  the DC symbol and the loop entry and exit; ``huffman_clear_cycles`` = 32,
  because the unrolled ``ClearLoop`` writes 64 words into a two-port RAM;
  64 cycles for ``WriteLoop``; and ``huffman_symbol_ii`` = 4 cycles per AC
  symbol (EOB and ZRL included). ``fill_bits`` may read 4 tokens from one
  stream per ``ACLoop`` iteration, and a stream takes one read per cycle, so
  the loop cannot reach II = 1.
- IDCT, per block: 64 cycles of ``DequantizeLoop``, ``ColumnLoop`` at
  ``idct_column_ii`` = 4 (8 reads of a two-port RAM), ``RowLoop`` at
  ``idct_row_ii`` = 8 (8 writes to one stream), and ``idct_loop_depth`` = 12
  cycles of pipeline fill per loop. This is the slowest stage for every
  format that the benchmark measures.
- Raster stage: one sample read per cycle into the line buffers, one pixel
  written per cycle, ``raster_loop_depth`` = 4 cycles per output line, and
  the saved-line copies of 4:2:0.
- Byte adapter: one frame byte per cycle, like unstuffing.
- Pixel adapter: one pixel per cycle.

Resources:

- Unstuffing: a 33-bit byte counter (incrementer and compare, 1 LUT per bit
  each) and ``unstuff_logic_lut`` = 16 LUTs for the 0xFF/0x00 compares and
  the token multiplexer.
- Bit reader: ``bit_reader_lut`` = 230. Two 40-to-16-bit barrel shifters by a
  6-bit amount (code window and ``take_bits``) take 16 bits x 3 LUT6 levels
  each, the 4-byte refill about 80, the bit count 20 and ``extend`` 34.
- Code search: 16 parallel compares of 1..16 bits (136 LUTs on the carry
  chain) against limits that a T:1 multiplexer picks per table, T the number
  of distinct Huffman tables. A 16-input priority multiplexer selects the
  code (80 LUTs). The offsets (16 x 18 bits) go through the same table
  multiplexer into an 18-bit adder. Symbols are a T x 256 x 8-bit ROM.
- IDCT: one 16 x 16-bit dequantization product and 12 constant products
  (13 to 15-bit constants) per 8-point pass, in 43-bit (columns) and 28-bit
  (rows) modular arithmetic, mapped by ``map_product``. Vitis HLS may build
  some constant products from adders instead. Each pass has 40 additions
  (32 in the butterfly, 8 for the descaling) of 1 LUT per bit, with half of
  their bits registered (``adder_ff_fraction`` of the CNN model).
- YCbCr to RGB: 4 constant products of 17-bit constants and 9-bit chroma,
  and ``color_logic_lut`` = 240 LUTs for fancy upsampling (two 12-bit
  adders per chroma channel and phase), the three 12-bit sums and clamps.
- Every stage process costs ``process_lut``/``process_ff`` of the CNN model
  (40/40), and the raster stage's three nested line loops
  ``window_control_lut``/``window_control_ff`` (100/128) more.
- Arrays and FIFOs follow ``memory_storage`` and ``fifo_storage``: LUTRAM up
  to 1024 bits, else BRAM_18K, and SRL for FIFOs up to depth 32.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from codesign.boards import Board, DspSlice
from codesign.estimate.costs import DEFAULT_COST_MODEL, CostModel, LayerEstimate, fifo_storage, map_product, memory_storage
from codesign.estimate.spec import FixedType
from codesign.jpeg.entropy import decode_coefficients
from codesign.jpeg.markers import ZIGZAG_TO_NATURAL
from codesign.jpeg.stream import DecoderTables

RESOURCES = ("lut", "ff", "dsp", "bram_18k")

# FIFO depths of jpeg::decode_frame's STREAM pragmas and their word widths:
# token_t is 8 data bits and 2 flags, coef_t 16 bits, sample_t 8 bits.
_DECODER_FIFOS = (("tokens", 64, 10), ("coefficients", 128, 16), ("samples", 128, 8))
# Multiplications of one 8-point pass of jidctint.c with constants other than 2**13.
_IDCT_CONSTANT_PRODUCTS = 12
# Additions per 8-point pass: 32 in the butterfly and 8 roundings before the descaling shift.
_IDCT_ADDERS = 40
_IDCT_PASS1_BITS = 43
_IDCT_PASS2_BITS = 28
_IDCT_CONSTANT_BITS = 16
_BLOCK = 64


@dataclass(frozen=True)
class JpegCostModel:
    """Constants of the front-end model; each one is an estimate explained in the module docstring."""

    unstuff_depth: int = 3
    unstuff_logic_lut: int = 16
    huffman_block_cycles: int = 8
    huffman_clear_cycles: int = 32
    huffman_symbol_ii: int = 4
    idct_column_ii: int = 4
    idct_row_ii: int = 8
    idct_loop_depth: int = 12
    raster_loop_depth: int = 4
    bit_reader_lut: int = 230
    bit_reader_ff: int = 64
    color_logic_lut: int = 240
    cnn: CostModel = DEFAULT_COST_MODEL


DEFAULT_JPEG_COST_MODEL = JpegCostModel()


@dataclass
class FrontendEstimate:
    """Estimated resources and cycles per image of the JPEG front-end on one board."""

    board: str
    clock_mhz: float
    stages: list[LayerEstimate]
    totals: dict[str, int]
    capacity: dict[str, int]
    ii_cycles: int
    bottleneck: str
    ac_symbols_per_block: float
    cost_model: JpegCostModel = field(default_factory=JpegCostModel)

    @property
    def fps(self) -> float:
        """Images per second that the decoder sustains alone."""
        return self.clock_mhz * 1e6 / self.ii_cycles

    @property
    def utilization(self) -> dict[str, float | None]:
        """Percent of the board used per resource, None where the board has none."""
        return {
            key: (100.0 * self.totals[key] / self.capacity[key] if self.capacity[key] else None) for key in RESOURCES
        }

    def to_dict(self) -> dict:
        return {
            "board": self.board,
            "clock_mhz": self.clock_mhz,
            "ii_cycles": self.ii_cycles,
            "fps": self.fps,
            "bottleneck": self.bottleneck,
            "ac_symbols_per_block": self.ac_symbols_per_block,
            "totals": dict(self.totals),
            "capacity": dict(self.capacity),
            "utilization_percent": self.utilization,
            "stages": [asdict(stage) for stage in self.stages],
            "cost_model": asdict(self.cost_model),
        }

    def format_table(self) -> str:
        """Render one Markdown row per stage and FIFO, then totals and percent of the board."""
        lines = [
            "| stage | LUT | FF | DSP | BRAM_18K | cycles per image | notes |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for stage in self.stages:
            cycles = "-" if stage.ii_cycles is None else f"{stage.ii_cycles:,}"
            lines.append(
                f"| {stage.name} | {stage.lut:,} | {stage.ff:,} | {stage.dsp:,} | {stage.bram_18k:,} | {cycles} | "
                f"{'; '.join(stage.notes)} |"
            )
        totals = " | ".join(f"{self.totals[key]:,}" for key in RESOURCES)
        lines.append(f"| **total (estimate)** | {totals} | {self.ii_cycles:,} | slowest: {self.bottleneck} |")
        percent = " | ".join("-" if value is None else f"{value:.2f}%" for value in self.utilization.values())
        lines.append(f"| **% of {self.board}** | {percent} | | |")
        summary = (
            f"\nJPEG decoder: {self.ii_cycles:,} cycles per image (slowest stage {self.bottleneck}, "
            f"{self.ac_symbols_per_block:.1f} AC symbols per block), {self.fps:,.0f} fps at {self.clock_mhz:g} MHz."
        )
        return "\n".join(lines) + summary + "\n"


@dataclass(frozen=True)
class Throughput:
    """Images per second of the front-end design: the slowest of host link, decoder and CNN."""

    bytes_per_image: float
    bandwidth_mb_s: float
    clock_mhz: float
    decoder_cycles: int
    cnn_cycles: int

    @property
    def link_fps(self) -> float:
        """Images per second the host link carries (MB = 10**6 bytes)."""
        return self.bandwidth_mb_s * 1e6 / self.bytes_per_image

    @property
    def decoder_fps(self) -> float:
        return self.clock_mhz * 1e6 / self.decoder_cycles

    @property
    def cnn_fps(self) -> float:
        return self.clock_mhz * 1e6 / self.cnn_cycles

    @property
    def fps(self) -> float:
        return min(self.link_fps, self.decoder_fps, self.cnn_fps)

    @property
    def bottleneck(self) -> str:
        rates = {"host link": self.link_fps, "JPEG decoder": self.decoder_fps, "CNN": self.cnn_fps}
        return min(rates, key=rates.get)

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "link_fps": self.link_fps,
            "decoder_fps": self.decoder_fps,
            "cnn_fps": self.cnn_fps,
            "fps": self.fps,
            "bottleneck": self.bottleneck,
        }

    def summary(self) -> str:
        """Return the model as one line of text."""
        return (
            f"{self.fps:,.0f} fps (limited by the {self.bottleneck}): host link {self.bandwidth_mb_s:g} MB/s / "
            f"{self.bytes_per_image:,.0f} bytes = {self.link_fps:,.0f} fps, JPEG decoder {self.decoder_cycles:,} "
            f"cycles = {self.decoder_fps:,.0f} fps, CNN {self.cnn_cycles:,} cycles = {self.cnn_fps:,.0f} fps "
            f"at {self.clock_mhz:g} MHz"
        )


def throughput(board: Board, bytes_per_image: float, decoder_cycles: int, cnn_cycles: int) -> Throughput:
    """Return fps = min(link bandwidth / bytes per image, decoder rate, CNN rate) on ``board``.

    Both rates use the board's clock, and the link rate its
    ``host_link.bandwidth_mb_s``. Pass the raw RGB bytes per image and a
    decoder of 1 cycle to model a design without the front-end.
    """
    return Throughput(
        bytes_per_image=float(bytes_per_image),
        bandwidth_mb_s=float(board.host_link.bandwidth_mb_s),
        clock_mhz=float(board.clock_mhz),
        decoder_cycles=int(decoder_cycles),
        cnn_cycles=int(cnn_cycles),
    )


def ac_symbol_counts(tables: DecoderTables, payloads) -> np.ndarray:
    """Return, per payload, the Huffman AC symbols (EOB and ZRL included) of all its blocks.

    The counts follow from the quantized coefficients: one symbol per nonzero
    AC coefficient, one ZRL per 16 zeros before it, and one EOB unless the
    block's last coefficient is nonzero.
    """
    counts = []
    zigzag = np.array(ZIGZAG_TO_NATURAL)
    for payload in payloads:
        components = decode_coefficients(tables.frame, (tables.scan(payload),))
        ac = np.concatenate([blocks.reshape(-1, _BLOCK)[:, zigzag][:, 1:] for blocks in components])
        nonzero = ac != 0
        run = np.zeros(len(ac), dtype=np.int64)
        zrl = np.zeros(len(ac), dtype=np.int64)
        for position in range(ac.shape[1]):
            zrl += np.where(nonzero[:, position], run // 16, 0)
            run = np.where(nonzero[:, position], 0, run + 1)
        eob = ~nonzero[:, -1]
        counts.append(int(nonzero.sum() + zrl.sum() + eob.sum()))
    return np.array(counts)


def _geometry(tables: DecoderTables) -> dict:
    frame = tables.frame
    components = len(frame.components)
    h_samp = 1 if components == 1 else frame.components[0].h_sampling
    v_samp = 1 if components == 1 else frame.components[0].v_sampling
    mcus_x = math.ceil(frame.width / (8 * h_samp))
    mcus_y = math.ceil(frame.height / (8 * v_samp))
    blocks_per_mcu = 1 if components == 1 else h_samp * v_samp + 2
    return {
        "components": components,
        "h_samp": h_samp,
        "v_samp": v_samp,
        "mcus_x": mcus_x,
        "mcus_y": mcus_y,
        "blocks": mcus_x * mcus_y * blocks_per_mcu,
        "luma_stride": mcus_x * 8 * h_samp,
        "chroma_stride": mcus_x * 8,
        "chroma_width": math.ceil(frame.width / h_samp),
        "huffman_tables": len(set(tables.dc_tables) | set(tables.ac_tables)),
    }


def _mux_per_bit(inputs: int) -> int:
    """LUT6 per bit of an inputs:1 multiplexer (a LUT6 is a 4:1 multiplexer)."""
    return 0 if inputs <= 1 else math.ceil((inputs - 1) / 3)


def _unstuff_stage(payload_bytes: float, model: JpegCostModel) -> LayerEstimate:
    counter_bits = 33
    cycles = math.ceil(2 + payload_bytes) + model.unstuff_depth
    return LayerEstimate(
        name="unstuff_frame", kind="jpeg", template="jpeg::unstuff_frame",
        lut=2 * counter_bits + model.unstuff_logic_lut + model.cnn.process_lut,
        ff=counter_bits + 32 + 10 + 1 + model.cnn.process_ff,
        latency_cycles=cycles, ii_cycles=cycles,
        notes=[f"{payload_bytes:,.0f} payload bytes at 1 byte per cycle"],
    )


def _huffman_stage(geometry: dict, symbols_per_block: float, model: JpegCostModel) -> LayerEstimate:
    tables = geometry["huffman_tables"]
    table_mux = _mux_per_bit(tables)
    compare_lut = sum(range(1, 17)) + sum(length + 1 for length in range(1, 17)) * table_mux
    select_lut = 16 * _mux_per_bit(16) + 10
    offset_lut = 16 * 18 * table_mux + 18
    symbols = memory_storage(tables * 256, 8, model.cnn)
    block = memory_storage(_BLOCK, 16, model.cnn)
    zigzag_lut = 6  # 64 x 6-bit ROM, one LUT6 per bit
    predictor_lut = 16 + 16 * _mux_per_bit(3)
    lut = (model.bit_reader_lut + compare_lut + select_lut + offset_lut + symbols.lut + block.lut + zigzag_lut
           + predictor_lut + model.cnn.process_lut)
    ff = model.bit_reader_ff + 3 * 16 + 7 + 16 + model.cnn.process_ff
    per_block = model.huffman_block_cycles + model.huffman_clear_cycles + _BLOCK + symbols_per_block * model.huffman_symbol_ii
    cycles = math.ceil(geometry["blocks"] * per_block)
    return LayerEstimate(
        name="decode_huffman", kind="jpeg", template="jpeg::decode_huffman",
        lut=lut, ff=ff, bram_18k=symbols.bram_18k + block.bram_18k,
        latency_cycles=cycles, ii_cycles=cycles,
        notes=[f"{geometry['blocks']} blocks x {per_block:,.0f} cycles ({symbols_per_block:.1f} AC symbols "
               f"at II {model.huffman_symbol_ii})", f"{tables} Huffman tables, symbols in {symbols.impl}"],
    )


def _idct_stage(geometry: dict, dsp_slice: DspSlice, model: JpegCostModel) -> LayerEstimate:
    dequantize = map_product(FixedType(16, 16), FixedType(16, 16), dsp_slice, model.cnn)
    pass1 = map_product(FixedType(_IDCT_PASS1_BITS, _IDCT_PASS1_BITS), FixedType(_IDCT_CONSTANT_BITS, _IDCT_CONSTANT_BITS),
                        dsp_slice, model.cnn)
    pass2 = map_product(FixedType(_IDCT_PASS2_BITS, _IDCT_PASS2_BITS), FixedType(_IDCT_CONSTANT_BITS, _IDCT_CONSTANT_BITS),
                        dsp_slice, model.cnn)
    dsp = math.ceil(dequantize.dsp_per_product + _IDCT_CONSTANT_PRODUCTS * (pass1.dsp_per_product + pass2.dsp_per_product))
    adder_bits = _IDCT_ADDERS * (_IDCT_PASS1_BITS + _IDCT_PASS2_BITS)
    range_limit_lut = 8 * (10 + 8)
    quant = memory_storage(geometry["components"] * _BLOCK, 16, model.cnn)
    dequantized = memory_storage(_BLOCK, _IDCT_PASS1_BITS, model.cnn)
    workspace = memory_storage(_BLOCK, 32, model.cnn)
    lut = adder_bits + range_limit_lut + quant.lut + dequantized.lut + workspace.lut + model.cnn.process_lut
    ff = math.ceil(adder_bits * model.cnn.adder_ff_fraction) + 32 + model.cnn.process_ff
    per_block = _BLOCK + 8 * model.idct_column_ii + 8 * model.idct_row_ii + 3 * model.idct_loop_depth
    cycles = geometry["blocks"] * per_block
    return LayerEstimate(
        name="inverse_dct", kind="jpeg", template="jpeg::inverse_dct (islow)",
        lut=lut, ff=ff, dsp=dsp, bram_18k=quant.bram_18k + dequantized.bram_18k + workspace.bram_18k,
        latency_cycles=cycles, ii_cycles=cycles, multipliers=1 + 2 * _IDCT_CONSTANT_PRODUCTS,
        notes=[f"{geometry['blocks']} blocks x {per_block} cycles",
               f"dequantization: {dequantize.reason}; passes: {pass1.reason} and {pass2.reason}"],
    )


def _raster_stage(tables: DecoderTables, geometry: dict, dsp_slice: DspSlice, model: JpegCostModel) -> LayerEstimate:
    width, height = tables.width, tables.height
    read_cycles = geometry["blocks"] * _BLOCK
    lut = model.cnn.process_lut + model.cnn.window_control_lut
    ff = model.cnn.process_ff + model.cnn.window_control_ff
    if geometry["components"] == 1:
        lines = memory_storage(8 * geometry["luma_stride"], 8, model.cnn)
        write_cycles = height * (width + model.raster_loop_depth)
        dsp = 0
        notes = [f"line buffer in {lines.impl}"]
        bram = lines.bram_18k
        lut += lines.lut
    else:
        mcu_height = 8 * geometry["v_samp"]
        luma = memory_storage((mcu_height + 1) * geometry["luma_stride"], 8, model.cnn)
        chroma = memory_storage(2 * 9 * geometry["chroma_stride"], 8, model.cnn)
        convert = map_product(FixedType(9, 9), FixedType(18, 18), dsp_slice, model.cnn)
        dsp = math.ceil(4 * convert.dsp_per_product)
        lut += luma.lut + chroma.lut + model.color_logic_lut + (0 if convert.in_dsp else 4 * convert.lut_per_product)
        ff += 3 * 2 * 12 + 3 * 8
        bram = luma.bram_18k + chroma.bram_18k
        write_cycles = height * (geometry["chroma_width"] * geometry["h_samp"] + model.raster_loop_depth)
        if geometry["v_samp"] == 2:
            write_cycles += geometry["mcus_y"] * (geometry["luma_stride"] + 2 * geometry["chroma_stride"])
        notes = [f"luma lines in {luma.impl}, chroma lines in {chroma.impl}", f"YCbCr to RGB: {convert.reason}"]
    cycles = read_cycles + write_cycles
    return LayerEstimate(
        name="raster_stage", kind="jpeg", template="jpeg::raster_stage",
        lut=lut, ff=ff, dsp=dsp, bram_18k=bram, latency_cycles=cycles, ii_cycles=cycles, notes=notes,
    )


def _byte_stage(payload_bytes: float, model: JpegCostModel) -> LayerEstimate:
    counter_bits = 17
    cycles = math.ceil(2 + payload_bytes) + model.cnn.io_register_cycles
    return LayerEstimate(
        name="frame_bytes", kind="jpeg", template="nnet_jpeg_decoder.h",
        lut=2 * counter_bits + model.cnn.process_lut, ff=counter_bits + 16 + 8 + model.cnn.process_ff,
        latency_cycles=cycles, ii_cycles=cycles,
        notes=[f"{payload_bytes:,.0f} payload bytes at 1 byte per cycle"],
    )


def _adapter_stage(tables: DecoderTables, model: JpegCostModel) -> LayerEstimate:
    cycles = tables.width * tables.height + model.cnn.io_register_cycles
    return LayerEstimate(
        name="pixels_to_packets", kind="jpeg", template="nnet_jpeg_decoder.h",
        lut=model.cnn.process_lut, ff=24 + model.cnn.process_ff, latency_cycles=cycles, ii_cycles=cycles,
        notes=["one pixel per cycle"],
    )


def _fifo_rows(tables: DecoderTables, model: JpegCostModel) -> list[LayerEstimate]:
    components = len(tables.frame.components)
    fifos = [("jpeg_frame_bytes", 2, 8), *_DECODER_FIFOS, ("jpeg_pixels", tables.width, 8 * components),
             ("decoder_output", tables.width, 24)]
    rows = []
    for name, depth, width in fifos:
        storage = fifo_storage(depth, width, model.cnn)
        rows.append(LayerEstimate(
            name=name, kind="fifo", template=f"hls::stream depth={depth}",
            lut=storage.lut, ff=storage.ff, bram_18k=storage.bram_18k,
            notes=[f"{depth} x {width} bits in {storage.impl}"],
        ))
    return rows


def estimate_frontend(
    tables: DecoderTables,
    board: Board,
    payload_bytes: float,
    ac_symbols_per_block: float,
    model: JpegCostModel = DEFAULT_JPEG_COST_MODEL,
) -> FrontendEstimate:
    """Estimate the front-end's resources and cycles per image on ``board``.

    ``payload_bytes`` and ``ac_symbols_per_block`` are means over the images
    of interest (see ``ac_symbol_counts``), because the unstuffing and
    Huffman stages take data-dependent time.
    """
    geometry = _geometry(tables)
    dsp_slice = DspSlice(board.dsp_slice)
    stages = [
        _byte_stage(payload_bytes, model),
        _unstuff_stage(payload_bytes, model),
        _huffman_stage(geometry, ac_symbols_per_block, model),
        _idct_stage(geometry, dsp_slice, model),
        _raster_stage(tables, geometry, dsp_slice, model),
        _adapter_stage(tables, model),
    ]
    rows = stages + _fifo_rows(tables, model)
    totals = {key: sum(getattr(row, key) for row in rows) for key in RESOURCES}
    slowest = max(stages, key=lambda stage: stage.ii_cycles)
    return FrontendEstimate(
        board=board.name,
        clock_mhz=float(board.clock_mhz),
        stages=rows,
        totals=totals,
        capacity={key: board.capacity(key) for key in RESOURCES},
        ii_cycles=slowest.ii_cycles,
        bottleneck=slowest.name,
        ac_symbols_per_block=float(ac_symbols_per_block),
        cost_model=model,
    )


def estimate_for_payloads(tables: DecoderTables, board: Board, payloads) -> FrontendEstimate:
    """Estimate the front-end with the mean payload size and AC symbol count of ``payloads``."""
    payloads = list(payloads)
    if not payloads:
        raise ValueError("estimate_for_payloads needs at least one payload")
    blocks = _geometry(tables)["blocks"]
    symbols = ac_symbol_counts(tables, payloads)
    mean_bytes = float(np.mean([len(payload) for payload in payloads]))
    return estimate_frontend(tables, board, mean_bytes, float(symbols.mean()) / blocks)
