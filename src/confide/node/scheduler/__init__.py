"""The node's scheduler: scheduled tasks' slots, persisted, queued by priority, run once each."""

from .clock import Clock, ManualClock, SystemClock
from .scheduler import Executor, Job, RunQueue, Scheduler
from .store import SchedulerStore

__all__ = [
    "Clock",
    "Executor",
    "Job",
    "ManualClock",
    "RunQueue",
    "Scheduler",
    "SchedulerStore",
    "SystemClock",
]
