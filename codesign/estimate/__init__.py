"""Analytical resource and performance estimate of hls4ml 1.3.0 io_stream designs.

The estimate counts what the hls4ml templates instantiate (Vitis backend,
io_stream, ``nnet_utils`` of hls4ml 1.3.0) and maps each part to LUT, FF, DSP,
BRAM_18K and URAM with the rules below. It needs no vendor tool. Every constant
is an estimate, not a measured value: none was fitted to a synthesis report, so
check it against ``parse_vendor_reports`` once Vitis HLS or Vivado has run.
The constants are the fields of ``CostModel`` and can be overridden.

Public API
----------
``estimate(source, board)`` returns an ``Estimate`` with one ``LayerEstimate`` per
layer and per FIFO, the totals, the board's capacity and percent used, the
design's II, latency and fps. ``fit_reuse_factors(source, board, margin)`` returns
per-layer reuse factors that fit. ``parse_vendor_reports(project_dir)`` reads
csynth XML and Vivado utilization reports; ``format_comparison`` sets them
beside an estimate. ``source`` is an hls4ml ``ModelGraph``, a ``LoweredModel``,
a project folder written by ``codesign convert`` (see ``sources`` for how it is
read), a QONNX file, a detector checkpoint, None for the bundled detector, or a
list of ``LayerSpec``.

Dense and convolution kernels
-----------------------------
A convolution instantiates one dense kernel with n_in = kernel height x kernel
width x input channels and n_out = filters, applied once per output pixel. With
reuse factor R:

- Latency strategy (``DenseLatency``): multipliers = ceil(n_in x n_out / R) -
  floor(n_zeros / R), hls4ml's ``multiplier_limit``. The weights are constants,
  so zero weights need no multiplier. Power-of-two weights, which are only
  shifts, are still counted as multipliers. A kernel of more than 4096 products
  gets a note: DenseLatency unrolls all of them and partitions the product array
  completely, beyond the ``config_array_partition -maximum_size 4096`` that hls4ml
  writes to project.tcl, so Vitis HLS may fail to schedule it.
- Resource strategy (``DenseResource_*``): multipliers = block_factor =
  ceil(n_in x n_out / R); zero weights are not removed.

Each product maps to LUTs or DSPs by its operand widths (weight and layer input):

- LUTs when the narrower operand has at most lut_mult_narrow_bits = 4 bits or the
  two widths sum to at most lut_mult_max_width_sum = 14 bits. The assumption is
  that Vitis HLS and Vivado build such small products from LUTs rather than leave
  most of a DSP idle. Vitis HLS documents no fixed rule, so both thresholds are
  estimates. With them, 8 x 6-bit products go to LUTs and 8 x 8-bit products to
  DSPs.
- A LUT product costs ceil(lut_per_partial_product x w_a x w_w) LUTs with
  lut_per_partial_product = 0.5: an array multiplier has w_a x w_w partial-product
  bits, and a LUT6 with its carry chain adds about two of them. It has a
  w_a + w_w bit output register.
- A DSP product takes 1 DSP when its signed widths fit the slice's multiplier,
  25 x 18 on a DSP48E1 (7-series) and 27 x 18 on a DSP48E2 (UltraScale+). An
  unsigned operand needs one more bit. Wider products take
  ceil((a - 1) / (port_a - 1)) x ceil((b - 1) / (port_b - 1)) slices.
- dsp_packing = False: with True, two products that share one input x go into
  one DSP as ((w1 << s) + w2) x x with s = w_x + w_w, when w_x <= 18 and
  s + w_w fits the wide port. Off by default because neither the hls4ml 1.3.0
  templates nor Vitis HLS pack products on their own.

Adders: one addition per nonzero product, because summing p products and the
bias takes p additions. Each costs one LUT per accumulator bit. The Latency
strategy keeps every adder at every reuse factor: the estimate assumes Vitis HLS
does not share an adder, since the multiplexer in front of a shared adder costs
as much as the adder. The Resource strategy has one accumulation per multiplier
and n_out accumulator registers. A fraction adder_ff_fraction = 0.5 of the adder
output bits is registered, about one pipeline stage per two adder levels.

Sharing (R > 1): each multiplier selects its input through a min(R, n_in):1
multiplexer, costing ceil((n - 1) / 3) LUT6 per bit because a LUT6 is a 4:1 mux.

Weight storage:

- Latency strategy: constants folded into the multipliers at R = 1. At R > 1,
  each multiplier reads its weights from a LUT ROM of weight bits x ceil(R / 64)
  LUT6, since a LUT6 is a 64 x 1 ROM.
- Resource strategy, R > 1: ``ROM_nP_BRAM``, reshaped by block_factor into R words
  of (multipliers x weight width) bits. BRAM_18K = the fewest blocks over the
  aspect ratios 16K x 1, 8K x 2, 4K x 4, 2K x 9, 1K x 18 and 512 x 36. Few
  words of many bits therefore cost many blocks. ``pointwise_conv_2d_cl``
  partitions its weights completely, so a pointwise layer uses a LUT ROM
  instead.
- URAM is always 0. No hls4ml 1.3.0 template binds an array to URAM, and Vitis
  HLS does not choose URAM by itself.

Streams, line buffers and small layers
--------------------------------------
- FIFOs: every ``hls::stream`` between two layers has the depth from its
  ``#pragma HLS STREAM``. hls4ml's default is the tensor's pixel count (height x
  width), which on large images dominates the block RAM. A FIFO of depth <=
  fifo_srl_max_depth = 32 is a shift register in SRLC32E (width x ceil(depth / 32)
  LUTs). A deeper one is a RAM: LUTRAM when depth x width <= lutram_max_bits = 1024
  (RAM64M, 4 LUTs per 64 x 3 bits), otherwise BRAM_18K by the aspect-ratio rule.
  Each FIFO adds 2 x address bits + 4 LUTs and FFs for its pointers.
- Line buffers: a K_h x K_w convolution or pooling keeps (K_h - 1) lines of
  W x C x input width bits (W is the padded input width). They are
  ``ap_shift_reg`` objects partitioned by channel, so there are (K_h - 1) x C shift
  registers of depth W. Each is SRL when W <= shift_register_srl_max_depth = 128,
  where a chain of at most 4 SRLC32E per bit stays cheaper than a block RAM.
  A deeper one is a RAM by the LUTRAM/BRAM rule. The K_h x K_w x C window
  registers are FFs.
- Activations: ``nnet::linear`` and ``nnet::relu`` are casts and comparisons in
  LUTs. Rounding costs an adder of out width + 1 LUTs, and saturation costs
  ceil(dropped MSBs / 6) + out width LUTs. A ReLU without saturation costs out width
  LUTs. An unchanged type costs nothing.
- Max pooling: per channel, window - 1 maximum operations of 2 x width LUTs each
  (a carry-chain compare and a 2:1 select). Average pooling uses adders and
  ignores the division.
- Zero padding: a width x channels multiplexer on the output.
- Activation, padding and pooling register their output word: channels x width
  FFs.
- Control: every dataflow process adds process_lut = 40 LUTs and process_ff = 40
  FFs (state machine, loop counter, stream handshakes). A line-buffer layer adds
  window_control_lut = 100 LUTs and window_control_ff = 128 FFs for its four
  static int counters and their compares.

Cycles
------
Each layer is a dataflow process that starts a new image only after finishing
the last, so its II (cycles per image) equals its latency:

- Convolution, Latency strategy: the pixel loop is pipelined at II = R, so
  cycles = input pixels (padded) x R + pipeline depth.
- Convolution, Resource strategy: ``conv_2d_buffer_resource_cl`` has no PIPELINE
  pragma, so cycles = input pixels x resource_pixel_overhead +
  output pixels x (R + depth), with resource_pixel_overhead = 3 (call,
  shift, counter update).
- Dense (io_stream): one read of the whole input word, R + depth, one write.
- Pooling and activations: one pixel per cycle; zero padding one output pixel per
  cycle plus padding_row_overhead = 2 cycles per input row, because its three
  inner loops are not flattened.
- Pipeline depth = io_register_cycles = 2, plus lut_mult_cycles = 1 or
  dsp_mult_cycles = 2, plus the adder tree: ceil(log2(n_in + 1)) levels at
  floor(usable period / adder_level_ns) levels per cycle. adder_level_ns = 2.5
  is one carry-chain add with routing. The usable period is the clock
  period x (1 - clock_uncertainty) with clock_uncertainty = 0.27, the
  ClockUncertainty of 27 % that hls4ml's Vitis backend writes. The Resource
  strategy has one accumulation cycle in place of the tree, and a convolution
  adds one cycle for the window shift.

The design's II is the slowest layer's, and fps = board.clock_mhz x 10^6 / II.
The latency chains the layers. Each starts when its producer's first output
arrives, which for a line-buffer layer is after (K_h - 1) x W + K_w input pixels.
It ends at its own pace or when its producer ends plus its drain time,
whichever is later.
"""

from codesign.estimate.costs import (
    DEFAULT_COST_MODEL,
    CostModel,
    LayerEstimate,
    bram18_count,
    estimate_layer,
    map_product,
)
from codesign.estimate.design import Estimate, apply_reuse_factors, apply_strategy, estimate, estimate_specs
from codesign.estimate.fit import DesignDoesNotFitError, fit_reuse_factors, valid_reuse_factors
from codesign.estimate.reports import VendorReport, format_comparison, parse_vendor_reports
from codesign.estimate.sources import load_layer_specs
from codesign.estimate.spec import FixedType, LayerKind, LayerSpec, Strategy

__all__ = [
    "DEFAULT_COST_MODEL",
    "CostModel",
    "DesignDoesNotFitError",
    "Estimate",
    "FixedType",
    "LayerEstimate",
    "LayerKind",
    "LayerSpec",
    "Strategy",
    "VendorReport",
    "apply_reuse_factors",
    "apply_strategy",
    "bram18_count",
    "estimate",
    "estimate_layer",
    "estimate_specs",
    "fit_reuse_factors",
    "format_comparison",
    "load_layer_specs",
    "map_product",
    "parse_vendor_reports",
    "valid_reuse_factors",
]
