"""``fw://PROFILE?speed=&seed=&faults=&ambient=&state=``: the C firmware core in this process.

The firmware of ``firmware/`` built as a shared library (``liblllt_fw.so``, built on
demand in a checkout by ``make -C firmware lib``) runs here as a device, with the
simulator's plant model feeding its sensors (``lllt_sim.fwdevice``). It takes the same
options as ``sim://`` (profile, speed, seed, faults, ambient, key, state, button), so a
test or the fault explorer can swap one scheme for the other and compare: the same seed
gives the same physics, and the control is the firmware's. Under lllt's virtual clock the
firmware is stepped in lockstep with the host (``speed=max`` races through a session).
"""

from __future__ import annotations

from typing import Any, ClassVar

from lllt.errors import ConnectionFailed, URLError
from lllt.transport.sim import SimTransport


class FwTransport(SimTransport):
    """``fw://PROFILE``: the firmware library as an in-process device, with the simulator's
    plant feeding its sensors; it takes the options of ``sim://``. Opening raises
    ConnectionFailed when the library is not usable (not built, say)."""

    FORM: ClassVar[str] = "fw://PROFILE[?speed=max|N&seed=N&faults=SPEC&ambient=C&state=FILE]"
    #: the link the firmware sees: "wired" (USB, may provision keys) or "ble"
    link_kind: str = "wired"

    def _make_device(self, faults: Any, *, clock_rate: float) -> Any:
        from lllt_sim.fwdevice import FirmwareDevice, FirmwareStateError
        from lllt_sim.fwlib import FirmwareLibraryError
        from lllt_sim.profiles import ProfileError

        try:
            return FirmwareDevice(
                self.profile,
                seed=self.seed,
                faults=faults,
                ambient_c=self.ambient,
                key=self.key,
                clock_rate=clock_rate,
                state_file=self.state_file,
                button_held=self.button_held,
                link=self.link_kind,
            )
        except ProfileError:
            raise self._unknown_profile() from None
        except FirmwareLibraryError as err:
            raise ConnectionFailed(
                f"{self.url.url}: the firmware library is not usable: {err}",
                advice="Build it with `make -C firmware lib` in an lllt checkout, or set "
                "LLLT_FWLIB to a built liblllt_fw.so.",
            ) from None
        except (FirmwareStateError, ValueError) as err:
            raise URLError(f"{self.url.url!r}: {err}") from None
