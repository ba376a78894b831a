"""The Hub Space widget for the metric (`evaluate`'s standard one), loading the module beside this file."""

from pathlib import Path

import evaluate
from evaluate.utils import launch_gradio_widget

launch_gradio_widget(evaluate.load(str(Path(__file__).parent)))
