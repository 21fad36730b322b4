"""Applications on top of the pipeline: the `maskops` command line, the label review web app and the demo."""
