"""Errors that are the user's to fix: the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """A mistake in the user's input, config or environment (missing file, unknown model...)."""


class ConfigError(UserError):
    """An invalid configuration value or key."""


class DataError(Exception):
    """The data on disk failed a check (a corrupt shard, a failed verification): exit code 1."""


class Stopped(BaseException):
    """The driver was told to stop (SIGTERM, what `ray job stop` sends; SIGINT): it unwinds
    like KeyboardInterrupt, through every `finally` (the lease released, Ray shut down), and
    nothing that catches Exception stops it."""

    def __init__(self, signum: int):
        import signal

        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class InputChanged(DataError):
    """An input file is no longer what the run's frozen plan recorded (its size, version or
    fingerprint changed while the run read it): the run stops, naming it. `path` (redacted)
    and `change` ("disappeared", "changed (size, version)") say what, where known."""

    def __init__(self, message: str, path: str = "", change: str = ""):
        super().__init__(message)
        self.path, self.change = path, change


class LeaseLost(DataError):
    """Another driver took over the run's lease: this one stops before it writes again."""


# raised inside Ray tasks: the driver finds them in a task's failure and raises them again
# as themselves (session/task_errors.py)
TASK_ERRORS = (InputChanged, LeaseLost)
