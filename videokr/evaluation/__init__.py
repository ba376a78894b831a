"""VideoKR-Eval on lighteval: tasks and probe variants (`tasks`), what the model is shown (`inputs`), the
video model class (`model`), scoring with breakdowns and intervals (`scoring`), the optional judge
(`judge`), the one-command runner (`run`) and the leaderboard across runs (`leaderboard`).

Modules are imported on use: lighteval and torch are heavy and the leaderboard needs neither.
"""
