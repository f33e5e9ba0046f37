"""Tests for the board catalogue in codesign.boards."""

from pathlib import Path

import pytest
import yaml

from codesign.boards import (
    BOARDS_DIR,
    Board,
    DspSlice,
    Family,
    Shell,
    list_boards,
    load_board,
)
from codesign.errors import InputError

REQUIRED_BOARDS = {
    "pynq-z2": "xc7z020clg400-1",
    "ultra96-v2": "xczu3eg-sbva484-1-i",
    "zcu102": "xczu9eg-ffvb1156-2-e",
    "zcu104": "xczu7ev-ffvc1156-2-e",
    "kv260": "xck26-sfvc784-2LV-c",
    "alveo-u50": "xcu50-fsvh2104-2-e",
    "alveo-u250": "xcu250-figd2104-2L-e",
    "aws-f1": "xcvu9p-flgb2104-2-i",
    "vcu118": "xcvu9p-flga2104-2L-e",
}


def valid_board_dict() -> dict:
    """Return a complete, valid user board in the YAML schema."""
    return {
        "name": "my-board",
        "description": "Test board built around a Zynq-7020",
        "part": "xc7z020clg400-1",
        "family": "zynq7000",
        "dsp_slice": "DSP48E1",
        "resources": {"lut": 53200, "ff": 106400, "dsp": 220, "bram_18k": 280, "uram": 0},
        "clock_mhz": 125,
        "host_link": {"kind": "axi-hp", "bandwidth_mb_s": 500.5},
        "shell": "zynq-ps",
    }


def write_board(directory: Path, data, name: str = "my-board") -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    """Load a board that must be invalid and return the InputError message."""
    with pytest.raises(InputError) as caught:
        load_board(str(path))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


# Bundled boards


@pytest.mark.parametrize("name", sorted(REQUIRED_BOARDS))
def test_bundled_board_loads(name):
    board = load_board(name)

    assert board.name == name
    assert board.part == REQUIRED_BOARDS[name]
    assert board.source == BOARDS_DIR / f"{name}.yaml"
    assert board.description
    assert board.clock_mhz > 0
    assert board.host_link.bandwidth_mb_s > 0
    assert board.resources.lut > 0
    assert board.resources.ff > 0
    assert board.resources.dsp > 0
    assert board.resources.bram_18k > 0


def test_list_boards_sorted_and_complete():
    boards = list_boards()
    names = [board.name for board in boards]

    assert len(boards) >= 8
    assert names == sorted(names)
    assert set(REQUIRED_BOARDS) <= set(names)
    assert all(isinstance(board, Board) for board in boards)


def test_bundled_dsp_slice_follows_family():
    for board in list_boards():
        expected = DspSlice.DSP48E1 if board.family is Family.ZYNQ7000 else DspSlice.DSP48E2
        assert board.dsp_slice is expected, board.name


def test_bundled_xrt_boards_have_platform():
    for board in list_boards():
        if board.shell is Shell.XRT:
            assert board.platform, board.name
        else:
            assert board.platform is None, board.name


def test_pynq_z2_values():
    board = load_board("pynq-z2")

    assert board.family is Family.ZYNQ7000
    assert board.shell is Shell.ZYNQ_PS
    assert board.resources.dsp == 220
    assert board.resources.bram_18k == 280
    assert board.resources.uram == 0
    assert board.clock_mhz == 100
    assert board.host_link.kind == "axi-hp"


def test_alveo_u50_values():
    board = load_board("alveo-u50")

    assert board.family is Family.ALVEO
    assert board.shell is Shell.XRT
    assert board.platform == "xilinx_u50_gen3x16_xdma_5_202210_1"
    assert board.resources.dsp == 5952
    assert board.resources.uram == 640
    assert board.host_link.kind == "pcie-gen3x16"


# Board methods


def test_capacity_reads_resources():
    board = load_board("zcu104")

    assert board.capacity("dsp") == 1728
    assert board.capacity("bram_18k") == 624
    assert board.capacity("uram") == 96
    assert board.capacity("LUT") == 230400
    assert board.capacity("BRAM_18K") == 624


def test_capacity_rejects_unknown_resource():
    board = load_board("zcu104")

    with pytest.raises(ValueError, match="'carry8'"):
        board.capacity("carry8")


def test_clock_period_ns():
    assert load_board("pynq-z2").clock_period_ns == pytest.approx(10.0)
    assert load_board("alveo-u50").clock_period_ns == pytest.approx(10.0 / 3)


def test_to_dict_round_trips(tmp_path):
    for board in list_boards():
        data = board.to_dict()
        path = write_board(tmp_path, data, name=board.name)

        reloaded = load_board(str(path))

        assert reloaded.source == path
        assert reloaded.to_dict() == data
        assert reloaded == Board(**{**board.__dict__, "source": path})


def test_to_dict_has_plain_values():
    data = load_board("alveo-u250").to_dict()

    assert type(data["family"]) is str
    assert type(data["shell"]) is str
    assert type(data["dsp_slice"]) is str
    assert data["platform"] == "xilinx_u250_gen3x16_xdma_4_1_202210_1"
    assert "source" not in data
    assert "platform" not in load_board("zcu102").to_dict()


# User board files


def test_user_board_by_path(tmp_path):
    path = write_board(tmp_path, valid_board_dict())

    board = load_board(str(path))

    assert board.name == "my-board"
    assert board.source == path
    assert board.family is Family.ZYNQ7000
    assert board.clock_mhz == 125
    assert board.host_link.bandwidth_mb_s == 500.5
    assert board.platform is None


def test_user_board_yml_suffix(tmp_path):
    path = tmp_path / "my-board.yml"
    path.write_text(yaml.safe_dump(valid_board_dict()), encoding="utf-8")

    assert load_board(str(path)).name == "my-board"


def test_user_board_relative_path(tmp_path, monkeypatch):
    write_board(tmp_path, valid_board_dict())
    monkeypatch.chdir(tmp_path)

    assert load_board("my-board.yaml").name == "my-board"


def test_user_xrt_board(tmp_path):
    data = valid_board_dict()
    data.update(
        part="xcu280-fsvh2892-2L-e",
        family="alveo",
        dsp_slice="DSP48E2",
        host_link={"kind": "pcie-gen3x16", "bandwidth_mb_s": 9000},
        shell="xrt",
        platform="xilinx_u280_gen3x16_xdma_1_202211_1",
    )
    path = write_board(tmp_path, data)

    board = load_board(str(path))

    assert board.shell is Shell.XRT
    assert board.platform == "xilinx_u280_gen3x16_xdma_1_202211_1"


# Lookup errors


def test_unknown_name_lists_boards():
    with pytest.raises(InputError) as caught:
        load_board("no-such-board")
    message = str(caught.value)

    assert "'no-such-board' not found" in message
    assert "\n" not in message
    for name in REQUIRED_BOARDS:
        assert name in message


def test_missing_user_file(tmp_path):
    path = tmp_path / "absent.yaml"

    message = load_error(path)

    assert "not found" in message


def test_directory_instead_of_file(tmp_path):
    path = tmp_path / "folder.yaml"
    path.mkdir()

    message = load_error(path)

    assert "not a regular file" in message


# Malformed files: each message must name the field


def test_missing_field(tmp_path):
    data = valid_board_dict()
    del data["part"]

    message = load_error(write_board(tmp_path, data))

    assert "missing required field 'part'" in message


def test_missing_nested_field(tmp_path):
    data = valid_board_dict()
    del data["resources"]["uram"]

    message = load_error(write_board(tmp_path, data))

    assert "missing required field 'resources.uram'" in message


def test_negative_dsp(tmp_path):
    data = valid_board_dict()
    data["resources"]["dsp"] = -3

    message = load_error(write_board(tmp_path, data))

    path = tmp_path / "my-board.yaml"
    assert message == f"{path}: field 'resources.dsp' must be a non-negative integer, got -3"


@pytest.mark.parametrize(
    ("value", "shown"),
    [(1.5, "1.5"), ("220", "'220' (str)"), (True, "True (bool)"), (None, "None (empty value)")],
)
def test_resource_wrong_type(tmp_path, value, shown):
    data = valid_board_dict()
    data["resources"]["lut"] = value

    message = load_error(write_board(tmp_path, data))

    assert f"field 'resources.lut' must be a non-negative integer, got {shown}" in message


def test_unknown_top_level_key(tmp_path):
    data = valid_board_dict()
    data["speed_grade"] = "-1"

    message = load_error(write_board(tmp_path, data))

    assert "unknown field 'speed_grade'" in message
    assert "description" in message


def test_unknown_nested_key(tmp_path):
    data = valid_board_dict()
    data["resources"]["bram_36k"] = 140

    message = load_error(write_board(tmp_path, data))

    assert "unknown field 'resources.bram_36k'" in message
    assert "bram_18k" in message


def test_unknown_family(tmp_path):
    data = valid_board_dict()
    data["family"] = "kintex7"

    message = load_error(write_board(tmp_path, data))

    assert "field 'family' must be one of zynq7000, zynquplus, virtexuplus, alveo" in message
    assert "'kintex7'" in message


def test_unknown_shell(tmp_path):
    data = valid_board_dict()
    data["shell"] = "petalinux"

    message = load_error(write_board(tmp_path, data))

    assert "field 'shell' must be one of zynq-ps, xrt, xdma" in message


def test_unknown_dsp_slice(tmp_path):
    data = valid_board_dict()
    data["dsp_slice"] = "DSP58"

    message = load_error(write_board(tmp_path, data))

    assert "field 'dsp_slice' must be one of DSP48E1, DSP48E2" in message


def test_top_level_list(tmp_path):
    message = load_error(write_board(tmp_path, [valid_board_dict()]))

    assert "top level must be a mapping" in message
    assert "got a list" in message


def test_empty_file(tmp_path):
    path = tmp_path / "my-board.yaml"
    path.write_text("", encoding="utf-8")

    message = load_error(path)

    assert "top level must be a mapping" in message
    assert "empty file" in message


def test_section_not_mapping(tmp_path):
    data = valid_board_dict()
    data["host_link"] = "axi-hp"

    message = load_error(write_board(tmp_path, data))

    assert "field 'host_link' must be a mapping" in message


def test_invalid_yaml(tmp_path):
    path = tmp_path / "my-board.yaml"
    path.write_text("name: my-board\nresources: [lut: 1\n", encoding="utf-8")

    message = load_error(path)

    assert "invalid YAML" in message
    assert "line 3" in message


def test_duplicate_key(tmp_path):
    path = tmp_path / "my-board.yaml"
    text = yaml.safe_dump(valid_board_dict(), sort_keys=False) + "clock_mhz: 300\n"
    path.write_text(text, encoding="utf-8")

    message = load_error(path)

    assert "duplicate key 'clock_mhz'" in message


def test_duplicate_key_on_one_line(tmp_path):
    path = tmp_path / "my-board.yaml"
    data = valid_board_dict()
    del data["host_link"]
    text = yaml.safe_dump(data) + "host_link: {kind: axi-hp, kind: axi-acp, bandwidth_mb_s: 1}\n"
    path.write_text(text, encoding="utf-8")

    message = load_error(path)

    assert "duplicate key 'kind'" in message


def test_merge_key_override_allowed(tmp_path):
    path = tmp_path / "my-board.yaml"
    data = valid_board_dict()
    del data["resources"]
    text = yaml.safe_dump(data) + (
        "resources:\n"
        "  <<: {lut: 1, ff: 2, dsp: 3, bram_18k: 4, uram: 5}\n"
        "  dsp: 7\n"
    )
    path.write_text(text, encoding="utf-8")

    board = load_board(str(path))

    assert board.resources.dsp == 7
    assert board.resources.lut == 1


def test_not_utf8(tmp_path):
    path = tmp_path / "my-board.yaml"
    path.write_bytes(b"name: \xff\xfe\n")

    message = load_error(path)

    assert "not valid UTF-8" in message


def test_name_must_match_file_stem(tmp_path):
    path = write_board(tmp_path, valid_board_dict(), name="other-board")

    message = load_error(path)

    assert "field 'name' must equal the file name" in message
    assert "'other-board'" in message


def test_name_pattern(tmp_path):
    data = valid_board_dict()
    data["name"] = "My Board"

    message = load_error(write_board(tmp_path, data, name="My Board"))

    assert "field 'name' must be lowercase letters" in message


def test_empty_description(tmp_path):
    data = valid_board_dict()
    data["description"] = "  "

    message = load_error(write_board(tmp_path, data))

    assert "field 'description' must be a non-empty string" in message


def test_malformed_part(tmp_path):
    data = valid_board_dict()
    data["part"] = "7z020"

    message = load_error(write_board(tmp_path, data))

    assert "field 'part' must be an AMD part" in message


@pytest.mark.parametrize("value", [0, -100, float("inf"), float("nan"), "100", False])
def test_clock_must_be_positive_number(tmp_path, value):
    data = valid_board_dict()
    data["clock_mhz"] = value

    message = load_error(write_board(tmp_path, data))

    assert "field 'clock_mhz' must be a positive number" in message


def test_bandwidth_must_be_positive(tmp_path):
    data = valid_board_dict()
    data["host_link"]["bandwidth_mb_s"] = 0

    message = load_error(write_board(tmp_path, data))

    assert "field 'host_link.bandwidth_mb_s' must be a positive number, got 0" in message


def test_unknown_link_kind(tmp_path):
    data = valid_board_dict()
    data["host_link"]["kind"] = "usb3"

    message = load_error(write_board(tmp_path, data))

    assert "field 'host_link.kind' must be axi-hp" in message


# Fields that contradict each other


def test_part_outside_family(tmp_path):
    data = valid_board_dict()
    data["part"] = "xczu3eg-sbva484-1-i"

    message = load_error(write_board(tmp_path, data))

    assert "field 'part' must start with xc7z for family 'zynq7000'" in message


def test_dsp_slice_outside_family(tmp_path):
    data = valid_board_dict()
    data["dsp_slice"] = "DSP48E2"

    message = load_error(write_board(tmp_path, data))

    assert "field 'dsp_slice' must be DSP48E1 for family 'zynq7000'" in message


def test_xrt_without_platform(tmp_path):
    data = valid_board_dict()
    data.update(
        part="xcu50-fsvh2104-2-e",
        family="alveo",
        dsp_slice="DSP48E2",
        host_link={"kind": "pcie-gen3x16", "bandwidth_mb_s": 9000},
        shell="xrt",
    )

    message = load_error(write_board(tmp_path, data))

    assert "field 'platform' is required for shell 'xrt'" in message


def test_platform_rejected_for_zynq_ps(tmp_path):
    data = valid_board_dict()
    data["platform"] = "xilinx_zcu102_base_202210_1"

    message = load_error(write_board(tmp_path, data))

    assert "field 'platform' is only valid for shell 'xrt'" in message


def test_zynq_ps_on_alveo(tmp_path):
    data = valid_board_dict()
    data.update(part="xcu50-fsvh2104-2-e", family="alveo", dsp_slice="DSP48E2")

    message = load_error(write_board(tmp_path, data))

    assert "field 'shell' must not be 'zynq-ps'" in message


def test_zynq_ps_with_pcie_link(tmp_path):
    data = valid_board_dict()
    data["host_link"]["kind"] = "pcie-gen2x4"

    message = load_error(write_board(tmp_path, data))

    assert "field 'host_link.kind' must be axi-hp, axi-hpc or axi-acp" in message
    assert "for shell 'zynq-ps'" in message


def test_xdma_with_axi_link(tmp_path):
    data = valid_board_dict()
    data.update(
        part="xcvu9p-flga2104-2L-e", family="virtexuplus", dsp_slice="DSP48E2", shell="xdma"
    )

    message = load_error(write_board(tmp_path, data))

    assert "field 'host_link.kind' must be a PCIe link" in message
