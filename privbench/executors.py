"""Executors: where the tasks of a run (:mod:`privbench.schedule`: expensive nodes of the graph and grid points)
run. A task starts once the tasks it waits for have finished; each executor yields ``(task, outcome)`` as tasks
finish, in any order. The sweep (:mod:`privbench.sweep`) records the points and assembles the table in grid
order, so every executor gives the same results table.

- :class:`SerialExecutor` (default): one task after another in this process, in the order listed.
- :class:`ProcessExecutor` (``--jobs N``): N local worker processes (``spawn``: a fresh interpreter, no forked
  OpenMP state), each with ``cores / N`` torch threads; independent fits run side by side. The cache is shared:
  a node that two running tasks need is computed by the first that asks and loaded by the other
  (:meth:`privbench.cache.Cache.locked`).
- :class:`RayExecutor` (``--executor ray [--address ADDR]``): each task a Ray task on an existing cluster (or a
  local one), asking for ``cpus`` CPUs and one GPU when the point's device is CUDA. The workers must see the
  same privbench and the same cache folder (a shared filesystem) — results are keyed by content, so a worker
  never reuses another configuration's entry. Needs ``pip install privbench[ray]``.

An outcome is a :class:`~privbench.grid.PointResult` (a point), a :class:`~privbench.schedule.NodeDone` (a node),
or a :class:`PointError` when the task raised (its text and, from a worker, the remote traceback).
"""

from __future__ import annotations

import dataclasses
import os
import traceback
from collections.abc import Iterator
from pathlib import Path

from privbench.cache import Cache
from privbench.errors import PrivbenchError, described
from privbench.grid import PointResult, evaluate
from privbench.schedule import NodeDone, Task, run_node

Outcome = PointResult | NodeDone


@dataclasses.dataclass
class PointError:
    """A point that raised: ``why`` is one line; ``exception`` is kept only in-process (for ``--debug``)."""

    why: str
    remote_traceback: str = ""
    exception: BaseException | None = None


def cores() -> int:
    """CPU cores this process may use (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _attempt(task: Task, cache: Cache, keep_exception: bool) -> Outcome | PointError:
    try:
        return evaluate(task.point, cache) if task.is_point else run_node(task, cache)
    except Exception as exc:  # the sweep decides: stop naming the point, or record it (--keep-going)
        return PointError(described(exc), "" if keep_exception else traceback.format_exc(),
                          exc if keep_exception else None)


class SerialExecutor:
    name = "serial"
    jobs = 1

    def __init__(self, threads: int | None = None) -> None:
        #: torch threads per point (None: leave this process's setting)
        self.threads = threads

    def run(self, tasks: list[Task], cache: Cache) -> Iterator[tuple[Task, Outcome | PointError]]:
        import torch

        before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            for task in tasks:  # listed after the tasks they wait for
                yield task, _attempt(task, cache, keep_exception=True)
        finally:
            torch.set_num_threads(before)


def _worker_start(threads: int, lines=None) -> None:
    """A worker's start: its torch threads; with ``lines`` (a queue), its long steps' lines go to the parent
    (:class:`privbench.progress.Relay`; none when it inherited ``PRIVBENCH_QUIET=1``)."""
    import torch

    from privbench.progress import hide_library_warnings

    hide_library_warnings()
    torch.set_num_threads(threads)
    if lines is not None:
        from privbench.progress import report_to

        report_to(lines)


def _worker_task(task: Task, root: str, enabled: bool) -> Outcome | PointError:
    """One task in a worker process (local or Ray): its own :class:`Cache` object on the shared folder."""
    return _attempt(task, _worker_cache(root, enabled), keep_exception=False)


class Ready:
    """The tasks not yet started, handed out as the tasks they wait for finish (in the order listed)."""

    def __init__(self, tasks: list[Task]) -> None:
        self.waiting = list(tasks)
        self.finished: set[str] = set()

    def take(self) -> list[Task]:
        ready: list[Task] = []
        waiting: list[Task] = []
        for task in self.waiting:
            (ready if all(a in self.finished for a in task.after) else waiting).append(task)
        self.waiting = waiting
        return ready

    def finish(self, task: Task) -> None:
        self.finished.add(task.id)


def _count(cache: Cache, outcome) -> None:
    cache.hits += getattr(outcome, "hits", 0)
    cache.misses += getattr(outcome, "misses", 0)


_CACHES: dict[tuple[str, bool], Cache] = {}


def _worker_cache(root: str, enabled: bool) -> Cache:
    """One Cache object per folder in a worker, so its engines (kept per cache) are reused from point to point."""
    key = (root, enabled)
    if key not in _CACHES:
        _CACHES[key] = Cache(Path(root), enabled=enabled)
    return _CACHES[key]


class ProcessExecutor:
    name = "processes"

    def __init__(self, jobs: int, threads: int | None = None) -> None:
        if jobs < 1:
            raise PrivbenchError(f"--jobs must be at least 1, got {jobs}")
        self.jobs = jobs
        self.threads = threads or max(1, cores() // jobs)

    def run(self, tasks: list[Task], cache: Cache) -> Iterator[tuple[Task, Outcome | PointError]]:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        from privbench import progress

        context = multiprocessing.get_context("spawn")
        # the workers' step lines come here and are shown under the run's bar (a worker never writes to it)
        lines = context.Queue() if progress.enabled() else None
        relay = progress.Relay(lines) if lines is not None else None
        pool = ProcessPoolExecutor(max_workers=min(self.jobs, max(1, len(tasks))), mp_context=context,
                                   initializer=_worker_start, initargs=(self.threads, lines))
        ready = Ready(tasks)
        try:
            pending = {}
            while True:
                pending.update({pool.submit(_worker_task, t, str(cache.root), cache.enabled): t for t in ready.take()})
                if not pending:
                    break
                done, _ = wait(pending, timeout=progress.TICK if relay else None, return_when=FIRST_COMPLETED)
                if relay is not None:
                    relay.pump()
                for future in done:
                    task = pending.pop(future)
                    try:
                        outcome = future.result()
                    except Exception as exc:  # the worker itself died (out of memory, killed)
                        outcome = PointError(f"its worker process stopped ({described(exc)})")
                    _count(cache, outcome)
                    ready.finish(task)
                    yield task, outcome
        except BaseException:  # interrupted (Ctrl-C, SIGTERM) or stopped at a failed point: stop the workers now
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            if relay is not None:
                relay.close()
        pool.shutdown(wait=True)


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, cpus: int = 1) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise PrivbenchError("--executor ray needs Ray: pip install 'privbench[ray]'") from None
        self.address = address
        self.cpus = cpus
        self.threads = cpus
        self.jobs = 0  # the cluster decides

    def run(self, tasks: list[Task], cache: Cache) -> Iterator[tuple[Task, Outcome | PointError]]:
        import ray

        started_here = not ray.is_initialized()
        if started_here:
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                         logging_level="ERROR", configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = self.address or "a new local instance"
                raise PrivbenchError(f"cannot start or reach the Ray cluster at {where} ({described(exc)})") from None
        try:
            remote = ray.remote(_ray_task)
            pending = {}
            ready = Ready(tasks)
            while True:
                for task in ready.take():
                    gpus = 1 if task.point.group.device.startswith("cuda") else 0
                    options = remote.options(num_cpus=self.cpus, num_gpus=gpus, max_retries=0)
                    pending[options.remote(task, str(cache.root), cache.enabled, self.cpus)] = task
                if not pending:
                    break
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    task = pending.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except Exception as exc:  # the task's worker died
                        outcome = PointError(f"its Ray task failed ({described(exc)})")
                    _count(cache, outcome)
                    ready.finish(task)
                    yield task, outcome
        finally:
            if started_here:
                ray.shutdown()


def _ray_task(task: Task, root: str, enabled: bool, threads: int) -> Outcome | PointError:
    _worker_start(threads)
    return _worker_task(task, root, enabled)


def make_executor(name: str | None, jobs: int = 1, address: str | None = None, threads: int | None = None
                  ) -> SerialExecutor | ProcessExecutor | RayExecutor:
    """The executor the command line asks for (``name`` None: not named): ``--jobs N`` > 1 means local processes;
    contradictory options (``--executor serial --jobs 2``, ``--executor ray --jobs 2``) are refused, since the run
    would record an executor other than the one named.

    ``threads``: torch threads per point (default: the cores shared among the jobs; one per Ray task). A point's
    numbers depend on it at the level of float rounding (a parallel reduction adds in another order), so runs
    compared value for value — serial against ``--jobs`` or Ray — use the same ``--threads``."""
    if jobs > 1 and name in ("serial", "ray"):
        what = "runs one task at a time" if name == "serial" else "takes its workers from the Ray cluster"
        raise PrivbenchError(f"--executor {name} {what}: --jobs {jobs} applies to --executor processes (or drop "
                             "--executor)")
    if name == "ray":
        return RayExecutor(address, threads or 1)
    if address is not None:
        raise PrivbenchError("--address applies to --executor ray")
    if name == "processes" or jobs > 1:
        return ProcessExecutor(jobs, threads)
    return SerialExecutor(threads or cores())
