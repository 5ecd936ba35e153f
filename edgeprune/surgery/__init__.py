from edgeprune.surgery.apply import apply_plan
from edgeprune.surgery.plan import PrunePlan

__all__ = ["PrunePlan", "apply_plan"]
