"""What the equipment ledger (设备台帐) and the insurer want to know of an elevator, beyond what monitoring needs.

Every field is optional in the site file, so a file written for monitoring alone still loads; the insurance report
(facmon.reports.insurance) says "not given" for what is missing. Checked at load:

- the variety code (特种设备目录: 3110 traction passenger lift, ...) must be one of the catalogue's elevator codes
  and agree with the registration code, whose first four digits are the variety code;
- periods end after they start (maintenance contract, periodic inspection);
- the last major repair is not before the installation.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The elevator varieties of the special-equipment catalogue (特种设备目录), by code.
VARIETIES: Mapping[str, str] = {
    "3110": "traction passenger lift",
    "3120": "traction freight lift",
    "3130": "positive-drive freight lift",
    "3210": "hydraulic passenger lift",
    "3220": "hydraulic freight lift",
    "3310": "escalator",
    "3320": "moving walk",
    "3410": "explosion-proof lift",
    "3420": "firefighters lift",
    "3430": "dumbwaiter",
}


class Usage(StrEnum):
    """Where the elevator serves; insurers price residential, office and mall risks differently."""

    RESIDENTIAL = "residential"
    OFFICE = "office"
    MALL = "mall"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


VarietyCode = Annotated[str, Field(pattern=r"^\d{4}$")]
Text = Annotated[str, Field(min_length=1, max_length=200)]


class Contract(_Strict):
    number: Text
    start: date
    end: date

    @model_validator(mode="after")
    def _ends_after_start(self) -> Contract:
        if self.end < self.start:
            raise ValueError(f"the contract ends ({self.end}) before it starts ({self.start})")
        return self

    def in_force(self, on: date) -> bool:
        return self.start <= on <= self.end


class Maintainer(_Strict):
    """The maintenance company (维保单位) and its contract; it owes a visit at least every 15 days (TSG T5002)."""

    company: Text
    contract: Contract | None = None


class Inspection(_Strict):
    """The annual periodic inspection (定期检验): when it was last passed and until when the certificate holds."""

    last: date
    valid_until: date

    @model_validator(mode="after")
    def _valid_after_last(self) -> Inspection:
        if self.valid_until < self.last:
            raise ValueError(f"valid_until ({self.valid_until}) is before the inspection itself ({self.last})")
        return self


class MajorRepair(_Strict):
    """The last major repair or renovation (大修/改造)."""

    done_on: date
    description: Annotated[str, Field(max_length=500)] = ""


class Insurance(_Strict):
    """The elevator safety liability policy. No policy in the site file: the elevator is uninsured."""

    insurer: Text
    policy: Text
    expires: date

    def in_force(self, on: date) -> bool:
        return on <= self.expires


def check_variety(variety: str | None, registration_code: str | None) -> None:
    """Raise ValueError when the variety is unknown or disagrees with the registration code's first four digits."""
    if variety is not None and variety not in VARIETIES:
        known = ", ".join(f"{code} {name}" for code, name in VARIETIES.items())
        raise ValueError(f"variety {variety!r} is not an elevator variety code (one of: {known})")
    if variety is not None and registration_code is not None and registration_code[:4] != variety:
        raise ValueError(
            f"variety {variety} ({VARIETIES[variety]}) does not agree with registration code {registration_code}, "
            f"whose first four digits are the variety code ({registration_code[:4]})"
        )
