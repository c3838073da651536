"""The manifest's shape, declared once: the loader validates with it and the JSON Schema is made
from it, so the two cannot drift apart.

Stage: manifest parsing. A ``Spec`` checks one YAML node (as composed by PyYAML, with its marks)
and returns a :class:`Located` tree: the plain value plus the line and column it came from.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from pytest_corrsource.errors import CorrsourceError
from pytest_corrsource.schema import SCHEMA_URL

# A YAML file whose aliases fan out (a "billion laughs" document) would make a naive walk
# exponential; no honest manifest has anywhere near this many nodes.
MAX_NODES = 50_000
_YAML_TAG = "tag:yaml.org,2002:"
_PYTHON_TAG = _YAML_TAG + "python/"


class SpecError(CorrsourceError):
    """A value does not fit the spec; ``line``/``column`` are 1-based."""

    def __init__(self, message: str, line: int, column: int, keypath: str) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.keypath = keypath


@dataclass
class Located:
    """A value from the manifest and where it was written (1-based line and column)."""

    value: Any  # str | int | float | bool | None | dict[str, Located] | list[Located]
    line: int
    column: int
    # For mappings: the line each key was written on (a section is reported at its key).
    key_lines: dict[str, int] | None = None

    def get(self, key: str) -> Located | None:
        """The child ``key`` of a mapping, or None when absent."""
        assert isinstance(self.value, dict)
        child = self.value.get(key)
        assert child is None or isinstance(child, Located)
        return child

    def plain(self) -> Any:
        """The value with all location wrappers removed."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


@dataclass
class _Walk:
    loader: yaml.SafeLoader
    nodes_seen: int = 0

    def count(self, node: yaml.Node, keypath: str) -> None:
        self.nodes_seen += 1
        if self.nodes_seen > MAX_NODES:
            raise _error(node, keypath, f"the manifest has more than {MAX_NODES} YAML nodes")
        # Nothing is ever constructed from an application tag, but a manifest that carries one
        # (`!!python/object/apply:os.system`, `!custom`) is refused rather than read past.
        if node.tag.startswith(_PYTHON_TAG) or not node.tag.startswith(_YAML_TAG):
            shown = node.tag.replace(_YAML_TAG, "!!", 1)
            raise _error(
                node, keypath, f"the YAML tag `{shown}` is not allowed: a manifest is plain data"
            )


def _error(node: yaml.Node, keypath: str, message: str) -> SpecError:
    mark = node.start_mark
    return SpecError(message, mark.line + 1, mark.column + 1, keypath)


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    tag = node.tag.rsplit(":", 1)[-1]
    names = {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean"}
    if tag == "null":
        return "nothing (null)"
    return names.get(tag, f"a value tagged {node.tag.replace(_YAML_TAG, '!!', 1)}")


def _key_path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


class Spec:
    """Base class: one kind of value in the manifest."""

    description = "a value"

    def check(self, node: yaml.Node, keypath: str, walk: _Walk) -> Located:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass
class Scalar(Spec):
    """A string, integer, number or boolean, optionally constrained."""

    kind: str  # "string" | "integer" | "number" | "boolean"
    description: str = ""
    pattern: str | None = None
    enum: tuple[Any, ...] | None = None
    minimum: float | None = None
    exclusive_minimum: float | None = None
    is_regex: bool = False  # the string must compile as a Python regular expression
    doc: str = ""

    def __post_init__(self) -> None:
        if not self.description:
            self.description = {
                "string": "a string",
                "integer": "an integer",
                "number": "a number",
                "boolean": "true or false",
            }[self.kind]

    def check(self, node: yaml.Node, keypath: str, walk: _Walk) -> Located:
        walk.count(node, keypath)
        if not isinstance(node, yaml.ScalarNode):
            raise _error(node, keypath, f"expected {self.description}, found {_describe(node)}")
        try:
            value = walk.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise _error(node, keypath, f"unsupported YAML value: {exc}") from None
        ok = {
            "string": isinstance(value, str),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
            "boolean": isinstance(value, bool),
        }[self.kind]
        if self.kind == "string" and not ok and node.tag.endswith((":int", ":float", ":bool")):
            # An unquoted `3.11` or `1e-6` is a number to YAML; where we want text, take the text.
            value, ok = node.value, True
        if not ok:
            raise _error(node, keypath, f"expected {self.description}, found {_describe(node)}")
        if self.enum is not None and value not in self.enum:
            choices = ", ".join(f"`{c}`" for c in self.enum)
            hint = ""
            if isinstance(value, str):
                close = difflib.get_close_matches(value, [str(c) for c in self.enum], n=1)
                hint = f" — did you mean `{close[0]}`?" if close else ""
            raise _error(node, keypath, f"expected one of {choices}, found `{value}`{hint}")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise _error(node, keypath, f"expected {self.description}, found `{value}`")
        if self.kind == "number" and value != value:  # .nan passes every comparison below
            raise _error(node, keypath, f"expected {self.description}, found {node.value}")
        if self.minimum is not None and value < self.minimum:
            raise _error(node, keypath, f"expected {self.description}, found {value}")
        if self.exclusive_minimum is not None and value <= self.exclusive_minimum:
            raise _error(node, keypath, f"expected {self.description}, found {value}")
        if self.is_regex:
            # Validated by the engine that will match it (the `regex` package, time-bounded).
            from pytest_corrsource.patterns import compile_error

            problem = compile_error(value)
            if problem is not None:
                raise _error(node, keypath, f"invalid regular expression: {problem}")
        mark = node.start_mark
        return Located(value, mark.line + 1, mark.column + 1)

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": self.kind}
        if self.kind == "string":
            # YAML reads unquoted 3.11 as a number and `yes` as a boolean; the loader accepts
            # their text, so must we, wherever such text can fit the pattern.
            types = ["string"]
            for kind, text in (("number", "3.11"), ("boolean", "true")):
                if self.pattern is None or re.fullmatch(self.pattern, text):
                    types.append(kind)
            schema = {"type": types if len(types) > 1 else "string"}
        if self.enum is not None:
            schema = {"enum": list(self.enum)}
        if self.pattern is not None:
            schema["pattern"] = "^(?:" + self.pattern + ")$"
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.exclusive_minimum is not None:
            schema["exclusiveMinimum"] = self.exclusive_minimum
        if self.doc:
            schema["description"] = self.doc
        return schema


@dataclass
class ListOf(Spec):
    """A list of items; ``single_ok`` also accepts one bare item in place of a list."""

    item: Spec
    min_items: int = 0
    single_ok: bool = False
    doc: str = ""

    @property
    def description(self) -> str:  # type: ignore[override]
        # "a mapping" -> "a list of mappings"; "a path inside …" -> "a list (each a path inside …)"
        article, _, noun = self.item.description.partition(" ")
        if article in ("a", "an") and noun.isalpha():
            return f"a list of {noun}s"
        return f"a list (each {self.item.description})"

    def check(self, node: yaml.Node, keypath: str, walk: _Walk) -> Located:
        walk.count(node, keypath)
        if self.single_ok and not isinstance(node, yaml.SequenceNode):
            one = self.item.check(node, keypath, walk)
            return Located([one], one.line, one.column)
        if not isinstance(node, yaml.SequenceNode):
            raise _error(node, keypath, f"expected {self.description}, found {_describe(node)}")
        items = [
            self.item.check(child, _key_path(keypath, i), walk)
            for i, child in enumerate(node.value)
        ]
        if len(items) < self.min_items:
            raise _error(node, keypath, f"expected at least {self.min_items} entry, found none")
        mark = node.start_mark
        return Located(items, mark.line + 1, mark.column + 1)

    def json_schema(self) -> dict[str, Any]:
        array: dict[str, Any] = {"type": "array", "items": self.item.json_schema()}
        if self.min_items:
            array["minItems"] = self.min_items
        schema: dict[str, Any] = (
            {"anyOf": [self.item.json_schema(), array]} if self.single_ok else array
        )
        if self.doc:
            schema["description"] = self.doc
        return schema


@dataclass
class MapOf(Spec):
    """A mapping from free-form string keys to values of one spec (e.g. ``env:``)."""

    value: Spec
    key_pattern: str | None = None
    doc: str = ""
    description = "a mapping"
    key_hint: str = ""  # what a valid key looks like, for the error message

    def check(self, node: yaml.Node, keypath: str, walk: _Walk) -> Located:
        walk.count(node, keypath)
        if not isinstance(node, yaml.MappingNode):
            raise _error(node, keypath, f"expected a mapping, found {_describe(node)}")
        out: dict[str, Located] = {}
        for key_node, value_node in _pairs(node, keypath, walk):
            key = key_node.value
            if self.key_pattern is not None and not re.fullmatch(self.key_pattern, key):
                hint = f": {self.key_hint}" if self.key_hint else ""
                raise _error(key_node, _key_path(keypath, key), f"invalid key `{key}`{hint}")
            out[key] = self.value.check(value_node, _key_path(keypath, key), walk)
        mark = node.start_mark
        return Located(out, mark.line + 1, mark.column + 1)

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "additionalProperties": self.value.json_schema(),
        }
        if self.key_pattern is not None:
            schema["propertyNames"] = {"pattern": "^(?:" + self.key_pattern + ")$"}
        if self.doc:
            schema["description"] = self.doc
        return schema


@dataclass
class Struct(Spec):
    """A mapping with known keys."""

    fields: Mapping[str, Spec]
    required: tuple[str, ...] = ()
    # Groups of keys of which exactly one must be present (e.g. a data source's path or url).
    exactly_one_of: tuple[str, ...] = ()
    doc: str = ""
    description: str = "a mapping"
    allow_null: bool = False  # `docs:` with nothing under it is an empty section, not an error

    def check(self, node: yaml.Node, keypath: str, walk: _Walk) -> Located:
        walk.count(node, keypath)
        if self.allow_null and isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            mark = node.start_mark
            return Located({}, mark.line + 1, mark.column + 1, {})
        if not isinstance(node, yaml.MappingNode):
            raise _error(node, keypath, f"expected {self.description}, found {_describe(node)}")
        out: dict[str, Located] = {}
        key_lines: dict[str, int] = {}
        for key_node, value_node in _pairs(node, keypath, walk):
            key = key_node.value
            child_path = _key_path(keypath, key)
            spec = self.fields.get(key)
            if spec is None:
                close = difflib.get_close_matches(key, list(self.fields), n=1, cutoff=0.6)
                known = ", ".join(f"`{k}`" for k in self.fields)
                hint = f" — did you mean `{close[0]}`?" if close else f" (known keys: {known})"
                raise _error(key_node, child_path, f"unknown key `{key}`{hint}")
            out[key] = spec.check(value_node, child_path, walk)
            key_lines[key] = key_node.start_mark.line + 1
        mark = node.start_mark
        for key in self.required:
            if key not in out:
                where = f"`{keypath}`" if keypath else "the manifest"
                raise SpecError(
                    f"missing required key `{key}` in {where}",
                    mark.line + 1,
                    mark.column + 1,
                    _key_path(keypath, key),
                )
        if self.exactly_one_of:
            present = [k for k in self.exactly_one_of if k in out]
            if len(present) != 1:
                names = " or ".join(f"`{k}`" for k in self.exactly_one_of)
                found = "both" if present else "neither"
                raise SpecError(
                    f"expected exactly one of {names}, found {found}",
                    mark.line + 1,
                    mark.column + 1,
                    keypath,
                )
        return Located(out, mark.line + 1, mark.column + 1, key_lines)

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {k: v.json_schema() for k, v in self.fields.items()},
            "additionalProperties": False,
        }
        if self.required:
            schema["required"] = list(self.required)
        if self.exactly_one_of:
            schema["oneOf"] = [{"required": [k]} for k in self.exactly_one_of]
        if self.allow_null:
            schema = {"anyOf": [schema, {"type": "null"}]}
        if self.doc:
            schema["description"] = self.doc
        return schema


def _pairs(
    node: yaml.MappingNode, keypath: str, walk: _Walk
) -> list[tuple[yaml.ScalarNode, yaml.Node]]:
    """Key/value pairs with merge keys flattened, string keys only, duplicates refused."""
    try:
        walk.loader.flatten_mapping(node)
    except yaml.YAMLError as exc:
        raise _error(node, keypath, f"invalid merge key: {exc}") from None
    seen: dict[str, int] = {}
    pairs: list[tuple[yaml.ScalarNode, yaml.Node]] = []
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or not key_node.tag.endswith(":str"):
            raise _error(key_node, keypath, f"expected a string key, found {_describe(key_node)}")
        key = key_node.value
        if key in seen:
            raise _error(
                key_node,
                _key_path(keypath, key),
                f"duplicate key `{key}` (first given on line {seen[key]})",
            )
        seen[key] = key_node.start_mark.line + 1
        pairs.append((key_node, value_node))
    return pairs


# --- the manifest, version 1 ------------------------------------------------------------------

_SPDX_DOC = "an SPDX licence expression, e.g. MIT or Apache-2.0 OR MIT"
STRING = Scalar("string")
SPDX = Scalar("string", description="an SPDX licence expression", doc=_SPDX_DOC)
SHA256 = Scalar(
    "string",
    description="a sha256 digest (64 lowercase hexadecimal characters)",
    pattern="[0-9a-f]{64}",
)
REPO_PATH = Scalar("string", description="a path inside the repository")
PATH_LIST = ListOf(REPO_PATH, single_ok=True)
COMMAND = Scalar("string", description="a command (split with shlex; placeholders allowed)")
TIMEOUT = Scalar("number", description="a number of seconds greater than 0", exclusive_minimum=0)
REGEX = Scalar("string", description="a regular expression", is_regex=True)
OUTPUTS = ListOf(
    Scalar("string", description="an output path (placeholders allowed)"), single_ok=True
)

EXPECT = Struct(
    {
        "exit-code": Scalar("integer"),
        "stdout": REGEX,
        "stderr": REGEX,
        "files": OUTPUTS,
    },
    doc="what a successful run looks like",
)

NETWORK = Scalar("boolean", doc="false: the step runs with the network cut (default true)")
SIZE = Scalar(
    "string",
    description="a size such as 512MiB or 8GiB",
    pattern="[0-9]+(\\.[0-9]+)?\\s*([KMGTkmgt]i?B?|B)?",
)

STEP = Struct(
    {
        "command": COMMAND,
        "produces": OUTPUTS,
        "timeout": TIMEOUT,
        "code": PATH_LIST,
        "network": NETWORK,
    },
    required=("command",),
)

_LAYOUT_DTYPE = Scalar("string", enum=("float32", "float16", "bfloat16", "float64"))
_BYTES = Scalar("integer", description="a number of bytes (0 or more)", minimum=0)
LAYOUT = Struct(
    {
        "dtype": _LAYOUT_DTYPE,
        "offset": _BYTES,
        "length": _BYTES,
        "ranges": ListOf(
            Struct(
                {"offset": _BYTES, "length": _BYTES, "dtype": _LAYOUT_DTYPE},
                required=("offset", "length"),
            ),
            min_items=1,
        ),
    },
    doc="a raw or custom weights layout (e.g. llama2.c's model.bin): the bytes from `offset` "
    "(default 0) for `length` bytes (default: to the end), or the explicit `ranges`, hold "
    "little-endian floats of `dtype` (default float32); CS403 modifies exactly those bytes",
)

WEIGHTS_ENTRY = Struct(
    {
        "path": REPO_PATH,
        "sha256": SHA256,
        "format": Scalar(
            "string",
            enum=("safetensors", "safetensors-index", "gguf", "npy", "npz", "pickle", "torch-zip"),
        ),
        "allow-unsafe": Scalar("boolean"),
        "license": SPDX,
        "shards": MapOf(
            SHA256, doc="sha256 of each shard of a sharded checkpoint, by shard file name"
        ),
        "layout": LAYOUT,
    },
    required=("path",),
)

LICENSE_REF = Struct(
    {
        "text": Scalar(
            "string",
            description="a path inside the repository",
            doc="the licence text (REUSE keeps it in `LICENSES/<id>.txt`); it must be a file in "
            "the repository",
        ),
        "open": Scalar(
            "boolean",
            doc="whether its terms are open (the freedoms to use, study, modify and share); "
            "reported as declared by the manifest, not as OSI-approved",
        ),
        "kinds": ListOf(
            Scalar("string", enum=("code", "weights", "data", "docs")),
            single_ok=True,
            doc="the components it is written for (a type-appropriate licence, as the MOF "
            "asks); not stated: any",
        ),
        "name": Scalar("string", doc="the licence's name, shown in messages"),
    },
    required=("text", "open"),
)

MANIFEST_SPEC = Struct(
    {
        "version": Scalar("integer", enum=(1,), doc="manifest format version"),
        "name": Scalar("string", description="a non-empty name", pattern=".*\\S.*"),
        "licenses": Struct(
            {
                "distribution": SPDX,
                "code": SPDX,
                "weights": SPDX,
                "data": SPDX,
                "docs": SPDX,
                "refs": MapOf(
                    LICENSE_REF,
                    key_pattern="LicenseRef-[A-Za-z0-9.\\-]+",
                    key_hint="a key is a licence reference such as `LicenseRef-Foo` (letters, "
                    "digits, `.` and `-` after `LicenseRef-`)",
                    doc="the `LicenseRef-…` licences the expressions use, which are not on the "
                    "SPDX list, by id; an undeclared LicenseRef fails CS901 and CS902",
                ),
            },
            doc="licences; resolution: component > kind > distribution",
        ),
        "weights": ListOf(WEIGHTS_ENTRY, min_items=1),
        "architecture": PATH_LIST,
        "env": MapOf(
            Scalar("string", description="a string value"),
            key_pattern="[A-Za-z_][A-Za-z0-9_]*",
            doc="extra environment variables for every command",
        ),
        "install": Struct(
            {
                "requirements": PATH_LIST,
                "commands": ListOf(COMMAND, single_ok=True),
                "python": Scalar(
                    "string",
                    description="a Python version such as 3.11",
                    pattern="[0-9]+(\\.[0-9]+){0,2}",
                ),
                "timeout": TIMEOUT,
                "system": ListOf(
                    Scalar(
                        "string",
                        description="a program the install or the steps need from the system "
                        "(e.g. cc, make), found on PATH",
                        pattern="[A-Za-z0-9][A-Za-z0-9._+-]*",
                    ),
                    single_ok=True,
                ),
            }
        ),
        "generate": ListOf(STEP, single_ok=True),
        "run": Struct(
            {
                "command": COMMAND,
                "timeout": TIMEOUT,
                "deterministic": Scalar("boolean"),
                "expect": EXPECT,
                "network": NETWORK,
            },
            required=("command",),
        ),
        "modify": STEP,
        "training": Struct(
            {
                "code": PATH_LIST,
                "command": COMMAND,
                "produces": Scalar("string", description="an output path (placeholders allowed)"),
                "reproduce": Scalar("string", enum=("schema", "exact", "tolerance")),
                "tolerance": Scalar("number", description="a number >= 0", minimum=0),
                "timeout": TIMEOUT,
                "network": NETWORK,
            }
        ),
        "data": Struct(
            {
                "sources": ListOf(
                    Struct(
                        {
                            "path": REPO_PATH,
                            "url": Scalar(
                                "string",
                                description="an http(s) URL",
                                pattern="https?://\\S+",
                            ),
                            "sha256": SHA256,
                            "license": SPDX,
                            "description": STRING,
                            "size": Scalar("integer", minimum=0),
                        },
                        exactly_one_of=("path", "url"),
                    )
                ),
                "preprocessing": STEP,
                "no-preprocessing": Scalar(
                    "string",
                    description="why there is no preprocessing step: the training reads the "
                    "declared sources as they are (CS703 checks that it names one)",
                ),
                "card": REPO_PATH,
            }
        ),
        "evaluation": Struct(
            {
                "code": PATH_LIST,
                "data": PATH_LIST,
                "command": COMMAND,
                "timeout": TIMEOUT,
                "expect": EXPECT,
                "network": NETWORK,
                "from-training": Scalar(
                    "boolean",
                    doc="true: the training run (CS602's) evaluates the model itself (makemore "
                    "prints its test loss); `expect.stdout` or `expect.stderr` is the pattern "
                    "of the metric line it must print, and no `command`, `timeout` or "
                    "`network` is given",
                ),
            }
        ),
        "limits": Struct(
            {
                "processes": Scalar("integer", minimum=1),
                "memory": SIZE,
                "file-size": SIZE,
                "wall-time": TIMEOUT,
            },
            doc="resource limits of every step (defaults: 4096 processes and threads, the "
            "machine's RAM per process, 64GiB per file, wall time: each step's timeout)",
        ),
        "checkpoints": ListOf(WEIGHTS_ENTRY),
        "docs": Struct(
            {
                "model-card": REPO_PATH,
                "paper": REPO_PATH,
                "technical-report": REPO_PATH,
                "results": REPO_PATH,
            },
            allow_null=True,
        ),
        "source-form": Struct(
            {"allow": PATH_LIST},
            doc="reviewed exceptions to the preferred-form scan (reported, not hidden)",
        ),
        "waive": MapOf(
            Scalar("string", description="the reason"),
            key_pattern="CS[0-9]{3}|X[A-Z]{0,8}[0-9]{3}",
            doc="checks that cannot run where the manifest is verified, by id, with the reason; "
            "a waived required check is reported, and the level reads 'met, with waivers'",
        ),
    },
    required=("version", "name", "weights"),
    description="a mapping (the manifest)",
)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the manifest, as shipped in ``corresponding-source.schema.json``."""
    schema = MANIFEST_SPEC.json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_URL,
        "title": "corresponding-source.yaml (version 1)",
        "description": "What a model repository declares as its Corresponding Source; "
        "verified by `pytest --corresponding-source`.",
        **schema,
    }


def check_document(loader: yaml.SafeLoader, node: yaml.Node) -> Located:
    """Validate a composed YAML document against the manifest spec."""
    return MANIFEST_SPEC.check(node, "", _Walk(loader))
