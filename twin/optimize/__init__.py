"""The CM optimiser: searches guard-allowed steps with ``Twin.whatif`` (``twin.optimize.Optimizer``)."""

from twin.optimize.objective import ObjectiveSettings, Score, UeSummary, score
from twin.optimize.search import ATTRIBUTES, Candidate, Optimizer, Proposal, SearchResult

__all__ = ["ATTRIBUTES", "Candidate", "ObjectiveSettings", "Optimizer", "Proposal", "Score", "SearchResult",
           "UeSummary", "score"]
