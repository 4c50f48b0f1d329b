"""Citizen reports and tasks on one worker: the parts both sides share, and one call for ``create_app``."""

from __future__ import annotations

import logging

import faust

from engine.casework import report_agents, task_agents
from engine.casework.book import TaskBook
from engine.casework.directory import TaskDirectory
from engine.casework.grid import load_grid
from engine.casework.settings import CaseworkConfig
from engine.casework.task_topics import declare_task_topics
from engine.core.clock import Clock
from engine.core.metrics import WorkerMetrics
from engine.kafka.answers import AnswerWaiter
from engine.kafka.topics import Topics

log = logging.getLogger(__name__)


def register(app: faust.App, settings: CaseworkConfig, metrics: WorkerMetrics, clock: Clock, topics: Topics) -> TaskBook:
    """Load the grid (a bad grid file stops the worker, naming file, feature and field) and register both sides."""
    grid = load_grid(settings.reports.grid_dir, crs=settings.city.crs)
    log.info("reports: grid of %d units from %s; %d services, %d departments", len(grid), settings.reports.grid_dir,
             len(settings.tasks.services), len(settings.tasks.departments))
    waiter, directory = AnswerWaiter(), TaskDirectory()
    tt = declare_task_topics(app, settings)
    rt = report_agents.register(app, settings, metrics, clock, grid, tt, waiter, directory)
    return task_agents.register(app, settings, metrics, clock, topics, tt, rt, waiter, directory)
