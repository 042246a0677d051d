"""Serve PRM step scores and reranking over HTTP (FastAPI + uvicorn, or Ray Serve with N replicas).

    e2h serve --config configs/serve.yaml
    e2h serve --config configs/serve.yaml --ray --replicas 2 serve.port=8001

Binds serve.host (127.0.0.1 by default). API docs at http://HOST:PORT/docs; see the README, "The reranking service".
"""

from __future__ import annotations

import argparse
import logging

from e2h.config import RunConfig, ServeSection, add_config_arguments, config_from_args
from e2h.layout import RunLayout
from e2h.serve.ray_serve import serve_forever
from e2h.serve.server import uvicorn_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, required=False)
    parser.add_argument("--ray", action="store_true", help="deploy on Ray Serve instead of a single uvicorn process")
    parser.add_argument("--replicas", type=int, default=None, help="Ray Serve replicas (default: serve.replicas)")
    parser.add_argument("--ray-address", default=None, help="an existing Ray cluster (default: start a local one)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def serve_settings(config: RunConfig) -> ServeSection:
    """The serve section with its defaults resolved (prm_path -> <run.out_dir>/prm, steps -> score.steps)."""
    settings = config.serve.model_copy()
    if settings.prm_path is None:
        settings.prm_path = str(RunLayout(config).serve_prm)
    if settings.steps is None:  # the service aggregates the steps `e2h score` does
        settings.steps = config.score.steps
    return settings


def run(args: argparse.Namespace) -> int:
    settings = serve_settings(config_from_args(args))
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.ray:
        serve_forever(settings, replicas=args.replicas or settings.replicas, address=args.ray_address)
        return 0
    try:
        import uvicorn
    except ImportError as err:
        raise SystemExit("e2h serve needs uvicorn and fastapi: pip install 'e2h[serve]'") from err
    from e2h.serve.app import create_app  # local: imports fastapi (e2h[serve])

    uvicorn.Server(uvicorn_config(create_app(settings), settings, args.log_level)).run()
    return 0
