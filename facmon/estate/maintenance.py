"""Planned maintenance in the site file: while it runs, routine alerts about that part of the estate stay quiet.

```yaml
maintenance:
  - {from: "2026-12-01 09:00", to: "2026-12-01 17:00", building: b2, reason: lift modernisation}
  - {from: "2026-12-03 22:00", to: "2026-12-04 02:00", device: gate-south, reason: barrier arm replaced}
```

Times are the site's local time. Entrapments and fire alarms are never silenced (facmon.notifier.storm).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, NaiveDatetime, model_validator

from facmon.kernel.model import Identifier


class Maintenance(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    start: NaiveDatetime = Field(alias="from")
    end: NaiveDatetime = Field(alias="to")
    # Neither: the whole site; a building; or one device.
    building: Identifier | None = None
    device: Identifier | None = None
    reason: str = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _ordered(self) -> Maintenance:
        if self.start >= self.end:
            raise ValueError(f"from {self.start:%Y-%m-%d %H:%M} must be before to {self.end:%Y-%m-%d %H:%M}")
        return self
