"""A simulated Adobe IMS + Flow Service, for --demo, the tests and the benchmarks."""

from exporter.simulator.app import BASE_PATH, TOKEN_PATH, Chaos, Simulator, start_simulator
from exporter.simulator.events import JOURNAL_PATH, KEYS_PATH, EventsChaos, EventsHub
from exporter.simulator.profile import FRIENDLY, HOSTILE, HOSTILE_POSITION_TOKENS, PROFILES, ApiProfile
from exporter.simulator.world import SEED_FLOW_ID, SEED_RUN_ID, SimFlow, SimRun, World, demo_world

__all__ = [
    "ApiProfile",
    "FRIENDLY",
    "HOSTILE",
    "HOSTILE_POSITION_TOKENS",
    "PROFILES",
    "BASE_PATH",
    "TOKEN_PATH",
    "Chaos",
    "EventsChaos",
    "EventsHub",
    "JOURNAL_PATH",
    "KEYS_PATH",
    "SEED_FLOW_ID",
    "SEED_RUN_ID",
    "SimFlow",
    "SimRun",
    "Simulator",
    "World",
    "demo_world",
    "start_simulator",
]
