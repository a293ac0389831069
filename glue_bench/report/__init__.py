"""Report: job folders -> records (`collect`) -> the GLUE table (`aggregate`), budgets, references, rendering,
plots, the leaderboard submission and what a finished sweep publishes. No torch."""
