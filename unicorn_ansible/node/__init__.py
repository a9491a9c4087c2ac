"""What runs on hosts: the standard library, cloudpickle and returns, nothing of the controller.

The bundle ships this package as ``unicorn_node`` (its modules import each other
relatively, so it works under either name). One concern per module:

- ``wire``       every record host and controller exchange (and the run folder's), the bounded JSON parser
- ``protocol``   file names, statuses (shared with the controller)
- ``__main__``   the command line: deploy, start, state, run, cancel
- ``deploy``     a node's requirements, run in a virtual environment
- ``container``  DockerImage environments: an image pulled or built on podman or Docker, the executor inside
- ``control``    the detached executor seen from outside: start, state, wait, cancel
- ``scheduler``  the executor: one loop running a plan's tasks, the journal written as they end
- ``plans``      what to run next: a pipeline's stages or a graph's vertices
- ``processes``  task processes: forked, output captured and capped, reaped, killed
- ``sweep``      every process a pipeline or deployment started, found by its marker, stopped
- ``handoff``    a task's Result, from its process to the executor
- ``outcome``    the Result semantics, pickling for the controller, previews
- ``journal``    append-only records of finished tasks, read back
- ``outbox``     everything the controller fetches, packed in one file
- ``artifacts``  the files tasks leave for the user, listed with size and sha256 for the controller
- ``files``      atomic writes (JSON or any bytes), kernel copies
- ``digests``    content keys (an environment's, an image's) and a file's sha256, for both sides
"""
