"""Per-layer cost rules: multipliers, adders, storage, control and cycle counts.

The rules and the reasoning behind every constant are in the package docstring
(``codesign.estimate``). This module only implements them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from codesign.boards import DspSlice
from codesign.estimate.spec import MATMUL_KINDS, FixedType, LayerKind, LayerSpec, Strategy, resource_reuse_factor_valid

# Aspect ratios (depth, width) of one 18 Kb block RAM, the same on 7-series and
# UltraScale+. Width 36 needs simple dual-port mode, which a FIFO or ROM uses.
BRAM18_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))

# Signed multiplier input widths of one DSP slice: (wide port, narrow port).
DSP_PORT_BITS = {DspSlice.DSP48E1: (25, 18), DspSlice.DSP48E2: (27, 18)}

SRL_BITS_PER_LUT = 32      # one SRLC32E: a 32-deep, 1-bit shift register in a LUT6
LUTRAM_DEPTH = 64          # RAM64M: 64 deep, 3 bits wide in simple dual-port mode, 4 LUTs
LUTRAM_BITS_PER_GROUP = 3
LUTRAM_LUTS_PER_GROUP = 4
ROM_BITS_PER_LUT = 64      # a LUT6 is a 64 x 1 ROM

# hls4ml writes "config_array_partition -maximum_size 4096" to project.tcl.
LATENCY_UNROLL_WARNING_PRODUCTS = 4096


@dataclass(frozen=True)
class CostModel:
    """Constants of the cost model. Every value is an estimate, explained in the package docstring."""

    lut_mult_narrow_bits: int = 4
    lut_mult_max_width_sum: int = 14
    lut_per_partial_product: float = 0.5
    dsp_packing: bool = False
    fifo_srl_max_depth: int = 32
    shift_register_srl_max_depth: int = 128
    lutram_max_bits: int = 1024
    adder_ff_fraction: float = 0.5
    adder_level_ns: float = 2.5
    clock_uncertainty: float = 0.27
    lut_mult_cycles: int = 1
    dsp_mult_cycles: int = 2
    io_register_cycles: int = 2
    process_lut: int = 40
    process_ff: int = 40
    window_control_lut: int = 100
    window_control_ff: int = 128
    resource_pixel_overhead: int = 3
    padding_row_overhead: int = 2


DEFAULT_COST_MODEL = CostModel()


@dataclass
class Storage:
    """Implementation (SRL, LUTRAM, BRAM_18K) and cost of one array, FIFO or shift register."""

    impl: str
    lut: int = 0
    ff: int = 0
    bram_18k: int = 0

    def times(self, count: int) -> Storage:
        return Storage(self.impl, self.lut * count, self.ff * count, self.bram_18k * count)


@dataclass(frozen=True)
class ProductMapping:
    """Placement of one product of the dense kernel: LUTs or DSPs, and how many of each."""

    in_dsp: bool
    dsp_per_product: float
    lut_per_product: int
    reason: str


@dataclass
class LayerEstimate:
    """Estimated resources and cycles of one layer, or of one FIFO between layers.

    ``ii_cycles`` is the number of cycles between two images for this dataflow
    process. hls4ml's io_stream processes restart only after the whole image, so it
    equals ``latency_cycles``. A FIFO row has None for both.
    ``first_output_cycles`` is the delay from the first input word to the first
    output word. ``drain_cycles`` is the delay from the last input word to the
    last output word. ``dataflow_latency`` chains both into the design latency.
    """

    name: str
    kind: str
    template: str
    lut: int = 0
    ff: int = 0
    dsp: int = 0
    bram_18k: int = 0
    uram: int = 0
    latency_cycles: int | None = None
    ii_cycles: int | None = None
    reuse_factor: int | None = None
    multipliers: int = 0
    first_output_cycles: int = 0
    drain_cycles: int = 0
    notes: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)

    def resources(self) -> dict[str, int]:
        return {"lut": self.lut, "ff": self.ff, "dsp": self.dsp, "bram_18k": self.bram_18k, "uram": self.uram}


def bram18_count(depth: int, width: int) -> int:
    """Return the fewest 18 Kb block RAMs that hold depth x width bits, over all aspect ratios."""
    if depth <= 0 or width <= 0:
        return 0
    return min(
        math.ceil(depth / shape_depth) * math.ceil(width / shape_width) for shape_depth, shape_width in BRAM18_SHAPES
    )


def memory_storage(depth: int, width: int, model: CostModel) -> Storage:
    """Cost of a RAM-based buffer: LUTRAM when small, otherwise block RAM."""
    if depth * width <= model.lutram_max_bits:
        groups = math.ceil(width / LUTRAM_BITS_PER_GROUP) * math.ceil(depth / LUTRAM_DEPTH)
        return Storage("LUTRAM", lut=groups * LUTRAM_LUTS_PER_GROUP)
    return Storage("BRAM_18K", bram_18k=bram18_count(depth, width))


def srl_storage(depth: int, width: int) -> Storage:
    """Cost of a shift register in SRLC32E primitives, one chain per bit."""
    return Storage("SRL", lut=width * math.ceil(depth / SRL_BITS_PER_LUT), ff=width)


def fifo_storage(depth: int, width: int, model: CostModel) -> Storage:
    """Cost of one ``hls::stream`` FIFO of depth words of width bits, with its pointers."""
    if depth <= model.fifo_srl_max_depth:
        data = srl_storage(depth, width)
    else:
        data = memory_storage(depth, width, model)
    # Read and write pointers with their incrementers and the full/empty compare.
    address_bits = max(1, math.ceil(math.log2(depth + 1)))
    control = 2 * address_bits + 4
    return Storage(data.impl, lut=data.lut + control, ff=data.ff + control, bram_18k=data.bram_18k)


def shift_register_storage(depth: int, width: int, model: CostModel) -> Storage:
    """Cost of one ``ap_shift_reg`` of a line buffer: SRL up to a depth, RAM beyond it."""
    if depth <= model.shift_register_srl_max_depth:
        return srl_storage(depth, width)
    return memory_storage(depth, width, model)


def map_product(source: FixedType, weight: FixedType, dsp_slice: DspSlice, model: CostModel) -> ProductMapping:
    """Decide whether a product goes to LUTs or DSPs, and how many DSPs it takes."""
    narrow = min(source.width, weight.width)
    if narrow <= model.lut_mult_narrow_bits or source.width + weight.width <= model.lut_mult_max_width_sum:
        luts = math.ceil(model.lut_per_partial_product * source.width * weight.width)
        reason = f"{source.width}x{weight.width}-bit products in LUTs"
        return ProductMapping(in_dsp=False, dsp_per_product=0, lut_per_product=luts, reason=reason)

    wide_port, narrow_port = DSP_PORT_BITS[DspSlice(dsp_slice)]
    # DSP multipliers are signed, so an unsigned operand needs one more bit.
    source_bits = source.width + (0 if source.signed else 1)
    weight_bits = weight.width + (0 if weight.signed else 1)
    big, small = max(source_bits, weight_bits), min(source_bits, weight_bits)
    if big <= wide_port and small <= narrow_port:
        per_product = 1.0
    else:
        per_product = float(math.ceil((big - 1) / (wide_port - 1)) * math.ceil((small - 1) / (narrow_port - 1)))
    reason = f"{source_bits}x{weight_bits}-bit signed products in {dsp_slice}, {per_product:g} per product"

    # Two products that share the input x: (w1 << s) + w2 on the wide port, x on the narrow port.
    shift = source_bits + weight_bits
    if model.dsp_packing and per_product == 1 and source_bits <= narrow_port and shift + weight_bits <= wide_port:
        per_product = 0.5
        reason = f"two {source_bits}x{weight_bits}-bit products packed per {dsp_slice}"
    return ProductMapping(in_dsp=True, dsp_per_product=per_product, lut_per_product=0, reason=reason)


def mux_luts(inputs: int, width: int) -> int:
    """LUT6 count of an inputs:1 multiplexer of width bits: a LUT6 is a 4:1 mux per bit."""
    if inputs <= 1:
        return 0
    return width * math.ceil((inputs - 1) / 3)


def cast_luts(source: FixedType, target: FixedType, relu: bool) -> int:
    """LUTs per element for a cast with rounding and saturation, and an optional ReLU."""
    luts = 0
    if target.rounding and target.frac < source.frac:
        luts += target.width + 1
    overflows = source.integer > target.integer or (source.signed and not target.signed)
    if target.saturation and overflows:
        dropped_msbs = max(1, source.integer - target.integer + 1)
        luts += math.ceil(dropped_msbs / 6) + target.width
    elif relu:
        luts += target.width
    return luts


def adder_levels_per_cycle(clock_mhz: float, model: CostModel) -> int:
    usable_ns = 1000.0 / clock_mhz * (1.0 - model.clock_uncertainty)
    return max(1, math.floor(usable_ns / model.adder_level_ns))


def estimate_layer(
    spec: LayerSpec, dsp_slice: DspSlice, clock_mhz: float, model: CostModel = DEFAULT_COST_MODEL
) -> LayerEstimate:
    """Estimate one layer's resources and cycles."""
    if spec.kind in MATMUL_KINDS:
        return _estimate_matmul_layer(spec, dsp_slice, clock_mhz, model)
    if spec.kind is LayerKind.ACTIVATION:
        return _estimate_activation(spec, model)
    if spec.kind is LayerKind.ZERO_PADDING:
        return _estimate_padding(spec, model)
    if spec.kind in (LayerKind.MAX_POOL2D, LayerKind.AVERAGE_POOL2D):
        return _estimate_pooling(spec, model)
    raise ValueError(f"layer {spec.name!r}: no cost rule for kind {spec.kind}")


def estimate_fifo(spec: LayerSpec, model: CostModel = DEFAULT_COST_MODEL) -> LayerEstimate | None:
    """Estimate the FIFO that carries a layer's output, or return None for a top-level port."""
    if spec.output_fifo_depth is None:
        return None
    depth = spec.output_fifo_depth
    width = spec.output_shape[-1] * spec.output_type.width
    storage = fifo_storage(depth, width, model)
    name = spec.output_stream or f"{spec.name}_out"
    return LayerEstimate(
        name=name,
        kind="fifo",
        template=f"hls::stream depth={depth}",
        lut=storage.lut,
        ff=storage.ff,
        bram_18k=storage.bram_18k,
        notes=[f"{depth} x {width} bits in {storage.impl}"],
        details={"depth": depth, "width_bits": width, "bits": depth * width, "impl": storage.impl},
    )


@dataclass
class _MatmulCost:
    multipliers: int
    mapping: ProductMapping
    dsp: int
    lut: int
    ff: int
    bram_18k: int
    pipeline_depth: int
    kernel: str
    notes: list[str]
    details: dict


def _kernel_name(spec: LayerSpec) -> str:
    if spec.strategy is Strategy.LATENCY:
        return "DenseLatency"
    if spec.reuse_factor <= spec.n_in:
        return "DenseResource_rf_leq_nin"
    if spec.reuse_factor % spec.n_in == 0:
        return "DenseResource_rf_gt_nin_rem0"
    return "DenseResource_rf_gt_nin"


def _matmul_cost(spec: LayerSpec, dsp_slice: DspSlice, clock_mhz: float, model: CostModel) -> _MatmulCost:
    """Cost of the dense kernel that a dense or convolution layer instantiates once."""
    n_in, n_out, reuse = spec.n_in, spec.n_out, spec.reuse_factor
    source, weight, accum = spec.input_type, spec.weight_type, spec.accum_type
    products = n_in * n_out
    mapping = map_product(source, weight, dsp_slice, model)
    notes: list[str] = []
    weight_storage = Storage("constants")

    if spec.strategy is Strategy.LATENCY:
        # hls4ml's multiplier_limit; zero weights drop out because the weights are constants.
        multipliers = math.ceil(products / reuse) - spec.n_zeros // reuse
        adders = products - spec.n_zeros
        accumulator_ff = 0
        if reuse > 1:
            rom_luts = multipliers * weight.width * math.ceil(reuse / ROM_BITS_PER_LUT)
            weight_storage = Storage("LUT ROM", lut=rom_luts)
    else:
        multipliers = math.ceil(products / reuse)
        adders = multipliers
        accumulator_ff = n_out * accum.width
        if reuse > 1 and spec.kind is not LayerKind.POINTWISE_CONV2D:
            # ROM_nP_BRAM reshaped by block_factor: reuse words of (multipliers x weight width) bits.
            weight_storage = Storage("BRAM_18K", bram_18k=bram18_count(reuse, multipliers * weight.width))
        elif reuse > 1:
            # pointwise_conv_2d_cl partitions its weights completely, which overrides the BRAM ROM.
            rom_luts = multipliers * weight.width * math.ceil(reuse / ROM_BITS_PER_LUT)
            weight_storage = Storage("LUT ROM", lut=rom_luts)

    multipliers = max(multipliers, 0)
    mux = multipliers * mux_luts(min(reuse, n_in), source.width)
    if mapping.in_dsp:
        dsp = math.ceil(multipliers * mapping.dsp_per_product)
        mult_luts, mult_ff = 0, 0
        mult_cycles = model.dsp_mult_cycles
    else:
        dsp = 0
        mult_luts = multipliers * mapping.lut_per_product
        mult_ff = multipliers * (source.width + weight.width)
        mult_cycles = model.lut_mult_cycles
    adder_luts = adders * accum.width
    adder_ff = math.ceil(adders * accum.width * model.adder_ff_fraction)
    cast = n_out * cast_luts(accum, spec.output_type, relu=False)

    if spec.strategy is Strategy.LATENCY:
        levels = math.ceil(math.log2(n_in + 1))
        tree_cycles = math.ceil(levels / adder_levels_per_cycle(clock_mhz, model))
    else:
        tree_cycles = 1
    depth = model.io_register_cycles + mult_cycles + tree_cycles

    notes.append(f"{multipliers} multipliers: {mapping.reason}")
    if spec.strategy is Strategy.LATENCY and products > LATENCY_UNROLL_WARNING_PRODUCTS:
        # NOTE: a judgment, not a tested limit: DenseLatency unrolls every product and partitions
        # mult[n_in * n_out] completely, past the MaximumSize 4096 that hls4ml writes to project.tcl.
        notes.append(f"NOTE: {products} products exceed {LATENCY_UNROLL_WARNING_PRODUCTS}; "
                     "Vitis HLS may fail to schedule the Latency kernel, consider the Resource strategy")
    if weight_storage.impl != "constants":
        notes.append(f"weights in {weight_storage.impl}")
    if spec.strategy is Strategy.RESOURCE and not resource_reuse_factor_valid(n_in, n_out, reuse):
        notes.append(f"NOTE: hls4ml rejects R={reuse} for the Resource strategy and uses the closest valid value")
    details = {
        "n_in": n_in,
        "n_out": n_out,
        "products": products,
        "n_zeros": spec.n_zeros,
        "dsp_multipliers": multipliers if mapping.in_dsp else 0,
        "lut_multipliers": 0 if mapping.in_dsp else multipliers,
        "multiplier_luts": mult_luts,
        "adders": adders,
        "adder_luts": adder_luts,
        "mux_luts": mux,
        "weight_storage": weight_storage.impl,
        "weight_luts": weight_storage.lut,
        "weight_bram_18k": weight_storage.bram_18k,
        "cast_luts": cast,
        "pipeline_depth": depth,
    }
    return _MatmulCost(
        multipliers=multipliers,
        mapping=mapping,
        dsp=dsp,
        lut=mult_luts + adder_luts + mux + weight_storage.lut + cast,
        ff=mult_ff + adder_ff + accumulator_ff,
        bram_18k=weight_storage.bram_18k,
        pipeline_depth=depth,
        kernel=_kernel_name(spec),
        notes=notes,
        details=details,
    )


def _estimate_matmul_layer(spec: LayerSpec, dsp_slice: DspSlice, clock_mhz: float, model: CostModel) -> LayerEstimate:
    cost = _matmul_cost(spec, dsp_slice, clock_mhz, model)
    reuse = spec.reuse_factor
    depth = cost.pipeline_depth
    lut = cost.lut + model.process_lut
    ff = cost.ff + model.process_ff
    bram = cost.bram_18k
    notes = list(cost.notes)
    details = dict(cost.details)

    if spec.kind is LayerKind.DENSE:
        template = f"nnet::dense + {cost.kernel}"
        compute = reuse + depth if spec.strategy is Strategy.LATENCY else reuse + depth + model.resource_pixel_overhead
        cycles = 1 + compute + 1
        return LayerEstimate(
            name=spec.name, kind=spec.kind.value, template=template, lut=lut, ff=ff, dsp=cost.dsp, bram_18k=bram,
            latency_cycles=cycles, ii_cycles=cycles, reuse_factor=reuse, multipliers=cost.multipliers,
            first_output_cycles=cycles, drain_cycles=compute + 1, notes=notes, details=details,
        )

    kernel_height, kernel_width = spec.kernel
    in_width = spec.input_shape[1]
    channels = spec.input_shape[-1]
    if spec.kind is LayerKind.CONV2D:
        buffer_name = "conv_2d_buffer_latency_cl" if spec.strategy is Strategy.LATENCY else "conv_2d_buffer_resource_cl"
        template = f"nnet::conv_2d_cl ({buffer_name}) + {cost.kernel}"
        lines = max(kernel_height - 1, 0)
        line_storage = shift_register_storage(in_width, spec.input_type.width, model).times(lines * channels)
        line_bits = lines * in_width * channels * spec.input_type.width
        window_ff = kernel_height * kernel_width * channels * spec.input_type.width
        lut += line_storage.lut + model.window_control_lut
        ff += line_storage.ff + window_ff + model.window_control_ff
        bram += line_storage.bram_18k
        depth += 1
        if lines:
            notes.append(
                f"line buffer {lines} x {in_width} x {channels} x {spec.input_type.width} = {line_bits} bits "
                f"in {line_storage.impl}"
            )
        details.update({"line_buffer_bits": line_bits, "line_buffer_impl": line_storage.impl if lines else None,
                        "line_buffer_lut": line_storage.lut, "line_buffer_bram_18k": line_storage.bram_18k,
                        "window_ff": window_ff})
        warmup_words = lines * in_width + kernel_width
    else:
        template = f"nnet::pointwise_conv_2d_cl + {cost.kernel}"
        warmup_words = 1

    if spec.strategy is Strategy.LATENCY:
        # The pixel loop is pipelined at II = reuse factor.
        cycles = spec.pixels_in * reuse + depth
        first_output = warmup_words * reuse + depth
        details["pixel_ii"] = reuse
    else:
        # conv_2d_buffer_resource_cl has no PIPELINE pragma: each pixel is one call of the
        # window logic, and each output pixel runs the reuse loop of the dense kernel.
        per_output = reuse + depth
        cycles = spec.pixels_in * model.resource_pixel_overhead + spec.pixels_out * per_output
        first_output = warmup_words * model.resource_pixel_overhead + per_output
        details["pixel_ii"] = None
        notes.append(f"Resource strategy: outer pixel loop not pipelined, {per_output} cycles per output pixel")
    return LayerEstimate(
        name=spec.name, kind=spec.kind.value, template=template, lut=lut, ff=ff, dsp=cost.dsp, bram_18k=bram,
        latency_cycles=cycles, ii_cycles=cycles, reuse_factor=reuse, multipliers=cost.multipliers,
        first_output_cycles=first_output, drain_cycles=depth, notes=notes, details=details,
    )


def _estimate_activation(spec: LayerSpec, model: CostModel) -> LayerEstimate:
    channels = spec.output_shape[-1]
    relu = spec.activation == "relu"
    per_element = cast_luts(spec.input_type, spec.output_type, relu)
    depth = model.io_register_cycles
    cycles = spec.pixels_in + depth
    function = "nnet::relu" if relu else "nnet::linear"
    note = f"{per_element} LUTs per value: {spec.input_type} to {spec.output_type}"
    return LayerEstimate(
        name=spec.name, kind=spec.kind.value, template=function,
        lut=channels * per_element + model.process_lut,
        ff=channels * spec.output_type.width + model.process_ff,
        latency_cycles=cycles, ii_cycles=cycles, first_output_cycles=depth, drain_cycles=depth,
        notes=[note], details={"luts_per_value": per_element},
    )


def _estimate_padding(spec: LayerSpec, model: CostModel) -> LayerEstimate:
    top, bottom, left, right = spec.padding
    in_height = spec.input_shape[0]
    out_width = spec.output_shape[1]
    channels = spec.output_shape[-1]
    bits = channels * spec.output_type.width
    # zeropad2d_cl has no PIPELINE pragma: three inner loops per row, one word per cycle each.
    cycles = spec.pixels_out + in_height * model.padding_row_overhead
    return LayerEstimate(
        name=spec.name, kind=spec.kind.value, template="nnet::zeropad2d_cl",
        lut=bits + model.process_lut, ff=bits + model.process_ff,
        latency_cycles=cycles, ii_cycles=cycles,
        first_output_cycles=top * out_width + left + 1, drain_cycles=right + bottom * out_width + 1,
        notes=[f"{spec.pixels_out} words out, {model.padding_row_overhead} cycles loop overhead per row"],
    )


def _estimate_pooling(spec: LayerSpec, model: CostModel) -> LayerEstimate:
    pool_height, pool_width = spec.kernel
    in_width = spec.input_shape[1]
    channels = spec.input_shape[-1]
    width = spec.input_type.width
    window = pool_height * pool_width

    lines = max(pool_height - 1, 0)
    line_storage = shift_register_storage(in_width, width, model).times(lines * channels)
    line_bits = lines * in_width * channels * width

    operations = (window - 1) * channels
    if spec.kind is LayerKind.MAX_POOL2D:
        # One max: a carry-chain comparator (1 LUT per bit) and a 2:1 select (1 LUT per bit).
        compute_luts = operations * 2 * width
        operation = "comparators"
    else:
        compute_luts = operations * (width + math.ceil(math.log2(window)))
        operation = "adders"

    depth = model.io_register_cycles
    cycles = spec.pixels_in + depth
    notes = [f"{operations} {operation}"]
    if lines:
        notes.append(
            f"line buffer {lines} x {in_width} x {channels} x {width} = {line_bits} bits in {line_storage.impl}"
        )
    return LayerEstimate(
        name=spec.name, kind=spec.kind.value, template="nnet::pooling2d_cl (line buffer)",
        lut=compute_luts + line_storage.lut + model.window_control_lut + model.process_lut,
        ff=line_storage.ff + window * channels * width + channels * spec.output_type.width
        + model.window_control_ff + model.process_ff,
        bram_18k=line_storage.bram_18k,
        latency_cycles=cycles, ii_cycles=cycles,
        first_output_cycles=lines * in_width + pool_width + depth, drain_cycles=depth,
        notes=notes,
        details={"operations": operations, "line_buffer_bits": line_bits,
                 "line_buffer_impl": line_storage.impl if lines else None, "pixel_ii": 1},
    )
