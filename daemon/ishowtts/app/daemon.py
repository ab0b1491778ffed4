"""The daemon: wires connectors → pipeline → scheduler → synth worker → player, one asyncio loop.

The composition root: it builds the parts, connects their callbacks and runs start-up, the run
loop and shutdown in order; each job it wires is a module of its own (README, "Layout").
Data flows one way. Control (skip, pause, reload, stop) comes from signals and the control API
and acts on the parts directly; every received event ends in one terminal ledger line.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from typing import Any

import structlog

from .. import engines, logs
from ..audio.listener import Listener
from ..audio.player import Player
from ..config import Config
from ..connectors import ConnectorState
from ..control.audio_fanout import AudioFanout
from ..control.feed import EventFeed
from ..control.health import Health
from ..control.live_view import LiveView
from ..control.metrics import Metrics
from ..control.status import snapshot
from ..control.timeline import Timeline
from ..engines import Engine
from ..errors import EXIT_CONFIG, EXIT_FAILED, EXIT_RESTART
from ..events import ChatEvent, Retraction, Utterance
from ..pipeline import statefile
from ..pipeline.dictionary_file import FILE_NAME as DICTIONARY_FILE
from ..pipeline.dictionary_file import Pronunciation
from ..pipeline.ingest import Pipeline
from ..pipeline.mutes import FILE_NAME as MUTES_FILE
from ..pipeline.mutes import MuteList, default_path
from ..pipeline.viewer_voices import FILE_NAME as VOICES_FILE
from ..queue.airtime import Airtime
from ..queue.ledger import Ledger, Terminal
from ..queue.paidloss import PaidLoss
from ..queue.scheduler import Scheduler
from ..synth.responses import Responses
from ..synth.voices import voices_from
from ..synth.worker import SynthWorker
from . import hangup, pending, startup
from . import health_checks as checks
from .connector_set import ConnectorSet
from .controls import OperatorControls
from .reload import ReloadResult
from .reloader import Reloader
from .shutdown import drain
from .startup import StartupCancelled

log = structlog.get_logger("ishowtts")

# --until-idle gives up (status 1) once no sound output has played for this long: a batch run
# on a machine without a sound server must end, not wait for one. Paid lines are saved.
NO_OUTPUT_LIMIT_S = 20.0


class Daemon(OperatorControls):
    def __init__(
        self,
        config: Config,
        *,
        until_idle: bool = False,
        engine_factory: Callable[[], Engine] | None = None,
        shutdown_grace_s: float = 15.0,
    ) -> None:
        self.config = config
        self.until_idle = until_idle
        self.shutdown_grace_s = shutdown_grace_s
        self.started_at = time.monotonic()
        self.exit_code = 0
        self.ready = asyncio.Event()
        self.stopping = asyncio.Event()  # set when shutdown begins: sd_notify, /healthz
        self._stop = asyncio.Event()
        # Told when a reload begins (True) and ends (False): sd_notify RELOADING=1 / READY=1.
        self.on_reload: Callable[[bool], None] | None = None
        # Told the new config and API token when a reload is applied (the API takes the token).
        self.on_config: list[Callable[[Config, str | None], None]] = []

        # The data path: connectors → pipeline → scheduler → synth worker → player → ledger.
        self.ledger = Ledger()
        self.health = Health()
        mute_file = config.filters.mute_file
        # Read once run() holds the file's lock: another daemon may be using it.
        self.mutes = MuteList(
            config.resolve(mute_file) if mute_file else default_path(config.path), load=False
        )
        self.scheduler = Scheduler(config.queue, self._on_queue_terminal)
        # The viewers' voices, like the mutes: this config's own file, read under its lock.
        voices = config.viewer_voices.file
        self.voices_file = statefile.setting(
            voices, config.base_dir, statefile.keyed(VOICES_FILE, config.path)
        )
        self.pipeline = Pipeline(
            config,
            self.ledger,
            self.scheduler,
            self.mutes,
            moderation=self,  # moderators' chat commands drive the operator's controls
            pronunciation=Pronunciation(
                statefile.setting(config.dictionary.file, config.base_dir, DICTIONARY_FILE),
                config.dictionary.starter,
            ),
        )
        # What is said next and when (budget, backlog, combined lines, the turn-taking gate).
        self.airtime = Airtime(
            config.airtime, config.queue, self.scheduler, self.ledger, self.pipeline
        )
        self.engine_factory = engine_factory or (
            lambda: engines.build(config.engine.type, config.engine.options)
        )
        fallback = config.engine.fallback
        self.worker = SynthWorker(
            self.engine_factory,
            voices_from(config),
            self.airtime,
            self.ledger,
            config.player.lookahead_s,
            fallback_factory=(lambda: engines.build(fallback)) if fallback else None,
            passthrough=(StartupCancelled,),
            failover=config.failover,
            primary_name=config.engine.type,
            fallback_name=fallback or "none",
            # An engine that takes seconds to start (F5) warms behind the fallback.
            behind_fallback=engine_factory is None
            and getattr(engines.engine_class(config.engine.type), "slow_start", False),
        )
        self.worker.on_fatal = self._device_lost
        self.worker.on_config_error = self._config_error
        self.player: Player | None = None  # built at start-up, at the engine's sample rate
        # The worker's sink: the player, but speech requests' audio back to their callers.
        self.responses = Responses()
        # Waits for the streamer to finish speaking before a line starts (listen.device).
        self.listener = Listener(config.listen)
        self.listener.on_hold = self._listen_hold
        self.pending_file = pending.resolve(config.queue.pending_file, config.path)
        self.restored: pending.Restored | None = None  # paid lines read back at start
        self._state_locks = statefile.Locks()
        self._claimed = False
        self.paid_lost = PaidLoss()
        # handle() looked up per item: a probe may wrap it before start (tools/bench_daemon.py).
        self.intake = ConnectorSet(config, self.health, lambda item: self.handle(item))
        self.connectors = self.intake.connectors

        # What watches it: the console's live view (decisions and playback as they happen,
        # recent history), the metrics, the health checks.
        self.feed = EventFeed()
        self.timeline = Timeline()
        self.metrics = Metrics(self)  # after the parts it reads (it reads them at once)
        self.live = LiveView(self.feed, self.timeline, self.metrics)
        self.ttfa = self.live.ttfa
        self.worker.on_stats = self.live.on_stats
        self.ledger.listeners.append(self.live.on_ledger)
        self.ledger.listeners.append(checks.EngineFailures(self.health))
        self.ledger.listeners.append(self.responses.on_ledger)
        self.health.add_check("queue", checks.queue_check(self.scheduler, self.paid_lost))
        self.health.add_check("log", logs.problem)
        self.stall = checks.StallGuard(self.worker)  # ticked by the run loop; the watchdog's too
        self.health.add_check("engine", checks.engine_check(self.worker, self.stall))
        self.health.add_check(
            "player", checks.player_check(lambda: self.player, lambda: self.config)
        )
        # The voice for browser sources (/overlay?audio=1): the player's blocks, fanned out.
        self.audio_fanout = AudioFanout(config.api.max_audio_listeners)
        self.on_config.append(self._audio_configured)
        self.health.add_check("listen", self.listener.problem)
        self.reloader = Reloader(self)

    # -- plumbing between the parts ------------------------------------------------------------

    def _on_queue_terminal(self, utt: Utterance, state: Terminal, fields: dict[str, Any]) -> None:
        if fields.get("rule") == "paid_overflow":
            self.paid_lost.record(utt, self.scheduler.paid)
        if fields.get("rule") == "shutdown" and utt.event.is_paid and self.pending_file:
            return  # stays open: shutdown saves it for the next start
        self.ledger.close(utt.id, state, **fields)

    def _device_lost(self, reason: str) -> None:
        """The synth worker lost the device for good (a CUDA fault poisons the process): exit
        75 so that a fresh process gets it back (the units force a restart on it). Paid lines
        are saved for it."""
        if self.exit_code == EXIT_RESTART:
            return
        log.error("restarting", reason=reason, exit_code=EXIT_RESTART)
        self.exit_code = EXIT_RESTART
        self.request_stop()

    def _config_error(self, exc: BaseException) -> None:
        """The primary, built behind the fallback, found the config wrong (a bad voice): stop,
        as a start that loaded it first would have (exit 2: a restart cannot fix it)."""
        log.error("config_error", error=str(exc)[:500], exit_code=EXIT_CONFIG)
        self.exit_code = EXIT_CONFIG
        self.request_stop()

    def _audio_configured(self, config: Config, token: str | None) -> None:
        self.audio_fanout.max_listeners = config.api.max_audio_listeners

    def _listen_hold(self, on: bool) -> None:
        """The streamer's turn: no line is taken from the queue while it lasts."""
        (self.airtime.hold if on else self.airtime.release)("listen")

    def _on_started(self, utt: Utterance, at: float) -> None:
        self.airtime.started(utt, at)
        self.live.started(utt, at)

    def _on_done(self, utt: Utterance, played: bool) -> None:
        self.airtime.finished(utt, time.monotonic(), played)
        self.live.done(utt, played)
        if played:
            foreign = {"read_by": "fallback", "language": utt.language} if utt.by_fallback else {}
            self.ledger.close(utt.id, Terminal.SPOKEN, text=utt.text, voice=utt.voice, **foreign)
        else:
            self.audio_fanout.ended(utt)
            self.ledger.close(utt.id, Terminal.REMOVED, rule="skip")

    def handle(self, item: ChatEvent | Retraction) -> None:
        """One item from a connector. Never raises: chat content must not kill the daemon."""
        try:
            if isinstance(item, Retraction):
                self.retract(item)
            else:
                self.pipeline.ingest(item)
        except Exception as exc:  # the pipeline closes its own failures; this is a last guard
            log.exception("handle_failed", error=repr(exc))
            if isinstance(item, ChatEvent):
                self.ledger.close(item.id, Terminal.FAILED, rule="pipeline", error=repr(exc))

    def retract(self, r: Retraction) -> int:
        n = self.pipeline.retract(r)
        # Also what is being made or played right now.
        for utt in {self.worker.current, self.player.now_playing if self.player else None}:
            if utt is not None and r.matches(utt.event):
                if self.player is not None:
                    self.player.cancel(utt.id)
                if self.ledger.close(utt.id, Terminal.REMOVED, rule=r.reason):
                    n += 1
        return n

    # -- control (signals, API; the operator's actions are in controls.py) ----------------------

    async def reload(self) -> ReloadResult:
        """Re-read the config file and apply it whole, or nothing of it (see reloader.py)."""
        return await self.reloader.reload()

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        """SIGHUP (deferred during start-up: see reloader.py)."""
        self.reloader.request()

    def status(self) -> dict[str, Any]:
        return snapshot(self)

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self, progress: Callable[[str], None] | None = None) -> None:
        step = startup.steps(progress, self._stop)
        step(f"loading engine {self.config.engine.type}")
        took = await self.worker.load(step)
        # player.device "none" (no sound card) gets an output paced like one, playing nowhere.
        self.player = Player(
            self.config.player,
            self.worker.sample_rate,
            self._on_started,
            self._on_done,
            asyncio.get_running_loop(),
        )
        self.audio_fanout.attach(self.player)
        await startup.until_audible(self.player)
        await self.listener.start(self.player.mixer)
        self.responses.player = self.player
        self.worker.sink = self.responses
        self.worker.start()
        self.restored = pending.restore(self.pending_file, self.handle, self.ledger)
        await self.intake.start_all()
        self.ready.set()
        self.reloader.ready()
        startup.log_ready(self.config, self.worker, self.connectors, self.started_at, took)

    def idle(self) -> bool:
        finished = (ConnectorState.FINISHED, ConnectorState.FAILED, ConnectorState.STOPPED)
        return (
            all(c.state in finished for c in self.connectors if c.platform != "http")
            and len(self.scheduler) == 0
            and self.worker.current is None
            and self.player is not None
            and self.player.now_playing is None
            and self.player.queued_seconds == 0
            and not self.ledger.open
        )

    def claim_state(self) -> None:
        """Lock this daemon's state files, then read the mute list; raises
        ``statefile.StateInUse`` (nothing read, nothing will be written) when another running
        daemon holds one."""
        if self._claimed:
            return
        files = (
            ("filters.mute_file", self.mutes.path),
            ("queue.pending_file", self.pending_file),
            ("viewer_voices.file", self.voices_file),
        )
        statefile.distinct(
            (*files, ("dictionary.file", self.pipeline.pronunciation.path))
        )  # one file for two would be overwritten by each in turn
        try:
            for key, path in files:
                if path is not None:
                    self._state_locks.claim(path, key)
        except statefile.StateInUse:
            self._state_locks.release()
            self.mutes.path = self.pending_file = self.voices_file = None
            raise
        self._claimed = True
        for key, path, old in (
            ("filters.mute_file", self.mutes.path, MUTES_FILE),
            ("queue.pending_file", self.pending_file, pending.FILENAME),
        ):
            if path is not None and path.name == statefile.keyed(old, self.config.path):
                statefile.earlier(path, old, key)  # the default name was `old` until 2026-12-04
        self.mutes.load()
        self.pipeline.viewer_voices.attach(self.voices_file)

    async def run(self, progress: Callable[[str], None] | None = None) -> int:
        self.claim_state()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        if hangup.take():  # one came before the loop handled them: reload once ready
            self.request_reload()
        try:
            # A stop during start-up ends it (at the engine's next step, or after the grace).
            await startup.unless_stopped(
                self.start(progress), self._stop, self.shutdown_grace_s, lambda: self.worker.state
            )
            await self._wait()
        except StartupCancelled as exc:
            log.info("startup_cancelled", at=str(exc))
        finally:
            await self.shutdown()
        return self.exit_code

    async def _wait(self) -> None:
        worker = self.worker._task
        while not self._stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=0.1)
            self.timeline.depth(len(self.scheduler))
            self.stall()
            self.pipeline.tick()
            if worker is not None and worker.done():
                log.error("synth_worker_died", error=repr(worker.exception()))
                self.exit_code = 1
                return
            if self.until_idle and self._batch_over():
                return

    def _batch_over(self) -> bool:
        """--until-idle: whether to end now (the exit status set): the replay read and spoken,
        or no sound output for too long."""
        down = self.player.down_for() if self.player else 0.0
        if down > NO_OUTPUT_LIMIT_S:
            error = str(self.player.open_error if self.player else None)
            log.error("no_output_gave_up", waited_s=round(down, 1), error=error)
            self.exit_code = EXIT_FAILED  # the paid lines still queued are saved as at any stop
            return True
        if not self.idle():
            return False
        failed = [c.name for c in self.connectors if c.state is ConnectorState.FAILED]
        if failed:  # a batch run whose source failed must not look like a success
            log.error("idle", reason="a connector failed", failed=failed)
            self.exit_code = EXIT_FAILED
        else:
            log.info("idle", reason="every connector finished and the queue is empty")
        return True

    async def shutdown(self) -> None:
        """Stop intake, let the utterance being heard finish (bounded), account for the rest:
        what is queued or made ahead but not started is not played."""
        self.stopping.set()
        log.info("stopping", queued=len(self.scheduler))
        await self.listener.stop()  # a held line must be able to finish
        self.pipeline.flush()
        await drain(
            intake=self.intake,
            scheduler=self.scheduler,
            worker=self.worker,
            player=self.player,
            ledger=self.ledger,
            pending_file=self.pending_file,
            restored=self.restored,
            grace_s=self.shutdown_grace_s,
        )
        self._state_locks.release()
