"""Citizen reports and tasks on one worker: the parts both sides share, and one call for ``create_app``."""

from __future__ import annotations

import logging

import faust

from engine.clock import Clock
from engine.metrics import WorkerMetrics
from engine.reports import agents as report_agents
from engine.reports.grid import load_grid
from engine.settings import Settings
from engine.tasks import agents as task_agents
from engine.tasks.book import TaskBook
from engine.tasks.directory import TaskDirectory
from engine.tasks.topics import declare_task_topics
from engine.topics import Topics
from engine.vetting.waiter import DecisionWaiter

log = logging.getLogger(__name__)


def register(app: faust.App, settings: Settings, metrics: WorkerMetrics, clock: Clock, topics: Topics) -> TaskBook:
    """Load the grid (a bad grid file stops the worker, naming file, feature and field) and register both sides."""
    grid = load_grid(settings.reports.grid_dir, crs=settings.city.crs, tz=settings.city.tz)
    log.info("reports: grid of %d units from %s; %d services, %d departments", len(grid), settings.reports.grid_dir,
             len(settings.tasks.services), len(settings.tasks.departments))
    waiter, directory = DecisionWaiter(), TaskDirectory()
    tt = declare_task_topics(app, settings)
    rt = report_agents.register(app, settings, metrics, clock, grid, tt, waiter, directory)
    return task_agents.register(app, settings, metrics, clock, topics, tt, rt, waiter, directory)
