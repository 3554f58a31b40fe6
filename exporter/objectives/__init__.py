"""Objectives as code: an objectives file in, Prometheus burn-rate rules, their promtool tests and a Sloth spec out.

parse.py reads the YAML (every problem one `ObjectivesError` naming the key, as the config's
errors do); model.py holds the frozen objectives and windows.py the SRE workbook's alert windows,
declared once; promql.py turns selectors and SLIs into PromQL; rules.py writes the rule file,
cases.py the `promtool test rules` cases that check it, sloth.py the optional Sloth spec. All are
pure functions of the objectives: nothing here talks to Adobe or to Prometheus.
"""

from exporter.objectives.model import Objective, ObjectivesError, Selector
from exporter.objectives.parse import load_objectives, parse_objectives

__all__ = ["Objective", "ObjectivesError", "Selector", "load_objectives", "parse_objectives"]
