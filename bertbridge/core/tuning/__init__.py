"""Hyperparameter search over a spec's ``tuning`` section (``bertbridge tune``).

search.py (the study: trials, the best model, the results), space.py (a trial's values from
the spec's distributions), pruning.py (stopping a trial at an evaluation), report.py (the
trials table and plot). Optuna is imported when a search starts (``pip install 'bertbridge[tune]'``).
"""
