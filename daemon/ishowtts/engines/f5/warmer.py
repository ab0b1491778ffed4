"""The F5 engine's warm-up in stages, so that a start speaks within seconds (docs/coldstart.md).

1. ``ready``: the eager path warmed by one utterance per voice, with the plain step functions
   (no torch.compile, no CUDA graphs). The engine speaks from here on.
2. In a thread of its own, started ``COMPILE_AFTER_S`` after ready by the first ``step`` (so that
   its imports, seconds of GIL-bound work, stay off the switch to F5 and its first line),
   torch.compile of the step functions and of the vocoder: they run
   once on a throwaway runner of the smallest bucket, through twins of the FastDiTs that share
   their weights, so what the engine speaks with is untouched meanwhile. The compile steps
   aside while a line is made (``Pause``): the two threads share the GIL, and torch releases
   it at every op, so a line made beside a compile waited up to 5 s (measured on the H200).
3. ``step``, called by the synth worker only while no line waits: the compiled functions put in
   place, then one bucket's CUDA graphs captured a call, smallest bucket first (short chat
   lands there). A chunk whose bucket has no graphs yet runs eagerly.

With ``background_warmup: false`` all of it happens before ready, in that order.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import structlog
import torch

from ...threads import DaemonExecutor
from ..base import EngineError, Progress
from .attention import prefer
from .fastdit import FastDiT
from .graphs import GraphRunner
from .voices import HOP, SAMPLE_RATE

if TYPE_CHECKING:
    from .engine import F5Engine
    from .options import F5Options

log = structlog.get_logger("ishowtts.engine.f5")

POLL_S = 0.25  # how soon to ask again while the compile thread works
# The compile thread starts this long after ready. It begins with torch._dynamo's and
# torch._inductor's imports (seconds on a slow host, holding the GIL in long stretches): right
# at ready they would slow the switch to F5 and its first line, through the event loop too,
# which waits for the GIL each time it wakes.
COMPILE_AFTER_S = 2.0
# The compile waits at most this long for a line (then goes on until the line ends): a pause
# at the wrong moment (holding a lock or a module import the line needs) cannot hang the line.
MAX_PAUSE_S = 1.0
CLOSE_WAIT_S = 5.0  # for the compile thread to stop at close
WARM_TEXT = "Warm up, 热身一下。"

Fns = dict[str, Callable[..., Any]]


class CompileAbandoned(BaseException):
    """The engine closed while its compile thread was still at work (a BaseException: torch's
    own ``except Exception`` handlers must not turn it into a compile failure)."""


class Pause:
    """Holds a compile thread (its profile hook, called at each Python call and return) while
    the engine speaks, up to ``MAX_PAUSE_S`` a line; stops it once the engine closes."""

    def __init__(self) -> None:
        self.idle = threading.Event()
        self.idle.set()
        self.closing = False
        self._since = 0.0

    @contextlib.contextmanager
    def speaking(self) -> Iterator[None]:
        self._since = time.monotonic()
        self.idle.clear()
        try:
            yield
        finally:
            self.idle.set()

    def hook(self, frame: Any, event: str, arg: Any) -> None:
        if self.closing:
            raise CompileAbandoned
        if not self.idle.is_set() and not prefer.busy():
            self.idle.wait(max(0.0, self._since + MAX_PAUSE_S - time.monotonic()))


@dataclass
class Compiled:
    """What the compile thread made: the step functions of the model (and of the teacher) and
    the vocoder's backbone, each through torch.compile and run once."""

    fns: Fns
    teacher_fns: Fns | None
    backbone: Any


def bucket(options: F5Options, frames: int) -> int:
    """The shape bucket (its CUDA graphs) a chunk of ``frames`` lands in."""
    step = options.bucket_frames
    return min(-(-frames // step) * step, max(options.max_frames, frames))


class Warmer:
    """Warms one engine; ``engine.runners`` holds what it captured."""

    def __init__(self, engine: F5Engine) -> None:
        self.engine = engine
        self.done = False
        self._compiling: Future[Compiled | None] | None = None
        self._to_compile: int | None = None  # the bucket the compile runs on, until it starts
        self._ready_at = 0.0
        self.pause = Pause()
        self.graph_vocoder: Any = None  # with the compiled backbone, once there is one

    def buckets(self) -> list[int]:
        """Every bucket a chunk of a loaded voice can land in."""
        e, o = self.engine, self.engine.options
        min_frames = round(o.min_seconds * SAMPLE_RATE / HOP)
        if not e.voices:
            return []
        lo = bucket(o, min(v.frames for v in e.voices.values()) + max(min_frames, 1))
        top = bucket(o, o.max_frames)
        return sorted({*range(lo, top, o.bucket_frames), top})

    def steps_used(self) -> list[int]:
        e = self.engine
        return sorted({e.steps} | {v.steps for v in e.voices.values() if v.steps})

    def warmup(self, progress: Progress) -> None:
        """Ready to speak: with ``background_warmup`` once the eager path is warm (the rest
        follows in ``step``), else once every bucket's CUDA graphs are captured."""
        e = self.engine
        if e.fast is None or e.schedules is None:
            raise EngineError("load() first")
        t0 = time.perf_counter()
        for steps in self.steps_used():
            if e.student:
                e.schedules.student(steps, e.options.sway)
                e._teacher_plan(steps)
            else:
                e.schedules.get(steps, e.options.sway)
        self.ready(progress, e.options.background_warmup)
        e.timings["warmup_s"] = time.perf_counter() - t0
        later = "" if self.done else "; compile and CUDA graphs follow between lines"
        progress(f"f5 warm-up done in {e.timings['warmup_s']:.1f} s{later}")

    # ---- stage 1 (and everything, when not in the background) --------------------------

    def ready(self, progress: Progress, background: bool) -> None:
        e = self.engine
        if not e._use_graphs:
            self._utterances()
            self.done = True
            return
        if not background:
            if e.options.compile:
                self._install(self._compile_in_place())
            self.capture(progress)
            self._utterances()
            self.done = True
            return
        self._utterances()  # before the compile thread: the two would share the GIL
        self._ready_at = time.perf_counter()
        if e.options.compile and self.buckets():
            self._to_compile = self.buckets()[0]  # started by ``step``

    def _start_compile(self, n: int) -> None:
        pool = DaemonExecutor("f5-compile")  # a compile running at exit never delays it
        self._compiling = pool.submit(self._compile_twins, n)
        pool.shutdown(wait=False)

    def _utterances(self) -> None:
        """One real utterance per voice: kernels, cuBLAS/cuDNN plans, the text front end."""
        e = self.engine
        for name in e.voices:
            for _ in e.synthesize(WARM_TEXT, name):
                pass

    # ---- stage 2: compile -------------------------------------------------------------

    def _compile_in_place(self) -> Compiled:
        e = self.engine
        assert e.fast is not None
        mode = e.options.compile_mode
        teacher = e.teacher.compiled(mode=mode) if e.teacher is not None else None
        return Compiled(e.fast.compiled(mode=mode), teacher, self._compiled_backbone())

    def _compiled_backbone(self) -> Any:
        backbone = getattr(self.engine.vocoder, "backbone", None)
        if backbone is None or not hasattr(self.engine.vocoder, "head"):
            return None
        # Vocos' ConvNeXt blocks' norms and activations fused: a graph's vocoder pass shortens.
        return torch.compile(backbone, dynamic=True)

    def _compile_twins(self, n: int) -> Compiled | None:
        """In the compile thread: compile and run every function a capture runs, on twins."""
        e = self.engine
        assert e.fast is not None
        t0 = time.perf_counter()
        sys.setprofile(self.pause.hook)  # this thread only
        try:
            made = self._compile_in_place()
            fast = e.fast.twin(made.fns)
            teacher = e.teacher.twin(made.teacher_fns) if e.teacher is not None else None
            vocoder: Any = e.vocoder
            if made.backbone is not None:
                vocoder = SimpleNamespace(head=vocoder.head, backbone=made.backbone)
            stream = torch.cuda.Stream()
            with torch.cuda.stream(stream):
                self.runner(n, fast, teacher, vocoder, pool=None).exercise()
            stream.synchronize()
        except CompileAbandoned:
            return None
        except Exception as exc:  # a compiler failure must not cost the stream its voice
            log.warning("f5_compile_failed", error=repr(exc)[:500], at="background")
            return None
        finally:
            sys.setprofile(None)
        log.info("f5_compiled", s=round(time.perf_counter() - t0, 2), bucket=n)
        return made

    def close(self) -> None:
        """Stop the compile thread (at its next Python call), waiting a bounded while: a
        thread still inside torch at exit can abort the process."""
        self.pause.closing = True
        if self._compiling is not None:
            with contextlib.suppress(Exception):
                self._compiling.result(CLOSE_WAIT_S)
        self._compiling = None

    def _install(self, made: Compiled | None) -> None:
        e = self.engine
        if made is None or e.fast is None:
            return
        e.fast.use(made.fns)
        if e.teacher is not None and made.teacher_fns is not None:
            e.teacher.use(made.teacher_fns)
        if made.backbone is not None:  # the graphs' vocoder only: the eager path (inference
            # mode, another layout) would recompile it, for seconds, in the middle of a line
            vocoder: Any = e.vocoder
            self.graph_vocoder = SimpleNamespace(head=vocoder.head, backbone=made.backbone)

    def _uninstall(self) -> None:
        e = self.engine
        assert e.fast is not None
        e.fast.uncompile()
        if e.teacher is not None:
            e.teacher.uncompile()
        self.graph_vocoder = None

    # ---- stage 3: buckets -------------------------------------------------------------

    def step(self) -> float | None:
        """One piece of the background warm-up, in the engine's thread while no line waits:
        None when all is warm, else how soon to call again (0: at once)."""
        if self.done:
            return None
        if self._to_compile is not None:
            if time.perf_counter() - self._ready_at < COMPILE_AFTER_S:
                return POLL_S
            self._start_compile(self._to_compile)
            self._to_compile = None
            return POLL_S
        if self._compiling is not None:
            if not self._compiling.done():
                return POLL_S
            self._install(self._compiling.result())
            self._compiling = None
            return 0.0
        missing = [n for n in self.buckets() if n not in self.engine.runners]
        if not missing:
            self.done = True
            log.info(
                "f5_warm",
                buckets=len(self.engine.runners),
                after_ready_s=round(time.perf_counter() - self._ready_at, 2),
            )
            return None
        self._capture_one(missing[0], lambda line: log.debug("f5_background_warmup", step=line))
        return 0.0

    def drop_stale(self) -> None:
        """Forget runners the voices outgrew (a shorter clip, more steps: a reload)."""
        e = self.engine
        _, plans, min_ref = self._sizes()
        e.runners = {
            n: r
            for n, r in e.runners.items()
            if all(r.fits(s, p) for s, p in plans.items()) and r.min_ref <= min_ref
        }
        self.done = self.done and all(n in e.runners for n in self.buckets())

    def capture(self, progress: Progress) -> None:
        """A CUDA graph for every bucket the voices need that has none yet (or one made for
        fewer steps than a voice now asks for)."""
        self.drop_stale()
        sizes = self.buckets()
        for i, n in enumerate(sizes):
            if n not in self.engine.runners:
                t1 = time.perf_counter()
                self._capture_one(n, progress)
                progress(
                    f"f5 warm-up: bucket {i + 1}/{len(sizes)} ({n} frames, "
                    f"{n * HOP / SAMPLE_RATE:.1f} s) in {time.perf_counter() - t1:.1f} s"
                )
        self.done = not self._compiling

    def _sizes(self) -> tuple[int, dict[int, Any], int]:
        """(most steps, the teacher plan of each step count, shortest reference frames)."""
        e = self.engine
        max_steps = max(self.steps_used())
        # A runner serves every step count up to its largest, so its teacher tables and noise
        # draws are sized for the teacher plans of all of them (a benchmark or a per-call
        # step count may ask for fewer steps than any voice).
        start = e.options.student_start_step + 1 if e.teacher is not None else 1
        plans = {s: e._teacher_plan(s) for s in range(start, max_steps + 1)}
        # The vocoder's window in each graph leaves out reference frames no voice lacks: a
        # shorter clip (a reload) needs new graphs.
        min_ref = min((v.frames for v in e.voices.values()), default=0)
        return max_steps, plans, min_ref

    def runner(
        self, n: int, fast: FastDiT, teacher: FastDiT | None, vocoder: Any, pool: Any
    ) -> GraphRunner:
        o = self.engine.options
        max_steps, plans, min_ref = self._sizes()
        evals = max((p.evals for p in plans.values() if p is not None), default=0)
        draws = max((p.draws for p in plans.values() if p is not None), default=0)
        return GraphRunner(
            fast,
            n,
            1,
            max_steps,
            pool,
            vocoder,
            not o.quantise_duration,
            teacher,
            evals,
            draws,
            min_ref,
            o.vocoder_tf32,
        )

    def _capture_one(self, n: int, progress: Progress) -> None:
        e = self.engine
        assert e.fast is not None
        if e.pool is None and e.options.share_graph_pool:
            e.pool = torch.cuda.graph_pool_handle()
        runner = self.runner(n, e.fast, e.teacher, self.graph_vocoder or e.vocoder, e.pool)
        try:
            runner.capture()
        except Exception as exc:  # a compiler failure must not cost the stream its voice
            if not e.fast.mark_dynamic:
                raise
            log.warning("f5_compile_failed", error=repr(exc)[:500])
            progress(f"f5 warm-up: torch.compile failed ({type(exc).__name__}); eager")
            self._uninstall()
            runner = self.runner(n, e.fast, e.teacher, e.vocoder, e.pool)
            runner.capture()
        e.runners[n] = runner
