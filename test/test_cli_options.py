"""Every `maqbool` subcommand takes the same common flags with the same meaning, and its
schema options (type, choices, range, help) come from the config schema (issue #17.2, #12.3)."""
from __future__ import annotations

import argparse

import pytest

from maqbool_ros.core.config import FIELDS
from maqbool_ros.tools.cli import build_parser
from maqbool_ros.tools.options import COMMON_FLAGS, config_from_args, flag_for

#: Subcommands that use or make a descriptor model take --dim; those that use one take --model.
DIM_COMMANDS = {"eval", "fit", "train-pdl", "build-vocab", "demo", "export", "build-defaults"}
MODEL_COMMANDS = {"eval", "train-pdl", "build-vocab", "demo", "build-defaults"}


def leaf_parsers(parser: argparse.ArgumentParser, prefix: tuple = ()) -> dict[str, argparse.ArgumentParser]:
    """'eval', 'bag play', ... -> the parser that parses that command's options."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {" ".join(prefix): parser}
    out = {}
    for name, sub in subs[0].choices.items():
        out.update(leaf_parsers(sub, prefix + (name,)))
    return out


def option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    return next((a for a in parser._actions if flag in a.option_strings), None)


LEAVES = leaf_parsers(build_parser())


def test_all_subcommands_are_walked():
    assert {"eval", "fit", "train-pdl", "build-vocab", "demo", "export", "dump-config", "bag from-images",
            "bag play", "bag record-candidates"} <= set(LEAVES)


@pytest.mark.parametrize("command", sorted(LEAVES))
def test_common_flags_have_one_meaning(command):
    parser = LEAVES[command]
    reference = LEAVES["eval"]
    for flag in COMMON_FLAGS:
        action = option(parser, flag)
        assert action is not None, f"maqbool {command} lacks {flag}"
        ref = option(reference, flag)
        assert (type(action), action.dest, action.help) == (type(ref), ref.dest, ref.help), (command, flag)
    for flag, field, commands in (("--dim", "descriptor_dim", DIM_COMMANDS), ("--model", "model_path",
                                                                              MODEL_COMMANDS)):
        action = option(parser, flag)
        if command.split()[0] in commands:
            assert action is not None, f"maqbool {command} lacks {flag}"
            assert action.help.startswith(FIELDS[field].metadata["help"].replace("%", "%%"))
            assert action.choices == FIELDS[field].metadata["choices"]
        else:
            assert action is None, f"maqbool {command}: {flag} would mean nothing here"


def test_fit_accepts_quiet():
    """Was: `maqbool fit --quiet` -> unrecognized arguments: --quiet."""
    args = build_parser().parse_args(["fit", "--images", "x", "--out", "y.onnx", "--quiet"])
    assert args.quiet is True


@pytest.mark.parametrize("command", sorted(LEAVES))
def test_choices_and_help_come_from_the_schema(command):
    """No option restates a schema field's choices: an option offering them is that field's."""
    parser = LEAVES[command]
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        assert action.help, f"maqbool {command} {action.option_strings[0]}: no help"
        for name, f in FIELDS.items():
            choices = f.metadata["choices"]
            mine, theirs = set(map(str, choices or ())), set(map(str, action.choices or ()))
            # restating = offering the field's choices or a part of them (a shared word like
            # "auto" between two unrelated fields is no restatement)
            if mine and theirs and (theirs <= mine or mine <= theirs):
                assert flag_for(name) in action.option_strings, \
                    f"maqbool {command} {action.option_strings[0]} restates {name}'s choices"
                assert tuple(action.choices) == tuple(choices)
                assert f.metadata["help"].replace("%", "%%") in action.help
                assert action.default is None  # not given: the config's value stands


def test_every_help_renders():
    for command, parser in LEAVES.items():
        text = parser.format_help()
        assert "--config" in text and "--quiet" in text, command
    assert "train-pdl" in build_parser().format_help()


def test_config_file_then_flags(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("database:\n  top_k: 7\nmaqbool:\n  region_budget: 9\nrerank.method: maqbool\n")
    args = build_parser().parse_args(["eval", "--dataset", "d", "--config", str(cfg_file), "--top-k", "11"])
    cfg = config_from_args(args)
    assert (cfg.top_k, cfg.region_budget, cfg.method) == (11, 9, "maqbool")  # flag over file over defaults


def test_out_of_range_option_names_the_field(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["eval", "--dataset", "d", "--region-budget", "500"])
    assert exc.value.code == 2
    assert "maqbool.region_budget: 500 is outside [5, 50]" in capsys.readouterr().err


@pytest.mark.parametrize("text,message", [("top_k: [\n", "not valid YAML"), ("database.top_kk: 3\n", "top_kk"),
                                          ("database:\n  top_k: 0\n", "database.top_k: 0 is outside"),
                                          ("top_k: 3\n", "'top_k' was renamed to 'database.top_k'")])
def test_bad_config_file_is_one_line(tmp_path, capsys, text, message):
    from maqbool_ros.tools.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["dump-config", "--config", str(path), "--stdout"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "--config" in err[0]
    assert main(["dump-config", "--config", str(tmp_path / "absent.yaml"), "--stdout"]) == 2


def test_bag_play_config_feeds_the_configured_image_topic():
    from maqbool_ros.tools.bag import config_remaps

    topics = {"/cam/image": "sensor_msgs/msg/Image", "/odom": "nav_msgs/msg/Odometry"}
    assert config_remaps(topics, {}, "robot1/keyframes") == {"/cam/image": "/robot1/keyframes"}
    assert config_remaps(topics, {"/cam/image": "/x"}, "k") == {"/cam/image": "/x"}  # explicit remap wins
    assert config_remaps({"/k": "sensor_msgs/msg/CompressedImage"}, {}, "k") == {}
