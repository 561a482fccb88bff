"""``sfbulk-emulator``: run a local Salesforce org for the tap, the target and any other client.

The org speaks OAuth, SOAP login, REST and Bulk API 1.0/2.0 on ``http://127.0.0.1:PORT``. Its
credentials are fixed demo values unless flags change them; they are printed at start so a
client can be configured by copy and paste (the org holds only demo data).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sfbulk.emulator.app import EmulatorSettings, EmulatorState
from sfbulk.emulator.server import run_in_thread, tune_gc

logger = logging.getLogger("sfbulk.emulator")

_DEFAULTS = EmulatorSettings()


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``sfbulk-emulator``."""
    parser = argparse.ArgumentParser(
        prog="sfbulk-emulator",
        description="Run a local Salesforce org (OAuth, REST, Bulk API 1.0 and 2.0) over SQLite.",
    )
    net = parser.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    net.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")

    data = parser.add_argument_group("data")
    data.add_argument("--db", metavar="PATH", help="SQLite file to keep the org in (else memory)")
    data.add_argument(
        "--seed",
        choices=("empty", "demo"),
        default="empty",
        help="start empty (standard objects, no records) or with the demo data set",
    )
    data.add_argument(
        "--records",
        type=int,
        default=100,
        metavar="N",
        help="records in all for --seed demo, split 20/40/25/15 over Account, Contact, "
        "Opportunity and Case (default 100)",
    )
    data.add_argument(
        "--import-sfdx",
        metavar="DIR",
        help="load a Salesforce DX project: its objects, fields and data plan",
    )
    data.add_argument("--plan", metavar="FILE", help="data plan of the sfdx project to load")
    data.add_argument(
        "--no-data", action="store_true", help="with --import-sfdx: metadata only, no records"
    )

    creds = parser.add_argument_group("credentials (documented demo defaults)")
    creds.add_argument("--username", default=_DEFAULTS.username)
    creds.add_argument("--password", default=_DEFAULTS.password)
    creds.add_argument(
        "--security-token",
        default=_DEFAULTS.security_token,
        help="appended to the password at login (default empty)",
    )
    creds.add_argument("--client-id", default=_DEFAULTS.client_id)
    creds.add_argument("--client-secret", default=_DEFAULTS.client_secret)
    creds.add_argument("--refresh-token", default=_DEFAULTS.refresh_token)
    creds.add_argument(
        "--jwt-cert",
        metavar="PATH",
        help="PEM certificate or public key that verifies JWT bearer assertions",
    )

    limits = parser.add_argument_group("sessions and limits")
    limits.add_argument(
        "--session-seconds",
        type=float,
        default=_DEFAULTS.session_seconds,
        help="session lifetime (default 7200)",
    )
    limits.add_argument(
        "--api-daily-limit",
        type=int,
        default=_DEFAULTS.api_daily_limit,
        help="DailyApiRequests Max (default 15000)",
    )
    limits.add_argument(
        "--bulk-batches-daily-limit",
        type=int,
        default=_DEFAULTS.bulk_batches_daily_limit,
        help="DailyBulkApiBatches Max (default 15000)",
    )
    limits.add_argument(
        "--result-rows-per-file",
        type=int,
        default=_DEFAULTS.result_rows_per_file,
        help="rows per Bulk 1.0 query result file / Bulk 2.0 default page",
    )
    limits.add_argument(
        "--processing-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="seconds each Bulk batch waits before it is processed",
    )
    limits.add_argument(
        "--workers", type=int, default=_DEFAULTS.workers, help="Bulk worker threads (default 4)"
    )

    faults = parser.add_argument_group("faults (same switches as POST /_emulator/faults)")
    for kind, label in (
        ("http-500", "HTTP 500"),
        ("http-503", "HTTP 503"),
        ("drop-connection", "a connection cut mid-body"),
        ("request-limit-exceeded", "403 REQUEST_LIMIT_EXCEEDED"),
    ):
        faults.add_argument(
            f"--fault-{kind}",
            type=int,
            metavar="N",
            help=f"answer the next N API calls with {label}",
        )
        faults.add_argument(
            f"--fault-{kind}-rate",
            type=float,
            metavar="SHARE",
            help=f"answer this share (0..1) of API calls with {label}",
        )
    faults.add_argument(
        "--fault-path", metavar="REGEX", help="limit the fault flags above to matching paths"
    )
    faults.add_argument(
        "--fault-expire-session-after",
        type=int,
        metavar="N",
        help="expire every session after N API calls",
    )
    faults.add_argument(
        "--fault-fail-batches", type=int, metavar="N", help="fail the next N Bulk batches"
    )
    faults.add_argument(
        "--fault-lock-error-share",
        type=float,
        metavar="SHARE",
        help="share of records of parallel batches sharing a parent failing UNABLE_TO_LOCK_ROW",
    )
    faults.add_argument(
        "--fault-never-finish", action="store_true", help="keep Bulk jobs InProgress for good"
    )
    faults.add_argument("--fault-seed", type=int, metavar="N", help="seed of fault randomness")

    parser.add_argument(
        "--log-level",
        default="warning",
        choices=("debug", "info", "warning", "error"),
        help="logging level (default warning)",
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> EmulatorSettings:
    """The emulator settings the flags describe."""
    jwt_certificate = None
    if args.jwt_cert:
        jwt_certificate = Path(args.jwt_cert).expanduser().read_text(encoding="utf-8")
    return EmulatorSettings(
        host=args.host,
        port=args.port,
        session_seconds=args.session_seconds,
        api_daily_limit=args.api_daily_limit,
        bulk_batches_daily_limit=args.bulk_batches_daily_limit,
        result_rows_per_file=args.result_rows_per_file,
        bulk2_page_rows=args.result_rows_per_file,
        processing_delay=args.processing_delay,
        workers=args.workers,
        username=args.username,
        password=args.password,
        security_token=args.security_token,
        client_id=args.client_id,
        client_secret=args.client_secret,
        refresh_token=args.refresh_token,
        jwt_certificate=jwt_certificate,
    )


def faults_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The ``POST /_emulator/faults`` body the fault flags describe."""
    spec: dict[str, Any] = {}
    for kind in ("http_500", "http_503", "drop_connection", "request_limit_exceeded"):
        count = getattr(args, f"fault_{kind}")
        rate = getattr(args, f"fault_{kind}_rate")
        if count is None and rate is None:
            continue
        rule: dict[str, Any] = {}
        if count is not None:
            rule["count"] = count
        if rate is not None:
            rule["rate"] = rate
        if args.fault_path:
            rule["path"] = args.fault_path
        spec[kind] = rule
    if args.fault_expire_session_after is not None:
        spec["expire_session_after"] = args.fault_expire_session_after
    if args.fault_fail_batches is not None:
        spec["fail_batches"] = args.fault_fail_batches
    if args.fault_lock_error_share is not None:
        spec["lock_error_share"] = args.fault_lock_error_share
    if args.fault_never_finish:
        spec["never_finish"] = True
    if args.fault_seed is not None:
        spec["seed"] = args.fault_seed
    return spec


def build_org(args: argparse.Namespace, settings: EmulatorSettings) -> Any:
    """Open (or create) the org and load what the flags ask for.

    With ``--db`` naming an existing file the records are already there: only metadata is
    re-read from an sfdx project, and no seed is added a second time.
    """
    from sfbulk.emulator.store import Org

    fresh = not args.db or not os.path.exists(args.db) or os.path.getsize(args.db) == 0
    org = Org(args.db, username=settings.username)
    if args.import_sfdx:
        from sfbulk.emulator.sfdx import import_sfdx

        import_sfdx(org, args.import_sfdx, plan=args.plan, load_data=fresh and not args.no_data)
    from sfbulk.emulator.seeds import seed_demo, seed_empty

    # The demo objects' external id fields live in the catalog, so they are added on every
    # start, also over an existing database.
    seed_empty(org)
    if args.seed == "demo":
        if fresh:
            seed_demo(org, args.records)
        else:
            logger.warning("%s already holds the org; the demo seed is not added again", args.db)
    return org


def _print_banner(url: str, settings: EmulatorSettings) -> None:
    lines = [
        f"listening on {url}",
        f"username: {settings.username}",
        f"password: {settings.password}",
        f"security token: {settings.security_token}",
        f"client id: {settings.client_id}",
        f"client secret: {settings.client_secret}",
        f"refresh token: {settings.refresh_token}",
        f"login url: {url}  (token endpoint {url}/services/oauth2/token)",
    ]
    print("\n".join(lines), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGINT or SIGTERM; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.plan and not args.import_sfdx:
        parser.error("--plan needs --import-sfdx")
    if args.no_data and not args.import_sfdx:
        parser.error("--no-data needs --import-sfdx")
    if args.records < 0:
        parser.error("--records must not be negative")
    try:
        settings = settings_from_args(args)
    except OSError as exc:
        parser.error(f"cannot read --jwt-cert: {exc}")
    spec = faults_from_args(args)

    def make_org() -> Any:
        return build_org(args, settings)

    try:
        org = make_org()
    except Exception as exc:
        print(f"sfbulk-emulator: cannot load the org: {exc}", file=sys.stderr, flush=True)
        return 1
    state = EmulatorState(org=org, settings=settings)
    if not args.db:
        # An in-memory org can be rebuilt from the same flags on POST /_emulator/reset.
        state.org_factory = make_org
    try:
        state.faults.configure(spec)
    except ValueError as exc:
        parser.error(str(exc))

    tune_gc(freeze=True)  # the org and every module are loaded: keep them out of collections
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            server = run_in_thread(state, args.host, args.port, log_level=args.log_level)
        except OSError as exc:
            print(
                f"sfbulk-emulator: cannot listen on {args.host}:{args.port}: {exc}",
                file=sys.stderr,
                flush=True,
            )
            state.close()
            return 1
        _print_banner(server.url, settings)
        while not stop.wait(0.5):
            if not server.running:
                print("sfbulk-emulator: the server stopped unexpectedly", file=sys.stderr)
                server.stop()
                return 1
        print("sfbulk-emulator: shutting down", flush=True)
        server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
