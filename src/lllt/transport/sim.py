"""``sim://PROFILE?speed=&seed=&faults=&ambient=``: a simulated cap in this process.

The simulator runs as a task on the same event loop as the client, and the two exchange
real wire-protocol bytes. Under lllt's virtual clock (``lllt.clock.VirtualClockLoop``)
they run in lockstep: ``speed=max`` races through a session as fast as the CPU allows,
``speed=N`` paces it at N× real time, and a seed gives the same bytes at every speed. On
an ordinary asyncio loop only ``speed=1`` makes sense, and anything else is refused with
advice rather than silently running in real time.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, ClassVar

from lllt import clock
from lllt.errors import InvalidInput, URLError
from lllt.transport import DeviceURL
from lllt.transport.base import Transport


def parse_speed(text: str | None, url: str = "") -> float | None:
    """``max`` -> None (as fast as possible); a positive number -> that many × real time."""
    value = (text or "1").strip().lower()
    if value in ("max", "inf"):
        return None
    try:
        speed = float(value.rstrip("x"))
    except ValueError:
        speed = math.nan
    if not (speed > 0 and math.isfinite(speed)):
        raise URLError(
            f"speed={text!r} in {url!r} is not a speed",
            advice="Use speed=max (as fast as possible) or a positive factor such as speed=1 "
            "(real time) or speed=50.",
        )
    return speed


class SimTransport(Transport):
    """``sim://PROFILE``: the simulated cap (``lllt_sim``) as a task on this event loop,
    exchanging real wire bytes; the URL options are in ``OPTIONS``."""

    OPTIONS: ClassVar[dict[str, str]] = {
        "speed": "max or N x real time, default 1",
        "seed": "integer, default 0",
        "faults": "e.g. overtemp@300s,corrupt:0.01",
        "ambient": "ambient temperature in degC, default 25",
        "key": "device key in hex (default: the development key)",
        "state": "file keeping the simulated device's records between runs",
        "button": "held: the cap's button is held (it takes a new key over a wired link)",
    }
    FORM: ClassVar[str] = "sim://PROFILE[?speed=max|N&seed=N&faults=SPEC&ambient=C]"

    def __init__(self, url: DeviceURL) -> None:
        super().__init__(url)
        self.profile = url.target.strip("/")
        if not self.profile:
            raise URLError(f"{url.url!r} names no profile", advice=f"Expected {self.FORM}.")
        self.speed = parse_speed(url.option("speed"), url.url)
        seed = url.option("seed", "0") or ""
        try:
            self.seed = int(seed)
        except ValueError:
            raise URLError(f"seed={seed!r} in {url.url!r} is not an integer") from None
        ambient = url.option("ambient", "25") or ""
        try:
            self.ambient = float(ambient)
        except ValueError:
            self.ambient = math.nan
        if not -20.0 <= self.ambient <= 50.0:
            raise URLError(
                f"ambient={ambient!r} in {url.url!r} is not a temperature between -20 and 50 °C"
            )
        key = url.option("key")
        try:
            self.key = bytes.fromhex(key) if key else None
        except ValueError:
            raise URLError(f"key in {url.url!r} is not hexadecimal") from None
        button = url.option("button", "released")
        if button not in ("held", "released"):
            raise URLError(f"button={button!r} in {url.url!r} is not held or released")
        self.button_held = button == "held"
        self.faults = url.option("faults", "") or ""
        self.state_file = url.option("state")
        self.device: Any = None
        self._task: asyncio.Task[None] | None = None

    async def _open(self) -> None:
        from lllt_sim.faults import parse_faults

        loop = asyncio.get_running_loop()
        virtual = clock.is_virtual(loop)
        if virtual:
            loop.speed = self.speed  # type: ignore[attr-defined]
        elif self.speed != 1.0:
            raise InvalidInput(
                f"{self.url.url}: speed={self.url.option('speed')} needs lllt's virtual clock",
                advice="Run the coroutine with lllt.clock.run(main(), virtual=True), use "
                "lllt.SyncCap, or use speed=1 on an ordinary event loop.",
            )
        try:
            faults = parse_faults(self.faults)
        except ValueError as err:
            raise URLError(f"faults in {self.url.url!r}: {err}") from None
        device = self._make_device(faults, clock_rate=0.0 if virtual else 1.0)
        device.attach(self._received)
        self.device = device
        self._task = loop.create_task(device.run(), name=f"{self.url.scheme}:{self.profile}")
        self._task.add_done_callback(self._device_stopped)

    def _make_device(self, faults: Any, *, clock_rate: float) -> Any:
        """The device behind this URL; a bad profile, fault or state file is a URLError."""
        from lllt_sim.device import SimDevice
        from lllt_sim.profiles import ProfileError

        try:
            return SimDevice(
                self.profile,
                seed=self.seed,
                faults=faults,
                ambient_c=self.ambient,
                key=self.key,
                clock_rate=clock_rate,
                state_file=self.state_file,
                button_held=self.button_held,
            )
        except ProfileError:
            raise self._unknown_profile() from None
        except ValueError as err:  # a fault naming a zone or channel it lacks, a bad state file
            raise URLError(f"{self.url.url!r}: {err}") from None

    def _unknown_profile(self) -> URLError:
        from lllt_sim.profiles import profile_names

        return URLError(
            f"unknown simulator profile {self.profile!r} in {self.url.url!r}",
            advice="Known profiles: " + ", ".join(profile_names()) + ".",
        )

    def _device_stopped(self, task: asyncio.Task[None]) -> None:
        # a simulator that dies is a device that vanished: the client sees a lost link
        if self.is_open and not task.cancelled():
            self._lost(task.exception() or ConnectionError("the simulated device stopped"))

    def _write(self, data: bytes) -> None:
        self.device.feed(data)

    async def reconnect(self) -> None:
        """Attach again to the same simulated device, which keeps running (opened first if it
        never was); the device simulates its own link faults, such as ``link_drop``."""
        if self.device is None:
            await self.open()
        if self.link_faults is not None:
            self.link_faults.reset()
        self.is_open = True
        self._lost_reason = None

    async def _close(self) -> None:
        if self.device is not None:
            self.device.close()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 1.0)
            except (asyncio.CancelledError, TimeoutError):
                self._task.cancel()
            self._task = None
