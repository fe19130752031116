"""Token budgets for clients such as rollout generators: import this without any heavy dependency.

from launcher.budget import safe_max_tokens, check_trajectory
"""

from launcher.budget.trajectory import BudgetError, TrajectoryLimits, check_trajectory, safe_max_tokens

__all__ = ["BudgetError", "TrajectoryLimits", "check_trajectory", "safe_max_tokens"]
