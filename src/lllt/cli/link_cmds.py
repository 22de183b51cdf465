"""``lllt link proxy``: put the link fault layer between a host and a device."""

from __future__ import annotations

from typing import Annotated

import typer

from lllt.cli._app import app, epilog, handle_errors

link_app = typer.Typer(
    help="Link tools: a proxy that drops, duplicates, delays, corrupts or cuts frames.",
    no_args_is_help=True,
)
app.add_typer(link_app, name="link")


@link_app.command(
    "proxy",
    epilog=epilog(
        "lllt link proxy --to socket://127.0.0.1:7878 --faults 'drop,to=device,type=ABORT,n=2'",
        "lllt link proxy --to serial:///dev/ttyACM0 --faults 'corrupt,p=0.01'",
        codes="Exit codes: 0 stopped with Ctrl-C; 2 invalid input; 3 device or link problem.",
    ),
)
@handle_errors
def proxy(
    to: Annotated[
        str,
        typer.Option(
            "--to", metavar="URL", help="Upstream device: socket://HOST:PORT or serial:///dev/PATH."
        ),
    ],
    faults: Annotated[
        str,
        typer.Option(
            "--faults",
            metavar="RULES",
            help="Link fault rules, e.g. 'drop,to=host,type=STARTED,n=1;corrupt,p=0.01'.",
        ),
    ],
    listen: Annotated[
        str,
        typer.Option("--listen", metavar="HOST:PORT", help="Where hosts connect (port 0: any)."),
    ] = "127.0.0.1:0",
    seed: Annotated[int, typer.Option(help="Seed of the rules' random draws.")] = 0,
) -> None:
    """Relay a device through link faults until Ctrl-C (prints where on one line first).

    Hosts connect with socket://HOST:PORT; each connection opens the upstream afresh. Rule
    counts and times run from the start of the proxy. The rules are described in
    docs/link-faults.md.
    """
    from lllt import clock
    from lllt.cli.sim_cmds import parse_host_port
    from lllt.linkfault import LinkFaults

    if seed < 0:
        from lllt.errors import InvalidInput

        raise InvalidInput(f"--seed {seed} must not be negative")
    rules = LinkFaults.parse(faults, seed=seed)
    host, port = parse_host_port(listen, "--listen")
    clock.run(_serve(to, rules, host, port))


async def _serve(to: str, rules: object, host: str, port: int) -> None:
    import asyncio
    import signal

    from lllt.linkproxy import LinkProxy, open_upstream

    # fail early on an upstream URL that cannot be used at all
    if not (to.startswith("socket://") or to.startswith("serial://")):
        await open_upstream(to, lambda d: None, lambda: None)
    proxy = LinkProxy(to, rules)  # type: ignore[arg-type]
    where = await proxy.start(host, port)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"proxy at socket://{where[0]}:{where[1]} to {to}; Ctrl-C to stop", flush=True)
    try:
        await stop.wait()
    finally:
        proxy.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
