"""The execution layer: every command of a model repository runs through this subpackage.

* :mod:`.backends` — which sandbox works here (bubblewrap, else ``unshare``, else none), probed
  once per process, and the bubblewrap command line for one step.
* :mod:`.limits` — per-step resource limits (processes, memory, file size, wall time).
* :mod:`.process` — the one function that runs a command (:func:`.process.run_command`):
  scrubbed environment, sandbox, limits, bounded output, nothing left running afterwards.
* :mod:`.scratch` — scratch copies of the repository and checkout-integrity snapshots.
* :mod:`.environments` — the cached isolated virtual environments.
* :mod:`.placeholders` — ``{weights}``, ``{outdir}``, ``{repo}``, ``{python}`` in commands.
* :mod:`.steps` — a manifest step run in a scratch copy inside the isolated environment.
"""
