"""Command-line options generated from the config schema, shared by every `maqbool` subcommand.

A tool names the config fields it exposes; type, choices, range and help come from
:mod:`maqbool_ros.core.config`, so nothing is restated here. Options keep the flat field
names users know (``--verification-max-features``); each --help line ends with the field's
config / ROS parameter name (``[config: verification.max_features; ...]``). Options default to None
("not given"): the config is ``--config FILE`` (or the schema defaults) with only the
options actually given applied on top (:func:`config_from_args`).

Common flags, with one meaning everywhere: ``--config FILE`` and ``--quiet`` on every
subcommand; ``--model`` (model_path) and ``--dim`` (descriptor_dim) where a descriptor
model is used or made.
"""
from __future__ import annotations

import argparse
from typing import Any

from maqbool_ros.core.config import FIELDS, KEYS, MaqboolConfig, check_value, field_type

#: Parser default holding the (dest, config field) pairs of a subcommand's schema options.
_FIELDS_KEY = "_config_fields"
#: Flags every subcommand accepts (test_cli_options walks all parsers for them).
COMMON_FLAGS = ("--config", "--quiet")
#: Conventional flag names of fields whose option is not simply --field-name.
SHORT_FLAGS = {"model_path": "--model", "descriptor_dim": "--dim", "region_source": "--regions"}


def flag_for(name: str) -> str:
    """The option string of a config field (``top_k`` -> ``--top-k``; see SHORT_FLAGS)."""
    return SHORT_FLAGS.get(name, "--" + name.replace("_", "-"))


def _value_parser(name: str):
    """argparse ``type`` for a field: convert, then check range/choices with the schema's message."""
    typ = field_type(name)

    def parse(text: str) -> Any:
        try:
            value = typ(text)
            check_value(name, value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc) if "outside" in str(exc) or "one of" in str(exc)
                                             else f"{KEYS[name]}: expected {typ.__name__}, got {text!r}") from None
        return value

    parse.__name__ = typ.__name__
    return parse


def schema_help(name: str, extra: str = "") -> str:
    """A field's help text from the schema, with its range and config name (argparse-escaped)."""
    meta = FIELDS[name].metadata
    text = meta["help"] + (f" {extra}" if extra else "")
    if meta["range"] is not None:
        lo, hi, _ = meta["range"]
        text += f" Range {lo}..{hi}."
    text += f" [config: {KEYS[name]}; default {FIELDS[name].default!r}]"
    return text.replace("%", "%%")


def add_config_options(parser: argparse.ArgumentParser | Any, *names: str, aliases: dict | None = None,
                       extra_help: dict | None = None) -> None:
    """Add one option per named config field to ``parser`` (or an argument group of it).

    aliases: field -> extra option strings kept for old spellings; extra_help: field -> a
    sentence on what the field means for this tool."""
    aliases, extra_help = aliases or {}, extra_help or {}
    pairs = []
    for name in names:
        if name not in FIELDS:
            raise KeyError(f"no config field {name!r}")
        flag = flag_for(name)
        dest = flag[2:].replace("-", "_")
        meta = FIELDS[name].metadata
        kwargs: dict[str, Any] = {"dest": dest, "default": None, "help": schema_help(name, extra_help.get(name, ""))}
        if field_type(name) is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _value_parser(name)
            if meta["choices"] is not None:
                kwargs["choices"] = meta["choices"]
            else:
                kwargs["metavar"] = "PATH" if name.endswith("_path") else field_type(name).__name__.upper()
        parser.add_argument(flag, *aliases.get(name, ()), **kwargs)
        pairs.append((dest, name))
    # an argument group shares its parser's defaults dict, so this works for groups too
    parser.set_defaults(**{_FIELDS_KEY: tuple(parser.get_default(_FIELDS_KEY) or ()) + tuple(pairs)})


def add_common_options(parser: argparse.ArgumentParser, model: bool = False, dim: bool = False,
                       dim_help: str = "", model_help: str = "") -> None:
    """--config and --quiet, plus --model / --dim where the tool uses or makes a descriptor model."""
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="YAML config: a plain one (maqbool dump-config) or the node's ROS params file; "
                             "options given on the command line override its values")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (results and errors still print)")
    names = (["model_path"] if model else []) + (["descriptor_dim"] if dim else [])
    if names:
        add_config_options(parser, *names, extra_help={"model_path": model_help, "descriptor_dim": dim_help})


def config_from_args(args: argparse.Namespace, **fixed: Any) -> MaqboolConfig:
    """The validated config: ``--config`` (else the schema defaults), then ``fixed`` values,
    then every schema option given on the command line."""
    path = getattr(args, "config", None)
    cfg = load_config(path) if path else MaqboolConfig()
    changes = dict(fixed)
    for dest, name in getattr(args, _FIELDS_KEY, ()) or ():
        value = getattr(args, dest, None)
        if value is not None:
            changes[name] = value
    return cfg.replace(**changes) if changes else cfg


def load_config(path: str) -> MaqboolConfig:
    """MaqboolConfig.from_yaml with --config named in every error (missing file, bad YAML, bad field)."""
    import yaml

    try:
        return MaqboolConfig.from_yaml(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"--config: {path} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"--config: {path} is a directory, not a YAML file") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"--config: {path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    except (ValueError, TypeError) as exc:
        raise ValueError(f"--config: {path}: {exc}") from None


def given(args: argparse.Namespace, dest: str) -> bool:
    """Whether a schema option was given on the command line."""
    return getattr(args, dest, None) is not None


def check_output_path(flag: str, path: str | None, folder: bool = False) -> None:
    """Refuse an output path that cannot be written before any work is done (ValueError
    naming the flag): an existing folder where a file goes (or the reverse), or a parent
    that is a file. Missing parent folders are created when the output is written."""
    if path is None:
        return
    from pathlib import Path

    target = Path(path)
    if target.exists() and target.is_dir() != folder:
        raise ValueError(f"{flag}: {target} exists and is {'not ' if folder else ''}a folder")
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{flag}: cannot write {target}: {parent} is a file, not a folder")
