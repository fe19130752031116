"""Multi-turn token budgets. Pure functions.

vLLM is stateless: at turn t the prompt holds the system prompt plus every earlier assistant turn and observation,
so it grows every turn. vLLM checks each request on its own (prompt + max_tokens against max_model_len); the client
checks the trajectory (total prompt, total completion). The per-request `max_tokens` must be the per-turn limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class BudgetError(ValueError):
    """The prompt alone no longer fits the context, or the limits contradict each other."""


def safe_max_tokens(prompt_tokens: int, max_model_len: int, per_turn_limit: int) -> int:
    """The `max_tokens` to send for this request: the per-turn limit, cut to what the context has left.

    Raises BudgetError (with the numbers) when the prompt alone fills the context: vLLM would reject the request
    (prompt > max_model_len) or answer "max_tokens must be at least 1" (prompt == max_model_len).
    """
    for name, value in (("prompt_tokens", prompt_tokens), ("max_model_len", max_model_len), ("per_turn_limit", per_turn_limit)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "prompt_tokens" else 1):
            raise BudgetError(f"{name} must be a {'non-negative' if name == 'prompt_tokens' else 'positive'} integer, got {value!r}")
    left = max_model_len - prompt_tokens
    if left < 1:
        raise BudgetError(
            f"the prompt has {prompt_tokens} tokens and max_model_len is {max_model_len}: no room for even one output token "
            f"(end the episode, or serve with --max-model-len >= {prompt_tokens + per_turn_limit})"
        )
    return min(per_turn_limit, left)


@dataclass(frozen=True)
class TrajectoryLimits:
    """A multi-turn episode's shape. Either the growth model (system + per-turn sizes x turns) or rl_env-style totals."""

    max_completion_length_per_turn: int
    system_tokens: int = 0
    observation_tokens_per_turn: int = 0
    turns: int | None = None
    total_max_prompt_length: int | None = None
    total_max_completion_length: int | None = None

    def __post_init__(self) -> None:
        checks = {
            "max_completion_length_per_turn": self.max_completion_length_per_turn,
            "turns": self.turns,
            "total_max_prompt_length": self.total_max_prompt_length,
            "total_max_completion_length": self.total_max_completion_length,
        }
        for name, value in checks.items():
            if value is not None and (not isinstance(value, int) or value < 1):
                raise BudgetError(f"{name} must be a positive integer, got {value!r}")
        for name, value in (("system_tokens", self.system_tokens), ("observation_tokens_per_turn", self.observation_tokens_per_turn)):
            if not isinstance(value, int) or value < 0:
                raise BudgetError(f"{name} must be a non-negative integer, got {value!r}")
        if self.turns is None and self.total_max_prompt_length is None and self.total_max_completion_length is None:
            raise BudgetError("give the number of turns, or total_max_prompt_length / total_max_completion_length")
        if self.total_max_completion_length is not None and self.max_completion_length_per_turn > self.total_max_completion_length:
            raise BudgetError(
                f"max_completion_length_per_turn ({self.max_completion_length_per_turn}) exceeds total_max_completion_length "
                f"({self.total_max_completion_length}): one turn could spend more than the whole episode allows"
            )
        if self.total_max_prompt_length is not None and self.system_tokens > self.total_max_prompt_length:
            raise BudgetError(
                f"the system prompt ({self.system_tokens}) is longer than total_max_prompt_length ({self.total_max_prompt_length})"
            )

    @property
    def effective_turns(self) -> int:
        """Turns the episode can run: the given count, capped by what the totals allow."""
        caps = [self.turns] if self.turns else []
        step = self.max_completion_length_per_turn + self.observation_tokens_per_turn
        if self.total_max_completion_length is not None:
            caps.append(-(-self.total_max_completion_length // self.max_completion_length_per_turn))
        if self.total_max_prompt_length is not None and step > 0:
            caps.append((self.total_max_prompt_length - self.system_tokens) // step + 1)
        return max(1, min(caps))


@dataclass(frozen=True)
class Turn:
    turn: int
    prompt_tokens: int  # worst case: every earlier turn used its whole completion limit
    request_tokens: int  # prompt + per-turn max_tokens: what max_model_len must hold


@dataclass(frozen=True)
class BudgetReport:
    limits: TrajectoryLimits
    turns: tuple[Turn, ...]
    max_tokens: int  # what the client sends per request
    needed_max_model_len: int  # for every turn, plus the buffer
    buffer: int
    server_max_model_len: int | None
    first_failing_turn: int | None  # first turn whose request exceeds the server's max_model_len
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def consistent(self) -> bool:
        return not self.problems


def plan_trajectory(limits: TrajectoryLimits, buffer: int = 1000, server_max_model_len: int | None = None) -> BudgetReport:
    per_turn = limits.max_completion_length_per_turn
    step = per_turn + limits.observation_tokens_per_turn
    turns = []
    for t in range(1, limits.effective_turns + 1):
        prompt = limits.system_tokens + (t - 1) * step
        if limits.total_max_prompt_length is not None:
            prompt = min(prompt, limits.total_max_prompt_length)
        turns.append(Turn(t, prompt, prompt + per_turn))
    worst = max(t.request_tokens for t in turns)
    if limits.total_max_prompt_length is not None:
        worst = max(worst, limits.total_max_prompt_length + per_turn)
    first_fail = None
    problems = []
    if server_max_model_len is not None:
        first_fail = next((t.turn for t in turns if t.request_tokens > server_max_model_len), None)
        if first_fail is not None:
            t = turns[first_fail - 1]
            problems.append(
                f"turn {first_fail}: prompt {t.prompt_tokens:,} + max_tokens {per_turn:,} = {t.request_tokens:,} exceeds the server's "
                f"max_model_len {server_max_model_len:,}"
            )
        if limits.total_max_prompt_length is not None and limits.total_max_prompt_length + per_turn > server_max_model_len:
            problems.append(
                f"total_max_prompt_length {limits.total_max_prompt_length:,} + max_completion_length_per_turn {per_turn:,} = "
                f"{limits.total_max_prompt_length + per_turn:,} exceeds the server's max_model_len {server_max_model_len:,}: "
                "the client's limits allow requests the server cannot hold"
            )
    return BudgetReport(limits, tuple(turns), per_turn, worst + buffer, buffer, server_max_model_len, first_fail, tuple(problems))


def check_trajectory(limits: TrajectoryLimits | dict, max_model_len: int) -> BudgetReport:
    """Check a trajectory config (rl_env-style keys or a TrajectoryLimits) against a server's max_model_len."""
    if isinstance(limits, dict):
        known = {k: v for k, v in limits.items() if k in TrajectoryLimits.__dataclass_fields__}
        if "max_completion_length_per_turn" not in known:
            raise BudgetError("the trajectory config needs max_completion_length_per_turn")
        limits = TrajectoryLimits(**known)
    return plan_trajectory(limits, buffer=0, server_max_model_len=max_model_len)
