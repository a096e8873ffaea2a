"""Stage settings: one typed object per stage, built from its validated config section.

The config schema (``config.schema.yaml`` beside this file; ``workflow/schemas``
links to it) is the one place a setting is declared: its type, its range, its
default and its description. A stage's settings class is a frozen dataclass
whose fields are the keys of its config section, with no defaults of its own:
:meth:`Settings.from_mapping` validates a mapping against the section's schema
and fills in the schema's defaults, so a rule hands a command its whole section
as one value (``--settings JSON`` or ``--settings FILE``), and a command run by
hand takes the same value, or per-key flags generated from the schema, or both
(flags override the settings value).

A new key therefore needs the schema (type, default, description), the config
(its value and comment) and the code that uses it (one dataclass field): nothing
else.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from mlnb.errors import ConfigError

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")

S = TypeVar("S", bound="Settings")


@functools.cache
def config_schema() -> dict[str, Any]:
    with open(SCHEMA_PATH) as handle:
        return yaml.safe_load(handle)


def _resolve(node: Mapping[str, Any]) -> dict[str, Any]:
    """``node`` with a top-level ``$ref`` into ``definitions`` merged in (the schema's only kind)."""
    node = dict(node)
    ref = node.pop("$ref", None)
    if ref is not None:
        name = ref.removeprefix("#/definitions/")
        node = {**config_schema()["definitions"][name], **node}
    return node


def section_schema(section: str) -> dict[str, Any]:
    """The schema of one config section, with the definitions it refers to."""
    schema = config_schema()
    try:
        node = schema["properties"][section]
    except KeyError:
        raise ConfigError(f"config section {section!r} is not in {SCHEMA_PATH.name}") from None
    return {**_resolve(node), "definitions": schema["definitions"]}


def _with_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """``value`` with every missing key that has a schema default filled in (recursively)."""
    schema = _resolve(schema)
    named, others = schema.get("properties", {}), schema.get("additionalProperties")
    if not isinstance(value, dict) or not (named or isinstance(others, dict)):
        return value
    filled = dict(value)
    for key, node in named.items():
        node = _resolve(node)
        if key not in filled and "default" in node:
            filled[key] = node["default"]
        if key in filled:
            filled[key] = _with_defaults(node, filled[key])
    if isinstance(others, dict):  # a mapping of named entries of one kind (e.g. cnn.variants)
        for key in filled.keys() - named.keys():
            filled[key] = _with_defaults(others, filled[key])
    return filled


def operational_keys(section: str) -> frozenset[str]:
    """The keys of a section that the schema marks ``x-operational``: how a job runs, never what it makes."""
    properties = section_schema(section).get("properties", {})
    return frozenset(key for key, node in properties.items() if node.get("x-operational"))


def validate_section(section: str, mapping: Mapping[str, Any], origin: str = "settings") -> dict[str, Any]:
    """``mapping`` checked against the section's schema, defaults filled in.

    Raises ConfigError naming ``origin`` and the key path (``augment.dims[2]``).
    """
    schema = section_schema(section)
    value = _with_defaults(schema, dict(mapping))
    errors = _schema_errors(schema, value)
    if errors:
        path, message = errors[0]
        raise ConfigError(f"{origin}: {section}{_key_path(path)}: {message}")
    return value


def schema_problem(schema: Mapping[str, Any], value: Any) -> str | None:
    """The first way ``value`` breaks ``schema`` (``runs[0].error: 'x' is not of type 'number'``), or None: a file
    that a command reads (another command's result) checked as settings are, so a malformed one is one line."""
    errors = _schema_errors(schema, value)
    if not errors:
        return None
    path, message = errors[0]
    return f"{_key_path(path).removeprefix('.') or 'the whole'}: {message}"


def _key_path(path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _schema_errors(schema: Mapping[str, Any], value: Any) -> list[tuple[tuple, str]]:
    """(key path, message) of every way ``value`` breaks ``schema``, first in key order; a number that is not
    finite (NaN, infinity: JSON, YAML and ``float()`` all take them) breaks every schema, since no bound holds
    it back (NaN is neither below nor above one)."""
    import jsonschema

    errors = [(path, f"{number} is not a finite number") for path, number in _non_finite(value)]
    validator = jsonschema.Draft202012Validator(schema)
    errors += [(tuple(error.absolute_path), error.message) for error in validator.iter_errors(value)]
    return sorted(errors, key=lambda error: list(error[0]))


def _non_finite(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, float]]:
    if isinstance(value, float) and not math.isfinite(value):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _non_finite(item, (*path, key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _non_finite(item, (*path, index))


def _frozen(value: Any) -> Any:
    """Lists become tuples (recursively), so settings objects are hashable and immutable."""
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    return value


@dataclasses.dataclass(frozen=True)
class Settings:
    """Base of the stage settings classes; ``section`` names the config section."""

    section: ClassVar[str]

    @classmethod
    def from_mapping(cls: type[S], mapping: Mapping[str, Any], origin: str = "settings") -> S:
        value = validate_section(cls.section, mapping, origin)
        names = {field.name for field in dataclasses.fields(cls)}
        missing = sorted(names - set(value))
        if missing:
            raise ConfigError(f"{origin}: {cls.section}: missing key(s) {', '.join(missing)}")
        return cls(**{name: _frozen(value[name]) for name in names})

    @classmethod
    def load(cls: type[S], text: str) -> S:
        """From JSON text, or a JSON/YAML file holding the section (or a whole config)."""
        return cls.from_mapping(*read_section(cls.section, text))

    def as_dict(self) -> dict[str, Any]:
        return {field.name: _thawed(getattr(self, field.name)) for field in dataclasses.fields(self)}

    def defining(self) -> dict[str, Any]:
        """Every setting but the operational ones: what a run's results depend on (logged, fingerprinted)."""
        operational = operational_keys(self.section)
        return {name: value for name, value in self.as_dict().items() if name not in operational}


def _thawed(value: Any) -> Any:
    return [_thawed(item) for item in value] if isinstance(value, tuple) else value


def read_yaml(path: Path, what: str) -> Any:
    """A YAML (or JSON) file's content; a ConfigError that starts with ``what`` when it cannot be read."""
    try:
        return yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"{what}: cannot read ({error.strerror or error})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{what}: not valid YAML ({error})") from None


def settings_file(text: str | None) -> Path | None:
    """The file a ``--settings`` value names, or None for JSON text (or no value): an input of its command."""
    return None if text is None or text.strip().startswith("{") else Path(text)


def read_section(section: str, text: str) -> tuple[dict[str, Any], str]:
    """(mapping, origin) from a ``--settings`` value: JSON text or a JSON/YAML file path."""
    path = settings_file(text)
    if path is None:
        origin = "--settings"
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"--settings: not valid JSON ({error})") from None
    else:
        origin = str(path)
        value = read_yaml(path, f"--settings {path}")
        if isinstance(value, dict) and isinstance(value.get(section), dict):
            value = value[section]  # a whole config file: take this stage's section
    if not isinstance(value, dict):
        raise ConfigError(f"{origin}: expected a mapping of {section} settings")
    return value, origin


#: The Snakefile's ``configfile:``, relative to the working directory; Snakemake deep-merges each
#: ``--configfile`` over it, in order.
WORKFLOW_CONFIG = Path("config.yaml")


def workflow_section(section: str, configfiles=(), base: Path = WORKFLOW_CONFIG) -> dict[str, Any]:
    """One section of the config that the pipeline's rules see, built as Snakemake builds it: ``base``,
    then each of ``configfiles`` deep-merged over it; checked against the schema, defaults filled in.

    For commands that act on the pipeline's outputs from outside a rule (``mlnb ui``).
    """
    from snakemake.utils import update_config

    paths = [Path(base), *map(Path, configfiles)]
    config: dict[str, Any] = {}
    for path in paths:
        loaded = read_yaml(path, f"config file {path}")
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: expected a mapping of config sections")
        update_config(config, loaded)
    value = config.get(section, {})
    if not isinstance(value, dict):
        raise ConfigError(f"config files {', '.join(map(str, paths))}: {section}: expected a mapping")
    return validate_section(section, value, origin=f"config files {', '.join(map(str, paths))}")


_TYPES = {"integer": int, "number": float, "string": str}


def _flag_type(node: Mapping[str, Any]):
    kind = node.get("type")
    if isinstance(kind, list):  # e.g. [integer, "null"]
        kind = next((k for k in kind if k != "null"), None)
    if kind == "boolean":
        return _boolean
    return _TYPES.get(kind, str)


def config_flag_type(key: str):
    """The argparse type of a flag for the config's top-level ``key`` (``--seed``): its type, and the bounds the
    schema states, so ``--seed -1`` is refused as ``seed: -1`` in the config is. (A section's per-key flags are
    checked with their section, by :func:`settings_from_args`.)"""
    node = config_schema()["properties"][key]
    parse = _flag_type(node)

    def checked(text: str):
        value = parse(text)
        errors = _schema_errors(node, value)
        if errors:
            raise argparse.ArgumentTypeError(errors[0][1])
        return value

    checked.__name__ = parse.__name__  # argparse's "invalid int value: 'x'"
    return checked


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_settings_arguments(parser: argparse.ArgumentParser, cls: type[Settings], option: str = "settings") -> None:
    """``--settings`` (or ``--OPTION``) and one flag per field (``--min-transforms``), help and choices from
    the schema. A command taking two sections names the second one's option (``--train-settings``)."""
    schema = section_schema(cls.section)
    group = parser.add_argument_group(f"{cls.section} settings (defaults: {SCHEMA_PATH.name})")
    group.add_argument(f"--{option}", dest=option.replace("-", "_"), metavar="JSON|FILE",
                       help=f"the {cls.section} config section as JSON, or a YAML/JSON file with it "
                            "(or a whole config); the flags below override it")
    add_schema_flags(group, {field.name: schema["properties"][field.name] for field in dataclasses.fields(cls)},
                     dest_prefix=f"{cls.section}.")


def add_schema_flags(group, properties: Mapping[str, Any], dest_prefix: str) -> None:
    """One flag per schema property (``min_transforms`` -> ``--min-transforms``), stored under
    ``dest_prefix + name`` only when given (read them back with :func:`schema_flag_values`)."""
    for name, node in properties.items():
        node = _resolve(node)
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "dest": f"{dest_prefix}{name}",
                                  "metavar": name.upper()}
        kinds = node.get("type")
        if kinds == "array" or (isinstance(kinds, list) and "array" in kinds):
            items = _resolve(node.get("items", {}))
            kwargs["nargs"] = "+"
            kwargs["type"] = _flag_type(items)
            if "enum" in items:
                kwargs["choices"] = items["enum"]
                kwargs.pop("metavar")
        elif "enum" in node:
            kwargs["choices"] = node["enum"]
            kwargs.pop("metavar")
        else:
            kwargs["type"] = _flag_type(node)
        default = node.get("default")
        description = node.get("description", "")
        kwargs["help"] = f"{description} (default: {default})" if "default" in node else description
        group.add_argument(f"--{name.replace('_', '-')}", **kwargs)


def schema_flag_values(args: argparse.Namespace, names, dest_prefix: str) -> dict[str, Any]:
    """The flags of :func:`add_schema_flags` that were given, by property name."""
    return {name: getattr(args, f"{dest_prefix}{name}") for name in names if hasattr(args, f"{dest_prefix}{name}")}


def settings_from_args(cls: type[S], args: argparse.Namespace, option: str = "settings") -> S:
    """The settings object from ``--settings`` (or ``--OPTION``, if given) overridden by any per-key flag."""
    mapping, origin = ({}, "command line")
    text = getattr(args, option.replace("-", "_"), None)
    if text:
        mapping, origin = read_section(cls.section, text)
    overrides = schema_flag_values(args, [field.name for field in dataclasses.fields(cls)], f"{cls.section}.")
    return cls.from_mapping({**mapping, **overrides}, origin)
