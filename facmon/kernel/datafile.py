"""Data files (sites, drivers, rules, SLA profiles): YAML validated by pydantic, with errors a person can act on.

A loader reports every problem of a file at once, not only the first. Site and driver files read through
`read_document`, and their problems read 'file:line: where: what is wrong'; the rule, SLA and policy loaders name the
entry (and no line) with `validation_reasons`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError, ValidationInfo
from pydantic_core import ErrorDetails

from facmon.kernel.yaml_lines import Document, Loc, dotted, parse

M = TypeVar("M", bound=BaseModel)
# Where in a file (a path of keys and indexes, as pydantic's error `loc`) and what is wrong there.
Problem = tuple[Loc, str]
# The validation context of a loader that runs the checks across entries itself, so that it reports every problem
# with its place in the file: validators that see one of those checks leave it to the loader.
DEFER_CHECKS: Any = {"facmon_checks": "deferred"}


def checks_deferred(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and info.context.get("facmon_checks") == "deferred"


def raise_problems(problems: list[Problem]) -> None:
    """For a model built in code rather than loaded from a file: its problems as one ValueError."""
    if problems:
        raise ValueError("; ".join(f"{dotted(loc)}: {what}" if loc else what for loc, what in problems))


class DataFileError(ValueError):
    """A data file that cannot be used; `problems` lists each problem as one line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def reason(err: ErrorDetails) -> str:
    """What pydantic says is wrong; our own validators' messages without its "Value error, " in front."""
    return str(err["ctx"]["error"]) if err["type"] == "value_error" and "ctx" in err else err["msg"]


def validation_reasons(exc: ValidationError) -> list[str]:
    """'where: what' for each error."""
    reasons = []
    for err in exc.errors():
        where = ".".join(map(str, err["loc"]))
        reasons.append(f"{where}: {reason(err)}" if where else reason(err))
    return reasons


def validation_problems(exc: ValidationError, prefix: Loc = ()) -> list[Problem]:
    return [((*prefix, *err["loc"]), reason(err)) for err in exc.errors()]


def read_document(path: Path) -> Document:
    """The YAML file at `path` with the line of each entry; raises DataFileError naming the file (and the line)."""
    try:
        return parse(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataFileError([f"{path}: cannot read: {exc.strerror}"]) from exc
    except UnicodeDecodeError as exc:
        raise DataFileError([f"{path}: cannot read: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from exc
    except yaml.MarkedYAMLError as exc:
        raise DataFileError([_yaml_problem(path, exc)]) from exc
    except yaml.YAMLError as exc:
        raise DataFileError([f"{path}: not valid YAML: {exc}"]) from exc
    except ValueError as exc:  # a value yaml cannot build, e.g. !!int abc
        raise DataFileError([f"{path}: not valid YAML: {exc}"]) from exc


def read_entries(
    path: Path, key: str, *, non_empty: bool = False, also: Collection[str] = ()
) -> tuple[dict[str, Any], list[Any], list[str]]:
    """A data file that holds a list of entries under one top-level `key` (and, if given, the optional keys `also`):
    the top-level mapping, the entries, and the problems that make the file unusable (none when it is usable)."""
    try:
        raw = read_document(path).data
    except DataFileError as exc:
        return {}, [], exc.problems
    entries = raw.get(key) if isinstance(raw, dict) else None
    if not isinstance(entries, list) or (non_empty and not entries) or (not also and set(raw) != {key}):
        shape = f"one key, {key!r}, holding a {'non-empty ' if non_empty else ''}list"
        if also:
            shape = f"a {'non-empty ' if non_empty else ''}{key!r} list"
        return {}, [], [f"{path}: expected a mapping with {shape}"]
    unknown = sorted(set(raw) - {key, *also})
    return raw, entries, [f"{path}: unknown top-level key {name!r}" for name in unknown]


def entry_label(noun: str, item: object, index: int) -> str:
    """How a problem names an entry of a list: by its id when it has one, else by its place ('rule #2')."""
    return f"{noun} {item['id']}" if isinstance(item, dict) and "id" in item else f"{noun} #{index + 1}"


def validated_entries(path: Path, noun: str, entries: list[Any], model: type[M]) -> Iterator[tuple[str, M | list[str]]]:
    """Each entry's label and either its model or its problems ('file: rule r1: where: what'), in file order."""
    for index, item in enumerate(entries):
        label = entry_label(noun, item, index)
        try:
            yield label, model.model_validate(item)
        except ValidationError as exc:
            yield label, [f"{path}: {label}: {why}" for why in validation_reasons(exc)]


def _yaml_problem(path: Path, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{path}:{mark.line + 1}" if mark else str(path)
    text = exc.problem or exc.context or "cannot be parsed"
    if exc.problem and exc.context:
        line = f" (line {exc.context_mark.line + 1})" if exc.context_mark else ""
        text = f"{exc.problem}, {exc.context}{line}"
    return f"{where}: not valid YAML: {text}"


def located(path: Path, document: Document, problems: Iterable[Problem]) -> list[str]:
    """'file:line: entry: what is wrong' for each problem, in the order of the file."""
    lines = []
    for loc, what in problems:
        line, where = document.where(loc)
        lines.append((line, f"{path}:{line}: {where}: {what}"))
    return [text for _, text in sorted(lines, key=lambda pair: pair[0])]


def repeated_keys(document: Document) -> list[Problem]:
    return [(loc, "given twice; only the last one counts") for loc in document.repeated_keys]


def load_model(path: Path, model: type[M], error: Callable[[str], Exception]) -> M:
    """The YAML file at `path` as `model`; raises `error(text)` naming the file, the line and each problem."""
    try:
        document = read_document(path)
    except DataFileError as exc:
        raise error("\n".join(exc.problems)) from exc
    repeated = repeated_keys(document)
    try:
        loaded = model.model_validate(document.data)
    except ValidationError as exc:
        raise error("\n".join(located(path, document, repeated + validation_problems(exc)))) from exc
    if repeated:
        raise error("\n".join(located(path, document, repeated)))
    return loaded
