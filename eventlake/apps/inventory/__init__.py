"""The inventory reference system (SYSTEMS.md §3): StoreApp → Firehose → lake → planner (SQL) →
queue → StoreTruckApp, with the original's bugs fixed."""

from .app import PlanReport, build_app, dashboard, plan, setup
from .simulator import StoreSimulator

__all__ = ["PlanReport", "StoreSimulator", "build_app", "dashboard", "plan", "setup"]
