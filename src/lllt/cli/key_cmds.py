"""``lllt pair URL`` and ``lllt keys``: device keys, provisioned over the wired link only.

``lllt pair serial:///dev/ttyACM0`` makes a new random 32-byte key, gives it to the cap
(which takes it only over USB, and only when it is fresh or its button is held) and
stores it in ``keys.toml`` in the user config directory (owner-only permissions).
``lllt pair URL --key HEX`` stores a key the owner already has, after the cap has shown
(over any link, BLE included) that it holds the same key. ``lllt keys`` lists the stored
keys by fingerprint; ``lllt keys forget SERIAL`` removes one.
"""

from __future__ import annotations

import typer

from lllt.cli._app import DEVICE_HELP, app, epilog, handle_errors
from lllt.errors import DeviceError, InvalidInput

keys_app = typer.Typer(
    name="keys",
    help="List and forget the stored device keys.",
    invoke_without_command=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(keys_app, name="keys")

_WIRELESS = ("ble", "blesim")


@app.command(
    epilog=epilog(
        "lllt pair serial:///dev/ttyACM0",
        "lllt pair ble://lllt0001 --key 00112233...",
    )
)
@handle_errors
def pair(
    device: str = typer.Argument(..., metavar="URL", help=DEVICE_HELP),
    key: str | None = typer.Option(
        None, metavar="HEX", help="Store this key (64 hex digits) instead of making one."
    ),
    timeout: float = typer.Option(10.0, metavar="SECONDS", help="Seconds to wait for the cap."),
) -> None:
    """Give a cap a new key over its USB cable (or store one it has) for signing sessions."""
    import secrets

    from lllt import keys
    from lllt.transport import parse_url

    url = parse_url(device)
    given: bytes | None = None
    if key is not None:
        try:
            given = bytes.fromhex(key.strip())
        except ValueError:
            given = b""
        if len(given) != keys.KEY_SIZE:
            raise InvalidInput("--key is not 64 hexadecimal digits (a 32-byte key)")
    elif url.scheme in _WIRELESS:
        raise InvalidInput(
            "keys are provisioned over the cap's USB cable only, never over Bluetooth",
            advice="Connect the cap with its cable and run `lllt pair serial:///dev/ttyACM0` "
            "(`lllt devices` lists the ports); `lllt pair URL --key HEX` stores a key you "
            "already have.",
        )
    new = given if given is not None else secrets.token_bytes(keys.KEY_SIZE)
    serial = _run(device, new, provision=given is None, timeout=timeout)
    where = keys.store(serial, new)
    verb = "stored the key of" if given is not None else "paired"
    print(f"{verb} {serial} (key {keys.fingerprint(new)}); kept in {where}")


def _run(device: str, key: bytes, *, provision: bool, timeout: float) -> str:
    from lllt import wire as W
    from lllt.cli.device_cmds import _bounded, run_on_device_loop
    from lllt.device import Cap
    from lllt.errors import Rejected

    async def main() -> str:
        cap = await Cap.connect(device, key=key)  # signs with the new key once it is given
        try:
            serial = cap.info.serial
            if provision:
                try:
                    await cap.provision_key(key)
                except Rejected as err:
                    code = err.code
                    if code == W.NackCode.WIRED_ONLY:
                        raise DeviceError(
                            f"{serial} takes a new key over its USB cable only",
                            advice="Connect it with the cable and pair over serial://.",
                        ) from None
                    if code == W.NackCode.BAD_STATE:
                        raise DeviceError(
                            f"{serial} already has a key and is not in pairing mode",
                            advice="Hold the cap's button while you run `lllt pair` (and not "
                            "during a session).",
                        ) from None
                    if code == W.NackCode.UNKNOWN_TYPE:
                        raise DeviceError(f"{serial} does not take new keys from lllt") from None
                    raise
                await cap.handshake()  # a new conversation under the new key
            # the cap proves it holds the key: a signed read it checks
            await cap.request(W.GetStatus(), sign=True)
            return serial
        finally:
            await cap.close()

    try:
        return run_on_device_loop(device, lambda: _bounded(main(), timeout))  # type: ignore[no-any-return]
    except Rejected as err:
        if err.code == W.NackCode.AUTH_FAILED:
            raise DeviceError(
                "the cap does not hold this key",
                advice="Check the key; `lllt pair serial://...` over the cable makes a new one.",
            ) from None
        raise


@keys_app.callback()
@handle_errors
def keys_list(ctx: typer.Context) -> None:
    """List the stored keys (serial and fingerprint, never the key)."""
    if ctx.invoked_subcommand is not None:
        return
    from lllt import keys

    stored = keys.load()
    where = keys.path()
    if not stored:
        print(f"no keys stored ({where})")
        return
    print(f"keys in {where}:")
    for serial in sorted(stored):
        print(f"  {serial:<24} {keys.fingerprint(stored[serial])}")


@keys_app.command("forget", epilog=epilog("lllt keys forget SIM-REF-0001"))
@handle_errors
def keys_forget(serial: str = typer.Argument(..., metavar="SERIAL")) -> None:
    """Remove the stored key of one cap."""
    from lllt import keys

    if not keys.forget(serial):
        raise InvalidInput(
            f"no key is stored for {serial!r}", advice="`lllt keys` lists the stored keys."
        )
    print(f"forgot the key of {serial}")
