"""The tests' fault kit, outside the shipped package: fault plans (`plan`), the storage fault
injector (`injector`), the hooks object the product asks (`hooks`), and the switch that turns
a plan on (`switch`). See ray_job/hooks.py for the product's side."""
from .hooks import Hooks, install
from .injector import Injector
from .plan import FaultPlan, StorageFault, StorageFaults, storage_plan
from .switch import arm, armed, disarm, injected, switch_env

__all__ = ["FaultPlan", "Hooks", "Injector", "StorageFault", "StorageFaults", "arm", "armed",
           "disarm", "injected", "install", "storage_plan", "switch_env"]
