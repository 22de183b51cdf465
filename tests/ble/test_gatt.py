"""The lllt GATT profile end to end: the host's BLE transport (bleak on the Bumble backend)
against the simulator's Bumble peripheral, at ATT MTU 23 and 247."""

from __future__ import annotations

from typing import Any

import pytest

from lllt import bleprofile as P
from lllt import clock
from lllt import wire as W
from lllt.device import Cap
from lllt.errors import URLError
from lllt.transport import make_transport


def run(url: str, body: Any) -> Any:
    async def main() -> Any:
        async with Cap.connect(url) as cap:
            return await body(cap)

    return clock.run(main(), virtual=True, speed=None)


def big_plan(cap: Cap, steps: int = 16) -> W.UploadPlan:
    red = [c.id for c in cap.info.channels if c.wavelength_nm == 655]
    step = W.PlanStep(
        kind=W.StepKind.DURATION,
        duration_ms=500,
        ramp_ms=0,
        pulse_hz=0.0,
        duty_pct=100.0,
        setpoints=tuple(W.ChannelSetpoint(c, 2.0) for c in red),
    )
    return W.UploadPlan(Cap.new_plan_id(), W.LinkPolicy.FINISH, 1000, (step,) * steps)


@pytest.mark.parametrize("mtu", [23, 247])
def test_writes_are_cut_to_the_negotiated_size_and_frames_span_notifications(mtu: int) -> None:
    async def body(cap: Cap) -> dict[str, Any]:
        plan = big_plan(cap)
        payload = len(plan.payload())
        assert payload > 244  # one upload needs several writes even at MTU 247
        await cap.upload(plan)
        status = await cap.status()
        assert status.state == W.State.READY and status.plan_id == plan.plan_id
        t: Any = cap.transport
        return {"att": t.att_mtu, "stats": t.setup.peripheral.stats, "host_max": t.max_write}

    out = run(f"blesim://reference-cap?speed=max&mtu={mtu}", body)
    st = out["stats"]
    assert out["att"] == mtu
    sizes = [n for m, n in st.write_sizes]
    assert all(m == mtu for m, _ in st.write_sizes)
    # cut to the maximum: the upload filled whole writes of MTU - 3, and never more
    assert max(sizes) == mtu - 3 == out["host_max"]
    assert st.oversize_writes == 0
    assert st.max_notification <= mtu - 3
    # HELLO_INFO alone is longer than one notification at MTU 23: frames span them
    if mtu == 23:
        assert st.notifications > 10


def test_device_information_battery_and_advertising() -> None:
    async def body(cap: Cap) -> dict[str, Any]:
        t: Any = cap.transport
        client = t._client
        read = {
            u: bytes(await client.read_gatt_char(u))
            for u in (P.SERIAL_NUMBER_UUID, P.MODEL_NUMBER_UUID, P.BATTERY_LEVEL_UUID)
        }
        uuids = {s.uuid for s in client.services}
        return {"read": read, "uuids": uuids, "name": t.target, "serial": cap.info.serial}

    out = run("blesim://reference-cap?speed=max", body)
    assert out["read"][P.SERIAL_NUMBER_UUID].decode() == out["serial"]
    assert out["read"][P.MODEL_NUMBER_UUID].decode() == "lllt reference cap"
    assert 0 <= out["read"][P.BATTERY_LEVEL_UUID][0] <= 100
    assert {P.SERVICE_UUID, P.DEVICE_INFORMATION_UUID, P.BATTERY_SERVICE_UUID} <= out["uuids"]
    # found by scanning for the service UUID, under the advertised name
    assert out["name"] == P.advertised_name(out["serial"]) == "lllt0001"


def test_advertising_data_fits_legacy_advertising() -> None:
    from lllt_sim.ble import advertising_data

    data = advertising_data(P.advertised_name("SIM-REF-0001"))
    assert len(data) <= 31
    assert bytes.fromhex(P.SERVICE_UUID.replace("-", ""))[::-1] in data
    assert b"lllt0001" in data


@pytest.mark.parametrize(
    "url",
    [
        "ble://",
        "ble://lllt0001?timeout=abc",
        "ble://lllt0001?mtu=9",
        "ble://lllt0001?colour=red",
        "blesim://reference-cap?mtu=9999",
        "blesim://reference-cap?speed=fast",
    ],
)
def test_bad_ble_urls_say_what_is_wrong(url: str) -> None:
    with pytest.raises(URLError) as err:
        make_transport(url)
    assert err.value.exit_code == 2
    assert str(err.value)
