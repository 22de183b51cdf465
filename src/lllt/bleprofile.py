"""The lllt GATT profile (docs/wire-protocol.md §1.1): UUIDs, names and write sizes.

Shared by the host's ``ble://`` transport and the simulator's Bumble peripheral; it
imports nothing, so either side can use it without bleak or Bumble installed.
"""

from __future__ import annotations

#: the lllt service: one byte stream each way, framed exactly as on a UART
SERVICE_UUID = "4c4c4c54-0001-4c7e-9b2d-6c6c6c740001"
#: host -> device: write without response; chunks of at most ATT MTU - 3 bytes
RX_UUID = "4c4c4c54-0002-4c7e-9b2d-6c6c6c740001"
#: device -> host: notify; chunks of at most ATT MTU - 3 bytes
TX_UUID = "4c4c4c54-0003-4c7e-9b2d-6c6c6c740001"

#: Device Information service and the characteristics a cap fills in
DEVICE_INFORMATION_UUID = "0000180a-0000-1000-8000-00805f9b34fb"
MANUFACTURER_NAME_UUID = "00002a29-0000-1000-8000-00805f9b34fb"
MODEL_NUMBER_UUID = "00002a24-0000-1000-8000-00805f9b34fb"
SERIAL_NUMBER_UUID = "00002a25-0000-1000-8000-00805f9b34fb"
FIRMWARE_REVISION_UUID = "00002a26-0000-1000-8000-00805f9b34fb"
#: Battery service: Battery Level (percent, read and notify)
BATTERY_SERVICE_UUID = "0000180f-0000-1000-8000-00805f9b34fb"
BATTERY_LEVEL_UUID = "00002a19-0000-1000-8000-00805f9b34fb"

#: the GAP device name is this + the cap's serial
NAME_PREFIX = "lllt-"
#: the advertised local name: "lllt" + the serial's last 4 letters/digits (8 bytes, so
#: Flags + the 128-bit UUID + the name fit in 31 bytes of legacy advertising data)
ADVERTISED_NAME_PREFIX = "lllt"
#: advertising interval of the simulator (ms); a cap may advertise slower
ADVERTISING_INTERVAL_MS = 20

ATT_DEFAULT_MTU = 23
ATT_MAX_MTU = 247  # what lllt asks for: one LE data PDU of 251 bytes carries it whole
ATT_HEADER = 3  # opcode u8 + handle u16 in front of every write and notification


def advertised_name(serial: str) -> str:
    """The local name a cap advertises: ``lllt`` + the last 4 letters/digits of its serial."""
    tail = "".join(ch for ch in serial if ch.isalnum())[-4:]
    return (ADVERTISED_NAME_PREFIX + tail.upper())[:8]


def max_chunk(att_mtu: int) -> int:
    """Largest write-without-response or notification payload at ``att_mtu``."""
    return max(ATT_DEFAULT_MTU, att_mtu) - ATT_HEADER


def chunks(data: bytes, size: int) -> list[bytes]:
    """``data`` cut into pieces of at most ``size`` bytes (chunk boundaries mean nothing)."""
    if size <= 0:
        raise ValueError("chunk size must be positive")
    return [data[i : i + size] for i in range(0, len(data), size)]


__all__ = [
    "ADVERTISED_NAME_PREFIX",
    "ADVERTISING_INTERVAL_MS",
    "ATT_DEFAULT_MTU",
    "ATT_HEADER",
    "ATT_MAX_MTU",
    "BATTERY_LEVEL_UUID",
    "BATTERY_SERVICE_UUID",
    "DEVICE_INFORMATION_UUID",
    "FIRMWARE_REVISION_UUID",
    "MANUFACTURER_NAME_UUID",
    "MODEL_NUMBER_UUID",
    "NAME_PREFIX",
    "RX_UUID",
    "SERIAL_NUMBER_UUID",
    "SERVICE_UUID",
    "TX_UUID",
    "advertised_name",
    "chunks",
    "max_chunk",
]
