"""Tests for the analytical resource and performance estimate in codesign.estimate.

Most tests build ``LayerSpec`` values by hand, so every pinned count follows from
the rules in the package docstring. The last group runs the estimate on a tiny
detector lowered by hls4ml and on the project folder written from it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml

import codesign.estimate as estimate_package
from codesign.boards import DspSlice, load_board
from codesign.errors import InputError
from codesign.estimate import (
    CostModel,
    DesignDoesNotFitError,
    FixedType,
    LayerKind,
    LayerSpec,
    Strategy,
    bram18_count,
    estimate,
    estimate_layer,
    estimate_specs,
    fit_reuse_factors,
    format_comparison,
    map_product,
    parse_vendor_reports,
    valid_reuse_factors,
)
from codesign.estimate.costs import fifo_storage

WIDE_ACCUM = FixedType(32, 12)


def dense_spec(
    weight_bits: int, input_bits: int = 16, reuse: int = 1, strategy: Strategy = Strategy.LATENCY
) -> LayerSpec:
    """A 16 x 8 dense layer whose output type equals its accumulator, so the cast is free."""
    return LayerSpec(
        name="dense",
        kind=LayerKind.DENSE,
        input_shape=(16,),
        output_shape=(8,),
        input_type=FixedType(input_bits, 6),
        output_type=WIDE_ACCUM,
        weight_type=FixedType(weight_bits, 1),
        accum_type=WIDE_ACCUM,
        reuse_factor=reuse,
        strategy=strategy,
    )


def conv_spec(in_width: int = 12, reuse: int = 1, strategy: Strategy = Strategy.LATENCY) -> LayerSpec:
    """A 3x3 convolution over a padded 10 x in_width x 4 input of 8-bit unsigned values."""
    accum = FixedType(20, 8)
    return LayerSpec(
        name="conv",
        kind=LayerKind.CONV2D,
        input_shape=(10, in_width, 4),
        output_shape=(8, in_width - 2, 8),
        input_type=FixedType(8, 0, signed=False),
        output_type=accum,
        weight_type=FixedType(6, 0),
        accum_type=accum,
        kernel=(3, 3),
        reuse_factor=reuse,
        strategy=strategy,
    )


def pool_spec() -> LayerSpec:
    unsigned6 = FixedType(6, 0, signed=False)
    return LayerSpec(
        name="pool",
        kind=LayerKind.MAX_POOL2D,
        input_shape=(8, 10, 8),
        output_shape=(4, 5, 8),
        input_type=unsigned6,
        output_type=unsigned6,
        kernel=(2, 2),
        stride=(2, 2),
    )


def cost(spec: LayerSpec, dsp_slice: DspSlice = DspSlice.DSP48E1, model: CostModel = CostModel()):
    return estimate_layer(spec, dsp_slice, 100.0, model)


# Dense kernel: multipliers and their DSP / LUT mapping


@pytest.mark.parametrize("reuse, multipliers", [(1, 128), (4, 32)])
def test_dense_multiplier_count(reuse, multipliers):
    row = cost(dense_spec(weight_bits=8, reuse=reuse))

    assert row.multipliers == multipliers
    assert row.reuse_factor == reuse


@pytest.mark.parametrize("dsp_slice", [DspSlice.DSP48E1, DspSlice.DSP48E2])
@pytest.mark.parametrize("reuse, multipliers", [(1, 128), (4, 32)])
def test_dense_8bit_weights_use_dsps(dsp_slice, reuse, multipliers):
    row = cost(dense_spec(weight_bits=8, reuse=reuse), dsp_slice)

    assert row.dsp == multipliers
    assert row.details["dsp_multipliers"] == multipliers
    assert row.details["lut_multipliers"] == 0
    assert row.details["multiplier_luts"] == 0


@pytest.mark.parametrize("dsp_slice", [DspSlice.DSP48E1, DspSlice.DSP48E2])
@pytest.mark.parametrize("reuse, multipliers", [(1, 128), (4, 32)])
def test_dense_3bit_weights_use_luts(dsp_slice, reuse, multipliers):
    row = cost(dense_spec(weight_bits=3, reuse=reuse), dsp_slice)

    assert row.dsp == 0
    assert row.details["lut_multipliers"] == multipliers
    # ceil(0.5 x 16 x 3) = 24 LUTs per product.
    assert row.details["multiplier_luts"] == multipliers * 24


def test_dense_lut_and_ff_totals():
    row = cost(dense_spec(weight_bits=3))

    # 128 products x 24 LUTs + 128 adders x 32 bits + 40 process LUTs.
    assert row.lut == 128 * 24 + 128 * 32 + 40
    # Product registers (16 + 3 bits), half the adder outputs, 40 process FFs.
    assert row.ff == 128 * 19 + 128 * 32 // 2 + 40


def test_dense_wide_product_needs_two_dsp48e1():
    spec = dense_spec(weight_bits=8, input_bits=26)

    assert cost(spec, DspSlice.DSP48E1).dsp == 256
    assert cost(spec, DspSlice.DSP48E2).dsp == 128


def test_dense_packing_fits_dsp48e2_only():
    packing = CostModel(dsp_packing=True)
    spec = dense_spec(weight_bits=8, input_bits=10)

    # 10 + 8 bits for the low product, then 8 weight bits: 26 fits 27 but not 25.
    assert cost(spec, DspSlice.DSP48E2, packing).dsp == 64
    assert cost(spec, DspSlice.DSP48E1, packing).dsp == 128
    assert cost(spec, DspSlice.DSP48E2).dsp == 128


def test_unsigned_operand_takes_extra_dsp_bit():
    unsigned = FixedType(25, 0, signed=False)
    signed = FixedType(25, 1)
    weight = FixedType(8, 1)

    assert map_product(signed, weight, DspSlice.DSP48E1, CostModel()).dsp_per_product == 1
    assert map_product(unsigned, weight, DspSlice.DSP48E1, CostModel()).dsp_per_product == 2
    assert map_product(unsigned, weight, DspSlice.DSP48E2, CostModel()).dsp_per_product == 1


@pytest.mark.parametrize(
    "input_bits, weight_bits, in_dsp",
    [(8, 6, False), (7, 7, False), (8, 8, True), (16, 4, False), (16, 5, True)],
)
def test_lut_dsp_threshold(input_bits, weight_bits, in_dsp):
    mapping = map_product(FixedType(input_bits, 1), FixedType(weight_bits, 1), DspSlice.DSP48E2, CostModel())

    assert mapping.in_dsp is in_dsp


def test_dense_zero_weights_drop_multipliers():
    spec = dataclasses.replace(dense_spec(weight_bits=8, reuse=4), n_zeros=10)

    # hls4ml's multiplier_limit: ceil(128 / 4) - floor(10 / 4).
    assert cost(spec).multipliers == 30


def test_dense_cycles_grow_with_reuse():
    fast = cost(dense_spec(weight_bits=8, reuse=1))
    slow = cost(dense_spec(weight_bits=8, reuse=4))

    assert slow.ii_cycles - fast.ii_cycles == 3
    assert fast.ii_cycles == fast.latency_cycles


# Convolution: line buffers, cycles, Resource strategy weights


def test_conv_line_buffer_in_srl():
    row = cost(conv_spec(in_width=12))

    # 2 lines x W 12 x C 4 x 8 bits.
    assert row.details["line_buffer_bits"] == 2 * 12 * 4 * 8
    assert row.details["line_buffer_impl"] == "SRL"
    # 8 shift registers of 8 bits, each ceil(12 / 32) = 1 SRLC32E per bit.
    assert row.details["line_buffer_lut"] == 8 * 8
    assert row.details["line_buffer_bram_18k"] == 0
    assert row.bram_18k == 0


def test_conv_long_line_buffer_in_bram():
    row = cost(conv_spec(in_width=200))

    assert row.details["line_buffer_bits"] == 2 * 200 * 4 * 8
    assert row.details["line_buffer_impl"] == "BRAM_18K"
    # Each of the 8 shift registers (200 x 8 = 1600 bits) takes one block.
    assert row.details["line_buffer_bram_18k"] == 8
    assert row.bram_18k == 8


def test_conv_multipliers_per_output_pixel():
    row = cost(conv_spec())

    # n_in = 3 x 3 x 4, n_out = 8.
    assert row.details["n_in"] == 36
    assert row.multipliers == 36 * 8


def test_conv_pixel_loop_ii_is_reuse_factor():
    fast = cost(conv_spec(reuse=1))
    slow = cost(conv_spec(reuse=2))

    # 10 x 12 padded input pixels, one per R cycles.
    assert slow.ii_cycles - fast.ii_cycles == 120
    assert fast.details["pixel_ii"] == 1
    assert slow.details["pixel_ii"] == 2


def test_conv_resource_strategy_weights_in_bram():
    spec = conv_spec(reuse=9, strategy=Strategy.RESOURCE)
    row = cost(spec)

    # block_factor = 288 / 9 = 32 multipliers; 9 words of 32 x 6 = 192 bits,
    # which take ceil(192 / 36) = 6 blocks in the 512 x 36 shape.
    assert 9 in valid_reuse_factors(36, 8, Strategy.RESOURCE)
    assert row.multipliers == 32
    assert row.details["weight_bram_18k"] == bram18_count(9, 192) == 6
    assert row.template.startswith("nnet::conv_2d_cl (conv_2d_buffer_resource_cl)")


def test_conv_resource_strategy_notes_invalid_reuse():
    valid = cost(conv_spec(reuse=9, strategy=Strategy.RESOURCE))
    invalid = cost(conv_spec(reuse=8, strategy=Strategy.RESOURCE))

    assert not any("rejects" in note for note in valid.notes)
    assert any("hls4ml rejects R=8" in note for note in invalid.notes)


def test_conv_resource_strategy_is_slower():
    latency = cost(conv_spec(reuse=9))
    resource = cost(conv_spec(reuse=9, strategy=Strategy.RESOURCE))

    assert resource.ii_cycles > latency.ii_cycles


# Pooling and storage rules


def test_max_pool_counts():
    row = cost(pool_spec())

    assert row.details["line_buffer_bits"] == 1 * 10 * 8 * 6
    assert row.details["operations"] == 3 * 8
    assert row.dsp == 0
    assert row.bram_18k == 0
    # One pixel per cycle over 8 x 10 input pixels, plus 2 register stages.
    assert row.ii_cycles == 82


@pytest.mark.parametrize(
    "depth, width, blocks",
    [(1024, 18, 1), (1025, 18, 2), (2048, 9, 1), (512, 36, 1), (512, 37, 2), (9216, 136, 72), (0, 8, 0)],
)
def test_bram18_aspect_ratios(depth, width, blocks):
    assert bram18_count(depth, width) == blocks


def test_fifo_storage_by_size():
    model = CostModel()

    small = fifo_storage(16, 8, model)
    medium = fifo_storage(64, 8, model)
    large = fifo_storage(9216, 136, model)

    assert small.impl == "SRL"
    assert small.bram_18k == 0
    assert medium.impl == "LUTRAM"
    assert medium.bram_18k == 0
    assert large.impl == "BRAM_18K"
    assert large.bram_18k == 72


# Whole design


def three_layer_design() -> list[LayerSpec]:
    relu = LayerSpec(
        name="relu",
        kind=LayerKind.ACTIVATION,
        activation="relu",
        input_shape=(10, 12, 4),
        output_shape=(10, 12, 4),
        input_type=FixedType(8, 0, signed=False),
        output_type=FixedType(8, 0, signed=False),
        output_stream="relu_out",
        output_fifo_depth=120,
    )
    conv = dataclasses.replace(conv_spec(), output_stream="conv_out", output_fifo_depth=80)
    pool = dataclasses.replace(
        pool_spec(), input_type=FixedType(20, 8), output_type=FixedType(20, 8)
    )
    return [relu, conv, pool]


def test_design_totals_and_ii():
    board = load_board("pynq-z2")
    result = estimate_specs(three_layer_design(), board)

    names = [row.name for row in result.layers]
    assert names == ["relu", "relu_out", "conv", "conv_out", "pool"]
    for key in ("lut", "ff", "dsp", "bram_18k", "uram"):
        assert result.totals[key] == sum(getattr(row, key) for row in result.layers)
    assert result.ii_cycles == max(row.ii_cycles for row in result.layers if row.ii_cycles)
    assert result.bottleneck == "conv"
    assert result.fps == pytest.approx(100e6 / result.ii_cycles)
    assert result.latency_cycles >= result.ii_cycles


def test_design_table_and_dict():
    result = estimate_specs(three_layer_design(), load_board("zcu102"))

    table = result.format_table()
    data = json.loads(json.dumps(result.to_dict()))

    for name in ("relu", "relu_out", "conv", "conv_out", "pool", "**total**", "**% used**"):
        assert f"| {name} |" in table
    assert "fps at 200 MHz on zcu102" in table
    assert data["ii_cycles"] == result.ii_cycles
    assert len(data["layers"]) == 5


def test_reuse_factor_override_rejects_unknown_layer():
    with pytest.raises(InputError, match="relu"):
        estimate(three_layer_design(), "pynq-z2", reuse_factors={"relu": 2})
    with pytest.raises(InputError, match="positive integer"):
        estimate(three_layer_design(), "pynq-z2", reuse_factors={"conv": 0})


def test_docstring_lists_every_constant():
    docstring = estimate_package.__doc__
    for field in dataclasses.fields(CostModel):
        assert f"{field.name} = {field.default}" in docstring, field.name


# Reuse factor fitting


def test_valid_reuse_factors_match_hls4ml():
    from hls4ml.backends import get_backend

    backend = get_backend("Vitis")
    for n_in, n_out in [(16, 8), (72, 16), (27, 8), (64, 15)]:
        assert valid_reuse_factors(n_in, n_out, Strategy.RESOURCE) == backend.get_valid_reuse_factors(n_in, n_out)
    assert valid_reuse_factors(16, 8, Strategy.LATENCY) == [1, 2, 4, 8, 16, 32, 64, 128]


def write_board(tmp_path: Path, lut: int, bram_18k: int = 20) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "name": "tiny",
        "description": "Test board with a few thousand LUTs",
        "part": "xc7z020clg400-1",
        "family": "zynq7000",
        "dsp_slice": "DSP48E1",
        "resources": {"lut": lut, "ff": 100000, "dsp": 10, "bram_18k": bram_18k, "uram": 0},
        "clock_mhz": 100,
        "host_link": {"kind": "axi-hp", "bandwidth_mb_s": 600},
        "shell": "zynq-ps",
    }))
    return path


def test_fit_picks_fastest_fitting_reuse_factor(tmp_path):
    board = load_board(str(write_board(tmp_path, lut=5000)))
    design = [dense_spec(weight_bits=3, strategy=Strategy.RESOURCE)]
    assert not estimate_specs(design, board).fits(0.8)

    chosen = fit_reuse_factors(design, board, margin=0.8)

    reuse = chosen["dense"]
    assert reuse > 1
    assert estimate(design, board, reuse_factors=chosen).fits(0.8)
    for faster in valid_reuse_factors(16, 8, Strategy.RESOURCE):
        if faster < reuse:
            assert not estimate(design, board, reuse_factors={"dense": faster}).fits(0.8), faster


def test_fit_keeps_reuse_one_on_large_board():
    design = three_layer_design()

    assert fit_reuse_factors(design, "zcu102") == {"conv": 1}


def test_fit_rejects_too_few_luts(tmp_path):
    board = load_board(str(write_board(tmp_path, lut=100)))

    with pytest.raises(DesignDoesNotFitError, match="LUT") as caught:
        fit_reuse_factors([dense_spec(weight_bits=3, strategy=Strategy.RESOURCE)], board)

    assert isinstance(caught.value, InputError)
    assert caught.value.resource == "LUT"
    assert "tiny" in str(caught.value)


def test_fit_rejects_fifo_blocks(tmp_path):
    board = load_board(str(write_board(tmp_path, lut=50000, bram_18k=20)))
    design = three_layer_design()
    # 9216 words of 17 x 8 bits take 72 blocks.
    design[0] = dataclasses.replace(
        design[0], input_shape=(10, 12, 17), output_shape=(10, 12, 17), output_fifo_depth=9216
    )

    with pytest.raises(DesignDoesNotFitError, match="FIFO") as caught:
        fit_reuse_factors(design, board)

    assert caught.value.resource == "BRAM_18K"


# Vendor reports

CSYNTH_XML = """<?xml version="1.0" encoding="UTF-8"?>
<profile>
  <ReportVersion><Version>2023.2</Version></ReportVersion>
  <UserAssignments>
    <unit>ns</unit>
    <Part>xc7z020-clg400-1</Part>
    <TopModelName>myproject</TopModelName>
    <TargetClockPeriod>10.00</TargetClockPeriod>
  </UserAssignments>
  <PerformanceEstimates>
    <PipelineType>dataflow</PipelineType>
    <SummaryOfTimingAnalysis><unit>ns</unit><EstimatedClockPeriod>7.268</EstimatedClockPeriod></SummaryOfTimingAnalysis>
    <SummaryOfOverallLatency>
      <unit>clock cycles</unit>
      <Best-caseLatency>10012</Best-caseLatency>
      <Average-caseLatency>10012</Average-caseLatency>
      <Worst-caseLatency>10020</Worst-caseLatency>
      <Interval-min>9800</Interval-min>
      <Interval-max>9805</Interval-max>
    </SummaryOfOverallLatency>
  </PerformanceEstimates>
  <AreaEstimates>
    <Resources>
      <BRAM_18K>120</BRAM_18K>
      <DSP>4</DSP>
      <FF>30000</FF>
      <LUT>45000</LUT>
      <URAM>0</URAM>
    </Resources>
    <AvailableResources>
      <BRAM_18K>280</BRAM_18K>
      <DSP>220</DSP>
      <FF>106400</FF>
      <LUT>53200</LUT>
      <URAM>0</URAM>
    </AvailableResources>
  </AreaEstimates>
</profile>
"""

UTILIZATION_RPT = """Copyright 1986-2022 Xilinx, Inc. All Rights Reserved.
| Tool Version : Vivado v.2023.2
| Design       : myproject
| Device       : 7z020clg400-1

1. Slice Logic
--------------

+----------------------------+-------+-------+------------+-----------+-------+
|          Site Type         |  Used | Fixed | Prohibited | Available | Util% |
+----------------------------+-------+-------+------------+-----------+-------+
| Slice LUTs*                | 41234 |     0 |          0 |     53200 | 77.51 |
|   LUT as Logic             | 40000 |     0 |          0 |     53200 | 75.19 |
|   LUT as Memory            |  1234 |     0 |          0 |     17400 |  7.09 |
| Slice Registers            | 28000 |     0 |          0 |    106400 | 26.32 |
+----------------------------+-------+-------+------------+-----------+-------+

2. Memory
---------

+-------------------+------+-------+------------+-----------+-------+
|     Site Type     | Used | Fixed | Prohibited | Available | Util% |
+-------------------+------+-------+------------+-----------+-------+
| Block RAM Tile    | 60.5 |     0 |          0 |       140 | 43.21 |
|   RAMB36/FIFO*    |   60 |     0 |          0 |       140 | 42.86 |
|   RAMB18          |    1 |     0 |          0 |       280 |  0.36 |
+-------------------+------+-------+------------+-----------+-------+

3. DSP
------

+----------------+------+-------+------------+-----------+-------+
|    Site Type   | Used | Fixed | Prohibited | Available | Util% |
+----------------+------+-------+------------+-----------+-------+
| DSPs           |    3 |     0 |          0 |       220 |  1.36 |
+----------------+------+-------+------------+-----------+-------+
"""


@pytest.fixture
def reported_project(tmp_path) -> Path:
    root = tmp_path / "project"
    report_dir = root / "hls" / "myproject_prj" / "solution1" / "syn" / "report"
    report_dir.mkdir(parents=True)
    (report_dir / "csynth.xml").write_text(CSYNTH_XML)
    (report_dir / "myproject_csynth.xml").write_text(CSYNTH_XML)
    # A per-module report, which must not be read as the design's total.
    (report_dir / "conv_2d_cl_csynth.xml").write_text(CSYNTH_XML.replace("45000", "999"))
    (root / "hls" / "vivado_synth.rpt").write_text(UTILIZATION_RPT)
    return root


def test_parse_csynth_and_utilization(reported_project):
    reports = parse_vendor_reports(reported_project)

    assert [report.tool for report in reports] == ["Vitis HLS csynth", "Vivado utilization"]
    csynth, vivado = reports
    assert csynth.resources() == {"lut": 45000, "ff": 30000, "dsp": 4, "bram_18k": 120, "uram": 0}
    assert csynth.available["lut"] == 53200
    assert (csynth.latency_best, csynth.latency_worst) == (10012, 10020)
    assert (csynth.interval_min, csynth.interval_max) == (9800, 9805)
    assert csynth.estimated_clock_ns == pytest.approx(7.268)
    # 60.5 block RAM tiles of 36 Kb are 121 BRAM_18K.
    assert vivado.resources() == {"lut": 41234, "ff": 28000, "dsp": 3, "bram_18k": 121, "uram": None}
    assert vivado.available["bram_18k"] == 280


def test_comparison_table(reported_project):
    result = estimate_specs(three_layer_design(), load_board("pynq-z2"))
    reports = parse_vendor_reports(reported_project)

    table = format_comparison(result, reports, reported_project)

    lut_row = next(line for line in table.splitlines() if line.startswith("| LUT |"))
    assert f"{result.totals['lut']:,}" in lut_row
    assert "45,000" in lut_row
    assert "41,234" in lut_row
    assert f"{result.totals['lut'] / 45000:.2f}" in lut_row
    assert "hls/vivado_synth.rpt" in table
    assert "| II (cycles) |" in table


def test_parse_reports_none_found(tmp_path):
    assert parse_vendor_reports(tmp_path) == []
    assert "No vendor reports" in format_comparison(estimate_specs([pool_spec()], load_board("pynq-z2")), [])


def test_parse_reports_rejects_malformed_xml(tmp_path):
    report_dir = tmp_path / "syn" / "report"
    report_dir.mkdir(parents=True)
    (report_dir / "csynth.xml").write_text("<profile><AreaEstimates>")

    with pytest.raises(InputError, match="csynth.xml"):
        parse_vendor_reports(tmp_path)


# A tiny detector through hls4ml, and the project folder written from it


@pytest.fixture(scope="module")
def tiny_lowered(tmp_path_factory):
    import torch

    from codesign.export import export
    from codesign.lower import lower
    from codesign.quantize import QuantizedModel
    from quantize.detector import DetectorConfig, TinyYolo

    torch.manual_seed(5)
    config = DetectorConfig(image_size=16, channels=(4,), final_channels=4)
    module = TinyYolo(config)
    module.train()
    with torch.no_grad():
        module(torch.rand(4, 3, 16, 16))
    module.eval()
    root = tmp_path_factory.mktemp("tiny")
    qonnx = export(QuantizedModel(module=module, config=config, source="random"), root)
    lowered = lower(qonnx, load_board("pynq-z2"), root / "hls")
    return lowered, qonnx, root


def test_hls_model_layers(tiny_lowered):
    lowered, _, _ = tiny_lowered
    result = estimate(lowered.hls_model, "pynq-z2")

    kinds = [row.kind for row in result.layers if row.kind != "fifo"]
    assert kinds == ["activation", "zero_padding2d", "conv2d", "activation", "max_pool2d", "zero_padding2d",
                     "conv2d", "activation", "pointwise_conv2d"]
    for layer in lowered.hls_model.get_layers():
        if "weight" not in layer.weights:
            continue
        weight = layer.weights["weight"]
        assert result.layer(layer.name).multipliers == weight.data.size - weight.nzeros
    assert json.loads(json.dumps(result.to_dict()))["board"] == "pynq-z2"


def test_hls_model_fifo_depths(tiny_lowered):
    lowered, _, _ = tiny_lowered
    result = estimate(lowered, "pynq-z2")

    fifos = {row.name: row.details["depth"] for row in result.layers if row.kind == "fifo"}
    # Every layer except the input and the last one writes into a FIFO. Those two write to ports.
    inner_layers = list(lowered.hls_model.get_layers())[1:-1]
    expected = {
        layer.get_output_variable().name: layer.get_output_variable().pragma[1] for layer in inner_layers
    }
    assert fifos == expected
    # The first convolution reads the padded 18 x 18 image, one pixel per cycle.
    assert result.layer("Conv2D_Conv_0").ii_cycles >= 18 * 18


@pytest.fixture(scope="module")
def tiny_project(tiny_lowered):
    from codesign.project import write_project

    lowered, qonnx, root = tiny_lowered
    board = load_board("pynq-z2")
    write_project(lowered, qonnx, board, root, "random", None, None, None)
    return root


def test_project_folder_matches_hls_model(tiny_lowered, tiny_project):
    lowered, _, _ = tiny_lowered

    from_graph = estimate(lowered.hls_model, "zcu102")
    from_folder = estimate(tiny_project, "zcu102")

    assert [dataclasses.asdict(row) for row in from_folder.layers] == [
        dataclasses.asdict(row) for row in from_graph.layers
    ]


def test_project_folder_reads_firmware_edits(tiny_project, tmp_path):
    import shutil

    copy = tmp_path / "project"
    shutil.copytree(tiny_project, copy)
    parameters = copy / "hls" / "firmware" / "parameters.h"
    text = parameters.read_text()
    block_start = text.index("// Conv2D_Conv_1\n")
    head, block = text[:block_start], text[block_start:]
    parameters.write_text(head + block.replace("reuse_factor = 1;", "reuse_factor = 4;"))
    top = copy / "hls" / "firmware" / "myproject.cpp"
    first_depth = re.search(r"#pragma HLS STREAM variable=(\w+) depth=\d+", top.read_text())
    stream = first_depth.group(1)
    top.write_text(top.read_text().replace(first_depth.group(0), f"#pragma HLS STREAM variable={stream} depth=7"))

    result = estimate(copy, "pynq-z2")

    assert result.layer("Conv2D_Conv_1").reuse_factor == 4
    assert result.layer("Conv2D_Conv_0").reuse_factor == 1
    assert result.layer(stream).details["depth"] == 7


def test_fit_on_hls_model(tiny_lowered):
    lowered, _, _ = tiny_lowered

    chosen = fit_reuse_factors(lowered.hls_model, "pynq-z2")

    with_weights = {layer.name for layer in lowered.hls_model.get_layers() if "weight" in layer.weights}
    assert set(chosen) == with_weights
    assert estimate(lowered.hls_model, "pynq-z2", reuse_factors=chosen).fits(0.8)


def test_estimate_rejects_missing_source(tmp_path):
    with pytest.raises(InputError, match="not found"):
        estimate(tmp_path / "missing", "pynq-z2")
    with pytest.raises(InputError, match="codesign.json"):
        estimate(tmp_path, "pynq-z2")
