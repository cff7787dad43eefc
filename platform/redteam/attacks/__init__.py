"""The attacks that depend on the model kind (Tramer et al., "Stealing Machine Learning Models via Prediction
APIs", USENIX Security 2016; Lowd & Meek 2005; Fredrikson et al. 2015), as pure functions of an oracle.

Each takes an `Oracle` (inputs on the schema's grid -> what the API answers: labels, and the confidences or
probability vectors the tier shows, as shown), the `InputGrid` the API publishes, a query budget and the
measurement's held-out `Evaluation`, and returns a dataclass with the queries spent and what it recovered:

- `solve_equations`: a (multinomial) logistic regression from the log-ratios of its probabilities;
- `find_paths`: a decision tree's leaves, identified by their distinct confidences;
- `lowd_meek`: a binary linear boundary from labels alone;
- `invert_class`: a class's representative input from confidences alone.

`defended_oracle` answers through the serving path's own defenses (`serving.defenses.apply_defenses`) for a tier's
`DefenseConfig`, so a test or an offline run meets what a key of that tier meets. No Django, no HTTP.
"""

from redteam.attacks.equation_solving import EquationSolvingResult, solve_equations
from redteam.attacks.inversion import InversionDistance, InversionResult, inversion_distance, invert_class
from redteam.attacks.linear import LinearModel
from redteam.attacks.lowd_meek import LowdMeekResult, lowd_meek
from redteam.attacks.oracle import Answers, Evaluation, InputGrid, MeteredOracle, Oracle, defended_oracle
from redteam.attacks.path_finding import Leaf, PathFindingResult, find_paths

__all__ = [
    "Answers",
    "EquationSolvingResult",
    "Evaluation",
    "InputGrid",
    "InversionDistance",
    "InversionResult",
    "Leaf",
    "LinearModel",
    "LowdMeekResult",
    "MeteredOracle",
    "Oracle",
    "PathFindingResult",
    "defended_oracle",
    "find_paths",
    "inversion_distance",
    "invert_class",
    "lowd_meek",
    "solve_equations",
]
