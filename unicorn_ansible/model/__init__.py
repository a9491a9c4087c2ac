"""The experiment model (netunicorn's): Tasks, Pipelines and graphs, Nodes, Experiments, and how
they travel to hosts. It imports no other library's model (netunicorn's objects enter through
model/foreign.py) and nothing above it in the package."""
