"""Data files (drivers, rules, SLA profiles): YAML validated by pydantic, with errors a person can act on.

Every problem reads 'file: where: what is wrong'; a loader reports all of them at once, not only the first.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class DataFileError(ValueError):
    """A data file that cannot be used; `problems` lists each problem as one line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def validation_reasons(exc: ValidationError) -> list[str]:
    """'where: what' for each error; our own validators' messages without pydantic's "Value error, " in front."""
    reasons = []
    for err in exc.errors():
        msg = str(err["ctx"]["error"]) if err["type"] == "value_error" and "ctx" in err else err["msg"]
        where = ".".join(map(str, err["loc"]))
        reasons.append(f"{where}: {msg}" if where else msg)
    return reasons


def load_model(path: Path, model: type[M], error: Callable[[str], Exception]) -> M:
    """The YAML file at `path` as `model`; raises `error(text)` naming the file and each problem."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return model.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise error(f"{path}: {exc}") from exc
    except ValidationError as exc:
        raise error("\n".join(f"{path}: {reason}" for reason in validation_reasons(exc))) from exc
