"""The experiment model. netunicorn's Tasks and node pools count as ours from the moment it loads."""

from ..compat import netunicorn as _netunicorn

_netunicorn.adopt_netunicorn_classes()  # netunicorn's Tasks and Experiments accepted as ours
