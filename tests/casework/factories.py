"""Building blocks for broker-less tests: the project's settings, the sample grid, placed reports, a task book."""

from __future__ import annotations

import uuid
from functools import lru_cache
from zoneinfo import ZoneInfo

from engine.casework.book import TaskBook
from engine.casework.grid import Grid, load_grid
from engine.casework.intake import Intake
from engine.casework.report_models import Report, task_id_for
from engine.core.clock import FakeClock
from engine.settings import Settings, load_settings
from tests.conftest import ROOT

TZ = ZoneInfo("Asia/Shanghai")
STATION = (24.4705, 118.1113)  # Kaiyuan North community, Siming
CEC = (24.478, 118.185)  # Binhai North community, Siming
AIRPORT = (24.5442, 118.1278)  # Huli East community
MAINLAND = (24.64, 118.05)  # Jimei: in the city, outside the sample grid's districts


@lru_cache(maxsize=1)
def grid() -> Grid:
    return load_grid(ROOT / "zones" / "grid")


def settings(**sections: dict) -> Settings:
    base = load_settings(ROOT / "config.yaml", env={})
    return base.replace(**sections) if sections else base


def report(intake: Intake, where: tuple[float, float] = STATION, service: str = "obstruction", **extra) -> Report:
    args = {"service_code": service, "lat": where[0], "long": where[1], "description": "A container on the road",
            **extra}
    return intake.report(args, report_id=uuid.uuid4().hex, source="http")


class World:
    """A task book over a plain dict, with a fake clock and an intake on the sample grid."""

    def __init__(self, **tasks: object):
        self.clock = FakeClock()
        self.settings = settings(tasks=tasks) if tasks else settings()
        self.intake = Intake(self.settings, grid(), self.clock)
        self.table: dict[str, dict] = {}
        self.book = TaskBook(self.table, self.settings.tasks, TZ)

    def open(self, where: tuple[float, float] = STATION, service: str = "obstruction"):
        """Report and create the task (state stored, as the agent does); returns the task."""
        r = report(self.intake, where, service)
        fx = self.book.create(r, task_id_for(r, TZ), self.clock.now())
        assert fx.task is not None
        self.book.put(fx.task)
        return fx.task

    def apply(self, fx):
        if fx is not None and fx.task is not None:
            self.book.put(fx.task)
        return fx
